//! [`ArchiveReadExec`]: the Parquet side of an archive or history table,
//! failed with a clear error when a compaction removed a file under it.

use std::fmt;
use std::sync::Arc;

use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{StreamExt, TryStreamExt};

/// Runs its input (a Parquet scan of archive files, read through the task
/// runtime's [`crate::store::Registry`]). A file gone by the time the scan
/// opens it (a compaction replaced it after the query was planned) fails
/// the query with an error that says so.
#[derive(Debug)]
pub struct ArchiveReadExec {
    dest: String,
    input: Arc<dyn ExecutionPlan>,
}

impl ArchiveReadExec {
    /// Reads `input` from the archive at `dest` (a base URI, no credentials).
    pub fn new(dest: String, input: Arc<dyn ExecutionPlan>) -> Self {
        Self { dest, input }
    }

    /// The archive's base URI.
    pub fn dest(&self) -> &str {
        &self.dest
    }
}

/// Whether `e` says a file was not found: by its causes, or by its text
/// where Parquet's reader keeps only that (`ParquetError::General`).
fn not_found(e: &DataFusionError) -> bool {
    let text = e.to_string();
    if text.contains("Object at location ") && text.contains(" not found: ") {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if matches!(c.downcast_ref::<object_store::Error>(), Some(object_store::Error::NotFound { .. })) {
            return true;
        }
        if let Some(DataFusionError::ObjectStore(o)) = c.downcast_ref::<DataFusionError>()
            && matches!(**o, object_store::Error::NotFound { .. })
        {
            return true;
        }
        cause = c.source();
    }
    false
}

fn explained(e: DataFusionError) -> DataFusionError {
    if not_found(&e) {
        return DataFusionError::Execution(format!(
            "an archive file this query was planned to read is gone: a compaction replaced it while the query ran; \
             run the query again ({})",
            e.strip_backtrace()
        ));
    }
    e
}

impl DisplayAs for ArchiveReadExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ArchiveReadExec: {}", stockyard_mask::uri(&self.dest))
    }
}

impl ExecutionPlan for ArchiveReadExec {
    fn name(&self) -> &str {
        "ArchiveReadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(Self::new(self.dest.clone(), input))),
            Err(_) => Err(DataFusionError::Internal("ArchiveReadExec takes one input".into())),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.input.schema();
        let input = self.input.clone();
        let opened = futures::stream::once(async move {
            crate::fault::pause("history-before-read").await;
            input.execute(partition, context)
        })
        .try_flatten()
        .map(|batch| batch.map_err(explained));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, opened)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_explained_and_other_errors_are_not() {
        let gone = object_store::Error::NotFound { path: "a/b.parquet".into(), source: "No such file".into() };
        let said = explained(DataFusionError::ObjectStore(Box::new(gone))).to_string();
        assert!(said.contains("a compaction replaced it while the query ran; run the query again"), "{said}");
        let wrapped = DataFusionError::External(Box::new(parquet::errors::ParquetError::External(Box::new(
            object_store::Error::NotFound { path: "a/b.parquet".into(), source: "No such file".into() },
        ))));
        assert!(not_found(&wrapped), "found through the chain of causes");
        let other = explained(DataFusionError::Execution("disk full".into())).to_string();
        assert_eq!(other, "Execution error: disk full");
    }
}
