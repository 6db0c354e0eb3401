//! [`MongoScanExec`]: reads one range of a collection per partition,
//! fetching the next raw batch while the last one decodes.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::stats::Precision;
use datafusion::common::{DataFusionError, Statistics, project_schema};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};
use mongodb::raw_batch_cursor::RawBatch;
use tokio::sync::mpsc;

use crate::decode::{Decoder, Reason};
use crate::partition::Splits;
use crate::rest_column::{REST_COLUMN, rest};
use crate::share::{self, Unshared};
use crate::source::MongoSource;

/// Documents the server is asked for per round trip (it stops at 16 MiB).
const SERVER_BATCH: u32 = 16_384;

/// Everything that defines a scan; what the codecs carry to executors.
#[derive(Debug, Clone, PartialEq)]
pub struct MongoScanSpec {
    /// Collection scanned, in the source's database.
    pub collection: String,
    /// The table's full schema.
    pub schema: SchemaRef,
    /// Columns read, by index into `schema`.
    pub projection: Option<Vec<usize>>,
    /// Pushed-down filters.
    pub filter: Option<Document>,
    /// Ranges, one per partition; `None` is a single partition.
    pub splits: Option<Splits>,
    /// Rows each partition needs at most.
    pub limit: Option<usize>,
    /// Scans with the same key read each partition once per process (see
    /// [`crate::share`]); `None` reads for this scan alone.
    pub share: Option<String>,
    /// Adds [`REST_COLUMN`] last: each document's fields the columns do not
    /// hold exactly, so nothing of it is lost (the archive reads this way).
    pub rest: bool,
}

impl MongoScanSpec {
    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.splits.as_ref().map_or(1, Splits::partitions)
    }

    /// The filter partition `i` sends to MongoDB.
    pub fn partition_filter(&self, i: usize) -> Document {
        let range = self.splits.as_ref().map(|s| s.filter(i));
        match (range, &self.filter) {
            (None, None) => Document::new(),
            (Some(r), None) => r,
            (None, Some(f)) => f.clone(),
            (Some(r), Some(f)) => doc! {"$and": [r, f.clone()]},
        }
    }
}

/// The scan node.
#[derive(Debug)]
pub struct MongoScanExec {
    spec: MongoScanSpec,
    source: Arc<MongoSource>,
    projected: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// The whole collection's documents and BSON bytes, when known: what
    /// the planner sees, so small tables are broadcast to joins.
    estimate: Option<(u64, u64)>,
}

impl MongoScanExec {
    /// A scan of `spec` reading from `source`.
    pub fn try_new(spec: MongoScanSpec, source: Arc<MongoSource>) -> Result<Self> {
        let mut projected = project_schema(&spec.schema, spec.projection.as_ref())?;
        if spec.rest {
            let mut fields = projected.fields().to_vec();
            fields.push(Arc::new(Field::new(REST_COLUMN, DataType::Utf8, true)));
            projected = Arc::new(Schema::new_with_metadata(fields, projected.metadata().clone()));
        }
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(projected.clone()),
            Partitioning::UnknownPartitioning(spec.partitions()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        // Fail at planning, not on an executor, for unreadable column types.
        Decoder::new(project_schema(&spec.schema, spec.projection.as_ref())?)
            .map_err(|e| DataFusionError::Plan(e.to_string()))?;
        Ok(Self { spec, source, projected, properties, metrics: ExecutionPlanMetricsSet::new(), estimate: None })
    }

    /// This scan, telling the planner the collection holds about `docs`
    /// documents of `bytes` BSON bytes in all. A filter only makes it less.
    pub fn with_estimate(mut self, docs: u64, bytes: u64) -> Self {
        self.estimate = Some((docs, bytes));
        self
    }

    /// What this scan reads.
    pub fn spec(&self) -> &MongoScanSpec {
        &self.spec
    }
}

impl DisplayAs for MongoScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MongoScanExec: collection={}, partitions={}", self.spec.collection, self.spec.partitions())?;
        if let Some(s) = &self.spec.splits {
            write!(f, " (ranges of {})", s.field)?;
        }
        let columns: Vec<&str> = self.projected.fields().iter().map(|f| f.name().as_str()).collect();
        write!(f, ", projection=[{}]", columns.join(", "))?;
        if let Some(filter) = &self.spec.filter {
            write!(f, ", filter={}", Bson::Document(filter.clone()).into_relaxed_extjson())?;
        }
        if let Some(limit) = self.spec.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for MongoScanExec {
    fn name(&self) -> &str {
        "MongoScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let Some((docs, bytes)) = self.estimate else {
            return Ok(Arc::new(Statistics::new_unknown(&self.projected)));
        };
        let parts = match partition {
            Some(_) => self.spec.partitions() as u64,
            None => 1,
        };
        // Bytes in proportion to the columns read.
        let columns = self.spec.schema.fields().len().max(1) as u64;
        let read = self.projected.fields().len() as u64;
        let mut stats = Statistics::new_unknown(&self.projected);
        stats.num_rows = Precision::Inexact((docs / parts) as usize);
        stats.total_byte_size = Precision::Inexact((bytes * read / columns / parts) as usize);
        Ok(Arc::new(stats))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition >= self.spec.partitions() {
            return Err(DataFusionError::Internal(format!(
                "MongoScanExec has {} partitions, asked for {partition}",
                self.spec.partitions()
            )));
        }
        match (&self.spec.share, self.spec.limit) {
            (Some(key), None) => self.shared(key, partition, context),
            _ => self.read(partition, context, true),
        }
    }
}

/// What every MongoDB scan in this process has read.
#[derive(Debug, Default)]
pub struct ReadTotals {
    /// Documents.
    pub documents: std::sync::atomic::AtomicU64,
    /// Raw BSON bytes.
    pub bytes: std::sync::atomic::AtomicU64,
}

/// Totals for the process's metrics. A plan's own metrics cannot serve:
/// tasks of one stage on one executor may share a plan instance.
pub static READ: ReadTotals =
    ReadTotals { documents: std::sync::atomic::AtomicU64::new(0), bytes: std::sync::atomic::AtomicU64::new(0) };

impl MongoScanExec {
    /// This scan with `projection` and no sharing, counting into the same
    /// metrics.
    fn alone(&self, projection: Option<Vec<usize>>) -> Result<Self> {
        let spec = MongoScanSpec { projection, share: None, ..self.spec.clone() };
        let mut exec = Self::try_new(spec, self.source.clone())?;
        exec.metrics = self.metrics.clone();
        exec.estimate = self.estimate;
        Ok(exec)
    }

    /// Partition `partition` from the read shared under `key`: every column,
    /// read once, then projected for this scan.
    fn shared(&self, key: &str, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let filter = Bson::Document(self.spec.partition_filter(partition)).into_relaxed_extjson();
        let key = format!("{key}\u{1f}{}\u{1f}{filter}", self.spec.collection);
        let whole = self.alone(None)?;
        let direct = self.alone(self.spec.projection.clone())?;
        let task_context = context.clone();
        // Rows are counted where each scan hands them out, below.
        let read = async move { whole.read(partition, task_context, false)?.try_collect::<Vec<_>>().await };
        let projection = self.spec.projection.clone();
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let stream = futures::stream::once(async move {
            match share::batches(key, read).await {
                Ok(batches) => {
                    let projected: Vec<Result<_>> = batches
                        .iter()
                        .map(|b| {
                            output_rows.add(b.num_rows());
                            match &projection {
                                Some(p) => b.project(p).map_err(DataFusionError::from),
                                None => Ok(b.clone()),
                            }
                        })
                        .collect();
                    Ok(futures::stream::iter(projected).boxed())
                }
                Err(Unshared::TooLarge) => Ok(direct.read(partition, context, true)?.boxed()),
                Err(Unshared::Failed(e)) => Err(e),
            }
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.projected.clone(), stream)))
    }

    /// Partition `partition` straight from MongoDB.
    fn read(&self, partition: usize, context: Arc<TaskContext>, count_rows: bool) -> Result<SendableRecordBatchStream> {
        // The rest needs every field; otherwise only the columns travel.
        let columns = project_schema(&self.spec.schema, self.spec.projection.as_ref())?;
        let mut projection = Document::new();
        for field in columns.fields() {
            projection.insert(field.name(), 1);
        }
        if !projection.contains_key("_id") {
            projection.insert("_id", if projection.is_empty() { 1 } else { 0 });
        }
        let projection = (!self.spec.rest).then_some(projection);
        let filter = self.spec.partition_filter(partition);
        let limit = self.spec.limit;
        let collection = self.spec.collection.clone();
        let source = self.source.clone();
        let what = format!("reading {}", self.spec.collection);

        // Two tasks, both stopped when the stream is dropped: fetching, so
        // the next server batch arrives while this one decodes, and decoding.
        let mut builder = RecordBatchReceiverStream::builder(self.projected.clone(), 2);
        let (raw_tx, mut raw_rx) = mpsc::channel::<Result<RawBatch>>(2);
        let fetch = async move {
            let send_err = |e: crate::source::MongoError| DataFusionError::External(Box::new(e));
            let result: Result<()> = async {
                let coll = source.database().await.map_err(send_err)?.collection::<RawDocumentBuf>(&collection);
                tracing::debug!(%collection, %filter, projected = projection.is_some(), "MongoDB find");
                let mut find = coll.find(filter).batch_size(SERVER_BATCH);
                if let Some(p) = projection {
                    find = find.projection(p);
                }
                if let Some(l) = limit {
                    find = find.limit(l as i64);
                }
                let mut cursor = source.answer(&what, find.batch()).await.map_err(send_err)?;
                while let Some(batch) = source.next(&what, cursor.next()).await.map_err(send_err)? {
                    if raw_tx.send(Ok(batch)).await.is_err() {
                        break; // the consumer is gone
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                let _ = raw_tx.send(Err(e)).await;
            }
            Ok(())
        };
        builder.spawn(fetch);

        let schema = columns;
        let output = self.projected.clone();
        let mut rest_of =
            self.spec.rest.then(|| Rest { schema: self.spec.schema.clone(), column: StringBuilder::new() });
        let batch_size = context.session_config().batch_size().max(1);
        let documents = MetricBuilder::new(&self.metrics).counter("documents_read", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_read", partition);
        let output_rows = count_rows.then(|| MetricBuilder::new(&self.metrics).output_rows(partition));
        let metrics = self.metrics.clone();
        let mut decoder = Decoder::new(schema.clone())?;
        let tx = builder.tx();
        builder.spawn(async move {
            while let Some(raw) = raw_rx.recv().await {
                let raw = raw?;
                let docs = raw.doc_slices().map_err(|e| DataFusionError::External(Box::new(e)))?;
                for value in docs {
                    match value.ok().and_then(|v| v.as_document()) {
                        Some(doc) => {
                            bytes.add(doc.as_bytes().len());
                            READ.bytes.fetch_add(doc.as_bytes().len() as u64, std::sync::atomic::Ordering::Relaxed);
                            decoder.append(doc);
                            if let Some(r) = &mut rest_of {
                                r.append(doc)?;
                            }
                        }
                        None => {
                            decoder.append_bytes(&[]);
                            if let Some(r) = &mut rest_of {
                                r.column.append_null();
                            }
                        }
                    }
                    documents.add(1);
                    READ.documents.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if decoder.rows() >= batch_size {
                        let batch = finish(&mut decoder, &mut rest_of, &output);
                        if let (Ok(b), Some(rows)) = (&batch, &output_rows) {
                            rows.add(b.num_rows());
                        }
                        if tx.send(batch).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            if decoder.rows() > 0 {
                let batch = finish(&mut decoder, &mut rest_of, &output);
                if let (Ok(b), Some(rows)) = (&batch, &output_rows) {
                    rows.add(b.num_rows());
                }
                let _ = tx.send(batch).await;
            }
            for (field, counts) in schema.fields().iter().zip(decoder.rejected()) {
                for reason in Reason::ALL {
                    let n = counts[reason as usize];
                    if n > 0 {
                        MetricBuilder::new(&metrics)
                            .with_new_label("column", field.name().clone())
                            .with_new_label("reason", reason.name())
                            .counter("rejected_values", partition)
                            .add(n as usize);
                    }
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

/// The rest column being built, and the schema it leaves out.
struct Rest {
    schema: SchemaRef,
    column: StringBuilder,
}

impl Rest {
    fn append(&mut self, doc: &mongodb::bson::RawDocument) -> Result<()> {
        let value = rest(doc, &self.schema).map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.column.append_option(value);
        Ok(())
    }
}

/// The decoded columns, and the rest when asked for, as one batch.
fn finish(decoder: &mut Decoder, rest: &mut Option<Rest>, output: &SchemaRef) -> Result<RecordBatch> {
    let batch = decoder.finish()?;
    let Some(rest) = rest else {
        return Ok(batch);
    };
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(rest.column.finish()) as ArrayRef);
    Ok(RecordBatch::try_new(output.clone(), columns)?)
}
