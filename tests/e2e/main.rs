//! End-to-end tests on real processes. One test binary for the whole
//! workspace: each binary links all of DataFusion.

mod archive;
mod cli;
mod ha;
mod generate;
mod kpi;
mod cluster;
mod mongo;
mod schedules;
mod security;
mod services;
mod ui;
