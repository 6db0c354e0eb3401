//! The archive job's distributed copy: each executor reads its partitions
//! of the documents marked for one run and writes them as snappy Parquet,
//! hive-partitioned by event date and hour, straight to the destination.
//!
//! [`ArchiveTable`] is what a logical plan scans; on the scheduler it
//! becomes an [`ArchiveWriteExec`] over a [`MongoScanExec`] of the marked
//! documents, with every column plus the rest of each document, so that no
//! field is lost. Each partition answers with one row per file it wrote.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, RecordBatch, StringBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder, UInt32Array,
    UInt64Builder,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Timelike};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;
use mongodb::bson::doc;
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use stockyard_mongo::rest_column::ARCHIVE_MARK;
use stockyard_mongo::{MongoSource, MongoTable, ScanOptions};

use crate::store;

/// A file larger than this (Parquet bytes so far) is closed and the next
/// one started, so an executor never holds a whole hour in memory.
pub const MAX_FILE_BYTES: usize = 128 << 20;

/// What one archive copy writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSpec {
    /// Fact collection whose marked documents are copied.
    pub collection: String,
    /// The event-time column: it picks each document's directory.
    pub event_time: String,
    /// The run whose marked documents are copied.
    pub run: String,
    /// Names this attempt's files.
    pub attempt: String,
    /// Base URI (see [`crate::store`]).
    pub dest: String,
}

impl ArchiveSpec {
    /// The file a partition writes for one hour: hive-style, as
    /// `shared/spec/supply-chain.md` lays it out.
    pub fn file(&self, date: NaiveDate, hour: u32, partition: usize, seq: usize) -> [String; 4] {
        [
            self.collection.clone(),
            format!("event_date={}", date.format("%Y-%m-%d")),
            format!("event_hour={hour}"),
            format!("part-{}-{}-{partition:05}-{seq:03}.parquet", self.run, self.attempt),
        ]
    }
}

/// One row per written file.
pub fn written_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
            Field::new("min_event", ts.clone(), false),
            Field::new("max_event", ts, false),
        ]))
    });
    SCHEMA.clone()
}

/// The copy as a table: scanning it writes the files and lists them.
#[derive(Debug, Clone)]
pub struct ArchiveTable {
    /// What the copy writes.
    pub spec: ArchiveSpec,
    /// The collection's declared schema.
    pub collection_schema: SchemaRef,
    source: Option<Arc<MongoSource>>,
}

impl ArchiveTable {
    /// A copy of `spec`'s marked documents of a collection with `schema`.
    pub fn new(spec: ArchiveSpec, collection_schema: SchemaRef, source: Option<Arc<MongoSource>>) -> Self {
        Self { spec, collection_schema, source }
    }

    /// Downcast helper for codecs.
    pub fn from_provider(provider: &dyn TableProvider) -> Option<&Self> {
        (provider as &dyn Any).downcast_ref::<Self>()
    }
}

#[async_trait]
impl TableProvider for ArchiveTable {
    fn schema(&self) -> SchemaRef {
        written_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = ScanOptions { partitions: None, partition_field: self.spec.event_time.clone(), share: None };
        let table =
            MongoTable::new(&self.spec.collection, self.collection_schema.clone(), options, self.source.clone());
        let scan = table.scan_matching(doc! {ARCHIVE_MARK: &self.spec.run}, true).await?;
        Ok(Arc::new(ArchiveWriteExec::new(self.spec.clone(), Arc::new(scan))))
    }
}

/// Writes its input's rows to Parquet files; one output row per file.
#[derive(Debug)]
pub struct ArchiveWriteExec {
    spec: ArchiveSpec,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl ArchiveWriteExec {
    /// Writes `input`, partition by partition.
    pub fn new(spec: ArchiveSpec, input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(written_schema()),
            input.properties().partitioning.clone(),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self { spec, input, properties }
    }

    /// What this node writes.
    pub fn spec(&self) -> &ArchiveSpec {
        &self.spec
    }
}

impl DisplayAs for ArchiveWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ArchiveWriteExec: collection={}, run={}, dest={}",
            self.spec.collection, self.spec.run, self.spec.dest
        )
    }
}

impl ExecutionPlan for ArchiveWriteExec {
    fn name(&self) -> &str {
        "ArchiveWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(Self::new(self.spec.clone(), input))),
            Err(_) => Err(DataFusionError::Internal("ArchiveWriteExec takes one input".into())),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let spec = self.spec.clone();
        let written = futures::stream::once(write_partition(spec, partition, input));
        Ok(Box::pin(RecordBatchStreamAdapter::new(written_schema(), written)))
    }
}

/// One open file: an hour of one partition.
struct Part {
    writer: ArrowWriter<Vec<u8>>,
    seq: usize,
    rows: u64,
    min: i64,
    max: i64,
}

/// Files written so far, as the output batch's columns.
#[derive(Default)]
struct Written {
    path: StringBuilder,
    rows: UInt64Builder,
    bytes: UInt64Builder,
    min: TimestampMillisecondBuilder,
    max: TimestampMillisecondBuilder,
}

async fn write_partition(
    spec: ArchiveSpec,
    partition: usize,
    mut input: SendableRecordBatchStream,
) -> Result<RecordBatch> {
    let dest = store::open(&spec.dest).map_err(|e| DataFusionError::External(Box::new(e)))?;
    let schema = input.schema();
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut parts: BTreeMap<(NaiveDate, u32), Part> = BTreeMap::new();
    let mut written = Written::default();
    let mut next_seq: BTreeMap<(NaiveDate, u32), usize> = BTreeMap::new();
    while let Some(batch) = input.next().await {
        let batch = batch?;
        let times = batch
            .column_by_name(&spec.event_time)
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
            .ok_or_else(|| {
                DataFusionError::Internal(format!("no timestamp column {} to archive by", spec.event_time))
            })?;
        let mut hours: BTreeMap<(NaiveDate, u32), Vec<u32>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            // Selected documents all have a date there: `$lt` on a date
            // matches only dates.
            if times.is_null(row) {
                return Err(DataFusionError::Execution(format!(
                    "a {} document marked for archiving has no {} date",
                    spec.collection, spec.event_time
                )));
            }
            let t = DateTime::from_timestamp_millis(times.value(row))
                .ok_or_else(|| DataFusionError::Execution(format!("{} out of range", spec.event_time)))?;
            hours.entry((t.date_naive(), t.hour())).or_default().push(row as u32);
        }
        for (hour, rows) in hours {
            let taken = take_record_batch(&batch, &UInt32Array::from(rows))?;
            let slice = taken.column_by_name(&spec.event_time).expect("column checked above");
            let slice = slice.as_any().downcast_ref::<TimestampMillisecondArray>().expect("type checked above");
            let (lo, hi) = slice.values().iter().fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            if let std::collections::btree_map::Entry::Vacant(e) = parts.entry(hour) {
                let seq = next_seq.entry(hour).or_default();
                let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props.clone()))?;
                e.insert(Part { writer, seq: *seq, rows: 0, min: i64::MAX, max: i64::MIN });
                *seq += 1;
            }
            let part = parts.get_mut(&hour).expect("inserted above");
            part.writer.write(&taken)?;
            part.rows += taken.num_rows() as u64;
            part.min = part.min.min(lo);
            part.max = part.max.max(hi);
            if part.writer.bytes_written() + part.writer.in_progress_size() > MAX_FILE_BYTES {
                let part = parts.remove(&hour).expect("present");
                put(&spec, &dest, partition, hour, part, &mut written).await?;
            }
        }
    }
    for (hour, part) in std::mem::take(&mut parts) {
        put(&spec, &dest, partition, hour, part, &mut written).await?;
    }
    let columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(written.path.finish()),
        Arc::new(written.rows.finish()),
        Arc::new(written.bytes.finish()),
        Arc::new(written.min.finish().with_timezone("UTC")),
        Arc::new(written.max.finish().with_timezone("UTC")),
    ];
    Ok(RecordBatch::try_new(written_schema(), columns)?)
}

/// Closes `part` and stores it in one put: a file is there whole or not
/// at all.
async fn put(
    spec: &ArchiveSpec,
    dest: &store::Destination,
    partition: usize,
    (date, hour): (NaiveDate, u32),
    mut part: Part,
    written: &mut Written,
) -> Result<()> {
    part.writer.finish()?;
    let bytes = std::mem::take(part.writer.inner_mut());
    let names = spec.file(date, hour, partition, part.seq);
    let path = dest.path(names.iter().map(String::as_str));
    let size = bytes.len() as u64;
    dest.store
        .put(&path, bytes.into())
        .await
        .map_err(|e| DataFusionError::Execution(format!("writing {path} to {}: {e}", spec.dest)))?;
    written.path.append_value(path.as_ref());
    written.rows.append_value(part.rows);
    written.bytes.append_value(size);
    written.min.append_value(part.min);
    written.max.append_value(part.max);
    crate::fault::point("archive-mid-write");
    Ok(())
}
