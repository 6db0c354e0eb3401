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

use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use stockyard_mask::Masked;
use url::Url;

/// Why a destination cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The destination's scheme is not `file`, `s3` or `hdfs`.
    #[error("archive destination '{0}': unsupported scheme (use a local path, file://, s3:// or hdfs://)")]
    Scheme(String),
    /// An `hdfs://` destination, in a build without the `hdfs` feature.
    #[error("archive destination '{0}': HDFS needs a stockyard built with `--features hdfs`")]
    NoHdfs(String),
    /// An `s3://` destination without a bucket.
    #[error("archive destination '{0}': no bucket named (s3://bucket/prefix)")]
    NoBucket(String),
    /// A local directory could not be created.
    #[error("archive destination '{dest}': cannot create the directory: {source}")]
    Directory {
        /// The destination as given.
        dest: String,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("archive destination '{dest}': {source}")]
    Open {
        /// The destination as given.
        dest: String,
        /// The store's error, masked (it may quote a key back).
        #[source]
        source: stockyard_mask::Masked,
    },
}

/// An opened destination: the store and the prefix every path is under.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Store the files go to: a local directory, an S3 bucket or HDFS.
    pub store: Arc<dyn ObjectStore>,
    /// Path in `store` the files are under; empty for the store's root.
    pub prefix: Path,
    /// The same store as DataFusion's file scans name it (`file:///`,
    /// `s3://bucket`), and the store's root path in it: readers of the
    /// archive go through the runtime's registry, not through `store`.
    pub root: (String, Path),
}

impl Destination {
    /// `path` (of `store`) as a file scan names it in [`Self::root`]'s store.
    pub fn scan_path(&self, path: &Path) -> Path {
        self.root.1.parts().chain(path.parts()).collect()
    }

    /// `parts` joined under the destination's prefix.
    pub fn path<'a>(&self, parts: impl IntoIterator<Item = &'a str>) -> Path {
        parts.into_iter().fold(self.prefix.clone(), Path::join)
    }
}

/// The object stores of a process's task runtimes: the local file system,
/// and the `s3://` and `hdfs://` stores archives lie in, opened on first use
/// from this process's environment, so credentials never travel in plans.
/// One registry is shared by every task's runtime: each store opens once.
/// The scheduler, which plans every scan, keeps DataFusion's default
/// registry, so SQL cannot name another bucket.
#[derive(Debug, Default)]
pub struct Registry {
    inner: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for Registry {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        let missing = match self.inner.get_store(url) {
            Ok(store) => return Ok(store),
            Err(e) => e,
        };
        if !matches!(url.scheme(), "s3" | "hdfs") {
            return Err(missing);
        }
        let base = format!("{}://{}", url.scheme(), &url[url::Position::BeforeHost..url::Position::AfterPort]);
        let opened = open(&base).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        self.inner.register_store(url, opened.store.clone());
        Ok(opened.store)
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
    let fail = |e: object_store::Error| StoreError::Open { dest: dest.to_string(), source: Masked::new(&e) };
    let Some((scheme, rest)) = dest.split_once("://") else {
        return local(dest, dest);
    };
    match scheme {
        "file" => local(dest, rest),
        "s3" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::NoBucket(dest.to_string()));
            }
            let store =
                object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build().map_err(fail)?;
            let root = (format!("s3://{bucket}"), Path::default());
            Ok(Destination { store: Arc::new(store), prefix: Path::from(prefix), root })
        }
        "hdfs" => hdfs(dest),
        _ => Err(StoreError::Scheme(dest.to_string())),
    }
}

/// The local directory `path` (of destination `dest`), created if missing.
fn local(dest: &str, path: &str) -> Result<Destination, StoreError> {
    std::fs::create_dir_all(path).map_err(|source| StoreError::Directory { dest: dest.to_string(), source })?;
    let open =
        |e: &(dyn std::error::Error + 'static)| StoreError::Open { dest: dest.to_string(), source: Masked::new(e) };
    let store = LocalFileSystem::new_with_prefix(path).map_err(|e| open(&e))?;
    let absolute = std::fs::canonicalize(path).map_err(|e| open(&e))?;
    let root = Path::from_absolute_path(&absolute).map_err(|e| open(&e))?;
    Ok(Destination { store: Arc::new(store), prefix: Path::default(), root: ("file:///".into(), root) })
}

#[cfg(feature = "hdfs")]
fn hdfs(dest: &str) -> Result<Destination, StoreError> {
    let url = url::Url::parse(dest).map_err(|e| StoreError::Open { dest: dest.into(), source: Masked::new(&e) })?;
    let base = format!("hdfs://{}", url.authority());
    let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
        .with_url(&base)
        .build()
        .map_err(|e| StoreError::Open { dest: dest.into(), source: Masked::new(&e) })?;
    let root = (base, Path::default());
    Ok(Destination { store: Arc::new(store), prefix: Path::from(url.path()), root })
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
        assert_eq!(
            open("s3:///prefix").unwrap_err().to_string(),
            "archive destination 's3:///prefix': no bucket named (s3://bucket/prefix)"
        );
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
