//! `/metrics`: Prometheus gauges read from the scheduler's state at each
//! scrape, so they are never stale: executors by state, Ballista jobs
//! running and tasks waiting for a slot (what an autoscaler should watch:
//! a job count stays near zero under load), job runs by job and status,
//! the age of the KPIs in Redis and how late each schedule is; then the
//! counters runs add to as they end (`crate::counters`).

use std::collections::BTreeMap;

use prometheus::{Encoder, Gauge, GaugeVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::api::Api;

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
pub(crate) async fn render(api: &Api) -> Result<String, String> {
    let (scheduler, runner) = (&api.scheduler, &api.runner);
    let registry = Registry::new();
    let e = |e: prometheus::Error| e.to_string();
    let executors = gauge_vec(&registry, "stockyard_executors", "Executors the scheduler knows, by state.", &["state"])
        .map_err(e)?;
    for state in ["active", "terminating", "dead", "unknown"] {
        executors.with_label_values(&[state]).set(0);
    }
    for ex in crate::executors(scheduler).await.map_err(|e| e.to_string())? {
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
    let runs = gauge_vec(
        &registry,
        "stockyard_job_runs",
        "Job runs this scheduler recorded, by job and status.",
        &["job", "status"],
    )
    .map_err(e)?;
    let mut counts: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for r in runner.recent_runs() {
        *counts.entry((r.job.as_str(), r.status.as_str())).or_default() += 1;
    }
    for ((job, status), n) in counts {
        runs.with_label_values(&[job, status]).set(n);
    }
    // Absent while Redis does not answer or holds no KPIs.
    if let Ok((Some(written), _)) = stockyard_jobs::kpi::freshness(&api.redis_url).await
        && let Some(age) = crate::api::age_s(&written)
    {
        let g =
            Gauge::new("stockyard_kpi_age_seconds", "Age of kpi:last_update in Redis: how fresh the cached KPIs are.")
                .map_err(e)?;
        registry.register(Box::new(g.clone())).map_err(e)?;
        g.set(age);
    }
    if let Ok(list) = api.schedules.list().await {
        let late = GaugeVec::new(
            Opts::new(
                "stockyard_schedule_lateness_seconds",
                "How far past its due time a schedule's next run is (0 when on time; paused schedules are left out).",
            ),
            &["schedule"],
        )
        .map_err(e)?;
        registry.register(Box::new(late.clone())).map_err(e)?;
        let skipped = gauge_vec(
            &registry,
            "stockyard_schedule_skipped_ticks",
            "Ticks a schedule skipped because its previous run still ran.",
            &["schedule"],
        )
        .map_err(e)?;
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        for s in list {
            let info = s.info();
            skipped.with_label_values(&[info.name.as_str()]).set(info.skipped_ticks as i64);
            if !info.paused {
                late.with_label_values(&[info.name.as_str()]).set(now.saturating_sub(info.next_run_ms) as f64 / 1000.0);
            }
        }
    }
    if let Ok(list) = api.streams.list().await {
        streams(&registry, &list).map_err(e)?;
    }
    let mut families = registry.gather();
    families.extend(runner.counters.registry.gather());
    let mut out = Vec::new();
    TextEncoder::new().encode(&families, &mut out).map_err(e)?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Each stream's position and counts.
fn streams(registry: &Registry, list: &[stockyard_stream_runtime::StreamInfo]) -> prometheus::Result<()> {
    let state = gauge_vec(registry, "stockyard_stream_state", "1 for each stream's state now.", &["stream", "state"])?;
    let batches = gauge_vec(registry, "stockyard_stream_batches", "Batches a stream has committed.", &["stream"])?;
    let lag = gauge_vec(
        registry,
        "stockyard_stream_lag_records",
        "Records behind the end of each partition after the last batch.",
        &["stream", "partition"],
    )?;
    let rows = gauge_vec(
        registry,
        "stockyard_stream_rows",
        "Rows a stream has counted: in (on time), out (to the sink), late, rejected (unreadable records).",
        &["stream", "kind"],
    )?;
    let duration = GaugeVec::new(
        Opts::new("stockyard_stream_last_batch_seconds", "How long a stream's last batch took."),
        &["stream"],
    )?;
    registry.register(Box::new(duration.clone()))?;
    let delay = GaugeVec::new(
        Opts::new("stockyard_stream_watermark_delay_seconds", "Wall clock minus a stream's watermark."),
        &["stream"],
    )?;
    registry.register(Box::new(delay.clone()))?;
    let now = chrono::Utc::now().timestamp_millis();
    for s in list {
        let name = s.name.as_str();
        state.with_label_values(&[name, &s.state.to_string()]).set(1);
        batches.with_label_values(&[name]).set(s.batches as i64);
        for (p, l) in &s.partition_lag {
            lag.with_label_values(&[name, &p.to_string()]).set(*l as i64);
        }
        for (kind, n) in [("in", s.rows_in), ("out", s.rows_out), ("late", s.late_rows), ("rejected", s.rejected_rows)]
        {
            rows.with_label_values(&[name, kind]).set(n as i64);
        }
        duration.with_label_values(&[name]).set(s.last_batch_ms as f64 / 1000.0);
        if let Some(w) = s.watermark_ms {
            delay.with_label_values(&[name]).set((now - w) as f64 / 1000.0);
        }
    }
    Ok(())
}
