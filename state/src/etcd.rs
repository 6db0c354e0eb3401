//! [`EtcdStore`]: keys under `stockyard/` in etcd, shared by every
//! scheduler pointed at the same cluster. It connects on first use and
//! again after a failure, so a scheduler starts and serves queries while
//! etcd is away, and its state calls fail with a clear error meanwhile.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::sync::Mutex;

use crate::{StateError, StateStore};

/// Everything Stockyard keeps in etcd is under this prefix.
pub const PREFIX: &str = "stockyard/";

/// State in etcd.
pub struct EtcdStore {
    endpoints: Vec<String>,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("endpoints", &self.endpoints).finish()
    }
}

impl EtcdStore {
    /// A store on `endpoints` (`HOST:PORT`); nothing connects yet.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self { endpoints, client: Mutex::new(None) }
    }

    fn error(&self, doing: &str, e: impl std::error::Error + 'static) -> StateError {
        let what = format!("etcd at {} ({doing})", self.endpoints.join(","));
        StateError::Store { what, source: stockyard_mask::Masked::new(&e) }
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
        let key = format!("{PREFIX}{key}");
        self.run("writing", |mut c| async move { c.put(key, value, None).await }).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        let key = format!("{PREFIX}{key}");
        self.run("deleting", |mut c| async move { c.delete(key, None).await }).await?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let prefix = format!("{PREFIX}{prefix}");
        let resp = self
            .run("listing", |mut c| async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await })
            .await?;
        let mut out: Vec<(String, Vec<u8>)> = resp
            .kvs()
            .iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                (key.strip_prefix(PREFIX).unwrap_or(&key).to_string(), kv.value().to_vec())
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("etcd://{}", self.endpoints.join(","))
    }

    fn shared(&self) -> bool {
        true
    }

    fn campaign(&self, me: String, role: std::sync::Arc<tokio::sync::watch::Sender<crate::Role>>) {
        role.send_replace(crate::Role::Follower(None));
        tokio::spawn(crate::election::campaign(self.endpoints.clone(), me, role));
    }

    async fn resign(&self, me: String) -> Result<(), StateError> {
        crate::election::resign(self.endpoints.clone(), me).await.map_err(|e| self.error("resigning", e))
    }
}
