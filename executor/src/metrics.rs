//! An executor's own `/metrics`: the tasks it ran (by outcome, with their
//! durations and output), the tasks running now, and what its MongoDB
//! scans read. Tasks are counted as they end, from their results; MongoDB
//! reads from the scans' process-wide totals.

use std::sync::Arc;
use std::time::Instant;

use ballista_core::serde::protobuf::ShuffleWritePartition;
use ballista_executor::execution_engine::QueryStageExecutor;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::MetricsSet;
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The executor's metrics, in their own registry.
#[derive(Debug)]
pub struct ExecutorMetrics {
    registry: Registry,
    tasks: IntCounterVec,
    running: IntGauge,
    duration: Histogram,
    rows: IntCounter,
    bytes: IntCounter,
    mongo: IntCounterVec,
}

impl Default for ExecutorMetrics {
    fn default() -> Self {
        let registry = Registry::new();
        let tasks = IntCounterVec::new(
            Opts::new("stockyard_executor_tasks_total", "Tasks this executor ran, by outcome."),
            &["status"],
        )
        .expect("valid metric");
        let running = IntGauge::new("stockyard_executor_running_tasks", "Tasks running on this executor now.")
            .expect("valid metric");
        let duration = Histogram::with_opts(
            HistogramOpts::new("stockyard_executor_task_duration_seconds", "How long this executor's tasks ran.")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0]),
        )
        .expect("valid metric");
        let rows = IntCounter::new(
            "stockyard_executor_output_rows_total",
            "Rows this executor's tasks wrote to their shuffle output.",
        )
        .expect("valid metric");
        let bytes = IntCounter::new(
            "stockyard_executor_output_bytes_total",
            "Bytes this executor's tasks wrote to their shuffle output.",
        )
        .expect("valid metric");
        let mongo = IntCounterVec::new(
            Opts::new(
                "stockyard_executor_mongo_read_total",
                "What this executor's MongoDB scans read, by unit (documents, bytes).",
            ),
            &["unit"],
        )
        .expect("valid metric");
        for m in [
            Box::new(tasks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(running.clone()),
            Box::new(duration.clone()),
            Box::new(rows.clone()),
            Box::new(bytes.clone()),
            Box::new(mongo.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        for status in ["succeeded", "failed"] {
            tasks.with_label_values(&[status]);
        }
        for unit in ["documents", "bytes"] {
            mongo.with_label_values(&[unit]);
        }
        Self { registry, tasks, running, duration, rows, bytes, mongo }
    }
}

impl ExecutorMetrics {
    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let read = &stockyard_mongo::exec::READ;
        for (unit, total) in [("documents", read.documents.load(Relaxed)), ("bytes", read.bytes.load(Relaxed))] {
            let counter = self.mongo.with_label_values(&[unit]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        String::from_utf8(out).unwrap_or_default()
    }

    fn task_ended(&self, result: &Result<Vec<ShuffleWritePartition>>, started: Instant) {
        self.duration.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(parts) => {
                self.tasks.with_label_values(&["succeeded"]).inc();
                self.rows.inc_by(parts.iter().map(|p| p.num_rows).sum());
                self.bytes.inc_by(parts.iter().map(|p| p.num_bytes).sum());
            }
            Err(_) => self.tasks.with_label_values(&["failed"]).inc(),
        }
    }
}

/// A task's stage, counted in [`ExecutorMetrics`] when it ends.
#[derive(Debug)]
pub(crate) struct Measured {
    pub inner: Arc<dyn QueryStageExecutor>,
    pub metrics: Arc<ExecutorMetrics>,
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for Measured {
    async fn execute_query_stage(
        &self,
        input_partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<Vec<ShuffleWritePartition>> {
        self.metrics.running.inc();
        let started = Instant::now();
        let result = self.inner.execute_query_stage(input_partition, context).await;
        self.metrics.running.dec();
        self.metrics.task_ended(&result, started);
        result
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        self.inner.collect_plan_metrics()
    }
}
