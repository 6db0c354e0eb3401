//! Scan sharing: queries of one job run that read the same range of the
//! same collection with the same filter read MongoDB once per process.
//!
//! The KPI job runs eight queries that all read the window's facts and the
//! dimensions; without sharing, each reads them again. A scan with a share
//! key reads every column of its partition once, keeps the batches for
//! [`SHARE_TTL`], and hands each query its own projection of them.

use std::collections::HashMap;
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

/// What a shared read gives: the batches, or why not (the error's text,
/// since `DataFusionError` is not `Clone`).
type Batches = std::result::Result<Arc<Vec<RecordBatch>>, Arc<str>>;

struct Entry {
    created: Instant,
    read: Shared<BoxFuture<'static, Batches>>,
}

static READS: LazyLock<Mutex<HashMap<String, Entry>>> = LazyLock::new(Mutex::default);

/// Why a shared read gave nothing back.
#[derive(Debug)]
pub enum Unshared {
    /// Over [`MAX_SHARED_BYTES`]: read directly instead.
    TooLarge,
    /// The read failed.
    Failed(DataFusionError),
}

const TOO_LARGE: &str = "\0too large";

/// The batches for `key`, from the first caller's `read` (spawned, so it
/// finishes even if that caller goes away) or from one already under way.
pub async fn batches<F>(key: String, read: F) -> std::result::Result<Arc<Vec<RecordBatch>>, Unshared>
where
    F: std::future::Future<Output = Result<Vec<RecordBatch>>> + Send + 'static,
{
    let key_copy = key.clone();
    let shared = {
        let mut reads = READS.lock().expect("shared reads lock");
        reads.retain(|_, e| e.created.elapsed() < SHARE_TTL);
        reads
            .entry(key)
            .or_insert_with(|| {
                let task = tokio::spawn(read);
                let read = async move {
                    match task.await {
                        Ok(Ok(batches)) => {
                            let size: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
                            if size > MAX_SHARED_BYTES { Err(Arc::from(TOO_LARGE)) } else { Ok(Arc::new(batches)) }
                        }
                        Ok(Err(e)) => Err(Arc::from(e.strip_backtrace())),
                        Err(e) => Err(Arc::from(format!("a shared MongoDB read stopped: {e}"))),
                    }
                };
                Entry { created: Instant::now(), read: read.boxed().shared() }
            })
            .read
            .clone()
    };
    match shared.await {
        Ok(batches) => Ok(batches),
        Err(e) if &*e == TOO_LARGE => Err(Unshared::TooLarge),
        Err(e) => {
            // A retried task reads again rather than getting the old failure.
            READS.lock().expect("shared reads lock").remove(&key_copy);
            Err(Unshared::Failed(DataFusionError::Execution(e.to_string())))
        }
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
