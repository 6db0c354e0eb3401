//! Scan sharing: queries of one job run that read the same range of the
//! same collection with the same filter read MongoDB once per process.
//!
//! The KPI job runs eight queries that all read the window's facts and the
//! dimensions; without sharing, each reads them again. A scan with a share
//! key reads every column of its partition once, keeps the batches for
//! [`SHARE_TTL`], and hands each query its own projection of them.
//! [`Memo`] is the sharing itself, also used for collection sizes.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// How long a shared read is kept: longer than a job run, short enough
/// that memory comes back soon after.
pub const SHARE_TTL: Duration = Duration::from_secs(60);

/// A read larger than this is not kept; each query reads for itself.
pub const MAX_SHARED_BYTES: usize = 512 << 20;

/// Answers to MongoDB requests, shared by key: the first caller's request
/// runs (spawned, so it finishes even if that caller goes away); callers
/// that come while it runs, or within the TTL after, get its answer. A
/// failure reaches everyone waiting for it and is then forgotten, so the
/// next caller asks again. Errors travel as text: `DataFusionError` is not
/// `Clone`.
pub struct Memo<K, T> {
    ttl: Duration,
    entries: Mutex<HashMap<K, Entry<T>>>,
}

struct Entry<T> {
    created: Instant,
    answer: Shared<BoxFuture<'static, std::result::Result<T, Arc<str>>>>,
}

impl<K: Hash + Eq + Clone, T: Clone + Send + Sync + 'static> Memo<K, T> {
    /// Answers kept for `ttl` from when they were first asked.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::default() }
    }

    /// The answer for `key`: `ask`'s, or the one already asked.
    pub async fn get<F>(&self, key: K, ask: F) -> std::result::Result<T, Arc<str>>
    where
        F: std::future::Future<Output = std::result::Result<T, Arc<str>>> + Send + 'static,
    {
        let answer = {
            let mut entries = self.entries.lock().expect("memo lock");
            entries.retain(|_, e| e.created.elapsed() < self.ttl);
            entries
                .entry(key.clone())
                .or_insert_with(|| {
                    let task = tokio::spawn(ask);
                    let answer = async move {
                        task.await.unwrap_or_else(|e| Err(Arc::from(format!("a shared MongoDB request stopped: {e}"))))
                    };
                    Entry { created: Instant::now(), answer: answer.boxed().shared() }
                })
                .answer
                .clone()
        };
        let result = answer.await;
        if result.is_err() {
            self.entries.lock().expect("memo lock").remove(&key);
        }
        result
    }
}

/// Shared reads: the batches, or `None` when over [`MAX_SHARED_BYTES`].
static READS: LazyLock<Memo<String, Option<Arc<Vec<RecordBatch>>>>> = LazyLock::new(|| Memo::new(SHARE_TTL));

/// Why a shared read gave nothing back.
#[derive(Debug)]
pub enum Unshared {
    /// Over [`MAX_SHARED_BYTES`]: read directly instead.
    TooLarge,
    /// The read failed.
    Failed(DataFusionError),
}

/// The batches for `key`, from the first caller's `read` or from one
/// already under way.
pub async fn batches<F>(key: String, read: F) -> std::result::Result<Arc<Vec<RecordBatch>>, Unshared>
where
    F: std::future::Future<Output = Result<Vec<RecordBatch>>> + Send + 'static,
{
    let read = async move {
        let batches = read.await.map_err(|e| Arc::from(e.strip_backtrace()))?;
        let size: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        // Kept as an answer, so later queries read directly at once.
        Ok((size <= MAX_SHARED_BYTES).then(|| Arc::new(batches)))
    };
    match READS.get(key, read).await {
        Ok(Some(batches)) => Ok(batches),
        Ok(None) => Err(Unshared::TooLarge),
        Err(e) => Err(Unshared::Failed(DataFusionError::Execution(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use datafusion::arrow::array::Int32Array;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([("x", Arc::new(Int32Array::from(vec![1, 2])) as _)]).unwrap()
    }

    #[tokio::test]
    async fn concurrent_readers_of_one_key_read_once() {
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<AtomicUsize>| async move {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(vec![batch()])
        };
        let (a, b) = tokio::join!(
            batches("test-once".into(), read(reads.clone())),
            batches("test-once".into(), read(reads.clone()))
        );
        assert_eq!(a.unwrap().len(), 1);
        assert_eq!(b.unwrap()[0].num_rows(), 2);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Another key is another read.
        batches("test-other".into(), read(reads.clone())).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_read_fails_every_reader_with_its_message() {
        let failing = async { Err(DataFusionError::Execution("MongoDB went away".into())) };
        match batches("test-fail".into(), failing).await {
            Err(Unshared::Failed(e)) => assert!(e.to_string().contains("MongoDB went away"), "{e}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
