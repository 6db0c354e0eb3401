//! `/metrics`: Prometheus gauges read from the scheduler's state at each
//! scrape, so they are never stale: executors by state, Ballista jobs
//! running and tasks waiting for a slot (what an autoscaler should watch:
//! a job count stays near zero under load), and job runs by job and status.

use std::collections::BTreeMap;

use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::Scheduler;
use crate::runner::JobRunner;

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

/// The metrics in Prometheus' text format.
pub(crate) async fn render(scheduler: &Scheduler, runner: &JobRunner) -> Result<String, String> {
    let registry = Registry::new();
    let e = |e: prometheus::Error| e.to_string();
    let executors = gauge_vec(&registry, "stockyard_executors", "Executors the scheduler knows, by state.", &["state"]).map_err(e)?;
    for state in ["active", "terminating", "dead", "unknown"] {
        executors.with_label_values(&[state]).set(0);
    }
    for ex in crate::executors(scheduler).await? {
        executors.with_label_values(&[ex.state.as_str()]).inc();
    }
    let tasks = &scheduler.state.task_manager;
    let running = tasks.get_running_job_cache();
    gauge(&registry, "stockyard_running_jobs", "Ballista jobs running.").map_err(e)?.set(running.len() as i64);
    gauge(&registry, "stockyard_queued_jobs", "Ballista jobs queued, not yet planned.")
        .map_err(e)?
        .set(tasks.pending_job_number() as i64);
    let mut pending = 0usize;
    for job in running.keys() {
        pending += tasks.get_available_task_count(job).await.unwrap_or(0);
    }
    gauge(&registry, "stockyard_pending_tasks", "Tasks ready to run and waiting for an executor slot.")
        .map_err(e)?
        .set(pending as i64);
    let runs = gauge_vec(&registry, "stockyard_job_runs", "Job runs this scheduler recorded, by job and status.", &["job", "status"])
        .map_err(e)?;
    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in runner.recent_runs() {
        *counts.entry((r.job, r.status)).or_default() += 1;
    }
    for ((job, status), n) in counts {
        runs.with_label_values(&[job.as_str(), status.as_str()]).set(n);
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out).map_err(e)?;
    String::from_utf8(out).map_err(|e| e.to_string())
}
