//! Which scheduler leads. Schedulers that share an etcd store elect one
//! leader, which alone runs schedules and jobs; the others stand by,
//! answer where the leader is, and take over when its lease lapses. With
//! a store only one scheduler uses, that scheduler leads from the start.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use stockyard_state::{Role, StateStore};
use tokio::sync::watch;

/// A scheduler as the election knows it: the value it campaigns with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Unique to the process, so a restarted scheduler is a new member.
    pub id: String,
    /// gRPC `HOST:PORT` executors and clients use.
    pub grpc: String,
    /// HTTP `HOST:PORT` of the web UI and REST API.
    pub http: String,
}

/// This scheduler's part in the election.
#[derive(Debug)]
pub struct Leadership {
    /// This scheduler.
    pub me: Member,
    /// Whether other schedulers may share the store (etcd).
    pub shared: bool,
    role: watch::Receiver<Role>,
    /// The leader known last, kept while none is: see [`Self::last_leader`].
    last: Arc<std::sync::Mutex<Option<Member>>>,
    store: Arc<dyn StateStore>,
    _sender: Arc<watch::Sender<Role>>,
}

impl Leadership {
    /// Starts campaigning as `me` on `store`.
    pub fn start(store: Arc<dyn StateStore>, me: Member) -> Arc<Self> {
        let (sender, role) = watch::channel(Role::Follower(None));
        let sender = Arc::new(sender);
        let value = serde_json::to_string(&me).expect("a member is JSON");
        store.campaign(value, sender.clone());
        let last = Arc::new(std::sync::Mutex::new(None));
        tokio::spawn(remember_leader(role.clone(), me.clone(), last.clone()));
        Arc::new(Self { me, shared: store.shared(), role, last, store, _sender: sender })
    }

    /// The leader now or, while none is elected (etcd is away), the one
    /// that led last. Clients and executors gather there meanwhile: its
    /// executors are the ones registered, and a query needs both.
    pub fn last_leader(&self) -> Option<Member> {
        self.leader().or_else(|| self.last.lock().expect("last leader lock").clone())
    }

    /// Whether this scheduler leads now.
    pub fn is_leader(&self) -> bool {
        *self.role.borrow() == Role::Leader
    }

    /// The leader, when one is known.
    pub fn leader(&self) -> Option<Member> {
        named(&self.role.borrow(), &self.me)
    }

    /// Why this scheduler refuses work it would run as the leader.
    pub fn not_leading(&self) -> Option<String> {
        if self.is_leader() {
            return None;
        }
        Some(match self.leader() {
            Some(l) => {
                format!("this scheduler is a standby; the leader is at {} (web UI at http://{})", l.grpc, l.http)
            }
            None => "this scheduler is a standby and no leader is elected yet (is etcd reachable?)".to_string(),
        })
    }

    /// Gives up the leadership at once (on shutdown), so a standby takes
    /// over without waiting for the lease to lapse.
    pub async fn resign(&self) {
        if self.shared && self.is_leader() {
            let value = serde_json::to_string(&self.me).expect("a member is JSON");
            match self.store.resign(value).await {
                Ok(()) => tracing::info!("resigned the leadership"),
                Err(e) => {
                    tracing::warn!("cannot resign the leadership (a standby takes over when the lease lapses): {e}")
                }
            }
        }
    }
}

/// Keeps `last` on the latest leader `role` named.
async fn remember_leader(mut role: watch::Receiver<Role>, me: Member, last: Arc<std::sync::Mutex<Option<Member>>>) {
    loop {
        let known = named(&role.borrow_and_update(), &me);
        if known.is_some() {
            *last.lock().expect("last leader lock") = known;
        }
        if role.changed().await.is_err() {
            return;
        }
    }
}

/// The leader `role` names, `me` when this scheduler leads.
fn named(role: &Role, me: &Member) -> Option<Member> {
    match role {
        Role::Leader => Some(me.clone()),
        Role::Follower(Some(value)) => serde_json::from_str(value).ok(),
        Role::Follower(None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member { id: id.into(), grpc: format!("{id}:50050"), http: format!("{id}:8080") }
    }

    #[test]
    fn the_leader_is_read_from_the_role() {
        let (me, other) = (member("me"), member("other"));
        assert_eq!(named(&Role::Leader, &me), Some(me.clone()));
        let value = serde_json::to_string(&other).unwrap();
        assert_eq!(named(&Role::Follower(Some(value)), &me), Some(other));
        assert_eq!(named(&Role::Follower(None), &me), None);
        // A campaign value another version wrote that does not read is no leader.
        assert_eq!(named(&Role::Follower(Some("{\"id\":7}".into())), &me), None);
    }

    #[tokio::test]
    async fn the_last_leader_is_kept_while_none_is_known() {
        let (tx, rx) = watch::channel(Role::Follower(None));
        let last = Arc::new(std::sync::Mutex::new(None));
        tokio::spawn(remember_leader(rx, member("me"), last.clone()));
        let other = member("other");
        tx.send(Role::Follower(Some(serde_json::to_string(&other).unwrap()))).unwrap();
        let seen = async |want: Option<Member>| {
            for _ in 0..200 {
                if *last.lock().unwrap() == want {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            false
        };
        assert!(seen(Some(other.clone())).await, "the leader was not remembered");
        // etcd away: nobody is known to lead; the last one is kept.
        tx.send(Role::Follower(None)).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(*last.lock().unwrap(), Some(other));
        tx.send(Role::Leader).unwrap();
        assert!(seen(Some(member("me"))).await, "this scheduler leading was not remembered");
    }
}
