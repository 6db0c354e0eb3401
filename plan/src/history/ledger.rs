//! What the archive ledger says about the archive's files at one moment:
//! which runs' files are the archive (committed), and which runs' marked
//! documents MongoDB still holds although they are archived.

use std::collections::{HashMap, HashSet};

use datafusion::error::{DataFusionError, Result};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use stockyard_mongo::MongoSource;
use stockyard_mongo::rest_column::ARCHIVE_MARK;

/// The ledger collection, beside the facts it accounts for.
pub const LEDGER: &str = "stockyard_archive_ledger";

/// Ledger steps at which a run's files are committed: its `attempt`'s
/// files are the archive of its marked documents.
pub const COMMITTED: [&str; 3] = ["written", "deleting", "done"];

/// Steps at which a run deletes, or has deleted, its documents.
const DELETING: [&str; 2] = ["deleting", "done"];

/// Committed steps at which MongoDB may still hold a run's documents.
const NOT_DELETED: [&str; 2] = ["written", "deleting"];

/// The ledger as a history table read it when planned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Committed runs and their committed attempt.
    committed: HashMap<String, String>,
    /// Committed runs not done: MongoDB may still hold some of their
    /// documents, which the archive holds too.
    pub in_both: Vec<String>,
    /// Runs done (their documents left MongoDB).
    pub done: u64,
    /// Those runs: their files are the archive's only copy, and a
    /// compaction may merge them.
    settled: HashSet<String>,
}

impl Snapshot {
    /// Reads the ledger of `source`'s database.
    pub async fn read(source: &MongoSource) -> Result<Self> {
        let what = "reading the archive ledger";
        let db = source.database().await.map_err(external)?;
        let filter = doc! {"state": {"$in": COMMITTED.to_vec()}};
        let ledger = db.collection::<Document>(LEDGER);
        let find = ledger.find(filter).projection(doc! {"state": 1, "attempt": 1});
        let entries: Vec<Document> =
            source.answer(what, async { find.await?.try_collect().await }).await.map_err(external)?;
        let mut snapshot = Self::default();
        for entry in entries {
            let (Ok(run), Ok(state)) = (entry.get_str("_id"), entry.get_str("state")) else { continue };
            if NOT_DELETED.contains(&state) {
                snapshot.in_both.push(run.to_string());
            } else {
                snapshot.done += 1;
                snapshot.settled.insert(run.to_string());
            }
            // A run done with nothing to archive has no attempt, and no files.
            if let Ok(attempt) = entry.get_str("attempt") {
                snapshot.committed.insert(run.to_string(), attempt.to_string());
            }
        }
        Ok(snapshot)
    }

    /// What an executor needs of a snapshot to check it
    /// ([`Self::still_exact`]); it lists no files.
    pub fn checked(in_both: Vec<String>, done: u64) -> Self {
        Self { committed: HashMap::new(), in_both, done, settled: HashSet::new() }
    }

    /// A snapshot of runs `done` (run, attempt) and `in_both` (run,
    /// attempt): for tests of what it holds.
    pub fn with_committed<'a>(
        done: impl IntoIterator<Item = (&'a str, &'a str)>,
        in_both: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut snapshot = Self::default();
        for (run, attempt) in done {
            snapshot.committed.insert(run.into(), attempt.into());
            snapshot.settled.insert(run.into());
            snapshot.done += 1;
        }
        for (run, attempt) in in_both {
            snapshot.committed.insert(run.into(), attempt.into());
            snapshot.in_both.push(run.into());
        }
        snapshot
    }

    /// Whether the archive file named `name` is part of the archive: a file
    /// of a committed run's committed attempt. Others are an interrupted
    /// attempt's, or a run's still being written.
    pub fn holds(&self, name: &str) -> bool {
        file_run(name).is_some_and(|(run, attempt)| self.committed.get(run).is_some_and(|a| a == attempt))
    }

    /// Whether the archive file `name` is a done run's: MongoDB holds
    /// none of its rows any more, so it may be merged with others.
    pub fn settled(&self, name: &str) -> bool {
        self.holds(name) && file_run(name).is_some_and(|(run, _)| self.settled.contains(run))
    }

    /// The MongoDB filter that leaves out documents the archive holds
    /// (those of committed runs not done deleting); `None` when none is.
    pub fn not_archived(&self) -> Option<Document> {
        (!self.in_both.is_empty()).then(|| doc! {ARCHIVE_MARK: {"$nin": self.in_both.clone()}})
    }

    /// Fails when a run that was not committed in this snapshot has since
    /// started deleting: a read of MongoDB made meanwhile may have missed
    /// documents that the snapshot's files do not hold.
    pub async fn still_exact(&self, source: &MongoSource) -> Result<()> {
        let db = source.database().await.map_err(external)?;
        let filter = doc! {"state": {"$in": DELETING.to_vec()}, "_id": {"$nin": self.in_both.clone()}};
        let ledger = db.collection::<Document>(LEDGER);
        let count = async { ledger.count_documents(filter).await };
        let now = source.answer("checking the archive ledger", count).await.map_err(external)?;
        if now > self.done {
            return Err(DataFusionError::Execution(
                "an archive run moved documents from MongoDB to the archive while this query read them, \
                 so its answer could miss some: run the query again"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The run and attempt of archive file `name` (`part-<run>-<attempt>-…`,
/// see `ArchiveSpec::file`): the run is a UUID, the attempt has no `-`.
pub fn file_run(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("part-")?;
    let run = rest.get(..36)?;
    let (attempt, _) = rest.get(36..)?.strip_prefix('-')?.split_once('-')?;
    Some((run, attempt))
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_their_run_and_attempt() {
        let run = "0b6f3c7e-2f1a-4c59-9a43-1d2e3f4a5b6c";
        let name = format!("part-{run}-1a2b3c4d-00003-001.parquet");
        assert_eq!(file_run(&name), Some((run, "1a2b3c4d")));
        assert_eq!(file_run("part-short-1-2.parquet"), None);
        assert_eq!(file_run("other.parquet"), None);
        let snapshot = Snapshot::with_committed([(run, "1a2b3c4d")], []);
        assert!(snapshot.holds(&name));
        assert!(snapshot.settled(&name));
        let writing = Snapshot::with_committed([], [(run, "1a2b3c4d")]);
        assert!(writing.holds(&name) && !writing.settled(&name), "MongoDB may still hold its rows");
        assert!(!snapshot.holds(&format!("part-{run}-99999999-00003-001.parquet")), "another attempt's file");
        assert_eq!(snapshot.not_archived(), None);
    }
}
