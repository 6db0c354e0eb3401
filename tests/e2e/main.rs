//! End-to-end tests on real processes. One test binary for the whole
//! workspace: each binary links all of DataFusion.

mod archive;
mod chaos;
mod cli;
mod cluster;
mod flight_sql;
mod generate;
mod ha;
mod history;
mod kpi;
mod kpi_golden;
mod mongo;
mod openapi;
mod pipelines;
mod schedules;
mod security;
mod services;
mod streams;
mod ui;
