//! The run history: this process's recent runs in memory, and every run
//! in the state store so the history outlives the process.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stockyard_api::{Run, RunStatus};
use stockyard_state::{StateError, StateStore};

/// Runs kept in memory.
const HISTORY: usize = 1000;

/// Key prefix of runs in the state store: `runs/<started ms>-<run id>`.
const RUNS: &str = "runs/";

/// Key prefix of the index of open runs, `open/<run id>`, each holding
/// the run's key: a takeover reads these, not the whole history.
const OPEN: &str = "open/";

/// Set once the index holds every open run: a history written before the
/// index existed is scanned once, then indexed.
const INDEXED: &str = "open-indexed";

/// Where `run` is stored.
fn key(run: &Run) -> String {
    format!("{RUNS}{:013}-{}", run.started_at_ms, run.run_id)
}

/// Where runs are recorded.
pub(crate) struct RunStore {
    recent: Mutex<VecDeque<Run>>,
    store: Arc<dyn StateStore>,
    /// How long the store keeps a run.
    retention: Duration,
}

impl std::fmt::Debug for RunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStore").field("store", &self.store).field("retention", &self.retention).finish()
    }
}

impl RunStore {
    /// A history kept in `store` for `retention`.
    pub(crate) fn new(store: Arc<dyn StateStore>, retention: Duration) -> Self {
        Self { recent: Mutex::default(), store, retention }
    }

    /// This scheduler as the leader it is now, for side effects outside
    /// the store to be fenced by (see [`stockyard_jobs::archive::Leader`]).
    /// On a store several schedulers share, a scheduler with no term
    /// (it is losing the leadership) is refused: its steps could not be
    /// fenced.
    pub(crate) fn leader(&self) -> Result<Option<stockyard_jobs::archive::Leader>, StateError> {
        match self.store.term() {
            Some(term) => Ok(Some(stockyard_jobs::archive::Leader { store: self.store.describe(), term })),
            None if self.store.shared() => Err(StateError::Fenced { store: self.store.describe() }),
            None => Ok(None),
        }
    }

    /// Whether this process recorded a run `run_id` lately (no copy, no
    /// store access).
    pub(crate) fn is_recent(&self, run_id: &str) -> bool {
        self.recent.lock().expect("runs lock").iter().any(|r| r.run_id == run_id)
    }

    /// This process's recent runs, newest first (no store access).
    pub(crate) fn recent(&self) -> Vec<Run> {
        self.recent.lock().expect("runs lock").iter().cloned().collect()
    }

    /// Every stored run; records that do not read are skipped with a
    /// warning, not lost from view silently.
    pub(crate) async fn stored(&self) -> Result<Vec<Run>, StateError> {
        let stored = self.store.list(RUNS).await?;
        Ok(stored
            .iter()
            .filter_map(|(key, v)| match serde_json::from_slice::<Run>(v) {
                Ok(mut run) => {
                    // Older stores kept no duration.
                    run.duration_ms = run.duration_ms.or(run.ended_at_ms.map(|e| e.saturating_sub(run.started_at_ms)));
                    Some(run)
                }
                Err(e) => {
                    tracing::warn!(%key, "a stored run does not read: {e}");
                    None
                }
            })
            .collect())
    }

    /// Recorded runs, newest first: the store's history, or this process's
    /// own runs while the store is unreachable.
    pub(crate) async fn all(&self) -> Vec<Run> {
        match self.stored().await {
            Ok(mut runs) => {
                // Runs this process has not stored yet (the store was away).
                for r in self.recent() {
                    if !runs.iter().any(|s| s.run_id == r.run_id) {
                        runs.push(r);
                    }
                }
                runs.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then(b.run_id.cmp(&a.run_id)));
                runs
            }
            Err(e) => {
                tracing::warn!("run history unavailable, showing this scheduler's runs: {e}");
                self.recent()
            }
        }
    }

    /// One recorded run.
    pub(crate) async fn get(&self, run_id: &str) -> Option<Run> {
        if let Some(r) = self.recent().into_iter().find(|r| r.run_id == run_id) {
            return Some(r);
        }
        self.all().await.into_iter().find(|r| r.run_id == run_id)
    }

    /// Whether a takeover must look at `run`: it runs, or it was
    /// interrupted and, where schedulers share the store (so another
    /// reruns it), not rerun yet.
    fn open(&self, run: &Run) -> bool {
        run.status == RunStatus::Running
            || (run.status == RunStatus::Interrupted && run.rerun_as.is_empty() && self.store.shared())
    }

    /// The runs a takeover must look at, from the index of open runs.
    pub(crate) async fn open_runs(&self) -> Result<Vec<Run>, StateError> {
        if self.store.get(INDEXED).await?.is_none() {
            let open: Vec<Run> = self.stored().await?.into_iter().filter(|r| self.open(r)).collect();
            for run in &open {
                self.store.put(&format!("{OPEN}{}", run.run_id), key(run).into_bytes()).await?;
            }
            self.store.put(INDEXED, b"1".to_vec()).await?;
            return Ok(open);
        }
        let mut out = Vec::new();
        for (index, at) in self.store.list(OPEN).await? {
            let at = String::from_utf8_lossy(&at).into_owned();
            match self.store.get(&at).await? {
                Some(value) => match serde_json::from_slice::<Run>(&value) {
                    Ok(run) if self.open(&run) => out.push(run),
                    // Closed, its index entry left by a crash: dropped.
                    Ok(_) => self.store.delete(&index).await?,
                    Err(e) => tracing::warn!(key = %at, "a stored run does not read: {e}"),
                },
                // Pruned since: nothing to take over.
                None => self.store.delete(&index).await?,
            }
        }
        Ok(out)
    }

    /// Records `run` (new or changed); an ended run prunes the history.
    pub(crate) async fn record(&self, run: &Run) {
        {
            let mut recent = self.recent.lock().expect("runs lock");
            match recent.iter_mut().find(|r| r.run_id == run.run_id) {
                Some(r) => *r = run.clone(),
                None => {
                    recent.push_front(run.clone());
                    recent.truncate(HISTORY);
                }
            }
        }
        // An open run is indexed before it is stored, a closed one
        // unindexed after: a crash in between leaves an index entry too
        // many (a takeover skips it), never a run a takeover misses.
        let index = format!("{OPEN}{}", run.run_id);
        let open = self.open(run);
        if open && let Err(e) = self.store.put(&index, key(run).into_bytes()).await {
            tracing::warn!(run = %run.run_id, "cannot index the run in the state store: {e}");
            return;
        }
        let value = serde_json::to_vec(run).expect("a run serializes");
        if let Err(e) = self.store.put(&key(run), value).await {
            tracing::warn!(run = %run.run_id, "cannot record the run in the state store: {e}");
            return;
        }
        if !open && let Err(e) = self.store.delete(&index).await {
            tracing::warn!(run = %run.run_id, "cannot unindex the run in the state store: {e}");
        }
        if run.status.is_final() {
            self.prune().await;
        }
    }

    /// Drops runs older than the retention period from the store.
    async fn prune(&self) {
        let oldest = super::now_ms().saturating_sub(self.retention.as_millis() as u64);
        // Keys only: the values stay in the store.
        let stored = match self.store.keys(RUNS).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!("cannot prune the run history: {e}");
                return;
            }
        };
        for key in stored {
            let started: u64 =
                key.trim_start_matches(RUNS).split('-').next().and_then(|t| t.parse().ok()).unwrap_or(u64::MAX);
            if started < oldest
                && let Err(e) = self.store.delete(&key).await
            {
                tracing::warn!(%key, "cannot prune a run: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use stockyard_api::{Job, Trigger};
    use stockyard_state::MemoryStore;

    use super::*;

    fn run(id: &str, status: RunStatus) -> Run {
        let mut run = Run::new(id.into(), Job::Kpi, Trigger::Cli, BTreeMap::new());
        run.started_at_ms = super::super::now_ms();
        run.status = status;
        run
    }

    #[tokio::test]
    async fn a_takeover_reads_the_open_runs_from_their_index_not_the_history() {
        let store = Arc::new(MemoryStore::default());
        // A history from before the index: its running run is found once
        // by a scan, and indexed.
        let old = run("kpi-old", RunStatus::Running);
        store.put(&key(&old), serde_json::to_vec(&old).unwrap()).await.unwrap();
        let runs = RunStore::new(store.clone(), Duration::from_secs(86_400));
        let found: Vec<String> = runs.open_runs().await.unwrap().into_iter().map(|r| r.run_id).collect();
        assert_eq!(found, ["kpi-old"]);
        assert_eq!(store.keys(OPEN).await.unwrap(), ["open/kpi-old"]);

        let mut done = run("kpi-done", RunStatus::Running);
        runs.record(&done).await;
        done.end(super::super::now_ms(), RunStatus::Succeeded);
        runs.record(&done).await;
        runs.record(&run("kpi-now", RunStatus::Running)).await;
        // A running run that is not in the index is not read: the history
        // is not scanned again.
        let stray = run("kpi-stray", RunStatus::Running);
        store.put(&key(&stray), serde_json::to_vec(&stray).unwrap()).await.unwrap();
        let mut found: Vec<String> = runs.open_runs().await.unwrap().into_iter().map(|r| r.run_id).collect();
        found.sort();
        assert_eq!(found, ["kpi-now", "kpi-old"]);
        // The memory store is nobody else's: an interrupted run is final.
        let mut interrupted = old.clone();
        interrupted.end(super::super::now_ms(), RunStatus::Interrupted);
        runs.record(&interrupted).await;
        assert_eq!(store.keys(OPEN).await.unwrap(), ["open/kpi-now"]);
    }
}
