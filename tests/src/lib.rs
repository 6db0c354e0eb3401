//! Test harness: starts the real `stockyard` binary as a scheduler and
//! executors, and the real services (SecantusDB, Redis, etcd) a test asks
//! for, each on free loopback ports; waits until they answer; and kills them
//! by PID when the handle drops, also when a test fails.

pub mod browser;
pub mod cluster;
pub mod process;
pub mod services;
pub mod token;

pub use browser::Browser;
pub use cluster::{Cluster, Run, archive_all};
pub use process::{Proc, free_port, http, http_get, http_with, repo_root, stockyard_bin, within};
pub use services::{Etcd, Kafka, Mongo, Redis, S3, venv_bin};
