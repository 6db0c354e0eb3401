//! The suite run again with a token on every process: with
//! `STOCKYARD_TEST_TOKEN` set, every `stockyard` process a test starts gets
//! it as `STOCKYARD_TOKEN` (unless the test gives its own), and the HTTP
//! helpers and the browser present it. Tests that set their own token (to
//! check refusals) are left alone: their clusters mark their ports.

use std::collections::HashSet;
use std::sync::Mutex;

/// HTTP ports of clusters whose test set its own token.
static OWN_TOKEN_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The token every process gets in this run, if any.
pub fn test_token() -> Option<String> {
    std::env::var("STOCKYARD_TEST_TOKEN").ok().filter(|t| !t.is_empty())
}

/// Marks `port` as a cluster whose test handles its token itself.
pub fn mark_own_token(port: u16) {
    OWN_TOKEN_PORTS.lock().unwrap().get_or_insert_with(HashSet::new).insert(port);
}

/// The token to present on `port` unasked: the run's test token, unless the
/// cluster there has its test's own.
pub fn for_port(port: u16) -> Option<String> {
    let own = OWN_TOKEN_PORTS.lock().unwrap().as_ref().is_some_and(|p| p.contains(&port));
    if own { None } else { test_token() }
}
