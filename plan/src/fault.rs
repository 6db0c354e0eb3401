//! Fault points for crash tests: a process started with
//! `STOCKYARD_FAULT=<name>[,<name>…]` aborts at those points, as a kill
//! would stop it there. Unset, a point does nothing.

/// Aborts the process if `STOCKYARD_FAULT` names `name`.
pub fn point(name: &str) {
    if std::env::var("STOCKYARD_FAULT").is_ok_and(|v| v.split(',').any(|p| p.trim() == name)) {
        eprintln!("STOCKYARD_FAULT: aborting at {name}");
        std::process::abort();
    }
}
