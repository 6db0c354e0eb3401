//! [`MongoTable`]: one collection as a DataFusion table.

use std::any::Any;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, plan_err};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use crate::exec::{MongoScanExec, MongoScanSpec};
use crate::filter;
use crate::partition::{self, Splits};
use crate::share::Memo;
use crate::source::MongoSource;

/// How a scan splits its collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Partitions to read in parallel; `None` sizes them by the
    /// collection's `collStats.size` ([`BYTES_PER_PARTITION`] each).
    pub partitions: Option<usize>,
    /// The field whose ranges make the partitions.
    pub partition_field: String,
    /// Scans with the same key read each range once per process (one job
    /// run's queries; see [`crate::share`]).
    pub share: Option<String>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self { partitions: None, partition_field: "_id".into(), share: None }
    }
}

/// Target partition size when the count is automatic.
pub const BYTES_PER_PARTITION: u64 = 32 << 20;
/// How long a collection's size is trusted for sizing partitions.
pub const SIZE_TTL: Duration = Duration::from_secs(30);
/// Most partitions an automatic split makes.
pub const MAX_AUTO_PARTITIONS: usize = 64;
/// Sampled values per wanted partition when choosing split points.
const SAMPLES_PER_PARTITION: usize = 64;

/// A MongoDB collection with a fixed Arrow schema. Without a source (on a
/// client, which only plans) it can be planned against but not scanned.
#[derive(Debug, Clone)]
pub struct MongoTable {
    collection: String,
    schema: SchemaRef,
    options: ScanOptions,
    source: Option<Arc<MongoSource>>,
}

impl MongoTable {
    /// The table `collection` with columns `schema`.
    pub fn new(
        collection: impl Into<String>,
        schema: SchemaRef,
        options: ScanOptions,
        source: Option<Arc<MongoSource>>,
    ) -> Self {
        Self { collection: collection.into(), schema, options, source }
    }

    /// The collection name.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// How scans split the collection.
    pub fn options(&self) -> &ScanOptions {
        &self.options
    }

    /// Downcast helper for codecs.
    pub fn from_provider(provider: &dyn TableProvider) -> Option<&Self> {
        (provider as &dyn Any).downcast_ref::<Self>()
    }

    async fn splits(&self, source: &MongoSource, size: &Size) -> Result<Option<Splits>> {
        let db = source.database().await.map_err(external)?;
        let wanted = match self.options.partitions {
            Some(n) => n,
            None => (size.bytes.div_ceil(BYTES_PER_PARTITION) as usize).clamp(1, MAX_AUTO_PARTITIONS),
        };
        if wanted < 2 {
            return Ok(None);
        }
        let field = format!("${}", self.options.partition_field);
        let pipeline = vec![
            doc! {"$sample": {"size": (wanted * SAMPLES_PER_PARTITION) as i64}},
            doc! {"$project": {"_id": 0, "v": field}},
        ];
        let what = format!("sampling {}", self.collection);
        let sampling =
            async { db.collection::<Document>(&self.collection).aggregate(pipeline).await?.try_collect().await };
        let sample: Vec<Document> = source.answer(&what, sampling).await.map_err(external)?;
        let values = sample.into_iter().filter_map(|mut d| d.remove("v")).collect();
        Ok(partition::from_sample(&self.options.partition_field, values, wanted))
    }
}

impl MongoTable {
    /// The scan [`TableProvider::scan`] plans, of documents that also match
    /// `also` (a MongoDB query, e.g. the history table's "not archived"),
    /// with the rest column last when `rest`.
    pub async fn scan_with(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        also: Option<Document>,
        rest: bool,
    ) -> Result<MongoScanExec> {
        let Some(source) = self.source.clone() else {
            return plan_err!(
                "table {} cannot be read in this process: it has no MongoDB connection (STOCKYARD_MONGO_URI)",
                self.collection
            );
        };
        let size = self.size(&source).await?;
        let pushed = filter::combine(
            &filters.iter().filter(|f| self.sent_to_mongodb(f)).cloned().collect::<Vec<_>>(),
            &self.schema,
        );
        let filter = match (pushed, also) {
            (Some(f), Some(a)) => Some(doc! {"$and": [f, a]}),
            (f, a) => f.or(a),
        };
        let spec = MongoScanSpec {
            collection: self.collection.clone(),
            schema: self.schema.clone(),
            projection: projection.cloned(),
            filter,
            splits: self.splits(&source, &size).await?,
            limit,
            share: self.options.share.clone(),
            rest,
        };
        Ok(MongoScanExec::try_new(spec, source)?.with_estimate(size.docs, size.bytes))
    }

    /// A scan of every column of the documents matching `filter` (a MongoDB
    /// query), split as the options say; with `rest`, fields the columns do
    /// not hold exactly come along in [`crate::rest_column::REST_COLUMN`].
    pub async fn scan_matching(&self, filter: Document, rest: bool) -> Result<MongoScanExec> {
        Self { options: ScanOptions { share: None, ..self.options.clone() }, ..self.clone() }
            .scan_with(None, &[], None, Some(filter), rest)
            .await
    }

    /// Whether a scan sends `filter` to MongoDB. A shared read serves
    /// every query of a run, so it sends only what they all have in common,
    /// the range of the partition field (a KPI window), and each query
    /// filters the rest itself: one read instead of one per set of filters.
    fn sent_to_mongodb(&self, filter: &Expr) -> bool {
        self.options.share.is_none() || {
            let columns = filter.column_refs();
            !columns.is_empty() && columns.iter().all(|c| c.name == self.options.partition_field)
        }
    }

    /// `collStats` size and count, remembered for [`SIZE_TTL`]: they only
    /// size partitions and guide join planning, and some servers compute
    /// them by reading the whole collection. Scans planned at the same
    /// time (a KPI run's eight queries) wait for one answer rather than
    /// each asking: on SecantusDB that was 24 whole-collection reads per
    /// run before any document was fetched.
    async fn size(&self, source: &Arc<MongoSource>) -> Result<Size> {
        static SIZES: LazyLock<Memo<String, Size>> = LazyLock::new(|| Memo::new(SIZE_TTL));
        let key = format!("{}\u{1f}{}\u{1f}{}", source.redacted_uri(), source.database_name(), self.collection);
        let (source, collection) = (source.clone(), self.collection.clone());
        let ask = async move {
            let db = source.database().await.map_err(|e| Arc::from(e.to_string()))?;
            let action = format!("collStats on {collection}");
            let stats = async {
                match db.run_command(doc! {"collStats": &collection}).await {
                    // A collection not created yet is empty, not an error.
                    Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 26) => Ok(None),
                    answer => answer.map(Some),
                }
            };
            let stats = source.answer(&action, stats).await.map_err(|e| Arc::from(e.to_string()))?;
            Ok(stats.map_or_else(Size::default, |stats| Size {
                bytes: number(stats.get("size")).max(0.0) as u64,
                docs: number(stats.get("count")).max(0.0) as u64,
            }))
        };
        SIZES.get(key, ask).await.map_err(|e| DataFusionError::External(e.to_string().into()))
    }
}

/// A collection's size, as `collStats` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Size {
    bytes: u64,
    docs: u64,
}

fn number(v: Option<&Bson>) -> f64 {
    match v {
        Some(Bson::Int32(x)) => f64::from(*x),
        Some(Bson::Int64(x)) => *x as f64,
        Some(Bson::Double(x)) => *x,
        _ => 0.0,
    }
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl TableProvider for MongoTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match filter::support(f, &self.schema) {
                TableProviderFilterPushDown::Exact if !self.sent_to_mongodb(f) => TableProviderFilterPushDown::Inexact,
                support => support,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(self.scan_with(projection, filters, limit, None, false).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn scans_planned_together_ask_for_a_size_once() {
        let sizes = Memo::new(SIZE_TTL);
        let asked = Arc::new(AtomicUsize::new(0));
        let ask = || {
            let asked = asked.clone();
            async move {
                asked.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(Size { bytes: 100, docs: 2 })
            }
        };
        let key = || "test-together".to_string();
        let (a, b, c) = tokio::join!(sizes.get(key(), ask()), sizes.get(key(), ask()), sizes.get(key(), ask()));
        assert_eq!([a.unwrap(), b.unwrap(), c.unwrap()], [Size { bytes: 100, docs: 2 }; 3]);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // Later, within the TTL: still the remembered answer.
        assert_eq!(sizes.get(key(), ask()).await.unwrap().docs, 2);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_size_is_asked_again() {
        let sizes = Memo::new(SIZE_TTL);
        let failing = async { Err(Arc::from("collStats failed")) };
        assert!(sizes.get("test-failed".to_string(), failing).await.unwrap_err().contains("collStats failed"));
        let size = sizes.get("test-failed".to_string(), async { Ok(Size { bytes: 1, docs: 1 }) }).await.unwrap();
        assert_eq!(size, Size { bytes: 1, docs: 1 });
    }
}
