//! [`FileStore`]: one file per key under a directory. A write goes to a
//! temporary file, synced, then renamed over the key's file and the
//! directory synced, so a crash leaves the old value or the new one, never
//! half of one, and a write that returned survives a power cut. One
//! scheduler leads on a directory: the one holding the lock on its
//! `.leader` file.

use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::{Role, StateError, StateStore};

/// The file whose lock the leading scheduler holds; it holds its value.
const LEADER_FILE: &str = ".leader";

/// The last leader's term, raised by each new leader under the lock.
const TERM_FILE: &str = ".term";

/// Keys and values as files under a directory.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// The leader file, locked, while this process leads; `None` once it
    /// resigned, so its campaign does not take the lock back.
    held: Arc<Mutex<Held>>,
    /// Held across a compare-and-swap: one process writes a directory (the
    /// leader), so a lock in the process makes it atomic.
    swap: tokio::sync::Mutex<()>,
    /// Set once it campaigns: writes then need the lock held.
    campaigned: std::sync::atomic::AtomicBool,
}

/// Where this process's campaign on the directory stands.
#[derive(Debug, Default)]
enum Held {
    /// Not leading (yet).
    #[default]
    No,
    /// Leading in a term: the locked leader file, held for its lock.
    Lock(#[allow(dead_code)] std::fs::File, u64),
    /// Resigned: the campaign is over.
    Resigned,
}

impl FileStore {
    /// The store in `dir`, created if missing.
    pub fn open(dir: &str) -> Result<Self, StateError> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir));
        std::fs::create_dir_all(&dir).map_err(|e| StateError::Store {
            what: format!("state directory {}", dir.display()),
            source: stockyard_mask::Masked::new(&e),
        })?;
        Ok(Self { dir, held: Arc::default(), swap: tokio::sync::Mutex::new(()), campaigned: Default::default() })
    }

    /// Keys map to flat file names: `/` and `%` are escaped, so any key
    /// is one file and listing is one directory read.
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key.replace('%', "%25").replace('/', "%2F"))
    }

    /// Refuses a write once this process campaigned and does not lead: a
    /// file lock cannot be taken from a live process, so while it holds
    /// the lock nobody else writes.
    fn fence(&self) -> Result<(), StateError> {
        let leading = matches!(*self.held.lock().expect("leader lock"), Held::Lock(..));
        if self.campaigned.load(std::sync::atomic::Ordering::SeqCst) && !leading {
            return Err(StateError::Fenced { store: format!("state directory {}", self.dir.display()) });
        }
        Ok(())
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
        self.fence()?;
        let path = self.path(key);
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            path.file_name().and_then(|n| n.to_str()).unwrap_or("key")
        ));
        let dir = self.dir.clone();
        let write = move || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&value)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            // The rename lasts once the directory is synced.
            std::fs::File::open(&dir)?.sync_all()
        };
        tokio::task::spawn_blocking(write)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|e| self.error("writing", e))
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.fence()?;
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.error("deleting", e)),
            _ => Ok(()),
        }
    }

    async fn put_if(&self, key: &str, expected: Option<&[u8]>, value: Option<Vec<u8>>) -> Result<bool, StateError> {
        let _one_at_a_time = self.swap.lock().await;
        if self.get(key).await?.as_deref() != expected {
            return Ok(false);
        }
        match value {
            Some(v) => self.put(key, v).await?,
            None => self.delete(key).await?,
        }
        Ok(true)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(|e| self.error("listing", e))?;
        let mut out = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| self.error("listing", e))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") || name == LEADER_FILE || name == TERM_FILE {
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

    /// Leads while it holds the lock on the leader file; another process
    /// on the same directory is its standby, and takes over when the lock
    /// is let go (at the leader's exit, however it ends).
    fn campaign(&self, me: String, role: Arc<watch::Sender<Role>>) {
        let path = self.dir.join(LEADER_FILE);
        let term_path = self.dir.join(TERM_FILE);
        let held = self.held.clone();
        self.campaigned.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            let mut last_error = String::new();
            loop {
                if matches!(*held.lock().expect("leader lock"), Held::Resigned) {
                    role.send_replace(Role::Follower(None));
                    return;
                }
                let now = match claim(&path, &term_path, &me) {
                    Ok(Some((file, term))) => {
                        *held.lock().expect("leader lock") = Held::Lock(file, term);
                        Role::Leader
                    }
                    Ok(None) => Role::Follower(std::fs::read_to_string(&path).ok().filter(|v| !v.is_empty())),
                    Err(e) => {
                        let e = e.to_string();
                        if e != last_error {
                            tracing::warn!("cannot lock {} to lead: {e} (retrying every second)", path.display());
                            last_error = e;
                        }
                        Role::Follower(None)
                    }
                };
                let leading = now == Role::Leader;
                role.send_if_modified(|r| {
                    let changed = *r != now;
                    *r = now;
                    changed
                });
                if leading {
                    // Held until this process ends or resigns.
                    while matches!(*held.lock().expect("leader lock"), Held::Lock(..)) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    continue;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    fn term(&self) -> Option<u64> {
        match *self.held.lock().expect("leader lock") {
            Held::Lock(_, term) => Some(term),
            _ => None,
        }
    }

    async fn resign(&self, me: String) -> Result<(), StateError> {
        let _ = me;
        // Dropping the file lets the lock go; the standby takes it.
        *self.held.lock().expect("leader lock") = Held::Resigned;
        Ok(())
    }
}

/// Takes the lock on the leader file at `path`, writes `me` in it and
/// raises the term at `term_path`: the locked file and the new term, or
/// `None` when another process holds the lock.
fn claim(
    path: &std::path::Path,
    term_path: &std::path::Path,
    me: &str,
) -> std::io::Result<Option<(std::fs::File, u64)>> {
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(me.as_bytes())?;
    file.sync_all()?;
    let last: u64 = std::fs::read_to_string(term_path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    let term = last + 1;
    let tmp = term_path.with_file_name(".tmp-term");
    std::fs::write(&tmp, term.to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, term_path)?;
    Ok(Some((file, term)))
}
