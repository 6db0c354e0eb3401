//! [`FileStore`]: one file per key under a directory. A write goes to a
//! temporary file that is then renamed over the key's file, so a crash
//! leaves the old value or the new one, never half of one.

use std::path::PathBuf;

use crate::{StateError, StateStore};

/// Keys and values as files under a directory.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// The store in `dir`, created if missing.
    pub fn open(dir: &str) -> Result<Self, StateError> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir));
        std::fs::create_dir_all(&dir).map_err(|e| StateError::Store {
            what: format!("state directory {}", dir.display()),
            source: stockyard_mask::Masked::new(&e),
        })?;
        Ok(Self { dir })
    }

    /// Keys map to flat file names: `/` and `%` are escaped, so any key
    /// is one file and listing is one directory read.
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key.replace('%', "%25").replace('/', "%2F"))
    }

    fn error(&self, doing: &str, e: std::io::Error) -> StateError {
        StateError::Store {
            what: format!("state directory {} ({doing})", self.dir.display()),
            source: stockyard_mask::Masked::new(&e),
        }
    }
}

fn key_of(file: &str) -> String {
    file.replace("%2F", "/").replace("%25", "%")
}

#[async_trait::async_trait]
impl StateStore for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        match tokio::fs::read(self.path(key)).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("reading", e)),
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StateError> {
        let path = self.path(key);
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            path.file_name().and_then(|n| n.to_str()).unwrap_or("key")
        ));
        tokio::fs::write(&tmp, value).await.map_err(|e| self.error("writing", e))?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| self.error("writing", e))
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.error("deleting", e)),
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(|e| self.error("listing", e))?;
        let mut out = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| self.error("listing", e))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            let key = key_of(&name);
            if key.starts_with(prefix)
                && let Some(value) = self.get(&key).await?
            {
                out.push((key, value));
            }
        }
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("file:{}", self.dir.display())
    }
}
