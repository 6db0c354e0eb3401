//! One table over hot and cold data. For each fact collection `X`:
//! `archive.X`, its archive alone (hive partitions `event_date`,
//! `event_hour` as columns), and `history.X`, MongoDB and the archive as
//! one table that holds every document exactly once.
//!
//! Both are planned on the scheduler against one reading of the archive
//! ledger ([`ledger::Snapshot`]): the files of committed runs are the
//! archive (an interrupted attempt's or a run still writing are not), and
//! MongoDB's documents still marked by a committed run are left out of the
//! MongoDB side. A run that commits and deletes while a query reads is
//! caught by [`check::LedgerCheckExec`]: the query fails and says to run
//! it again, rather than miss documents. Compacted hours are read as their
//! records say ([`compacted`]): the merged file, or the files it replaced,
//! never both.

pub mod check;
pub mod compacted;
pub mod files;
pub mod ledger;
pub mod read;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue, plan_err, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use stockyard_mongo::rest_column::REST_COLUMN;
use stockyard_mongo::{MongoSource, MongoTable, ScanOptions};

use crate::store;
use check::LedgerCheckExec;
use files::{ArchivedFile, Pruning};
use ledger::Snapshot;
use read::ArchiveReadExec;

/// The schema of the archive tables.
pub const ARCHIVE_SCHEMA: &str = "archive";
/// The schema of the history tables.
pub const HISTORY_SCHEMA: &str = "history";

/// `archive.X` or `history.X` for one fact collection. Without a MongoDB
/// source and a destination (on a client, which only plans) it can be
/// planned against but not scanned.
#[derive(Debug, Clone)]
pub struct HotColdTable {
    /// The fact collection.
    pub collection: String,
    /// Its event-time column: it picks an archived document's hour.
    pub event_time: String,
    /// Its declared columns.
    pub collection_schema: SchemaRef,
    /// `archive.X`: the archive alone, with the partition columns.
    pub archive_only: bool,
    source: Option<Arc<MongoSource>>,
    dest: Option<String>,
}

impl HotColdTable {
    /// The table; `source` and `dest` (the archive's base URI) are where
    /// a scan reads.
    pub fn new(
        collection: impl Into<String>,
        event_time: impl Into<String>,
        collection_schema: SchemaRef,
        archive_only: bool,
        source: Option<Arc<MongoSource>>,
        dest: Option<String>,
    ) -> Self {
        Self {
            collection: collection.into(),
            event_time: event_time.into(),
            collection_schema,
            archive_only,
            source,
            dest,
        }
    }

    /// Downcast helper for codecs.
    pub fn from_provider(provider: &dyn TableProvider) -> Option<&Self> {
        (provider as &dyn Any).downcast_ref::<Self>()
    }

    /// The columns of an archive file: the declared ones, then the rest.
    fn file_schema(&self) -> SchemaRef {
        let mut fields = self.collection_schema.fields().to_vec();
        fields.push(Arc::new(Field::new(REST_COLUMN, DataType::Utf8, true)));
        Arc::new(Schema::new_with_metadata(fields, self.collection_schema.metadata().clone()))
    }

    /// The archive side: its committed files in the hours the filters can
    /// match, as a Parquet scan.
    async fn archive_scan(
        &self,
        state: &dyn Session,
        files: Vec<ArchivedFile>,
        dest: &store::Destination,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(project_schema(&schema, projection)?)));
        }
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
        let groups = state.config().target_partitions().clamp(1, files.len());
        let mut grouped = vec![Vec::new(); groups];
        for (i, file) in files.into_iter().enumerate() {
            let mut scanned = PartitionedFile::new(String::new(), file.size);
            scanned.object_meta.location = dest.scan_path(&file.path);
            if self.archive_only {
                scanned.partition_values = vec![
                    ScalarValue::Date32(Some((file.date - epoch).num_days() as i32)),
                    ScalarValue::Int32(Some(file.hour as i32)),
                ];
            }
            grouped[i % groups].push(scanned);
        }
        let partitions = if self.archive_only { files::partition_fields() } else { Vec::new() };
        let mut source = ParquetSource::new(TableSchema::new(self.file_schema(), partitions));
        if let Some(predicate) = conjunction(filters.to_vec()) {
            let df_schema = DFSchema::try_from(schema.clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let url = ObjectStoreUrl::parse(&dest.root.0)?;
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_file_groups(grouped.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    /// The MongoDB side: documents the archive does not hold, with the
    /// columns in the order `projection` asks for.
    async fn mongo_scan(
        &self,
        source: &Arc<MongoSource>,
        snapshot: &Snapshot,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let declared = self.collection_schema.fields().len();
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..=declared).collect());
        let columns: Vec<usize> = wanted.iter().copied().filter(|&i| i < declared).collect();
        let rest = wanted.contains(&declared);
        let options = ScanOptions { partitions: None, partition_field: self.event_time.clone(), share: None };
        let table = MongoTable::new(&self.collection, self.collection_schema.clone(), options, Some(source.clone()));
        let scan = table.scan_with(Some(&columns), filters, limit, snapshot.not_archived(), rest).await?;
        let mut plan: Arc<dyn ExecutionPlan> =
            Arc::new(LedgerCheckExec::new(snapshot.clone(), source.clone(), Arc::new(scan)));
        // The scan gives the declared columns, then the rest; a projection
        // may want the rest elsewhere.
        let given: Vec<usize> = columns.iter().copied().chain(rest.then_some(declared)).collect();
        if given != wanted {
            let out = plan.schema();
            let exprs = wanted
                .iter()
                .map(|w| {
                    let at = given.iter().position(|g| g == w).expect("every wanted column is given");
                    let name = out.field(at).name().clone();
                    (Arc::new(Column::new(&name, at)) as _, name)
                })
                .collect::<Vec<_>>();
            plan = Arc::new(ProjectionExec::try_new(exprs, plan)?);
        }
        Ok(plan)
    }
}

#[async_trait]
impl TableProvider for HotColdTable {
    fn schema(&self) -> SchemaRef {
        let file = self.file_schema();
        if !self.archive_only {
            return file;
        }
        let mut fields = file.fields().to_vec();
        fields.extend(files::partition_fields());
        Arc::new(Schema::new_with_metadata(fields, file.metadata().clone()))
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Each side prunes by them; DataFusion checks them over the union.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (Some(source), Some(dest)) = (&self.source, &self.dest) else {
            let table = if self.archive_only { ARCHIVE_SCHEMA } else { HISTORY_SCHEMA };
            return plan_err!(
                "table {table}.{} cannot be read in this process: it has no MongoDB connection and archive destination",
                self.collection
            );
        };
        let snapshot = Snapshot::read(source).await?;
        let opened = store::open(dest).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let pruning = Pruning::new(filters, &self.event_time, &self.schema(), self.archive_only);
        let found = files::list(&opened, source, &self.collection, &pruning, &snapshot).await?;
        let scan = self.archive_scan(state, found, &opened, projection, filters, limit).await?;
        let archive: Arc<dyn ExecutionPlan> = Arc::new(ArchiveReadExec::new(dest.clone(), scan));
        if self.archive_only {
            return Ok(archive);
        }
        let mongo = self.mongo_scan(source, &snapshot, projection, filters, limit).await?;
        UnionExec::try_new(vec![mongo, archive])
    }
}
