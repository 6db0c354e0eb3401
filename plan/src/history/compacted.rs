//! What compaction changed in an archive hour: one record per compacted
//! hour (in [`COMPACTIONS`]) says which merged file is its current one and
//! which files it replaced. Readers read the records of their hours before
//! listing them; with the ledger they say which listed files are the
//! archive ([`Hour::holds`]).
//!
//! A record moves by compare-and-set on its `version`: a compaction claims
//! the hour (`pending` = the file it is about to write), then commits
//! (`file` = that file, `replaced` += what it merged) only if nobody claimed
//! the hour since. So two compactions of one hour never both commit, and a
//! commit is one document write: atomic for readers.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use datafusion::error::{DataFusionError, Result};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use stockyard_mongo::MongoSource;

use super::ledger::Snapshot;

/// The collection of compaction records, beside the archive ledger.
pub const COMPACTIONS: &str = "stockyard_archive_compactions";

/// How every merged file's name starts: `part-` as the spec's layout says,
/// then a word no archive run's id (a UUID) starts with.
pub const MERGED_PREFIX: &str = "part-compacted-";

/// The record id of `collection`'s hour `hour` of `date`.
pub fn hour_id(collection: &str, date: NaiveDate, hour: u32) -> String {
    format!("{collection}/{}/{hour}", date.format("%Y-%m-%d"))
}

/// One compacted hour, as its record says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hour {
    /// Compare-and-set counter: every claim and commit adds one.
    pub version: i64,
    /// The merged file that holds the hour's replaced files' rows.
    pub file: Option<String>,
    /// Files merged into `file` (or into an earlier merged file, itself
    /// replaced since): never the archive again.
    pub replaced: HashSet<String>,
    /// The file a compaction claimed the hour for and may be writing.
    pub pending: Option<String>,
}

impl Hour {
    /// The record in `doc`.
    pub fn from_doc(doc: &Document) -> Self {
        let names = |key: &str| -> HashSet<String> {
            doc.get_array(key)
                .map(|a| a.iter().filter_map(Bson::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        Self {
            version: doc.get_i64("version").unwrap_or(0),
            file: doc.get_str("file").ok().map(str::to_string),
            replaced: names("replaced"),
            pending: doc.get_str("pending").ok().map(str::to_string),
        }
    }

    /// Whether the file `name` in this hour is part of the archive: the
    /// current merged file, or a file `snapshot` holds that no compaction
    /// replaced. A merged file not committed (being written, or left by a
    /// compaction cut short) is not.
    pub fn holds(&self, name: &str, snapshot: &Snapshot) -> bool {
        if name.starts_with(MERGED_PREFIX) {
            return self.file.as_deref() == Some(name);
        }
        !self.replaced.contains(name) && snapshot.holds(name)
    }
}

/// The records of `collection`'s `hours`; an hour never compacted has none
/// (its default [`Hour`] holds what the ledger holds).
pub async fn read(
    source: &MongoSource,
    collection: &str,
    hours: &[(NaiveDate, u32)],
) -> Result<HashMap<(NaiveDate, u32), Hour>> {
    if hours.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: HashMap<String, (NaiveDate, u32)> =
        hours.iter().map(|&(date, hour)| (hour_id(collection, date, hour), (date, hour))).collect();
    let db = source.database().await.map_err(external)?;
    let records = db.collection::<Document>(COMPACTIONS);
    let find = records.find(doc! {"_id": {"$in": ids.keys().cloned().collect::<Vec<_>>()}});
    let found: Vec<Document> = source
        .answer("reading the archive's compaction records", async { find.await?.try_collect().await })
        .await
        .map_err(external)?;
    Ok(found.iter().filter_map(|d| Some((*ids.get(d.get_str("_id").ok()?)?, Hour::from_doc(d)))).collect())
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compacted_hour_holds_its_merged_file_and_not_what_it_replaced() {
        let run = "0b6f3c7e-2f1a-4c59-9a43-1d2e3f4a5b6c";
        let snapshot = Snapshot::with_committed([(run, "a1")], []);
        let (old, new) = (format!("part-{run}-a1-00000-000.parquet"), format!("part-{run}-a1-00001-000.parquet"));
        let merged = format!("{MERGED_PREFIX}5f0c.parquet");
        let hour = Hour { version: 2, file: Some(merged.clone()), replaced: [old.clone()].into(), pending: None };
        assert!(hour.holds(&merged, &snapshot));
        assert!(!hour.holds(&old, &snapshot), "replaced");
        assert!(hour.holds(&new, &snapshot), "written after the compaction");
        assert!(!hour.holds(&format!("{MERGED_PREFIX}other.parquet"), &snapshot), "a compaction cut short");
        // Never compacted: what the ledger says.
        assert!(Hour::default().holds(&old, &snapshot));
        assert!(!Hour::default().holds(&merged, &snapshot));
    }

    #[test]
    fn records_read_back_from_their_documents() {
        let d = doc! {"_id": "orders_fact/2026-01-05/8", "version": 3i64, "file": "part-compacted-x.parquet",
        "replaced": ["a", "b"], "pending": Bson::Null};
        let hour = Hour::from_doc(&d);
        assert_eq!(hour.version, 3);
        assert_eq!(hour.file.as_deref(), Some("part-compacted-x.parquet"));
        assert_eq!(hour.replaced, ["a".to_string(), "b".to_string()].into());
        assert_eq!(hour.pending, None);
        assert_eq!(hour_id("orders_fact", NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(), 8), "orders_fact/2026-01-05/8");
    }
}
