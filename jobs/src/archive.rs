//! The archive job: fact documents older than a cutoff move from MongoDB to
//! hive-partitioned Parquet, exactly once, as `shared/spec/supply-chain.md`
//! says.
//!
//! The protocol makes every step repeatable, and a ledger in MongoDB
//! (`stockyard_archive_ledger`, one document per run) says which step a
//! run reached, so the next run finishes an interrupted one first:
//!
//! 1. `marking`: the selected documents get the run's id in
//!    [`ARCHIVE_MARK`]. Documents inserted later carry no mark and are never
//!    touched by this run.
//! 2. `writing`: executors copy the marked documents to Parquet files named
//!    after the run and this attempt; the files are read back and their rows
//!    counted against the marked documents; files of the run that are not
//!    this attempt's (an earlier, interrupted attempt) are removed.
//! 3. `written`: the metadata JSON is written.
//! 4. `deleting`: exactly the marked documents are deleted.
//! 5. `done`.
//!
//! Each ledger step is fenced by the leader's term ([`Leader`]): a run
//! claims its entry with its term, and a step is written only while no
//! later term has claimed it, and only from the step it expects (a
//! scheduler that fell behind gets [`ArchiveError::Moved`]). Files are
//! committed by the `written` step (its `attempt`); only after that commit
//! are other attempts' files removed, so two leaders finishing one run
//! cannot delete each other's copy. Abandoning goes through `abandoning`,
//! which no commit can pass.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{TimestampMillisecondType, UInt64Type};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use serde_json::{Value, json};
use stockyard_mask::Masked;
use stockyard_mongo::MongoSource;
use stockyard_mongo::rest_column::ARCHIVE_MARK;
use stockyard_plan::archive::{ArchiveSpec, ArchiveTable};
use stockyard_plan::fault;
use stockyard_plan::store::{self, Destination};

use crate::kpi::iso;
use crate::tables;

pub use stockyard_plan::history::ledger::LEDGER;

/// What a run archives.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveParams {
    /// Documents older than `now - older_than` are archived.
    pub now: DateTime<Utc>,
    /// Below this many MiB of `dbStats.dataSize` the run is skipped.
    pub threshold_mb: f64,
    /// How old a document must be, by its event time, to be archived.
    pub older_than: Duration,
    /// Base URI of the archive (see `stockyard_plan::store`).
    pub dest: String,
    /// Instead of archiving, abandon this interrupted run (see [`abandon`]).
    pub abandon: Option<String>,
    /// The leader running it, when several may lead: its steps are fenced.
    pub leader: Option<Leader>,
}

/// The scheduler a run is made by, as the ledger fences it: a step is
/// refused once a later term (of the same state store) claimed the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Leader {
    /// The state store the term is of (terms of two stores do not compare).
    pub store: String,
    /// Its term: larger for every later leader on that store.
    pub term: u64,
}

/// Tries an interrupted run gets to finish before it is abandoned, when it
/// stopped before its files were complete.
pub const MAX_TRIES: i64 = 3;

/// Why an archive run failed. Nothing is deleted from MongoDB unless its
/// copy was written and counted; the next run picks up where this stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// MongoDB failed; its error names MongoDB and what was being done.
    #[error("{}{source}", run_prefix(run))]
    Mongo {
        /// The run's id, or `-` before there is one.
        run: String,
        /// MongoDB's error.
        #[source]
        source: stockyard_mongo::MongoError,
    },
    /// Copying the marked documents to Parquet failed.
    #[error("archive run {run}: writing the Parquet copy failed: {source}")]
    Write {
        /// The run's id.
        run: String,
        /// DataFusion's error without its backtrace, masked.
        #[source]
        source: Masked,
    },
    /// The archive store failed while opening it or handling its files.
    #[error("archive run {run}: the archive store failed while {doing}: {source}")]
    Store {
        /// The run's id.
        run: String,
        /// What the run was doing, e.g. `writing the metadata`.
        doing: String,
        /// The store's error, masked (a store may quote its keys back).
        #[source]
        source: Masked,
    },
    /// A later leader claimed the run: this scheduler stopped it.
    #[error("archive run {run}: a later leader ({by}) took the run over; this scheduler (term {term}) left it to it")]
    Fenced {
        /// The run's id.
        run: String,
        /// The leader that claimed it, e.g. `term 12 of etcd://…`.
        by: String,
        /// This scheduler's term.
        term: u64,
    },
    /// The run's ledger step moved on under this scheduler: another one
    /// is finishing it.
    #[error("archive run {run}: its ledger step is '{found}', not {expected}: another scheduler is finishing it")]
    Moved {
        /// The run's id.
        run: String,
        /// The steps this scheduler expected it in.
        expected: String,
        /// The step it is in.
        found: String,
    },
    /// A written file's footer holds another number of rows than the run
    /// wrote into it.
    #[error(
        "archive run {run}: the archive store failed while reading {path} back: it holds {held} rows, {written} were written"
    )]
    ReadBack {
        /// The run's id.
        run: String,
        /// The file, under the destination.
        path: String,
        /// Rows its footer says it holds.
        held: u64,
        /// Rows the run wrote into it.
        written: u64,
    },
    /// No run of this id in the ledger.
    #[error("no archive run '{0}' in the ledger ({LEDGER})")]
    Unknown(String),
    /// The run ended, or got past writing its files: they may be the only
    /// copy of documents already deleted, so it is finished, never abandoned.
    #[error(
        "archive run {run} is {state}: only a run stopped before its files were complete (marking or writing) \
         can be abandoned"
    )]
    NotAbandonable {
        /// The run's id.
        run: String,
        /// Its step in the ledger.
        state: String,
    },
    /// A collection's Parquet copy holds a different number of rows than
    /// were marked, so nothing was deleted.
    #[error(
        "archive run {run}: {collection} has {marked} marked documents but {written} rows were written; nothing was deleted"
    )]
    Count {
        /// The run's id.
        run: String,
        /// Fact collection whose counts differ.
        collection: String,
        /// Documents marked for the run.
        marked: u64,
        /// Rows the written files hold, read back from their footers.
        written: u64,
    },
}

/// "archive run <id>: ", or nothing before a run has an id.
fn run_prefix(run: &str) -> String {
    if run == "-" { String::new() } else { format!("archive run {run}: ") }
}

/// The fact collections and their event-time fields.
pub(crate) fn facts() -> Vec<(&'static str, &'static str)> {
    tables::collections().into_iter().filter_map(|(name, _, time)| time.map(|t| (name, t))).collect()
}

/// One archive job run: finishes interrupted runs, checks the size, and
/// archives. `say` hears about progress.
pub async fn run(
    ctx: &SessionContext,
    mongo: &Arc<MongoSource>,
    params: &ArchiveParams,
    say: &(dyn Fn(String) + Send + Sync),
) -> Result<Value, ArchiveError> {
    let job = Job { ctx, mongo, say, leader: params.leader.as_ref() };
    let (mut resumed, mut unfinished, mut abandoned) = (Vec::new(), Vec::new(), Vec::new());
    for listed in job.unfinished().await? {
        let run = listed.get_str("_id").unwrap_or_default().to_string();
        // A later leader's run is its own: this scheduler is stale. The
        // entry is read again once claimed: only this term moves it now.
        let entry = job.claim(&run).await?;
        if entry.get_str("state").is_ok_and(|s| s == "abandoning") {
            // An abandonment cut short: redone, each of its steps can be.
            let reason = entry.get_str("reason").unwrap_or("abandoned").to_string();
            abandoned.push(job.abandon(&run, &reason).await?);
            continue;
        }
        let tries = entry.get_i64("tries").unwrap_or(0) + 1;
        job.set_fields(&run, None, doc! {"tries": tries}).await?;
        say(format!("finishing interrupted archive run {run} (try {tries} of {MAX_TRIES})"));
        match job.finish(entry).await {
            Ok(_) => resumed.push(run),
            // MongoDB away: nothing else can go on either; a later
            // leader took over: nothing is this scheduler's to do.
            Err(e @ (ArchiveError::Mongo { .. } | ArchiveError::Fenced { .. } | ArchiveError::Moved { .. })) => {
                return Err(e);
            }
            // Anything else (its destination, a count) must not block
            // later runs: it is retried, then abandoned if it can be.
            Err(e) => {
                let error = e.to_string();
                let state = job.state(&run).await?;
                if tries >= MAX_TRIES && abandonable(&state) {
                    say(format!("abandoning archive run {run} after {tries} tries: {error}"));
                    abandoned.push(job.abandon(&run, &format!("abandoned after {tries} tries: {error}")).await?);
                } else {
                    job.set_fields(&run, None, doc! {"last_error": &error}).await?;
                    unfinished.push(json!({"archive_id": run, "state": state, "tries": tries, "error": error}));
                }
            }
        }
    }
    let size = job.data_size().await?;
    let threshold = (params.threshold_mb * (1u64 << 20) as f64) as u64;
    let mut summary = json!({"data_size_bytes": size, "threshold_bytes": threshold, "resumed_runs": resumed,
        "unfinished_runs": unfinished, "abandoned_runs": abandoned});
    if size < threshold {
        summary["status"] = json!("skipped");
        return Ok(summary);
    }
    let run = uuid::Uuid::new_v4().to_string();
    // Nothing is marked for a destination that cannot be written.
    job.probe(&run, &params.dest).await?;
    let older = chrono::Duration::from_std(params.older_than).unwrap_or(chrono::Duration::zero());
    let cutoff = params.now - older;
    let mut entry = doc! {
        "_id": &run,
        "state": "marking",
        "cutoff": bdate(cutoff),
        "dest": &params.dest,
        "older_than_minutes": params.older_than.as_secs_f64() / 60.0,
        "created_at": bdate(Utc::now()),
    };
    if let Some(leader) = job.leader {
        entry.insert("leader", leader_doc(leader));
    }
    job.ledger().await?.insert_one(&entry).await.map_err(|e| job.mongo_error(&run, "recording the run", e))?;
    let done = job.finish(entry).await?;
    if let Value::Object(fields) = done {
        for (k, v) in fields {
            summary[k] = v;
        }
    }
    summary["status"] = json!("succeeded");
    Ok(summary)
}

/// Abandons archive run `run`, interrupted before its files were complete
/// (see [`Job::abandon`]): by hand, when the next runs cannot finish it.
pub async fn abandon(
    ctx: &SessionContext,
    mongo: &Arc<MongoSource>,
    run: &str,
    leader: Option<&Leader>,
    say: &(dyn Fn(String) + Send + Sync),
) -> Result<Value, ArchiveError> {
    let job = Job { ctx, mongo, say, leader };
    say(format!("abandoning archive run {run}"));
    job.claim(run).await?;
    job.abandon(run, "abandoned by hand").await
}

/// Whether a run in this ledger step may be abandoned: its files are not
/// complete, so MongoDB still holds every document it marked.
fn abandonable(state: &str) -> bool {
    matches!(state, "marking" | "writing" | "abandoning")
}

struct Job<'a> {
    ctx: &'a SessionContext,
    mongo: &'a Arc<MongoSource>,
    say: &'a (dyn Fn(String) + Send + Sync),
    leader: Option<&'a Leader>,
}

fn leader_doc(leader: &Leader) -> Document {
    doc! {"store": &leader.store, "term": leader.term as i64}
}

/// What a file of `run` is called in every attempt, and in `attempt`.
fn part_prefix(run: &str, attempt: Option<&str>) -> String {
    match attempt {
        Some(a) => format!("part-{run}-{a}-"),
        None => format!("part-{run}-"),
    }
}

/// A written file, as the executors reported it.
#[derive(Debug, Clone)]
struct File {
    path: String,
    rows: u64,
    bytes: u64,
    min: i64,
    max: i64,
}

impl Job<'_> {
    fn mongo_error(&self, run: &str, doing: &str, e: impl std::error::Error + 'static) -> ArchiveError {
        ArchiveError::Mongo { run: run.into(), source: self.mongo.error(doing, e) }
    }

    async fn db(&self, run: &str) -> Result<mongodb::Database, ArchiveError> {
        self.mongo.database().await.map_err(|source| ArchiveError::Mongo { run: run.into(), source })
    }

    async fn ledger(&self) -> Result<mongodb::Collection<Document>, ArchiveError> {
        Ok(self.db("-").await?.collection(LEDGER))
    }

    async fn unfinished(&self) -> Result<Vec<Document>, ArchiveError> {
        let ledger = self.ledger().await?;
        let cursor = ledger
            .find(doc! {"state": {"$nin": ["done", "abandoned"]}})
            .sort(doc! {"created_at": 1})
            .await
            .map_err(|e| self.mongo_error("-", "reading the archive ledger", e))?;
        cursor.try_collect().await.map_err(|e| self.mongo_error("-", "reading the archive ledger", e))
    }

    async fn data_size(&self) -> Result<u64, ArchiveError> {
        let stats = self
            .db("-")
            .await?
            .run_command(doc! {"dbStats": 1})
            .await
            .map_err(|e| self.mongo_error("-", "measuring the database (dbStats)", e))?;
        Ok(match stats.get("dataSize") {
            Some(Bson::Int32(n)) => *n as u64,
            Some(Bson::Int64(n)) => *n as u64,
            Some(Bson::Double(n)) => *n as u64,
            _ => 0,
        })
    }

    /// Sets `fields` on `run`'s ledger entry, unless a later leader has
    /// claimed it (then [`ArchiveError::Fenced`]) or, with `from`, its step
    /// is none of those (then [`ArchiveError::Moved`]).
    async fn set_fields(&self, run: &str, from: Option<&[&str]>, fields: Document) -> Result<(), ArchiveError> {
        let mut filter = doc! {"_id": run};
        if let Some(from) = from {
            filter.insert("state", doc! {"$in": from});
        }
        if let Some(leader) = self.leader {
            // Not claimed by a later term of this store (a term of another
            // store is no order: the stores cannot see each other).
            filter.insert(
                "$or",
                vec![doc! {"leader.store": {"$ne": &leader.store}}, doc! {"leader.term": {"$lte": leader.term as i64}}],
            );
        }
        let updated = self
            .ledger()
            .await?
            .update_one(filter, doc! {"$set": fields})
            .await
            .map_err(|e| self.mongo_error(run, "updating the archive ledger", e))?;
        if updated.matched_count == 0 {
            let entry = self.entry(run).await?;
            let found = entry.get_str("state").unwrap_or("marking");
            if let Some(from) = from
                && !from.contains(&found)
            {
                return Err(ArchiveError::Moved { run: run.into(), expected: from.join(" or "), found: found.into() });
            }
            let by = entry.get_document("leader").ok().map_or_else(
                || "unknown".to_string(),
                |l| format!("term {} of {}", l.get_i64("term").unwrap_or(0), l.get_str("store").unwrap_or("?")),
            );
            return Err(ArchiveError::Fenced { run: run.into(), by, term: self.leader.map_or(0, |l| l.term) });
        }
        Ok(())
    }

    /// Claims `run`'s entry for this leader's term, so its later steps
    /// are refused to any earlier term still running somewhere; the entry
    /// as it is once claimed.
    async fn claim(&self, run: &str) -> Result<Document, ArchiveError> {
        if let Some(leader) = self.leader {
            self.set_fields(run, None, doc! {"leader": leader_doc(leader)}).await?;
        }
        self.entry(run).await
    }

    /// `run`'s ledger entry.
    async fn entry(&self, run: &str) -> Result<Document, ArchiveError> {
        self.ledger()
            .await?
            .find_one(doc! {"_id": run})
            .await
            .map_err(|e| self.mongo_error(run, "reading the archive ledger", e))?
            .ok_or_else(|| ArchiveError::Unknown(run.into()))
    }

    /// `run`'s step in the ledger.
    async fn state(&self, run: &str) -> Result<String, ArchiveError> {
        Ok(self.entry(run).await?.get_str("state").unwrap_or("marking").to_string())
    }

    /// Writes and deletes a probe file at `dest`: a destination that cannot
    /// be written fails the run before anything is marked.
    async fn probe(&self, run: &str, dest: &str) -> Result<(), ArchiveError> {
        let fail = |doing: &str, e: &(dyn std::error::Error + 'static)| ArchiveError::Store {
            run: run.into(),
            doing: doing.into(),
            source: Masked::new(e),
        };
        let store = store::open(dest).map_err(|e| fail("opening", &e))?;
        let probe = store.path([format!(".stockyard-probe-{run}").as_str()]);
        let doing = "checking it can be written (a probe file)";
        store.store.put(&probe, b"probe".to_vec().into()).await.map_err(|e| fail(doing, &e))?;
        store.store.delete(&probe).await.map_err(|e| fail(doing, &e))?;
        Ok(())
    }

    /// Gives up `run`, stopped before its files were complete: the files of
    /// every attempt are removed, then its marks lifted (so a later run
    /// archives those documents), then the ledger says `abandoned` and why.
    /// Each step can be redone, so an abandonment cut short is redone.
    async fn abandon(&self, run: &str, reason: &str) -> Result<Value, ArchiveError> {
        let entry = self.entry(run).await?;
        let state = entry.get_str("state").unwrap_or("marking").to_string();
        if !abandonable(&state) {
            return Err(ArchiveError::NotAbandonable { run: run.into(), state });
        }
        // First the step that stops any commit of its files (a commit
        // must find it `writing`), then the files can go.
        if state != "abandoning" {
            self.set_state(run, &["marking", "writing"], "abandoning", doc! {"reason": reason}).await?;
        }
        // Where no store opens, nothing can have been written.
        if let Ok(dest) = store::open(entry.get_str("dest").unwrap_or_default()) {
            for (collection, _) in facts() {
                self.remove_files(run, &dest, collection, &|_, _| false).await?;
            }
        }
        let db = self.db(run).await?;
        let mut unmarked = Document::new();
        for (collection, _) in facts() {
            let lifted = db
                .collection::<Document>(collection)
                .update_many(doc! {ARCHIVE_MARK: run}, doc! {"$unset": {ARCHIVE_MARK: ""}})
                .await
                .map_err(|e| self.mongo_error(run, &format!("lifting the marks on {collection}"), e))?;
            unmarked.insert(collection, lifted.modified_count as i64);
        }
        let now = mongodb::bson::DateTime::now();
        self.set_state(run, &["abandoning"], "abandoned", doc! {"abandoned_at": now, "reason": reason}).await?;
        Ok(json!({"abandoned": run, "was": state, "reason": reason, "unmarked": unmarked}))
    }

    /// Moves `run` from one of the steps `from` to `state`.
    async fn set_state(&self, run: &str, from: &[&str], state: &str, extra: Document) -> Result<(), ArchiveError> {
        let mut set = doc! {"state": state};
        set.extend(extra);
        self.set_fields(run, Some(from), set).await
    }

    /// Takes `entry`'s run from the step it reached to the end.
    async fn finish(&self, entry: Document) -> Result<Value, ArchiveError> {
        let run = entry.get_str("_id").unwrap_or_default().to_string();
        let dest = entry.get_str("dest").unwrap_or_default().to_string();
        let cutoff = entry.get_datetime("cutoff").copied().unwrap_or(mongodb::bson::DateTime::MIN);
        let db = self.db(&run).await?;
        let mut state = entry.get_str("state").unwrap_or("marking").to_string();

        if state == "marking" {
            (self.say)(format!("marking documents older than {}", iso(cdate(&cutoff))));
            for (collection, time) in facts() {
                // Idempotent: a rerun marks what the interrupted one missed.
                db.collection::<Document>(collection)
                    .update_many(
                        doc! {time: {"$lt": cutoff}, ARCHIVE_MARK: {"$exists": false}},
                        doc! {"$set": {ARCHIVE_MARK: &run}},
                    )
                    .await
                    .map_err(|e| self.mongo_error(&run, &format!("marking {collection}"), e))?;
            }
            self.set_state(&run, &["marking"], "writing", doc! {}).await?;
            state = "writing".into();
            fault::point("archive-after-mark");
        }

        let store = store::open(&dest).map_err(|e| ArchiveError::Store {
            run: run.clone(),
            doing: "opening".into(),
            source: Masked::new(&e),
        })?;
        let mut marked = Document::new();
        for (collection, _) in facts() {
            let n = db
                .collection::<Document>(collection)
                .count_documents(doc! {ARCHIVE_MARK: &run})
                .await
                .map_err(|e| self.mongo_error(&run, &format!("counting marked {collection}"), e))?;
            marked.insert(collection, n as i64);
        }

        if state == "writing" && marked.values().all(|n| n.as_i64() == Some(0)) {
            // Nothing old enough: no files, no metadata.
            self.set_state(&run, &["writing"], "done", doc! {"finished_at": mongodb::bson::DateTime::now()}).await?;
            return Ok(
                json!({"archive_id": run, "cutoff": iso(cdate(&cutoff)), "total_records": 0, "collections": []}),
            );
        }
        fault::pause("archive-after-mark").await;

        if state == "writing" {
            let attempt = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
            let mut written = Document::new();
            for (collection, time) in facts() {
                let count = marked.get_i64(collection).unwrap_or(0) as u64;
                (self.say)(format!("writing {count} {collection} documents to Parquet"));
                let files =
                    if count == 0 { Vec::new() } else { self.write(&run, &attempt, &dest, collection, time).await? };
                let rows = self.verify(&run, &store, &files).await?;
                if rows != count {
                    return Err(ArchiveError::Count {
                        run,
                        collection: collection.into(),
                        marked: count,
                        written: rows,
                    });
                }
                // A retried task's files; other attempts' wait for the commit.
                let ours = part_prefix(&run, Some(&attempt));
                let keep = |name: &str, path: &str| !name.starts_with(&ours) || files.iter().any(|f| f.path == path);
                self.remove_files(&run, &store, collection, &keep).await?;
                written.insert(collection, files_doc(&files));
            }
            fault::pause("archive-before-commit").await;
            // The commit: these files, this attempt's, are the archive.
            if let Err(e) =
                self.set_state(&run, &["writing"], "written", doc! {"attempt": &attempt, "written": written}).await
            {
                if matches!(e, ArchiveError::Fenced { .. } | ArchiveError::Moved { .. }) {
                    // Not committed, and never will be: they are nobody's.
                    let ours = part_prefix(&run, Some(&attempt));
                    for (collection, _) in facts() {
                        self.remove_files(&run, &store, collection, &|name, _| !name.starts_with(&ours)).await?;
                    }
                }
                return Err(e);
            }
            state = "written".into();
            fault::point("archive-after-write");
        }

        let ledger = self.ledger().await?;
        let entry = ledger
            .find_one(doc! {"_id": &run})
            .await
            .map_err(|e| self.mongo_error(&run, "reading the archive ledger", e))?
            .unwrap_or_default();
        let written = entry.get_document("written").cloned().unwrap_or_default();
        let created_at = entry.get_datetime("created_at").map(cdate).unwrap_or_else(|_| Utc::now());
        let older_than = entry.get_f64("older_than_minutes").unwrap_or(0.0);
        let metadata = metadata(&run, created_at, &dest, older_than, &written);
        let metadata_path = store.path(["metadata", &format!("archive_{run}.json")]);

        if state == "written" {
            // Only now, with one attempt committed, can other attempts'
            // files go: before, each attempt's clean-up could delete the
            // other's copy.
            let committed = part_prefix(&run, Some(entry.get_str("attempt").unwrap_or_default()));
            for (collection, _) in facts() {
                self.remove_files(&run, &store, collection, &|name, _| name.starts_with(&committed)).await?;
            }
            (self.say)("writing the archive metadata".into());
            store
                .store
                .put(&metadata_path, serde_json::to_vec_pretty(&metadata).unwrap_or_default().into())
                .await
                .map_err(|e| ArchiveError::Store {
                    run: run.clone(),
                    doing: "writing the metadata".into(),
                    source: Masked::new(&e),
                })?;
            self.set_state(&run, &["written"], "deleting", doc! {}).await?;
            state = "deleting".into();
        }

        let mut deleted = Document::new();
        if state == "deleting" {
            for (i, (collection, _)) in facts().into_iter().enumerate() {
                (self.say)(format!("deleting archived {collection} documents from MongoDB"));
                let result = db
                    .collection::<Document>(collection)
                    .delete_many(doc! {ARCHIVE_MARK: &run})
                    .await
                    .map_err(|e| self.mongo_error(&run, &format!("deleting archived {collection}"), e))?;
                deleted.insert(collection, result.deleted_count as i64);
                if i == 0 {
                    fault::point("archive-mid-delete");
                }
            }
            self.set_state(&run, &["deleting"], "done", doc! {"finished_at": mongodb::bson::DateTime::now()}).await?;
        }
        Ok(json!({
            "archive_id": run,
            "cutoff": iso(cdate(&cutoff)),
            "metadata": format!("{}/{}", dest.trim_end_matches('/'), metadata_path),
            "total_records": metadata["total_records"],
            "total_size_mb": metadata["total_size_mb"],
            "total_bytes": total_bytes(&written),
            "collections": metadata["archived_collections"],
        }))
    }

    /// Copies `collection`'s marked documents on the cluster; the files
    /// written, as the executors report them.
    async fn write(
        &self,
        run: &str,
        attempt: &str,
        dest: &str,
        collection: &str,
        time: &str,
    ) -> Result<Vec<File>, ArchiveError> {
        let schema = tables::collections()
            .into_iter()
            .find(|(name, _, _)| *name == collection)
            .map(|(_, s, _)| s)
            .expect("a fact collection");
        let spec = ArchiveSpec {
            collection: collection.into(),
            event_time: time.into(),
            run: run.into(),
            attempt: attempt.into(),
            dest: dest.into(),
        };
        let fail =
            |e: datafusion::error::DataFusionError| ArchiveError::Write { run: run.into(), source: Masked::new(&e) };
        let table = ArchiveTable::new(spec, schema, Some(self.mongo.clone()));
        let batches = self.ctx.read_table(Arc::new(table)).map_err(fail)?.collect().await.map_err(fail)?;
        Ok(batches.iter().flat_map(files).collect())
    }

    /// Reads each file's footer back: the rows the archive really holds.
    async fn verify(&self, run: &str, dest: &Destination, files: &[File]) -> Result<u64, ArchiveError> {
        let mut rows = 0;
        for file in files {
            let fail = |e: &(dyn std::error::Error + 'static)| ArchiveError::Store {
                run: run.into(),
                doing: format!("reading {} back", file.path),
                source: Masked::new(e),
            };
            let reader =
                ParquetObjectReader::new(dest.store.clone(), Path::from(file.path.as_str())).with_file_size(file.bytes);
            let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| fail(&e))?;
            let n = builder.metadata().file_metadata().num_rows() as u64;
            if n != file.rows {
                return Err(ArchiveError::ReadBack {
                    run: run.into(),
                    path: file.path.clone(),
                    held: n,
                    written: file.rows,
                });
            }
            rows += n;
        }
        Ok(rows)
    }

    /// Removes `collection`'s files of `run` that `keep` (given the file's
    /// name and path) does not keep: an interrupted attempt's, or a
    /// retried task's.
    async fn remove_files(
        &self,
        run: &str,
        dest: &Destination,
        collection: &str,
        keep: &(dyn Fn(&str, &str) -> bool + Sync),
    ) -> Result<(), ArchiveError> {
        let fail = |e: object_store::Error| ArchiveError::Store {
            run: run.into(),
            doing: format!("listing {collection}"),
            source: Masked::new(&e),
        };
        let prefix = dest.path([collection]);
        let listed: Vec<_> = dest.store.list(Some(&prefix)).try_collect().await.map_err(fail)?;
        let ours = part_prefix(run, None);
        for object in listed {
            let name = object.location.filename().unwrap_or_default();
            if name.starts_with(&ours) && !keep(name, object.location.as_ref()) {
                (self.say)(format!("removing {} from an interrupted attempt", object.location));
                dest.store.delete(&object.location).await.map_err(fail)?;
            }
        }
        Ok(())
    }
}

fn bdate(t: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(t.timestamp_millis())
}

fn cdate(d: &mongodb::bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(d.timestamp_millis()).unwrap_or_default()
}

/// The files in one output batch of the copy.
fn files(batch: &RecordBatch) -> Vec<File> {
    let paths = batch.column(0).as_string::<i32>();
    let rows = batch.column(1).as_primitive::<UInt64Type>();
    let bytes = batch.column(2).as_primitive::<UInt64Type>();
    let min = batch.column(3).as_primitive::<TimestampMillisecondType>();
    let max = batch.column(4).as_primitive::<TimestampMillisecondType>();
    (0..batch.num_rows())
        .filter(|&i| !paths.is_null(i))
        .map(|i| File {
            path: paths.value(i).into(),
            rows: rows.value(i),
            bytes: bytes.value(i),
            min: min.value(i),
            max: max.value(i),
        })
        .collect()
}

fn files_doc(files: &[File]) -> Document {
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    let mut d = doc! {"files": files.len() as i64, "records": rows as i64, "bytes": bytes as i64};
    if let (Some(min), Some(max)) = (files.iter().map(|f| f.min).min(), files.iter().map(|f| f.max).max()) {
        d.insert("min", mongodb::bson::DateTime::from_millis(min));
        d.insert("max", mongodb::bson::DateTime::from_millis(max));
    }
    d
}

/// `metadata/archive_<id>.json`, as the spec lays it out.
/// Bytes of Parquet a run wrote, over every collection.
fn total_bytes(written: &Document) -> i64 {
    facts().iter().filter_map(|(c, _)| written.get_document(c).ok()).map(|w| w.get_i64("bytes").unwrap_or(0)).sum()
}

fn metadata(run: &str, created_at: DateTime<Utc>, dest: &str, older_than_minutes: f64, written: &Document) -> Value {
    let mib = (1u64 << 20) as f64;
    let mut collections = Vec::new();
    let (mut total_records, mut total_bytes) = (0i64, 0i64);
    for (collection, _) in facts() {
        let Ok(w) = written.get_document(collection) else { continue };
        let records = w.get_i64("records").unwrap_or(0);
        if records == 0 {
            continue;
        }
        let bytes = w.get_i64("bytes").unwrap_or(0);
        total_records += records;
        total_bytes += bytes;
        let date = |k: &str| w.get_datetime(k).map(|d| json!(iso(cdate(d)))).unwrap_or(Value::Null);
        collections.push(json!({
            "collection": collection,
            "record_count": records,
            "size_mb": bytes as f64 / mib,
            "date_range": {"min": date("min"), "max": date("max")},
        }));
    }
    json!({
        "archive_id": run,
        "created_at": iso(created_at),
        "archived_collections": collections,
        "total_records": total_records,
        "total_size_mb": total_bytes as f64 / mib,
        "base_path": dest,
        "archive_policy": {
            "older_than_minutes": older_than_minutes,
            "format": "parquet",
            "compression": "snappy",
            "partitioned_by": ["event_date", "event_hour"],
        },
    })
}
