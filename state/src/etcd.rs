//! [`EtcdStore`]: keys under `stockyard/` in etcd, shared by every
//! scheduler pointed at the same cluster. It connects on first use and
//! again after a failure, so a scheduler starts and serves queries while
//! etcd is away, and its state calls fail with a clear error meanwhile.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use tokio::sync::Mutex;

use crate::{StateError, StateStore};

/// Everything Stockyard keeps in etcd is under this prefix.
pub const PREFIX: &str = "stockyard/";

/// Keys a listing asks etcd for at once: a whole prefix in one answer
/// outgrows the client's 4 MiB message limit after a few days of run
/// history, and etcd advises paging range reads.
const PAGE: i64 = 256;

/// The end of the key range that holds every key starting with `prefix`:
/// the prefix with its last byte that can be raised, raised.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the key space.
    vec![0]
}

/// State in etcd.
pub struct EtcdStore {
    endpoints: Vec<String>,
    client: Mutex<Option<Client>>,
    /// This process's campaign, stopped when it resigns: left running, it
    /// would take the key straight back.
    campaign: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// This process's claim on the leadership.
    claim: crate::election::Claim,
    /// Set once it campaigns: every write then goes with a check that the
    /// claim still holds.
    campaigned: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("endpoints", &self.endpoints).finish()
    }
}

impl EtcdStore {
    /// A store on `endpoints` (`HOST:PORT`); nothing connects yet.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            client: Mutex::new(None),
            campaign: std::sync::Mutex::new(None),
            claim: Default::default(),
            campaigned: Default::default(),
        }
    }

    fn error(&self, doing: &str, e: impl std::error::Error + 'static) -> StateError {
        let what = format!("etcd at {} ({doing})", self.endpoints.join(","));
        StateError::Store { what, source: stockyard_mask::Masked::new(&e) }
    }

    /// The keys under `prefix` (with their values unless `keys_only`), in
    /// key order, [`PAGE`] at a time, every page read at the first page's
    /// revision so the listing is one snapshot.
    async fn range(&self, prefix: &str, keys_only: bool) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let first = format!("{PREFIX}{prefix}").into_bytes();
        let end = prefix_end(&first);
        let (mut start, mut revision, mut out) = (first, 0, Vec::new());
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE)
                .with_sort(SortTarget::Key, SortOrder::Ascend)
                .with_revision(revision);
            if keys_only {
                options = options.with_keys_only();
            }
            let from = start.clone();
            let page = self.run("listing", |mut c| async move { c.get(from, Some(options)).await }).await?;
            if revision == 0 {
                revision = page.header().map_or(0, |h| h.revision());
            }
            for kv in page.kvs() {
                let key = String::from_utf8_lossy(kv.key());
                out.push((key.strip_prefix(PREFIX).unwrap_or(&key).to_string(), kv.value().to_vec()));
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    // The next page starts just after the last key.
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// The check a write of this process goes with: none before it
    /// campaigns; once it does, that the leader key is still the one it
    /// created (its claim), or [`StateError::Fenced`] while it holds none.
    fn fence(&self) -> Result<Option<Compare>, StateError> {
        if !self.campaigned.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        match *self.claim.lock().expect("claim lock") {
            Some(revision) => Ok(Some(Compare::create_revision(crate::election::KEY, CompareOp::Equal, revision))),
            None => Err(self.fenced()),
        }
    }

    fn fenced(&self) -> StateError {
        StateError::Fenced { store: format!("etcd at {}", self.endpoints.join(",")) }
    }

    /// Runs `op` on `key` when `when` holds and this process's fence does;
    /// whether it ran. A failed fence is an error, a failed `when` is not.
    async fn write(&self, doing: &str, when: Option<Compare>, op: TxnOp) -> Result<bool, StateError> {
        let fence = self.fence()?;
        // With no comparison at all the transaction always succeeds.
        let compares: Vec<Compare> = when.into_iter().chain(fence.clone()).collect();
        let mut txn = Txn::new().when(compares).and_then(vec![op]);
        if fence.is_some() {
            // On failure, the leader key says which check failed.
            txn = txn.or_else(vec![TxnOp::get(crate::election::KEY, None)]);
        }
        let answer = self.run(doing, |mut c| async move { c.txn(txn).await }).await?;
        if answer.succeeded() {
            return Ok(true);
        }
        if fence.is_some() {
            let ours = *self.claim.lock().expect("claim lock");
            let held = answer.op_responses().into_iter().find_map(|op| match op {
                etcd_client::TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| kv.create_revision())),
                _ => None,
            });
            if held.flatten() != ours {
                return Err(self.fenced());
            }
        }
        Ok(false)
    }

    /// A connected client: the kept one, or a new connection.
    async fn client(&self) -> Result<Client, StateError> {
        let mut kept = self.client.lock().await;
        if let Some(c) = kept.as_ref() {
            return Ok(c.clone());
        }
        let options =
            ConnectOptions::new().with_connect_timeout(Duration::from_secs(2)).with_timeout(Duration::from_secs(5));
        let client =
            Client::connect(self.endpoints.clone(), Some(options)).await.map_err(|e| self.error("connecting", e))?;
        *kept = Some(client.clone());
        Ok(client)
    }

    /// Forgets the connection after a failure, so the next call reconnects.
    async fn reset(&self) {
        *self.client.lock().await = None;
    }

    async fn run<T, F, Fut>(&self, doing: &str, op: F) -> Result<T, StateError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.client().await?;
        match op(client).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.reset().await;
                Err(self.error(doing, e))
            }
        }
    }
}

#[async_trait::async_trait]
impl StateStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let key = format!("{PREFIX}{key}");
        let resp = self.run("reading", |mut c| async move { c.get(key, None).await }).await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StateError> {
        self.write("writing", None, TxnOp::put(format!("{PREFIX}{key}"), value, None)).await.map(drop)
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.write("deleting", None, TxnOp::delete(format!("{PREFIX}{key}"), None)).await.map(drop)
    }

    async fn put_if(&self, key: &str, expected: Option<&[u8]>, value: Option<Vec<u8>>) -> Result<bool, StateError> {
        let key = format!("{PREFIX}{key}");
        let when = match expected {
            Some(v) => Compare::value(key.clone(), CompareOp::Equal, v.to_vec()),
            // Absent: never created (or deleted since).
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
        };
        let then = match value {
            Some(v) => TxnOp::put(key, v, None),
            None => TxnOp::delete(key, None),
        };
        self.write("writing", Some(when), then).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        self.range(prefix, false).await
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        Ok(self.range(prefix, true).await?.into_iter().map(|(k, _)| k).collect())
    }

    fn describe(&self) -> String {
        format!("etcd://{}", self.endpoints.join(","))
    }

    fn shared(&self) -> bool {
        true
    }

    fn campaign(&self, me: String, role: std::sync::Arc<tokio::sync::watch::Sender<crate::Role>>) {
        role.send_replace(crate::Role::Follower(None));
        self.campaigned.store(true, std::sync::atomic::Ordering::SeqCst);
        let task = tokio::spawn(crate::election::campaign(self.endpoints.clone(), me, role, self.claim.clone()));
        *self.campaign.lock().expect("campaign lock") = Some(task.abort_handle());
    }

    fn term(&self) -> Option<u64> {
        (*self.claim.lock().expect("claim lock")).map(|r| r as u64)
    }

    async fn resign(&self, me: String) -> Result<(), StateError> {
        if let Some(campaign) = self.campaign.lock().expect("campaign lock").take() {
            campaign.abort();
        }
        *self.claim.lock().expect("claim lock") = None;
        crate::election::resign(self.endpoints.clone(), me).await.map_err(|e| self.error("resigning", e))
    }
}
