//! `partitioned_range(rows, partitions [, batch_delay_ms])`: a table of
//! consecutive integers split into ranges, one per partition.
//!
//! It is a custom (non-file) leaf with many partitions, the same shape as the
//! MongoDB scan, so it shows on a real cluster that each partition of such a
//! leaf is read by exactly one task. The optional delay keeps a job running
//! long enough for failure tests.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err, project_schema};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};

/// Name under which [`PartitionedRangeFunc`] is registered.
pub const FUNCTION_NAME: &str = "partitioned_range";

const DEFAULT_BATCH_SIZE: u32 = 8192;

/// What to generate; shared by the table provider and the scan node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSpec {
    /// Total number of rows, `0..rows`.
    pub rows: u64,
    /// Number of partitions; partition `i` holds one contiguous range.
    pub partitions: u32,
    /// Pause after each batch.
    pub batch_delay_ms: u64,
    /// Rows per batch.
    pub batch_size: u32,
}

impl RangeSpec {
    /// The full schema: the value and the partition that produced it.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("value", DataType::Int64, false),
            Field::new("partition", DataType::UInt32, false),
        ]))
    }

    /// Half-open range of values held by `partition`.
    pub fn bounds(&self, partition: u32) -> (u64, u64) {
        let parts = u64::from(self.partitions.max(1));
        let p = u64::from(partition);
        (self.rows * p / parts, self.rows * (p + 1) / parts)
    }
}

/// The table function; see the module docs.
#[derive(Debug, Default)]
pub struct PartitionedRangeFunc;

impl TableFunctionImpl for PartitionedRangeFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(2..=3).contains(&exprs.len()) {
            return plan_err!(
                "{FUNCTION_NAME} takes (rows, partitions [, batch_delay_ms]), got {} arguments",
                exprs.len()
            );
        }
        let arg = |i: usize, name: &str| -> Result<u64> {
            match &exprs[i] {
                Expr::Literal(ScalarValue::Int64(Some(v)), _) if *v >= 0 => Ok(*v as u64),
                other => plan_err!("{FUNCTION_NAME}: {name} must be a non-negative integer literal, got {other}"),
            }
        };
        let rows = arg(0, "rows")?;
        let partitions = arg(1, "partitions")?;
        if partitions == 0 || partitions > 4096 {
            return plan_err!("{FUNCTION_NAME}: partitions must be in 1..=4096, got {partitions}");
        }
        let batch_delay_ms = if exprs.len() == 3 { arg(2, "batch_delay_ms")? } else { 0 };
        Ok(Arc::new(PartitionedRangeTable {
            spec: RangeSpec { rows, partitions: partitions as u32, batch_delay_ms, batch_size: DEFAULT_BATCH_SIZE },
        }))
    }
}

/// Table provider behind [`PartitionedRangeFunc`].
#[derive(Debug, Clone)]
pub struct PartitionedRangeTable {
    /// What the table holds.
    pub spec: RangeSpec,
}

#[async_trait]
impl TableProvider for PartitionedRangeTable {
    fn schema(&self) -> SchemaRef {
        RangeSpec::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(PartitionedRangeExec::try_new(self.spec.clone(), projection.cloned())?))
    }
}

/// Scan node: partition `i` streams the values of `spec.bounds(i)`.
#[derive(Debug, Clone)]
pub struct PartitionedRangeExec {
    spec: RangeSpec,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl PartitionedRangeExec {
    /// A scan of `spec`, keeping the `projection` columns (all when `None`).
    pub fn try_new(spec: RangeSpec, projection: Option<Vec<usize>>) -> Result<Self> {
        let schema = project_schema(&RangeSpec::schema(), projection.as_ref())?;
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(spec.partitions as usize),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self { spec, projection, properties })
    }

    /// What the scan generates.
    pub fn spec(&self) -> &RangeSpec {
        &self.spec
    }

    /// The projected column indices.
    pub fn projection(&self) -> Option<&Vec<usize>> {
        self.projection.as_ref()
    }
}

impl DisplayAs for PartitionedRangeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PartitionedRangeExec: rows={}, partitions={}", self.spec.rows, self.spec.partitions)
    }
}

impl ExecutionPlan for PartitionedRangeExec {
    fn name(&self) -> &str {
        "PartitionedRangeExec"
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

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition >= self.spec.partitions as usize {
            return plan_err!("PartitionedRangeExec has {} partitions, asked for {partition}", self.spec.partitions);
        }
        let (start, end) = self.spec.bounds(partition as u32);
        let step = u64::from(self.spec.batch_size.max(1));
        let delay = Duration::from_millis(self.spec.batch_delay_ms);
        let full = RangeSpec::schema();
        let schema = self.schema();
        let projection = self.projection.clone();
        let batches = futures::stream::unfold(start, move |from| {
            let full = full.clone();
            let projection = projection.clone();
            async move {
                if from >= end {
                    return None;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let to = (from + step).min(end);
                let values = Int64Array::from_iter_values((from..to).map(|v| v as i64));
                let parts = UInt32Array::from_value(partition as u32, (to - from) as usize);
                let batch = RecordBatch::try_new(full, vec![Arc::new(values), Arc::new(parts)])
                    .and_then(|b| match &projection {
                        Some(p) => b.project(p),
                        None => Ok(b),
                    })
                    .map_err(Into::into);
                Some((batch, to))
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

impl PartitionedRangeTable {
    /// Downcast helper for the codec.
    pub fn from_provider(provider: &dyn TableProvider) -> Option<&Self> {
        (provider as &dyn Any).downcast_ref::<Self>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cover_every_row_once() {
        for (rows, parts) in [(0u64, 3u32), (10, 1), (10, 3), (1000, 7), (5, 8)] {
            let spec = RangeSpec { rows, partitions: parts, batch_delay_ms: 0, batch_size: 4 };
            let mut next = 0;
            for p in 0..parts {
                let (s, e) = spec.bounds(p);
                assert_eq!(s, next, "partition {p} of {rows}/{parts} starts where the last ended");
                next = e;
            }
            assert_eq!(next, rows);
        }
    }
}
