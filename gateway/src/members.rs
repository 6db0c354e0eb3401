//! Who a gateway forwards to: the members of the cluster, never an address
//! a call merely names.
//!
//! A call names its target in `:authority`. Ballista fills that in from
//! what it was told (a task's `scheduler_id`, a shuffle location), and a
//! task can come from anyone who reaches an executor. So the gateway keeps
//! the set of addresses the cluster itself vouches for: the schedulers it
//! was given, the leaders they report, and the executors the leader lists.
//! Everything else is refused before the token is added.

use std::collections::HashMap;
use std::sync::Mutex;

/// What a member is: schedulers may serve TLS, executors serve plain gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A scheduler's gRPC port.
    Scheduler,
    /// An executor's gRPC or Arrow Flight port.
    Executor,
}

/// The addresses (`HOST:PORT`) a gateway may forward to.
#[derive(Debug, Default)]
pub struct Members {
    known: Mutex<HashMap<String, Role>>,
}

impl Members {
    /// Members made of the schedulers a gateway was given.
    pub fn new<I: IntoIterator<Item = String>>(schedulers: I) -> Self {
        let members = Self::default();
        for s in schedulers {
            members.add(&s, Role::Scheduler);
        }
        members
    }

    /// Adds an address the cluster vouches for; empty ones are ignored. A
    /// scheduler stays one.
    pub fn add(&self, addr: &str, role: Role) {
        if let Some(addr) = normal(addr) {
            let mut known = self.known.lock().expect("members lock");
            let entry = known.entry(addr).or_insert(role);
            if role == Role::Scheduler {
                *entry = role;
            }
        }
    }

    /// What `addr` is, when it is a member.
    pub fn role(&self, addr: &str) -> Option<Role> {
        normal(addr).and_then(|a| self.known.lock().expect("members lock").get(&a).copied())
    }
}

/// `HOST:PORT` with the host lower-cased (names are case-insensitive), or
/// `None` for an address without a port.
fn normal(addr: &str) -> Option<String> {
    let (host, port) = addr.trim().rsplit_once(':')?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return None;
    }
    Some(format!("{}:{port}", host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_added_addresses_are_members() {
        let members = Members::new(["Sched-A:50050".to_string()]);
        members.add("10.0.0.7:50052", Role::Executor);
        members.add("", Role::Executor);
        members.add("no-port", Role::Scheduler);
        members.add("sched-a:50050", Role::Executor);
        assert_eq!(members.role("sched-a:50050"), Some(Role::Scheduler));
        assert_eq!(members.role("10.0.0.7:50052"), Some(Role::Executor));
        assert_eq!(members.role("10.0.0.7:50053"), None);
        assert_eq!(members.role("evil.example:50050"), None);
        assert_eq!(members.role("no-port"), None);
        assert_eq!(members.role(""), None);
    }
}
