//! The scheduler's durable state: schedules and the run history, as keys
//! and values behind one trait, [`StateStore`], so the same scheduler code
//! runs on a local directory (the embedded default) or on etcd (shared by
//! several schedulers).
//!
//! Keys are `/`-separated paths (`schedules/kpi`, `runs/…`); values are
//! bytes (the scheduler writes JSON).

mod election;
mod etcd;
mod file;
mod memory;

use std::sync::Arc;

pub use election::{LEASE_TTL, Role};

pub use etcd::EtcdStore;
pub use file::FileStore;
pub use memory::MemoryStore;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A `STOCKYARD_STATE` value that names no store.
    #[error("'{0}' is not a state store (use memory, file:DIR or etcd://HOST:PORT[,HOST:PORT…])")]
    Spec(String),
    /// A write by a scheduler that no longer leads: another took over (or
    /// this one resigned), so what it would write is no longer its to say.
    #[error("{store}: the write was refused: this scheduler no longer leads (another took over)")]
    Fenced {
        /// The store, as [`StateStore::describe`] says it.
        store: String,
    },
    /// The store failed; `what` names it and the operation.
    #[error("{what}: {source}")]
    Store {
        /// The store and the operation, e.g. `etcd at HOST:PORT (reading)`.
        what: String,
        /// The underlying error (etcd's or the file system's), masked.
        #[source]
        source: stockyard_mask::Masked,
    },
}

/// Keys and values that outlive the scheduler process.
///
/// Once a store campaigns (see [`StateStore::campaign`]), its writes are
/// fenced: they succeed only while this process leads, checked by the store
/// in the same step as the write, and fail with [`StateError::Fenced`]
/// otherwise. A leader that froze past its lease and woke cannot overwrite
/// what its successor wrote.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// The value at `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// Sets `key` to `value`.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StateError>;
    /// Removes `key` (no error when absent).
    async fn delete(&self, key: &str) -> Result<(), StateError>;
    /// Every key under `prefix` with its value, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StateError>;
    /// Sets `key` to `value` (removes it when `None`) only if it holds
    /// `expected` now (is absent when `None`); whether it did. Two
    /// read-modify-writes of one key cannot both win.
    async fn put_if(&self, key: &str, expected: Option<&[u8]>, value: Option<Vec<u8>>) -> Result<bool, StateError>;
    /// Every key under `prefix`, in key order, without the values (which
    /// a store that can leaves on its side).
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        Ok(self.list(prefix).await?.into_iter().map(|(k, _)| k).collect())
    }
    /// What the store is, for logs and errors (no credentials).
    fn describe(&self) -> String;
    /// Whether several schedulers can share this store, and so must elect
    /// a leader.
    fn shared(&self) -> bool {
        false
    }
    /// Campaigns for the leadership with `me` (unique to this process) in
    /// the background, keeping `role` up to date. A store only one
    /// scheduler uses makes it the leader at once.
    fn campaign(&self, me: String, role: Arc<tokio::sync::watch::Sender<Role>>) {
        let _ = me;
        role.send_replace(Role::Leader);
    }
    /// The term this scheduler leads in, while it leads: a number above
    /// every earlier leader's term on this store, so that side effects
    /// outside the store (the archive ledger) can refuse an older leader's.
    /// `None` where nobody else can lead (memory) or while not leading.
    fn term(&self) -> Option<u64> {
        None
    }
    /// Gives up the leadership `me` holds, if any, so another scheduler
    /// takes over at once.
    async fn resign(&self, me: String) -> Result<(), StateError> {
        let _ = me;
        Ok(())
    }
}

/// Opens the store `spec` names: `memory`, `file:DIR` or
/// `etcd://HOST:PORT[,HOST:PORT…]`.
pub async fn open(spec: &str) -> Result<Arc<dyn StateStore>, StateError> {
    if spec == "memory" {
        return Ok(Arc::new(MemoryStore::default()));
    }
    if let Some(dir) = spec.strip_prefix("file:") {
        return Ok(Arc::new(FileStore::open(dir)?));
    }
    if let Some(hosts) = spec.strip_prefix("etcd://") {
        let endpoints: Vec<String> = hosts.split(',').filter(|h| !h.is_empty()).map(str::to_string).collect();
        if endpoints.is_empty() {
            return Err(StateError::Spec(spec.into()));
        }
        return Ok(Arc::new(EtcdStore::new(endpoints)));
    }
    Err(StateError::Spec(spec.into()))
}

/// Checks `spec`'s form without opening anything.
pub fn check(spec: &str) -> Result<(), StateError> {
    let ok = spec == "memory"
        || spec.strip_prefix("file:").is_some_and(|d| !d.is_empty())
        || spec.strip_prefix("etcd://").is_some_and(|h| h.split(',').any(|e| !e.is_empty()));
    if ok { Ok(()) } else { Err(StateError::Spec(spec.into())) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What every store must do.
    pub async fn behaves(store: &dyn StateStore) {
        assert_eq!(store.get("schedules/kpi").await.unwrap(), None);
        store.put("schedules/kpi", b"one".to_vec()).await.unwrap();
        store.put("schedules/archive", b"two".to_vec()).await.unwrap();
        store.put("schedulesX", b"not under the prefix".to_vec()).await.unwrap();
        store.put("runs/1", b"r".to_vec()).await.unwrap();
        assert_eq!(store.get("schedules/kpi").await.unwrap(), Some(b"one".to_vec()));
        store.put("schedules/kpi", b"three".to_vec()).await.unwrap();
        let listed = store.list("schedules/").await.unwrap();
        assert_eq!(
            listed,
            vec![("schedules/archive".to_string(), b"two".to_vec()), ("schedules/kpi".to_string(), b"three".to_vec())]
        );
        assert_eq!(store.keys("schedules/").await.unwrap(), ["schedules/archive", "schedules/kpi"]);
        // Compare-and-swap: only from the value the key holds.
        assert!(!store.put_if("schedules/kpi", Some(b"one"), Some(b"four".to_vec())).await.unwrap());
        assert!(store.put_if("schedules/kpi", Some(b"three"), Some(b"four".to_vec())).await.unwrap());
        assert_eq!(store.get("schedules/kpi").await.unwrap(), Some(b"four".to_vec()));
        assert!(!store.put_if("schedules/kpi", None, Some(b"new".to_vec())).await.unwrap(), "it exists");
        assert!(store.put_if("schedules/new", None, Some(b"new".to_vec())).await.unwrap());
        assert!(!store.put_if("schedules/new", Some(b"old"), None).await.unwrap());
        assert!(store.put_if("schedules/new", Some(b"new"), None).await.unwrap());
        assert_eq!(store.get("schedules/new").await.unwrap(), None);
        store.delete("schedules/kpi").await.unwrap();
        store.delete("schedules/kpi").await.unwrap();
        assert_eq!(store.list("schedules/").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn memory_and_file_stores_behave() {
        behaves(&MemoryStore::default()).await;
        let dir = tempfile::tempdir().unwrap();
        behaves(&FileStore::open(dir.path().to_str().unwrap()).unwrap()).await;
        // A new store on the same directory sees the same state.
        let again = FileStore::open(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(again.get("schedules/archive").await.unwrap(), Some(b"two".to_vec()));
    }

    #[tokio::test]
    async fn one_scheduler_leads_on_a_directory_and_its_standby_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_str().unwrap();
        let (a, b) = (FileStore::open(dir).unwrap(), FileStore::open(dir).unwrap());
        let (a_role, b_role) = (
            Arc::new(tokio::sync::watch::channel(Role::Follower(None)).0),
            Arc::new(tokio::sync::watch::channel(Role::Follower(None)).0),
        );
        a.campaign("a".into(), a_role.clone());
        let within = |role: Arc<tokio::sync::watch::Sender<Role>>, want: Role| async move {
            let mut rx = role.subscribe();
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.wait_for(|r| *r == want)).await.is_ok()
        };
        assert!(within(a_role.clone(), Role::Leader).await, "a leads");
        let a_term = a.term().expect("a leads in a term");
        a.put("schedules/kpi", b"a".to_vec()).await.unwrap();
        b.campaign("b".into(), b_role.clone());
        assert!(within(b_role.clone(), Role::Follower(Some("a".into()))).await, "b follows a: {:?}", *b_role.borrow());
        // The leader and term files are no keys.
        assert_eq!(a.keys("").await.unwrap(), ["schedules/kpi"]);
        a.resign("a".into()).await.unwrap();
        assert!(within(b_role.clone(), Role::Leader).await, "b took over: {:?}", *b_role.borrow());
        assert_eq!(b.term(), Some(a_term + 1), "a later leader's term is larger");
        assert_eq!(a.term(), None);
        // The one that let go writes nothing any more; the leader does.
        let refused = a.put("schedules/kpi", b"late".to_vec()).await.unwrap_err();
        assert!(matches!(refused, StateError::Fenced { .. }), "{refused}");
        assert!(a.delete("schedules/kpi").await.is_err());
        assert!(a.put_if("schedules/kpi", Some(b"a"), None).await.is_err());
        b.put("schedules/kpi", b"b".to_vec()).await.unwrap();
        assert_eq!(a.get("schedules/kpi").await.unwrap(), Some(b"b".to_vec()), "a still reads");
        assert!(within(a_role.clone(), Role::Follower(None)).await, "a stopped campaigning");
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(*a_role.borrow(), Role::Follower(None), "a took the lock back");
    }

    #[test]
    fn specs_are_checked() {
        assert!(check("memory").is_ok());
        assert!(check("file:/tmp/x").is_ok());
        assert!(check("etcd://a:2379,b:2379").is_ok());
        assert_eq!(
            check("redis://x").unwrap_err().to_string(),
            "'redis://x' is not a state store (use memory, file:DIR or etcd://HOST:PORT[,HOST:PORT…])"
        );
        assert!(check("file:").is_err());
    }
}
