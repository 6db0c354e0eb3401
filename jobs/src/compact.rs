//! The compaction job: each archive hour's files merged into one. Every
//! archive run adds files to each hour it touches (one per writing
//! partition), so without it an hour's reads open ever more small files.
//!
//! Per hour, as its record in `stockyard_plan::history::compacted` says:
//!
//! 1. tidy: files a committed compaction replaced that are still there
//!    (one cut short after its commit) are removed;
//! 2. pick the hour's archive files whose run is done (MongoDB holds none
//!    of their rows), and its merged file; fewer than `min_files`, and the
//!    hour is left as it is;
//! 3. claim the hour: its record names the file about to be written
//!    (compare-and-set on its version), then merged files no record holds
//!    (a compaction cut short or overtaken) are removed;
//! 4. write the merged file, read its footer back and count its rows;
//! 5. commit: the record's file is the merged one and the picked files are
//!    replaced, if the hour is still this compaction's claim;
//! 6. remove the picked files.
//!
//! Readers of the archive go by the record: before the commit they read
//! the picked files, after it the merged one, never both. A kill before it
//! leaves a merged file nobody holds, after it files nobody holds; the next
//! compaction removes either.

use std::sync::Arc;

use chrono::NaiveDate;
use futures::StreamExt;
use mongodb::bson::{Document, doc};
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::async_writer::{AsyncArrowWriter, ParquetObjectWriter};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};
use stockyard_mask::Masked;
use stockyard_mongo::{MongoError, MongoSource};
use stockyard_plan::fault;
use stockyard_plan::history::compacted::{self, COMPACTIONS, Hour, MERGED_PREFIX, hour_id};
use stockyard_plan::history::files::{self, Pruning};
use stockyard_plan::history::ledger::Snapshot;
use stockyard_plan::store::{self, Destination};

use crate::archive::facts;

/// What a compaction run merges.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactParams {
    /// Base URI of the archive (see `stockyard_plan::store`).
    pub dest: String,
    /// An hour with fewer files to merge than this is left as it is.
    pub min_files: usize,
}

/// Why a compaction failed. The hours it committed stay compacted; the
/// others read as they did, and the next run takes them up again.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// MongoDB failed (reading the ledger or an hour's record).
    #[error("compaction: {0}")]
    Mongo(#[from] MongoError),
    /// Reading the ledger failed.
    #[error("compaction: {0}")]
    Ledger(Masked),
    /// The archive store failed.
    #[error("compaction: the archive store failed while {doing}: {source}")]
    Store {
        /// What the run was doing, naming the file or hour.
        doing: String,
        /// The store's or Parquet's error, masked.
        #[source]
        source: Masked,
    },
    /// An hour's files have different columns: merging them would lose
    /// some, so the hour is left.
    #[error("compaction: {first} and {other} have different columns; the hour {hour} is left as it is")]
    Columns {
        /// The hour, as its record names it.
        hour: String,
        /// The first file picked.
        first: String,
        /// A file whose columns differ.
        other: String,
    },
    /// The merged file's footer holds another number of rows than the
    /// picked files; it is not committed.
    #[error("compaction: {path} holds {held} rows, the files it merges {expected}; it was not committed")]
    Count {
        /// The merged file.
        path: String,
        /// Rows its footer says it holds.
        held: u64,
        /// Rows of the picked files.
        expected: u64,
    },
}

/// One hour merged, for the summary.
#[derive(Debug, Default)]
struct Merged {
    files: usize,
    rows: u64,
    bytes_before: u64,
    bytes_after: u64,
}

/// One compaction run over every fact collection's archive under
/// `params.dest`. `say` hears about progress.
pub async fn run(
    mongo: &Arc<MongoSource>,
    params: &CompactParams,
    say: &(dyn Fn(String) + Send + Sync),
) -> Result<Value, CompactError> {
    let dest = store::open(&params.dest)
        .map_err(|e| CompactError::Store { doing: "opening it".into(), source: Masked::new(&e) })?;
    let snapshot = Snapshot::read(mongo).await.map_err(|e| CompactError::Ledger(Masked::new(&e)))?;
    let job = Job { mongo, dest: &dest, snapshot: &snapshot, say };
    let (mut hours, mut files_merged, mut rows, mut removed) = (0, 0, 0, 0);
    let (mut before, mut after) = (0, 0);
    let mut collections = Vec::new();
    for (collection, _) in facts() {
        let listed = files::hours(&dest, collection, &Pruning::default())
            .await
            .map_err(|e| CompactError::Store { doing: format!("listing {collection}"), source: Masked::new(&e) })?;
        let records =
            compacted::read(mongo, collection, &listed).await.map_err(|e| CompactError::Ledger(Masked::new(&e)))?;
        let mut merged_here = 0;
        for (date, hour) in listed {
            let record = records.get(&(date, hour)).cloned();
            let (tidied, merged) = job.hour(collection, date, hour, record, params.min_files).await?;
            removed += tidied;
            if let Some(m) = merged {
                hours += 1;
                merged_here += 1;
                files_merged += m.files;
                rows += m.rows;
                before += m.bytes_before;
                after += m.bytes_after;
            }
        }
        collections.push(json!({"collection": collection, "hours_compacted": merged_here}));
    }
    Ok(json!({
        "dest": params.dest,
        "hours_compacted": hours,
        "files_merged": files_merged,
        "rows": rows,
        "bytes_before": before,
        "bytes_after": after,
        "files_tidied": removed,
        "collections": collections,
    }))
}

struct Job<'a> {
    mongo: &'a MongoSource,
    dest: &'a Destination,
    snapshot: &'a Snapshot,
    say: &'a (dyn Fn(String) + Send + Sync),
}

impl Job<'_> {
    fn store_error(&self, doing: String) -> impl Fn(&(dyn std::error::Error + 'static)) -> CompactError {
        move |e| CompactError::Store { doing: doing.clone(), source: Masked::new(e) }
    }

    async fn records(&self) -> Result<mongodb::Collection<Document>, CompactError> {
        Ok(self.mongo.database().await?.collection(COMPACTIONS))
    }

    /// Compacts one hour; the files it tidied away, and what it merged.
    async fn hour(
        &self,
        collection: &str,
        date: NaiveDate,
        hour: u32,
        record: Option<Hour>,
        min_files: usize,
    ) -> Result<(usize, Option<Merged>), CompactError> {
        let id = hour_id(collection, date, hour);
        let dir = files::hour_dir(self.dest, collection, date, hour);
        let listed: Vec<ObjectMeta> = self
            .dest
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| self.store_error(format!("listing {id}"))(&e))?
            .objects
            .into_iter()
            .filter(|o| o.location.filename().is_some_and(|n| n.ends_with(".parquet")))
            .collect();
        let current = record.clone().unwrap_or_default();
        let name = |o: &ObjectMeta| o.location.filename().unwrap_or_default().to_string();

        // 1. What a committed compaction replaced goes.
        let mut tidied = 0;
        for object in listed.iter().filter(|o| current.replaced.contains(&name(o))) {
            self.remove(object, &id).await?;
            tidied += 1;
        }

        // 2. The files to merge.
        let mut picked: Vec<&ObjectMeta> = listed
            .iter()
            .filter(|o| {
                let n = name(o);
                current.holds(&n, self.snapshot) && (n.starts_with(MERGED_PREFIX) || self.snapshot.settled(&n))
            })
            .collect();
        if picked.len() < min_files.max(2) {
            return Ok((tidied, None));
        }
        picked.sort_by(|a, b| a.location.cmp(&b.location));

        // 3. The claim.
        let merged_name = format!("{MERGED_PREFIX}{}.parquet", uuid::Uuid::new_v4());
        let Some(claimed) = self.claim(&id, collection, record.as_ref(), &merged_name).await? else {
            (self.say)(format!("{id}: another compaction claimed it; left to it"));
            return Ok((tidied, None));
        };
        for object in &listed {
            let n = name(object);
            let stray = current.file.as_deref() != Some(n.as_str()) && !current.replaced.contains(&n);
            if n.starts_with(MERGED_PREFIX) && stray {
                self.remove(object, &id).await?;
                tidied += 1;
            }
        }

        // 4. The merged file, counted.
        (self.say)(format!("{id}: merging {} files", picked.len()));
        let path = dir.clone().join(merged_name.as_str());
        let (expected, bytes_before) = self.merge(&id, &picked, &path).await?;
        let held = self.footer_rows(&path).await?;
        if held.0 != expected {
            let _ = self.dest.store.delete(&path).await;
            return Err(CompactError::Count { path: path.to_string(), held: held.0, expected });
        }
        fault::point("compact-after-write");

        // 5. The commit.
        let replaced: Vec<String> = picked.iter().map(|o| name(o)).collect();
        if !self.commit(&id, claimed, &merged_name, &replaced).await? {
            (self.say)(format!("{id}: another compaction claimed it meanwhile; its merged file is removed"));
            let _ = self.dest.store.delete(&path).await;
            return Ok((tidied, None));
        }
        fault::point("compact-after-commit");

        // 6. What it replaced goes.
        for object in &picked {
            self.remove(object, &id).await?;
        }
        let merged = Merged { files: picked.len(), rows: expected, bytes_before, bytes_after: held.1 };
        Ok((tidied, Some(merged)))
    }

    /// Claims hour `id` for the merged file `name`, from `record` as read
    /// (none: never compacted). The version claimed, or `None` when another
    /// compaction moved the record first.
    async fn claim(
        &self,
        id: &str,
        collection: &str,
        record: Option<&Hour>,
        name: &str,
    ) -> Result<Option<i64>, CompactError> {
        let records = self.records().await?;
        let now = mongodb::bson::DateTime::now();
        let doing = format!("claiming {id} in {COMPACTIONS}");
        match record {
            None => {
                let entry = doc! {"_id": id, "collection": collection, "version": 1i64, "pending": name,
                "claimed_at": now, "replaced": []};
                match records.insert_one(entry).await {
                    Ok(_) => Ok(Some(1)),
                    Err(e) if is_duplicate(&e) => Ok(None),
                    Err(e) => Err(self.mongo.error(&doing, e).into()),
                }
            }
            Some(r) => {
                let filter = doc! {"_id": id, "version": r.version};
                let set = doc! {"$set": {"version": r.version + 1, "pending": name, "claimed_at": now}};
                let updated = self.mongo.answer(&doing, records.update_one(filter, set).into_future()).await?;
                Ok((updated.matched_count == 1).then_some(r.version + 1))
            }
        }
    }

    /// Commits hour `id`'s merged file `name`, claimed at `version`, as
    /// replacing `replaced`; false when another compaction claimed it since.
    async fn commit(&self, id: &str, version: i64, name: &str, replaced: &[String]) -> Result<bool, CompactError> {
        let records = self.records().await?;
        let filter = doc! {"_id": id, "version": version, "pending": name};
        let update = doc! {
            "$set": {"version": version + 1, "file": name, "committed_at": mongodb::bson::DateTime::now()},
            "$unset": {"pending": ""},
            "$addToSet": {"replaced": {"$each": replaced.to_vec()}},
        };
        let doing = format!("committing {id} in {COMPACTIONS}");
        let updated = self.mongo.answer(&doing, records.update_one(filter, update).into_future()).await?;
        Ok(updated.matched_count == 1)
    }

    /// Writes `picked`'s rows, file after file, to `path`; their rows (by
    /// their footers) and bytes.
    async fn merge(
        &self,
        id: &str,
        picked: &[&ObjectMeta],
        path: &object_store::path::Path,
    ) -> Result<(u64, u64), CompactError> {
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let mut writer: Option<AsyncArrowWriter<ParquetObjectWriter>> = None;
        let mut first_schema = None;
        let (mut rows, mut bytes) = (0, 0);
        for object in picked {
            let reading = format!("reading {}", object.location);
            let reader =
                ParquetObjectReader::new(self.dest.store.clone(), object.location.clone()).with_file_size(object.size);
            let builder = ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(|e| self.store_error(reading.clone())(&e))?;
            rows += builder.metadata().file_metadata().num_rows() as u64;
            bytes += object.size;
            let schema = builder.schema().clone();
            match &first_schema {
                None => first_schema = Some((schema.clone(), object.location.to_string())),
                Some((first, at)) if first.fields() != schema.fields() => {
                    return Err(CompactError::Columns {
                        hour: id.into(),
                        first: at.clone(),
                        other: object.location.to_string(),
                    });
                }
                Some(_) => {}
            }
            let writing = format!("writing {path}");
            if writer.is_none() {
                let out = ParquetObjectWriter::new(self.dest.store.clone(), path.clone());
                let w = AsyncArrowWriter::try_new(out, schema.clone(), Some(props.clone()))
                    .map_err(|e| self.store_error(writing.clone())(&e))?;
                writer = Some(w);
            }
            let w = writer.as_mut().expect("opened above");
            let mut stream = builder.build().map_err(|e| self.store_error(reading.clone())(&e))?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| self.store_error(reading.clone())(&e))?;
                w.write(&batch).await.map_err(|e| self.store_error(writing.clone())(&e))?;
            }
        }
        if let Some(w) = writer {
            w.close().await.map_err(|e| self.store_error(format!("writing {path}"))(&e))?;
        }
        Ok((rows, bytes))
    }

    /// The rows and bytes of the file at `path`, by its footer.
    async fn footer_rows(&self, path: &object_store::path::Path) -> Result<(u64, u64), CompactError> {
        let doing = format!("reading {path} back");
        let meta = self.dest.store.head(path).await.map_err(|e| self.store_error(doing.clone())(&e))?;
        let reader = ParquetObjectReader::new(self.dest.store.clone(), path.clone()).with_file_size(meta.size);
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| self.store_error(doing)(&e))?;
        Ok((builder.metadata().file_metadata().num_rows() as u64, meta.size))
    }

    /// Removes `object`, already gone being fine (a removal cut short).
    async fn remove(&self, object: &ObjectMeta, id: &str) -> Result<(), CompactError> {
        match self.dest.store.delete(&object.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error(format!("removing {} of {id}", object.location))(&e)),
        }
    }
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    matches!(&*e.kind, ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000)
}
