//! [`LedgerCheckExec`]: the MongoDB side of a history table, failed when
//! an archive run deleted documents under it.

use std::fmt;
use std::sync::Arc;

use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;
use stockyard_mongo::MongoSource;

use super::ledger::Snapshot;

/// Passes its input through; once a partition has been read whole, asks
/// the ledger whether a run not committed in `snapshot` started deleting
/// meanwhile, and fails the partition if so. A run deletes only after its
/// ledger step says so, so a partition that passes read every document
/// its snapshot left to MongoDB.
#[derive(Debug)]
pub struct LedgerCheckExec {
    snapshot: Snapshot,
    source: Arc<MongoSource>,
    input: Arc<dyn ExecutionPlan>,
}

impl LedgerCheckExec {
    /// Checks `input` (a MongoDB scan) against `snapshot`.
    pub fn new(snapshot: Snapshot, source: Arc<MongoSource>, input: Arc<dyn ExecutionPlan>) -> Self {
        Self { snapshot, source, input }
    }

    /// The ledger as the scan was planned against it.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl DisplayAs for LedgerCheckExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "LedgerCheckExec: archived and not yet deleted: [{}]", self.snapshot.in_both.join(", "))
    }
}

impl ExecutionPlan for LedgerCheckExec {
    fn name(&self) -> &str {
        "LedgerCheckExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(Self::new(self.snapshot.clone(), self.source.clone(), input))),
            Err(_) => Err(DataFusionError::Internal("LedgerCheckExec takes one input".into())),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let (snapshot, source) = (self.snapshot.clone(), self.source.clone());
        let check = futures::stream::once(async move {
            crate::fault::pause("history-before-check").await;
            snapshot.still_exact(&source).await
        })
        .filter_map(|checked| async move { checked.err().map(Err) });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, input.chain(check))))
    }
}
