//! The job runner: the scheduler runs jobs itself, so the CLI, schedules
//! and the UI start them the same way and every run is recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};
use stockyard_jobs::archive::{self, ArchiveParams};
use stockyard_jobs::kpi::{self, KpiParams};
use stockyard_mongo::{MongoSource, ScanOptions};
use stockyard_proto::RunInfo;
use tokio::sync::mpsc;

/// Runs kept in memory.
const HISTORY: usize = 1000;

/// Where jobs read and write.
#[derive(Debug, Clone)]
pub struct JobTargets {
    /// This scheduler's own gRPC address, which job sessions connect to.
    pub scheduler: String,
    /// MongoDB, as this process reads it.
    pub mongo: Arc<MongoSource>,
    /// The KPI cache.
    pub redis_url: String,
    /// The archive's destination when a run names none.
    pub archive_dest: String,
}

/// `dest` with a relative local path made absolute: executors have other
/// working directories.
pub fn absolute_dest(dest: &str) -> String {
    if dest.contains("://") {
        return dest.to_string();
    }
    std::path::absolute(dest).map(|p| p.display().to_string()).unwrap_or_else(|_| dest.to_string())
}

/// Runs jobs and remembers them.
#[derive(Debug)]
pub struct JobRunner {
    targets: JobTargets,
    runs: Mutex<VecDeque<RunInfo>>,
}

/// Parameters that do not parse: the run is refused before it starts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

fn duration(params: &HashMap<String, String>, name: &str, default: Duration) -> Result<Duration, BadRequest> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| BadRequest(format!("{name}: '{v}' is not a duration like 90s, 15m or 2h"))),
    }
}

/// The KPI job's parameters from their CLI spelling.
pub fn kpi_params(params: &HashMap<String, String>) -> Result<KpiParams, BadRequest> {
    let known = ["now", "window", "ttl"];
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(BadRequest(format!("the kpi job has no parameter '{unknown}' (it takes now, window, ttl)")));
    }
    Ok(KpiParams {
        now: now_param(params)?,
        window: duration(params, "window", Duration::from_secs(15 * 60))?,
        ttl: duration(params, "ttl", Duration::from_secs(120))?,
    })
}

fn now_param(params: &HashMap<String, String>) -> Result<DateTime<Utc>, BadRequest> {
    match params.get("now") {
        // MongoDB dates have millisecond precision; so do the job's times.
        None => Ok(Utc::now().trunc_subsecs(3)),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| BadRequest(format!("now: '{v}' is not an RFC 3339 time like 2026-01-05T12:00:00Z"))),
    }
}

/// The archive job's parameters from their CLI spelling.
pub fn archive_params(params: &HashMap<String, String>, default_dest: &str) -> Result<ArchiveParams, BadRequest> {
    let known = ["now", "threshold_mb", "older_than", "dest"];
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(BadRequest(format!(
            "the archive job has no parameter '{unknown}' (it takes now, threshold_mb, older_than, dest)"
        )));
    }
    let threshold_mb = match params.get("threshold_mb") {
        None => 300.0,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| *n >= 0.0 && n.is_finite())
            .ok_or_else(|| BadRequest(format!("threshold_mb: '{v}' is not a size in MiB (a number, 0 or more)")))?,
    };
    let dest = absolute_dest(params.get("dest").map(String::as_str).unwrap_or(default_dest));
    stockyard_plan::store::open_check(&dest).map_err(|e| BadRequest(e.to_string()))?;
    Ok(ArchiveParams {
        now: now_param(params)?,
        threshold_mb,
        older_than: duration(params, "older_than", Duration::from_secs(120 * 60))?,
        dest,
    })
}

impl JobRunner {
    /// A runner for jobs on `targets`.
    pub fn new(targets: JobTargets) -> Self {
        Self { targets, runs: Mutex::default() }
    }

    /// Recorded runs, newest first.
    pub fn runs(&self) -> Vec<RunInfo> {
        self.runs.lock().expect("runs lock").iter().cloned().collect()
    }

    fn record(&self, run: &RunInfo) {
        let mut runs = self.runs.lock().expect("runs lock");
        match runs.iter_mut().find(|r| r.run_id == run.run_id) {
            Some(r) => *r = run.clone(),
            None => {
                runs.push_front(run.clone());
                runs.truncate(HISTORY);
            }
        }
    }

    /// Checks a request, so a bad one is refused before anything runs.
    pub fn validate(&self, job: &str, params: &HashMap<String, String>) -> Result<(), BadRequest> {
        match job {
            "kpi" => kpi_params(params).map(|_| ()),
            "archive" => archive_params(params, &self.targets.archive_dest).map(|_| ()),
            other => Err(BadRequest(format!("no job named '{other}' (jobs: kpi, archive)"))),
        }
    }

    /// Runs `job` to its end, telling `progress` what it is doing; the
    /// recorded run comes back whatever happened.
    pub async fn run(
        self: Arc<Self>,
        job: String,
        params: HashMap<String, String>,
        trigger: String,
        progress: mpsc::Sender<String>,
    ) -> RunInfo {
        // Unique across schedulers and restarts: history outlives a process.
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let mut run = RunInfo {
            run_id: format!("{job}-{}-{id}", Utc::now().format("%Y%m%dT%H%M%S")),
            job: job.clone(),
            status: "running".into(),
            params: params.clone(),
            trigger,
            started_at_ms: now_ms(),
            ..Default::default()
        };
        self.record(&run);
        tracing::info!(run = %run.run_id, "job run started");
        let started = Instant::now();
        let result = match job.as_str() {
            "kpi" => self.kpi(&run.run_id, &params, &progress).await,
            "archive" => self.archive(&run.run_id, &params, &progress).await,
            other => Err(format!("no job named '{other}'")),
        };
        run.ended_at_ms = now_ms();
        match result {
            Ok(mut summary) => {
                summary["duration_ms"] = json!(started.elapsed().as_millis() as u64);
                run.status = summary.get("status").and_then(Value::as_str).unwrap_or("succeeded").into();
                run.summary_json = summary.to_string();
            }
            Err(e) => {
                run.status = "failed".into();
                run.error = e;
                run.summary_json = json!({"duration_ms": started.elapsed().as_millis() as u64}).to_string();
            }
        }
        tracing::info!(run = %run.run_id, status = %run.status, error = %run.error, "job run ended");
        self.record(&run);
        run
    }

    async fn kpi(&self, run_id: &str, params: &HashMap<String, String>, progress: &mpsc::Sender<String>) -> Result<Value, String> {
        let params = kpi_params(params).map_err(|e| e.0)?;
        let say = |m: &str| {
            let _ = progress.try_send(m.to_string());
        };
        say("planning the KPI queries");
        let session = stockyard_plan::session::remote_context(&self.targets.scheduler, &format!("kpi {run_id}"), None, ScanOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        // The eight queries read the same window: each range once per executor.
        stockyard_jobs::tables::register(&session.ctx, Some(self.targets.mongo.clone()), None, Some(run_id))
            .map_err(|e| e.to_string())?;
        // A window is small: a few shuffle partitions beat Ballista's 16,
        // each of which is a task to schedule.
        session
            .ctx
            .sql("SET datafusion.execution.target_partitions = 4")
            .await
            .map_err(|e| e.to_string())?;
        say("computing five KPIs over the window");
        let generated_at = Utc::now();
        let computing = Instant::now();
        let output = kpi::compute(&session.ctx, &params, generated_at).await.map_err(|e| e.to_string())?;
        let compute_ms = computing.elapsed().as_millis() as u64;
        say("writing the KPIs to Redis");
        let writing = Instant::now();
        kpi::write(&self.targets.redis_url, &output, params.ttl, Utc::now()).await.map_err(|e| e.to_string())?;
        let redis_ms = writing.elapsed().as_millis() as u64;
        let (start, end) = params.bounds();
        let mut summary = output.summary;
        // Reading MongoDB happens inside the queries: compute includes it.
        summary["compute_ms"] = json!(compute_ms);
        summary["redis_write_ms"] = json!(redis_ms);
        summary["window_start"] = json!(kpi::iso(start));
        summary["window_end"] = json!(kpi::iso(end));
        Ok(summary)
    }

    async fn archive(&self, run_id: &str, params: &HashMap<String, String>, progress: &mpsc::Sender<String>) -> Result<Value, String> {
        let params = archive_params(params, &self.targets.archive_dest).map_err(|e| e.0)?;
        let say = |m: String| {
            let _ = progress.try_send(m);
        };
        let session = stockyard_plan::session::remote_context(&self.targets.scheduler, &format!("archive {run_id}"), None, ScanOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        archive::run(&session.ctx, &self.targets.mongo, &params, &say).await.map_err(|e| e.to_string())
    }
}
