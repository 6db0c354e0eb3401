//! The job runner: the scheduler runs jobs itself, so the CLI, schedules
//! and the UI start them the same way and every run is recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};
use stockyard_jobs::archive::{self, ArchiveParams};
use stockyard_jobs::kpi::{self, KpiParams};
use stockyard_mongo::{MongoSource, ScanOptions};
use stockyard_proto::RunInfo;
use stockyard_state::StateStore;
use tokio::sync::mpsc;

/// Runs kept in memory.
const HISTORY: usize = 1000;

/// Results of `sql` runs kept in memory, newest last, for the UI.
const RESULTS: usize = 16;

/// Rows of a `sql` run's result kept for the UI.
pub const RESULT_ROWS: usize = 1000;

/// Status of a run a user cancelled.
const CANCELLED: &str = "cancelled";

/// Status of a run its scheduler stopped without finishing (it died, or
/// lost the leadership); the next leader reruns it.
const INTERRUPTED: &str = "interrupted";

/// Why a run was stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A user cancelled it.
    Cancelled,
    /// This scheduler lost the leadership.
    Interrupted,
}

/// Where jobs read and write.
#[derive(Debug, Clone)]
pub struct JobTargets {
    /// Where job sessions reach this scheduler's gRPC API: its own address,
    /// or the gateway that adds the token and TLS.
    pub scheduler: stockyard_plan::session::Route,
    /// MongoDB, as this process reads it.
    pub mongo: Arc<MongoSource>,
    /// MongoDB's collections and their schemas, for `sql` jobs.
    pub catalog: Arc<stockyard_mongo::MongoCatalog>,
    /// Whether `sql` jobs may name this machine's files.
    pub allow_local_files: bool,
    /// The KPI cache.
    pub redis_url: String,
    /// The archive's destination when a run names none.
    pub archive_dest: String,
    /// Where a run's destination must lie: `archive_dest` and the list
    /// fixed when the scheduler started.
    pub allowed_dests: Vec<String>,
}

/// `dest` with `.` and `..` resolved, without touching the disk.
fn lexical(dest: &str) -> String {
    let (prefix, path) = match dest.find("://") {
        Some(i) => dest.split_at(i + 3),
        None => ("", dest),
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "." | "" if !parts.is_empty() => {}
            ".." => {
                if parts.len() > 1 {
                    parts.pop();
                }
            }
            p => parts.push(p),
        }
    }
    format!("{prefix}{}", parts.join("/"))
}

/// Whether `dest` lies under one of `allowed` (both absolute).
pub fn dest_allowed(dest: &str, allowed: &[String]) -> bool {
    let dest = lexical(dest);
    allowed.iter().map(|a| lexical(a)).any(|a| dest == a || dest.starts_with(&format!("{}/", a.trim_end_matches('/'))))
}

/// `dest` with a relative local path made absolute: executors have other
/// working directories.
pub fn absolute_dest(dest: &str) -> String {
    if dest.contains("://") {
        return dest.to_string();
    }
    std::path::absolute(dest).map(|p| p.display().to_string()).unwrap_or_else(|_| dest.to_string())
}

/// Runs jobs and remembers them: in memory, and in the state store so the
/// history outlives the process.
pub struct JobRunner {
    targets: JobTargets,
    runs: Mutex<VecDeque<RunInfo>>,
    store: Arc<dyn StateStore>,
    /// How long the store keeps a run.
    retention: Duration,
    /// The Ballista scheduler, to name the Ballista jobs of a run.
    ballista: OnceLock<crate::Scheduler>,
    /// Runs going on in this process, each with its stop switch.
    active: Mutex<HashMap<String, tokio::sync::watch::Sender<Option<Stop>>>>,
    /// This process's instance id, recorded on its runs.
    instance: String,
    /// Held by the archive run going on: two at once would both resume
    /// the same interrupted run.
    archiving: tokio::sync::Mutex<()>,
    /// The last `sql` runs' results: run id, then columns and rows as JSON.
    results: Mutex<VecDeque<(String, Value)>>,
    /// What ended runs did, for `/metrics`.
    pub(crate) counters: crate::counters::RunCounters,
}

/// Why a run cannot be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No run has this id.
    #[error("no run '{0}'")]
    Unknown(String),
    /// The run has ended, or runs on another scheduler.
    #[error("run '{0}' is not running on this scheduler (it is {1})")]
    NotRunning(String, String),
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner").field("targets", &self.targets).field("store", &self.store).finish()
    }
}

/// Key prefix of runs in the state store: `runs/<started ms>-<run id>`.
const RUNS: &str = "runs/";

fn run_json(r: &RunInfo) -> Value {
    json!({
        "run_id": r.run_id, "job": r.job, "status": r.status, "params": r.params, "trigger": r.trigger,
        "started_at_ms": r.started_at_ms, "ended_at_ms": r.ended_at_ms, "summary_json": r.summary_json,
        "error": r.error, "ballista_jobs": r.ballista_jobs, "scheduler": r.scheduler,
        "rerun_of": r.rerun_of, "rerun_as": r.rerun_as,
    })
}

fn run_from_json(v: &Value) -> RunInfo {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or_default();
    let params = v
        .get("params")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect());
    let jobs = v
        .get("ballista_jobs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect());
    RunInfo {
        run_id: s("run_id"),
        job: s("job"),
        status: s("status"),
        params: params.unwrap_or_default(),
        trigger: s("trigger"),
        started_at_ms: n("started_at_ms"),
        ended_at_ms: n("ended_at_ms"),
        summary_json: s("summary_json"),
        error: s("error"),
        ballista_jobs: jobs.unwrap_or_default(),
        scheduler: s("scheduler"),
        rerun_of: s("rerun_of"),
        rerun_as: s("rerun_as"),
    }
}

/// A fresh run id for `job`: unique across schedulers and restarts, since
/// the history outlives a process.
pub fn new_run_id(job: &str) -> String {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{job}-{}-{id}", Utc::now().format("%Y%m%dT%H%M%S"))
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
pub fn archive_params(
    params: &HashMap<String, String>,
    default_dest: &str,
    allowed: &[String],
) -> Result<ArchiveParams, BadRequest> {
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
    if !dest_allowed(&dest, allowed) {
        return Err(BadRequest(format!(
            "the archive destination '{}' is not under the scheduler's destinations ({}): \
             start the scheduler with --archive-dests to allow it",
            stockyard_mask::uri(&dest),
            allowed.iter().map(|a| stockyard_mask::uri(a)).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(ArchiveParams {
        now: now_param(params)?,
        threshold_mb,
        older_than: duration(params, "older_than", Duration::from_secs(120 * 60))?,
        dest,
    })
}

impl JobRunner {
    /// A runner for jobs on `targets` that keeps runs in `store` for
    /// `retention`, marking them as run by `instance`.
    pub fn new(targets: JobTargets, store: Arc<dyn StateStore>, retention: Duration, instance: String) -> Self {
        Self {
            instance,
            archiving: tokio::sync::Mutex::new(()),
            targets,
            runs: Mutex::default(),
            store,
            retention,
            ballista: OnceLock::new(),
            active: Mutex::default(),
            results: Mutex::default(),
            counters: crate::counters::RunCounters::new(),
        }
    }

    /// Tells the runner which Ballista scheduler its jobs run on.
    pub fn set_ballista(&self, scheduler: crate::Scheduler) {
        let _ = self.ballista.set(scheduler);
    }

    /// This process's recent runs, newest first (no store access).
    pub fn recent_runs(&self) -> Vec<RunInfo> {
        self.runs.lock().expect("runs lock").iter().cloned().collect()
    }

    /// Recorded runs, newest first: the store's history, or this process's
    /// own runs while the store is unreachable.
    pub async fn runs(&self) -> Vec<RunInfo> {
        match self.store.list(RUNS).await {
            Ok(stored) => {
                let mut runs: Vec<RunInfo> = stored
                    .iter()
                    .filter_map(|(_, v)| serde_json::from_slice::<Value>(v).ok())
                    .map(|v| run_from_json(&v))
                    .collect();
                // Runs this process has not stored yet (the store was away).
                for r in self.recent_runs() {
                    if !runs.iter().any(|s| s.run_id == r.run_id) {
                        runs.push(r);
                    }
                }
                runs.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then(b.run_id.cmp(&a.run_id)));
                runs
            }
            Err(e) => {
                tracing::warn!("run history unavailable, showing this scheduler's runs: {e}");
                self.recent_runs()
            }
        }
    }

    /// One recorded run.
    pub async fn run_info(&self, run_id: &str) -> Option<RunInfo> {
        if let Some(r) = self.recent_runs().into_iter().find(|r| r.run_id == run_id) {
            return Some(r);
        }
        self.runs().await.into_iter().find(|r| r.run_id == run_id)
    }

    /// The result of a `sql` run, while this process still keeps it:
    /// `{"columns": [...], "rows": [{...}], "total_rows": n}`.
    pub fn result(&self, run_id: &str) -> Option<Value> {
        self.results.lock().expect("results lock").iter().find(|(id, _)| id == run_id).map(|(_, v)| v.clone())
    }

    /// Stops a running run: its Ballista jobs are cancelled and the run is
    /// recorded as cancelled. A job stopped half-way loses nothing: the KPI
    /// job writes Redis in one transaction at its end, and the archive job
    /// resumes an interrupted run first thing next time.
    pub async fn cancel(&self, run_id: &str) -> Result<(), CancelError> {
        let switch = self.active.lock().expect("active lock").get(run_id).cloned();
        let Some(switch) = switch else {
            return match self.run_info(run_id).await {
                Some(r) => Err(CancelError::NotRunning(run_id.to_string(), r.status)),
                None => Err(CancelError::Unknown(run_id.to_string())),
            };
        };
        let _ = switch.send(Some(Stop::Cancelled));
        Ok(())
    }

    /// Stops every run going on here, recording them as interrupted: this
    /// scheduler lost the leadership, and the new leader reruns them.
    pub fn interrupt_all(&self) {
        for switch in self.active.lock().expect("active lock").values() {
            let _ = switch.send(Some(Stop::Interrupted));
        }
    }

    /// Runs the store records as running, or interrupted and not yet
    /// rerun, that no run in this process carries on: their scheduler died
    /// or lost the leadership. Each is recorded as interrupted; with
    /// `rerun`, it gets the id of its rerun, which the caller starts.
    pub async fn orphans(&self, rerun: bool) -> Result<Vec<RunInfo>, stockyard_state::StateError> {
        let stored = self.store.list(RUNS).await?;
        let mut out = Vec::new();
        for (_, value) in stored {
            let Ok(v) = serde_json::from_slice::<Value>(&value) else { continue };
            let mut run = run_from_json(&v);
            let open = run.status == "running" || (run.status == INTERRUPTED && run.rerun_as.is_empty() && rerun);
            if !open || self.active.lock().expect("active lock").contains_key(&run.run_id) {
                continue;
            }
            if run.status == "running" {
                run.status = INTERRUPTED.into();
                run.error = format!(
                    "its scheduler ({}) stopped during the run",
                    if run.scheduler.is_empty() { "unknown" } else { &run.scheduler }
                );
                run.ended_at_ms = now_ms();
            }
            if rerun {
                run.rerun_as = new_run_id(&run.job);
            }
            self.record(&run).await;
            out.push(run);
        }
        Ok(out)
    }

    /// Cancels the run's Ballista jobs that have not ended.
    async fn cancel_ballista_jobs(&self, run_id: &str) {
        let Some(scheduler) = self.ballista.get() else { return };
        for job in self.jobs_of(run_id).await.into_iter().filter(|j| j.status == "running" || j.status == "queued") {
            if let Err(e) = crate::service::cancel_job(scheduler, &job.id).await {
                tracing::warn!(run = %run_id, job = %job.id, "cannot cancel the Ballista job: {e}");
            }
        }
    }

    async fn record(&self, run: &RunInfo) {
        {
            let mut runs = self.runs.lock().expect("runs lock");
            match runs.iter_mut().find(|r| r.run_id == run.run_id) {
                Some(r) => *r = run.clone(),
                None => {
                    runs.push_front(run.clone());
                    runs.truncate(HISTORY);
                }
            }
        }
        let key = format!("{RUNS}{:013}-{}", run.started_at_ms, run.run_id);
        if let Err(e) = self.store.put(&key, run_json(run).to_string().into_bytes()).await {
            tracing::warn!(run = %run.run_id, "cannot record the run in the state store: {e}");
            return;
        }
        if run.status != "running" {
            self.prune().await;
        }
    }

    /// Drops runs older than the retention period from the store.
    async fn prune(&self) {
        let oldest = now_ms().saturating_sub(self.retention.as_millis() as u64);
        let Ok(stored) = self.store.list(RUNS).await else { return };
        for (key, _) in stored {
            let started: u64 =
                key.trim_start_matches(RUNS).split('-').next().and_then(|t| t.parse().ok()).unwrap_or(u64::MAX);
            if started < oldest {
                let _ = self.store.delete(&key).await;
            }
        }
    }

    /// Checks a run id a client chose: plain characters, and no run has it.
    pub async fn check_run_id(&self, run_id: &str) -> Result<(), BadRequest> {
        let plain = !run_id.is_empty()
            && run_id.len() <= 100
            && run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !plain {
            return Err(BadRequest(format!("'{run_id}' is not a run id (up to 100 letters, digits, - and _)")));
        }
        if self.run_info(run_id).await.is_some() {
            return Err(BadRequest(format!("a run with id '{run_id}' already exists")));
        }
        Ok(())
    }

    /// Checks a request, so a bad one is refused before anything runs.
    pub fn validate(&self, job: &str, params: &HashMap<String, String>) -> Result<(), BadRequest> {
        match job {
            "kpi" => kpi_params(params).map(|_| ()),
            "archive" => archive_params(params, &self.targets.archive_dest, &self.targets.allowed_dests).map(|_| ()),
            "sql" => sql_param(params).map(|_| ()),
            other => Err(BadRequest(format!("no job named '{other}' (jobs: kpi, archive, sql)"))),
        }
    }

    /// Runs `job` under `run_id` to its end, telling `progress` what it is
    /// doing; the recorded run comes back whatever happened.
    pub async fn run_with_id(
        self: Arc<Self>,
        run_id: String,
        job: String,
        params: HashMap<String, String>,
        trigger: String,
        progress: mpsc::Sender<String>,
    ) -> RunInfo {
        let run = RunInfo { run_id, job, params, trigger, ..Default::default() };
        self.execute(run, progress).await
    }

    /// Runs `run` (its id, job, parameters, trigger and `rerun_of` set)
    /// to its end.
    pub async fn execute(self: Arc<Self>, run: RunInfo, progress: mpsc::Sender<String>) -> RunInfo {
        use tracing::Instrument;
        // Every line logged while the run goes on carries its id and job.
        let span = tracing::info_span!("run", run = %run.run_id, job = %run.job);
        self.execute_here(run, progress).instrument(span).await
    }

    async fn execute_here(self: Arc<Self>, mut run: RunInfo, progress: mpsc::Sender<String>) -> RunInfo {
        run.status = "running".into();
        run.started_at_ms = now_ms();
        run.scheduler = self.instance.clone();
        let (job, params) = (run.job.clone(), run.params.clone());
        // The run history keeps parameters with their secrets masked.
        run.params = masked_params(&run.params);
        let (switch, mut stopped) = tokio::sync::watch::channel(None);
        self.active.lock().expect("active lock").insert(run.run_id.clone(), switch);
        self.record(&run).await;
        tracing::info!(run = %run.run_id, "job run started");
        let started = Instant::now();
        let work = async {
            match job.as_str() {
                "kpi" => self.kpi(&run.run_id, &params, &progress).await,
                "archive" => self.archive(&run.run_id, &params, &progress).await,
                "sql" => self.sql(&run.run_id, &params, &progress).await,
                other => Err(format!("no job named '{other}'")),
            }
        };
        let result = tokio::select! {
            result = work => Ok(result),
            stop = stopped.wait_for(Option::is_some) => Err(stop.map(|s| *s).ok().flatten().unwrap_or(Stop::Cancelled)),
        };
        self.active.lock().expect("active lock").remove(&run.run_id);
        run.ended_at_ms = now_ms();
        match result {
            Err(stop) => {
                self.cancel_ballista_jobs(&run.run_id).await;
                // A job whose submission was on its way when the run was
                // dropped reaches the scheduler a moment later.
                let (runner, id) = (self.clone(), run.run_id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    runner.cancel_ballista_jobs(&id).await;
                });
                (run.status, run.error) = match stop {
                    Stop::Cancelled => (CANCELLED.into(), "cancelled by a user".into()),
                    Stop::Interrupted => {
                        (INTERRUPTED.into(), "this scheduler lost the leadership; the new leader reruns it".into())
                    }
                };
                run.summary_json = json!({"duration_ms": started.elapsed().as_millis() as u64}).to_string();
            }
            Ok(Ok(mut summary)) => {
                summary["duration_ms"] = json!(started.elapsed().as_millis() as u64);
                run.status = summary.get("status").and_then(Value::as_str).unwrap_or("succeeded").into();
                run.summary_json = summary.to_string();
            }
            Ok(Err(e)) => {
                run.status = "failed".into();
                run.error = stockyard_mask::text(&e);
                run.summary_json = json!({"duration_ms": started.elapsed().as_millis() as u64}).to_string();
            }
        }
        run.ballista_jobs = self.ballista_jobs(&run.run_id).await;
        let ballista_jobs = run.ballista_jobs.join(",");
        tracing::info!(run = %run.run_id, status = %run.status, error = %run.error, %ballista_jobs, "job run ended");
        self.counters.ended(&run);
        self.record(&run).await;
        run
    }

    async fn kpi(
        &self,
        run_id: &str,
        params: &HashMap<String, String>,
        progress: &mpsc::Sender<String>,
    ) -> Result<Value, String> {
        let params = kpi_params(params).map_err(|e| e.0)?;
        let say = |m: &str| {
            let _ = progress.try_send(m.to_string());
        };
        say("planning the KPI queries");
        let session = stockyard_plan::session::remote_context(
            &self.targets.scheduler,
            &format!("kpi {run_id}"),
            None,
            ScanOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        // The queries read the same window: once per executor, in one
        // cursor per collection, whose plain time range any server can
        // answer from its event-time index (a split into ranges cannot be
        // that plain: it must also place arrays and other types).
        stockyard_jobs::tables::register(&session.ctx, Some(self.targets.mongo.clone()), Some(1), Some(run_id))
            .map_err(|e| e.to_string())?;
        // A window is small: a few shuffle partitions beat Ballista's 16,
        // each of which is a task to schedule; and hash joins let the small
        // dimensions be broadcast (scans report their collection's size)
        // instead of shuffling both sides of every join.
        for setting in ["datafusion.execution.target_partitions = 4", "datafusion.optimizer.prefer_hash_join = true"] {
            session.ctx.sql(&format!("SET {setting}")).await.map_err(|e| e.to_string())?;
        }
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

    async fn archive(
        &self,
        run_id: &str,
        params: &HashMap<String, String>,
        progress: &mpsc::Sender<String>,
    ) -> Result<Value, String> {
        let params =
            archive_params(params, &self.targets.archive_dest, &self.targets.allowed_dests).map_err(|e| e.0)?;
        let say = |m: String| {
            let _ = progress.try_send(m);
        };
        let _one_at_a_time = match self.archiving.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                say("waiting for the archive run going on to end".into());
                self.archiving.lock().await
            }
        };
        let session = stockyard_plan::session::remote_context(
            &self.targets.scheduler,
            &format!("archive {run_id}"),
            None,
            ScanOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        archive::run(&session.ctx, &self.targets.mongo, &params, &say).await.map_err(|e| e.to_string())
    }

    /// The Ballista jobs a run submitted: their names carry its run id.
    async fn jobs_of(&self, run_id: &str) -> Vec<stockyard_proto::JobInfo> {
        let Some(scheduler) = self.ballista.get() else { return Vec::new() };
        let jobs = crate::service::jobs(scheduler).await.unwrap_or_default();
        jobs.into_iter().filter(|j| j.name.ends_with(run_id)).collect()
    }

    /// The ids of [`Self::jobs_of`], sorted.
    pub(crate) async fn ballista_jobs(&self, run_id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.jobs_of(run_id).await.into_iter().map(|j| j.id).collect();
        ids.sort();
        ids
    }

    /// A saved SQL statement (or several, `;`-separated) run on the cluster.
    async fn sql(
        &self,
        run_id: &str,
        params: &HashMap<String, String>,
        progress: &mpsc::Sender<String>,
    ) -> Result<Value, String> {
        let sql = sql_param(params).map_err(|e| e.0)?;
        let _ = progress.try_send("running the statement".into());
        let session = stockyard_plan::session::remote_context(
            &self.targets.scheduler,
            &format!("sql {run_id}"),
            None,
            ScanOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        // Every collection is a table, as for `stockyard sql`.
        let schema = stockyard_mongo::CatalogSchema::new(self.targets.catalog.clone(), ScanOptions::default());
        let catalog = session.ctx.catalog("datafusion").expect("the default catalog exists");
        catalog.register_schema("public", Arc::new(schema)).map_err(|e| e.to_string())?;
        let text = |e: datafusion::error::DataFusionError| e.strip_backtrace();
        let mut last = None;
        // Split by the SQL parser: `SELECT ';'` is one statement.
        for statement in stockyard_plan::session::statements(&session.ctx, &sql)? {
            let plan = session.ctx.state().statement_to_plan(statement).await.map_err(text)?;
            if !self.targets.allow_local_files
                && let Some(location) = local_location(&plan)
            {
                return Err(format!(
                    "'{location}' is a file on the scheduler: sql jobs may not read or write local files \
                         (start the scheduler with --allow-local-files to allow it)"
                ));
            }
            let frame = session.ctx.execute_logical_plan(plan).await.map_err(text)?;
            let schema = frame.schema().as_arrow().clone();
            let batches = frame.collect().await.map_err(text)?;
            last = Some((schema, batches));
        }
        let Some((schema, batches)) = last else { return Ok(json!({"rows": 0})) };
        let table = result_json(&schema, &batches)?;
        let rows = table["total_rows"].clone();
        let mut results = self.results.lock().expect("results lock");
        results.push_back((run_id.to_string(), table));
        if results.len() > RESULTS {
            results.pop_front();
        }
        Ok(json!({"rows": rows}))
    }
}

/// A result as the UI shows it: column names and types, the first
/// [`RESULT_ROWS`] rows as JSON objects, and the row count.
fn result_json(
    schema: &datafusion::arrow::datatypes::Schema,
    batches: &[datafusion::arrow::array::RecordBatch],
) -> Result<Value, String> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    use datafusion::arrow::json::{WriterBuilder, writer::JsonArray};
    // Nulls as null, so every row shows every column.
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(Vec::new());
    let mut left = RESULT_ROWS;
    for batch in batches {
        if left == 0 {
            break;
        }
        let batch = batch.slice(0, batch.num_rows().min(left));
        left -= batch.num_rows();
        writer.write(&batch).map_err(|e| format!("cannot show the result: {e}"))?;
    }
    writer.finish().map_err(|e| format!("cannot show the result: {e}"))?;
    let bytes = writer.into_inner();
    let rows: Value = if bytes.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&bytes).map_err(|e| format!("cannot show the result: {e}"))?
    };
    let columns: Vec<Value> =
        schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect();
    Ok(json!({"columns": columns, "rows": rows, "total_rows": total, "truncated": total > RESULT_ROWS}))
}

/// The local path a statement reads or writes, if any: an external table's
/// location or a COPY's target.
fn local_location(plan: &datafusion::logical_expr::LogicalPlan) -> Option<String> {
    use datafusion::logical_expr::{DdlStatement, LogicalPlan};
    let location = match plan {
        LogicalPlan::Ddl(DdlStatement::CreateExternalTable(t)) => &t.location,
        LogicalPlan::Copy(c) => &c.output_url,
        _ => return None,
    };
    stockyard_plan::store::is_local(location).then(|| location.clone())
}

/// The `sql` job's statement.
/// `params` as the run history keeps them: `sql` with its secret options
/// masked, every value with the process's secrets and URI passwords masked.
pub fn masked_params(params: &HashMap<String, String>) -> HashMap<String, String> {
    params
        .iter()
        .map(|(k, v)| (k.clone(), if k == "sql" { stockyard_mask::sql(v) } else { stockyard_mask::text(v) }))
        .collect()
}

fn sql_param(params: &HashMap<String, String>) -> Result<String, BadRequest> {
    if let Some(unknown) = params.keys().find(|k| k.as_str() != "sql") {
        return Err(BadRequest(format!("the sql job has no parameter '{unknown}' (it takes sql)")));
    }
    match params.get("sql").map(|s| s.trim()) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(BadRequest("the sql job needs its statement in the sql parameter".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_must_lie_under_an_allowed_one() {
        let allowed = vec!["/data/archive".to_string(), "s3://lake/archive".to_string()];
        for ok in ["/data/archive", "/data/archive/2026", "/data/archive/./x", "s3://lake/archive/orders"] {
            assert!(dest_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "/data/archive-other",
            "/data/archive/../secrets",
            "/proc/x",
            "/",
            "s3://lake/archived",
            "s3://other/archive",
            "file:///data/archive/../x",
        ] {
            assert!(!dest_allowed(bad, &allowed), "{bad}");
        }
    }
}
