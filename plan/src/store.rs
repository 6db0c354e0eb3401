//! Archive destinations as object stores. A destination is a base URI that
//! carries no credentials, so it can travel in plans: each process opens it
//! with its own environment.
//!
//! - a local path or `file:///path`: the directory is created if missing;
//! - `s3://bucket/prefix`: credentials, region and endpoint from the usual
//!   `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true` for a
//!   local S3 server);
//! - `hdfs://host:port/path`: with the `hdfs` cargo feature only.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

/// Why a destination cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The destination's scheme is not `file`, `s3` or `hdfs`.
    #[error("archive destination '{0}': unsupported scheme (use a local path, file://, s3:// or hdfs://)")]
    Scheme(String),
    /// An `hdfs://` destination, in a build without the `hdfs` feature.
    #[error("archive destination '{0}': HDFS needs a stockyard built with `--features hdfs`")]
    NoHdfs(String),
    /// The store could not be opened or created.
    #[error("archive destination '{dest}': {reason}")]
    Open {
        /// The destination as given.
        dest: String,
        /// Why it could not be opened.
        reason: String,
    },
}

/// An opened destination: the store and the prefix every path is under.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Store the files go to: a local directory, an S3 bucket or HDFS.
    pub store: Arc<dyn ObjectStore>,
    /// Path in `store` the files are under; empty for the store's root.
    pub prefix: Path,
}

impl Destination {
    /// `parts` joined under the destination's prefix.
    pub fn path<'a>(&self, parts: impl IntoIterator<Item = &'a str>) -> Path {
        parts.into_iter().fold(self.prefix.clone(), Path::join)
    }
}

/// Whether `location` (a path or URL in SQL: `CREATE EXTERNAL TABLE ...
/// LOCATION`, `COPY ... TO`) names this machine's own files.
pub fn is_local(location: &str) -> bool {
    match location.split_once("://") {
        None => true,
        Some((scheme, _)) => scheme.eq_ignore_ascii_case("file"),
    }
}

/// Checks that `dest` names a destination this build can open, without
/// touching it: for refusing a bad run before it starts.
pub fn open_check(dest: &str) -> Result<(), StoreError> {
    match dest.split_once("://") {
        None | Some(("file" | "s3", _)) => Ok(()),
        Some(("hdfs", _)) if cfg!(feature = "hdfs") => Ok(()),
        Some(("hdfs", _)) => Err(StoreError::NoHdfs(dest.to_string())),
        Some(_) => Err(StoreError::Scheme(dest.to_string())),
    }
}

/// Opens `dest`.
pub fn open(dest: &str) -> Result<Destination, StoreError> {
    let fail = |reason: String| StoreError::Open { dest: dest.to_string(), reason };
    let Some((scheme, rest)) = dest.split_once("://") else {
        return local(dest).map_err(fail);
    };
    match scheme {
        "file" => local(rest).map_err(fail),
        "s3" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(fail("no bucket named (s3://bucket/prefix)".into()));
            }
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            Ok(Destination { store: Arc::new(store), prefix: Path::from(prefix) })
        }
        "hdfs" => hdfs(dest),
        _ => Err(StoreError::Scheme(dest.to_string())),
    }
}

fn local(path: &str) -> Result<Destination, String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create the directory: {e}"))?;
    let store = LocalFileSystem::new_with_prefix(path).map_err(|e| e.to_string())?;
    Ok(Destination { store: Arc::new(store), prefix: Path::default() })
}

#[cfg(feature = "hdfs")]
fn hdfs(dest: &str) -> Result<Destination, StoreError> {
    let url = url::Url::parse(dest).map_err(|e| StoreError::Open { dest: dest.into(), reason: e.to_string() })?;
    let base = format!("hdfs://{}", url.authority());
    let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
        .with_url(&base)
        .build()
        .map_err(|e| StoreError::Open { dest: dest.into(), reason: e.to_string() })?;
    Ok(Destination { store: Arc::new(store), prefix: Path::from(url.path()) })
}

#[cfg(not(feature = "hdfs"))]
fn hdfs(dest: &str) -> Result<Destination, StoreError> {
    Err(StoreError::NoHdfs(dest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn unknown_schemes_and_missing_buckets_are_named() {
        assert_eq!(
            open("ftp://x/y").unwrap_err().to_string(),
            "archive destination 'ftp://x/y': unsupported scheme (use a local path, file://, s3:// or hdfs://)"
        );
        assert!(open("s3:///prefix").unwrap_err().to_string().contains("no bucket"));
    }

    #[tokio::test]
    async fn local_paths_are_created_and_joined() {
        let dir = tempfile::tempdir().unwrap();
        let dest = open(&format!("file://{}/a/b", dir.path().display())).unwrap();
        let path = dest.path(["orders_fact", "event_date=2026-01-05"]);
        dest.store.put(&path, "x".into()).await.unwrap();
        assert!(dir.path().join("a/b/orders_fact/event_date=2026-01-05").exists());
    }
}
