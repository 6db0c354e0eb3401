//! How an executor turns one task (a stage plan and a partition number) into
//! something it runs.
//!
//! DataFusion 54's file scans share one queue of files among the partitions
//! of a plan instance, so a task that runs one partition alone would read
//! every file. Ballista 54's default engine therefore keeps, in each file
//! scan of a stage, only the file group with the task's partition number.
//! That number is the stage's output partition, which below a `UNION ALL` is
//! not the scan's: branch `k` of a union serves output partitions after
//! those of branches `0..k`, so its scans were left whole and every
//! partition of the branch read the whole table. [`TaskEngine`] follows the
//! partition number down the plan instead, through unions, and keeps in each
//! scan the file group that the task really reads.
//!
//! It also refuses, unless the operator allowed it, a task that reads or
//! writes this machine's own files: a client's SQL must not read a server's
//! disk.

use std::any::Any;
use std::sync::Arc;

use ballista_core::JobId;
use ballista_core::execution_plans::sort_shuffle::SortShuffleWriterExec;
use ballista_core::execution_plans::{ShuffleReaderExec, ShuffleWriterExec};
use ballista_executor::execution_engine::{
    DefaultQueryStageExec, ExecutionEngine, QueryStageExecutor, ShuffleWriterVariant,
};
use datafusion::datasource::file_format::csv::CsvSink;
use datafusion::datasource::file_format::json::JsonSink;
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::physical_plan::FileSink;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::SessionConfig;

/// The executor's [`ExecutionEngine`]; see the module docs.
#[derive(Debug, Default)]
pub struct TaskEngine {
    /// Whether tasks may scan local files or COPY to local paths.
    pub allow_local_files: bool,
    /// Where tasks are counted.
    pub metrics: Arc<crate::metrics::ExecutorMetrics>,
}

impl ExecutionEngine for TaskEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        partition_id: usize,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        _config: &SessionConfig,
    ) -> Result<Arc<dyn QueryStageExecutor>> {
        // Ballista names the task's shuffle directory after the job id.
        stockyard_plan::names::path_part("job id", job_id.as_str())
            .map_err(|e| DataFusionError::Plan(e.to_string()))?;
        if let Some(why) = bad_archive_names(&plan) {
            return Err(DataFusionError::Plan(format!("this task's archive writer is refused: {why}")));
        }
        if !self.allow_local_files
            && let Some(what) = local_file_use(&plan)
        {
            return Err(DataFusionError::Plan(format!(
                "this query {what} on an executor, and executors may not use their local files \
                     (start them with --allow-local-files to allow it)"
            )));
        }
        let input = |plan: &Arc<dyn ExecutionPlan>| for_task(plan.children()[0], Some(partition_id), work_dir);
        let writer = if let Some(w) = plan.downcast_ref::<ShuffleWriterExec>() {
            ShuffleWriterVariant::Hash(ShuffleWriterExec::try_new(
                job_id,
                stage_id,
                input(&plan)?,
                work_dir.to_string(),
                w.shuffle_output_partitioning().cloned(),
            )?)
        } else if let Some(w) = plan.downcast_ref::<SortShuffleWriterExec>() {
            ShuffleWriterVariant::Sort(SortShuffleWriterExec::try_new(
                job_id,
                stage_id,
                input(&plan)?,
                work_dir.to_string(),
                w.shuffle_output_partitioning().clone(),
                w.config().clone(),
            )?)
        } else {
            return Err(DataFusionError::Internal(format!(
                "stage {stage_id} of job {job_id} does not start with a shuffle writer"
            )));
        };
        let inner = Arc::new(DefaultQueryStageExec::new(writer));
        Ok(Arc::new(crate::metrics::Measured { inner, metrics: self.metrics.clone() }))
    }
}

/// `plan` as one task runs it: shuffle reads from `work_dir`, and each file
/// scan cut down to the file group of the partition it is executed with.
/// `partition` is the one partition of `plan` the task executes, or `None`
/// when its parent executes all of them (or none).
fn for_task(plan: &Arc<dyn ExecutionPlan>, partition: Option<usize>, work_dir: &str) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(reader) = plan.downcast_ref::<ShuffleReaderExec>() {
        return Ok(Arc::new(reader.with_work_dir(work_dir.to_string())));
    }
    if let Some(scan) = partition.and_then(|p| only_file_group(plan, p)) {
        return Ok(scan);
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan.clone());
    }
    let partitions = child_partitions(plan, partition);
    let new: Vec<Arc<dyn ExecutionPlan>> =
        children.iter().zip(partitions).map(|(child, p)| for_task(child, p, work_dir)).collect::<Result<_>>()?;
    // Tasks of a stage on one executor share one plan instance, and with it
    // state such as a hash join's build side: rebuild only what changed.
    if new.iter().zip(&children).all(|(n, old)| Arc::ptr_eq(n, old)) {
        return Ok(plan.clone());
    }
    plan.clone().with_new_children(new)
}

/// Which partition of each child partition `partition` of `plan` executes.
fn child_partitions(plan: &Arc<dyn ExecutionPlan>, partition: Option<usize>) -> Vec<Option<usize>> {
    let children = plan.children();
    let Some(p) = partition else {
        return vec![None; children.len()];
    };
    if plan.downcast_ref::<UnionExec>().is_some() {
        let mut first = 0;
        return children
            .iter()
            .map(|c| {
                let n = c.output_partitioning().partition_count();
                let mine = (first..first + n).contains(&p).then(|| p - first);
                first += n;
                mine
            })
            .collect();
    }
    // These read every partition of their input at once, which is how the
    // shared file queue is meant to be used.
    if plan.downcast_ref::<RepartitionExec>().is_some()
        || plan.downcast_ref::<CoalescePartitionsExec>().is_some()
        || plan.downcast_ref::<SortPreservingMergeExec>().is_some()
    {
        return vec![None; children.len()];
    }
    let n = plan.output_partitioning().partition_count();
    children.iter().map(|c| (c.output_partitioning().partition_count() == n).then_some(p)).collect()
}

/// How a stage uses this machine's files, if it does: `reads '<path>'` or
/// `writes '<path>'`.
/// Why an archive writer in `plan` would name a file outside its
/// destination: its files are named after its collection, run and attempt.
fn bad_archive_names(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    if let Some(archive) = plan.downcast_ref::<stockyard_plan::archive::ArchiveWriteExec>() {
        let spec = archive.spec();
        for (what, name) in [("collection", &spec.collection), ("run id", &spec.run), ("attempt", &spec.attempt)] {
            if let Err(e) = stockyard_plan::names::path_part(what, name) {
                return Some(e.to_string());
            }
        }
    }
    plan.children().into_iter().find_map(bad_archive_names)
}

fn local_file_use(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    if let Some(archive) = plan.downcast_ref::<stockyard_plan::archive::ArchiveWriteExec>() {
        let dest = &archive.spec().dest;
        let remote = ["s3://", "hdfs://", "gs://", "az://", "abfs://", "http://", "https://"]
            .iter()
            .any(|s| dest.starts_with(s));
        if !remote {
            return Some(format!("writes the archive to '{dest}'"));
        }
    }
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        let source: &dyn Any = scan.data_source().as_ref();
        if let Some(config) = source.downcast_ref::<FileScanConfig>()
            && config.object_store_url.as_str().starts_with("file://")
        {
            let path =
                config.file_groups.iter().flat_map(|g| g.iter()).next().map(|f| format!("/{}", f.object_meta.location));
            return Some(format!("reads '{}'", path.unwrap_or_default()));
        }
    }
    if let Some(sink) = plan.downcast_ref::<DataSinkExec>() {
        // DataFusion does not export the memory table's sink type.
        let memory = format!("{:?}", sink.sink()).starts_with("MemSink");
        let sink: &dyn Any = sink.sink();
        let config = sink
            .downcast_ref::<ParquetSink>()
            .map(FileSink::config)
            .or_else(|| sink.downcast_ref::<CsvSink>().map(FileSink::config))
            .or_else(|| sink.downcast_ref::<JsonSink>().map(FileSink::config));
        match config {
            Some(c) if c.object_store_url.as_str().starts_with("file://") => {
                return Some(format!("writes '{}'", c.original_url));
            }
            Some(_) => {}
            // A memory table stays in memory; any other sink (Arrow files)
            // does not say where it writes, so it is taken as local.
            None if memory => {}
            None => return Some("writes files whose place this executor cannot check".to_string()),
        }
    }
    plan.children().into_iter().find_map(local_file_use)
}

/// A file scan that reads only file group `partition`, keeping its number of
/// partitions; `None` if `plan` is no file scan or has no such group.
fn only_file_group(plan: &Arc<dyn ExecutionPlan>, partition: usize) -> Option<Arc<dyn ExecutionPlan>> {
    let source: &dyn Any = plan.downcast_ref::<DataSourceExec>()?.data_source().as_ref();
    let config = source.downcast_ref::<FileScanConfig>()?;
    if partition >= config.file_groups.len() {
        return None;
    }
    let groups = (0..config.file_groups.len())
        .map(|i| if i == partition { config.file_groups[i].clone() } else { FileGroup::new(vec![]) })
        .collect();
    let config = FileScanConfigBuilder::from(config.clone()).with_file_groups(groups).build();
    Some(DataSourceExec::from_data_source(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::listing::PartitionedFile;
    use datafusion::datasource::physical_plan::ParquetSource;
    use datafusion::execution::object_store::ObjectStoreUrl;

    /// A Parquet scan over `n` file groups of one file each, named `{name}-{i}`.
    fn scan(name: &str, n: usize) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let groups = (0..n).map(|i| FileGroup::new(vec![PartitionedFile::new(format!("{name}-{i}"), 10)])).collect();
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(ParquetSource::new(schema)))
                .with_file_groups(groups)
                .build();
        DataSourceExec::from_data_source(config)
    }

    /// The files each scan below `plan` reads, per scan, in plan order.
    fn files(plan: &Arc<dyn ExecutionPlan>) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let source = plan.downcast_ref::<DataSourceExec>().map(|d| d.data_source().as_ref() as &dyn Any);
        if let Some(c) = source.and_then(|s| s.downcast_ref::<FileScanConfig>()) {
            let names =
                c.file_groups.iter().flat_map(|g| g.iter().map(|f| f.object_meta.location.to_string())).collect();
            out.push(names);
        }
        for child in plan.children() {
            out.extend(files(child));
        }
        out
    }

    #[test]
    fn a_union_branch_reads_the_group_of_its_own_partition() {
        let union = UnionExec::try_new(vec![scan("a", 2), scan("b", 3)]).unwrap();
        let expect: [[&[&str]; 2]; 5] = [
            [&["a-0"], &["b-0", "b-1", "b-2"]],
            [&["a-1"], &["b-0", "b-1", "b-2"]],
            [&["a-0", "a-1"], &["b-0"]],
            [&["a-0", "a-1"], &["b-1"]],
            [&["a-0", "a-1"], &["b-2"]],
        ];
        for (p, want) in expect.iter().enumerate() {
            let got = files(&for_task(&union, Some(p), "/tmp").unwrap());
            assert_eq!(got, want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>()), "partition {p}");
        }
    }

    #[test]
    fn local_file_scans_are_refused_unless_allowed() {
        let plan = scan("data/t", 2);
        assert_eq!(local_file_use(&plan).as_deref(), Some("reads '/data/t-0'"));
        let union = UnionExec::try_new(vec![scan("a", 1), scan("b", 1)]).unwrap();
        assert!(local_file_use(&union).is_some());
        let engine = TaskEngine { allow_local_files: false, metrics: Default::default() };
        let err =
            engine.create_query_stage_exec("j".into(), 1, 0, plan.clone(), "/tmp", &SessionConfig::new()).unwrap_err();
        assert!(err.to_string().contains("executors may not use their local files"), "{err}");
    }

    #[test]
    fn a_merge_reads_every_group() {
        let merge: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(scan("a", 3)));
        assert_eq!(files(&for_task(&merge, Some(0), "/tmp").unwrap()), vec![vec!["a-0", "a-1", "a-2"]]);
    }
}
