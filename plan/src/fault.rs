//! Fault points for crash tests: a process started with
//! `STOCKYARD_FAULT=<name>[,<name>…]` aborts at those points, as a kill
//! would stop it there; with `pause:<name>` it waits there for
//! [`PAUSE`], so a test can break something under it. Unset, a point does
//! nothing.

use std::time::Duration;

/// How long a pause point waits.
pub const PAUSE: Duration = Duration::from_secs(5);

fn named(name: &str) -> bool {
    std::env::var("STOCKYARD_FAULT").is_ok_and(|v| v.split(',').any(|p| p.trim() == name))
}

/// Waits [`PAUSE`] if `STOCKYARD_FAULT` names `pause:<name>`.
pub async fn pause(name: &str) {
    if named(&format!("pause:{name}")) {
        eprintln!("STOCKYARD_FAULT: pausing at {name}");
        tokio::time::sleep(PAUSE).await;
    }
}

/// Aborts the process if `STOCKYARD_FAULT` names `name`. With
/// `STOCKYARD_FAULT_ONCE=<path>`, only the first process to create that
/// file aborts, so one of several executors dies and the others go on.
pub fn point(name: &str) {
    let first = || match std::env::var_os("STOCKYARD_FAULT_ONCE") {
        None => true,
        Some(path) => std::fs::OpenOptions::new().write(true).create_new(true).open(path).is_ok(),
    };
    if named(name) && first() {
        eprintln!("STOCKYARD_FAULT: aborting at {name}");
        std::process::abort();
    }
}
