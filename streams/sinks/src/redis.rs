//! A Redis key holding a stream's latest view, replaced in one MULTI/EXEC
//! per batch: readers see one batch's view or the next, never a mix.

use std::time::Duration;

use crate::SinkError;

/// How long a write may take before the batch fails (and is redone).
const TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis sink.
#[derive(Clone)]
pub struct RedisSink {
    url: String,
    key: String,
    ttl: Option<Duration>,
    client: redis::Client,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink").field("url", &stockyard_mask::uri(&self.url)).field("key", &self.key).finish()
    }
}

impl RedisSink {
    /// A sink writing `key` at `url` (`redis://HOST:PORT[/DB]`), expiring
    /// after `ttl` when given.
    pub fn open(url: &str, key: &str, ttl: Option<Duration>) -> Result<Self, SinkError> {
        let client = redis::Client::open(url).map_err(|e| SinkError::write(url, &e))?;
        Ok(Self { url: url.to_string(), key: key.to_string(), ttl, client })
    }

    /// The key written.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether Redis answers.
    pub async fn check(&self) -> Result<(), SinkError> {
        let ping = async {
            let mut con = self.client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut con).await
        };
        match tokio::time::timeout(TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SinkError::write(&self.url, &e)),
            Err(_) => Err(SinkError::timeout(&self.url, TIMEOUT)),
        }
    }

    /// Sets the key to `value` in one MULTI/EXEC.
    pub async fn write(&self, value: &str) -> Result<(), SinkError> {
        let write = async {
            let mut con = self.client.get_multiplexed_async_connection().await?;
            let mut pipe = redis::pipe();
            pipe.atomic();
            match self.ttl {
                Some(ttl) => pipe.set_ex(&self.key, value, ttl.as_secs().max(1)).ignore(),
                None => pipe.set(&self.key, value).ignore(),
            };
            pipe.query_async::<()>(&mut con).await
        };
        match tokio::time::timeout(TIMEOUT, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SinkError::write(&self.url, &e)),
            Err(_) => Err(SinkError::timeout(&self.url, TIMEOUT)),
        }
    }
}
