//! Counters a run adds to when it ends: what jobs did since the scheduler
//! started, for `/metrics` (the gauges there are read at scrape time).

use prometheus::{Counter, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use stockyard_api::{Run, RunStatus};

/// The counters, in their own registry.
pub(crate) struct RunCounters {
    pub registry: Registry,
    runs: IntCounterVec,
    duration: HistogramVec,
    documents: IntCounterVec,
    redis_write: Histogram,
    archived_documents: IntCounter,
    archived_bytes: Counter,
}

impl RunCounters {
    pub fn new() -> Self {
        let registry = Registry::new();
        let runs = IntCounterVec::new(
            Opts::new("stockyard_job_runs_total", "Job runs ended since the scheduler started, by job and status."),
            &["job", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("stockyard_job_run_duration_seconds", "How long job runs took, by job.")
                .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0]),
            &["job"],
        )
        .expect("valid metric");
        let documents = IntCounterVec::new(
            Opts::new(
                "stockyard_mongo_documents_total",
                "MongoDB documents the KPI job read in its windows, by outcome (read, rejected).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let redis_write = Histogram::with_opts(
            HistogramOpts::new("stockyard_redis_write_seconds", "How long the KPI job's one Redis transaction took.")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
        )
        .expect("valid metric");
        let archived_documents = IntCounter::new(
            "stockyard_archived_documents_total",
            "Documents archived to Parquet and removed from MongoDB.",
        )
        .expect("valid metric");
        let archived_bytes = Counter::new("stockyard_archived_bytes_total", "Bytes of Parquet the archive job wrote.")
            .expect("valid metric");
        for m in [
            Box::new(runs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(documents.clone()),
            Box::new(redis_write.clone()),
            Box::new(archived_documents.clone()),
            Box::new(archived_bytes.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Self { registry, runs, duration, documents, redis_write, archived_documents, archived_bytes }
    }

    /// Adds an ended run.
    pub fn ended(&self, run: &Run) {
        let job = run.job.as_str();
        self.runs.with_label_values(&[job, run.status.as_str()]).inc();
        if let Some(ms) = run.duration_ms {
            self.duration.with_label_values(&[job]).observe(ms as f64 / 1000.0);
        }
        if run.status != RunStatus::Succeeded {
            return;
        }
        if let Some(kpi) = run.kpi_summary() {
            self.documents.with_label_values(&["read"]).inc_by(kpi.documents_read);
            self.documents.with_label_values(&["rejected"]).inc_by(kpi.documents_rejected);
            if let Some(ms) = kpi.redis_write_ms {
                self.redis_write.observe(ms as f64 / 1000.0);
            }
        }
        if let Some(archive) = run.archive_summary() {
            self.archived_documents.inc_by(archive.total_records);
            self.archived_bytes.inc_by(archive.total_bytes as f64);
        }
    }
}
