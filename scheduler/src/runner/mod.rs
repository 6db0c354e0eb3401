//! The job runner: the scheduler runs jobs itself, so the CLI, schedules
//! and the UI start them the same way and every run is recorded. This
//! module is a run's lifecycle (start, stop, end, takeover); [`params`]
//! reads its parameters, [`store`] keeps the history, `bodies` holds what
//! each job does and [`result`] the UI's view of a `sql` result.

mod bodies;
pub(crate) mod flight;
pub mod params;
pub mod result;
mod store;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use serde_json::{Value, json};
use stockyard_api::{Job, Run, RunStatus};
use stockyard_mongo::MongoSource;
use stockyard_state::StateStore;
use tokio::sync::mpsc;

pub use params::BadRequest;
pub use result::RESULT_ROWS;
use store::RunStore;

/// Results of `sql` runs kept in memory, newest last, for the UI.
const RESULTS: usize = 16;

/// Why a run was stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A user cancelled it.
    Cancelled,
    /// This scheduler lost the leadership.
    Interrupted,
    /// It ran past its timeout.
    TimedOut(Duration),
}

/// A run recorded as running, with its unmasked parameters and stop switch.
struct Begun {
    run: Run,
    params: BTreeMap<String, String>,
    stopped: tokio::sync::watch::Receiver<Option<Stop>>,
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
    /// The bytes of JSON a `sql` run keeps for the UI at most.
    pub max_result_bytes: usize,
    /// The KPI cache.
    pub redis_url: String,
    /// The archive's destination when a run names none.
    pub archive_dest: String,
    /// Where a run's destination must lie: `archive_dest` and the list
    /// fixed when the scheduler started.
    pub allowed_dests: Vec<String>,
}

/// Runs jobs and remembers them.
pub struct JobRunner {
    targets: JobTargets,
    history: RunStore,
    /// The Ballista scheduler, to name the Ballista jobs of a run.
    ballista: OnceLock<crate::Scheduler>,
    /// Runs going on in this process, each with its stop switch.
    active: Mutex<HashMap<String, tokio::sync::watch::Sender<Option<Stop>>>>,
    /// This process's instance id, recorded on its runs.
    instance: String,
    /// Held by the archive run going on: two at once would both resume
    /// the same interrupted run.
    archiving: tokio::sync::Mutex<()>,
    /// Held by the compaction going on.
    compacting: tokio::sync::Mutex<()>,
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
    NotRunning(String, RunStatus),
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner").field("targets", &self.targets).field("history", &self.history).finish()
    }
}

/// A fresh run id for `job`: unique across schedulers and restarts, since
/// the history outlives a process.
pub fn new_run_id(job: Job) -> String {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{job}-{}-{id}", Utc::now().format("%Y%m%dT%H%M%S"))
}

fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

impl JobRunner {
    /// A runner for jobs on `targets` that keeps runs in `store` for
    /// `retention`, marking them as run by `instance`.
    pub fn new(targets: JobTargets, store: Arc<dyn StateStore>, retention: Duration, instance: String) -> Self {
        Self {
            instance,
            archiving: tokio::sync::Mutex::new(()),
            compacting: tokio::sync::Mutex::new(()),
            targets,
            history: RunStore::new(store, retention),
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
    pub fn recent_runs(&self) -> Vec<Run> {
        self.history.recent()
    }

    /// Recorded runs, newest first: the store's history, or this process's
    /// own runs while the store is unreachable.
    pub async fn runs(&self) -> Vec<Run> {
        self.history.all().await
    }

    /// One recorded run.
    pub async fn run_info(&self, run_id: &str) -> Option<Run> {
        self.history.get(run_id).await
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

    /// Interrupts every run going on here and waits up to `grace` for each
    /// to be recorded as interrupted: a scheduler stops its runs before it
    /// lets the leadership go, so no two leaders run one.
    pub async fn stop_all(&self, grace: Duration) {
        self.interrupt_all();
        let deadline = Instant::now() + grace;
        while !self.active.lock().expect("active lock").is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs the store records as running, or interrupted and not yet
    /// rerun, that no run in this process carries on: their scheduler died
    /// or lost the leadership. Each is recorded as interrupted; with
    /// `rerun`, it gets the id of its rerun, which the caller starts.
    pub async fn orphans(&self, rerun: bool) -> Result<Vec<Run>, stockyard_state::StateError> {
        let mut out = Vec::new();
        for mut run in self.history.open_runs().await? {
            let open = run.status == RunStatus::Running
                || (run.status == RunStatus::Interrupted && run.rerun_as.is_empty() && rerun);
            if !open || self.active.lock().expect("active lock").contains_key(&run.run_id) {
                continue;
            }
            if run.status == RunStatus::Running {
                run.error = format!(
                    "its scheduler ({}) stopped during the run",
                    if run.scheduler.is_empty() { "unknown" } else { &run.scheduler }
                );
                run.end(now_ms(), RunStatus::Interrupted);
            }
            if rerun {
                run.rerun_as = new_run_id(run.job);
            }
            self.history.record(&run).await;
            out.push(run);
        }
        Ok(out)
    }

    /// Cancels the run's Ballista jobs that have not ended.
    async fn cancel_ballista_jobs(&self, run_id: &str) {
        let Some(scheduler) = self.ballista.get() else { return };
        for job in self.jobs_of(run_id).await.into_iter().filter(|j| j.status == "running" || j.status == "queued") {
            if let Err(e) = crate::ballista::cancel_job(scheduler, &job.id).await {
                tracing::warn!(run = %run_id, job = %job.id, "cannot cancel the Ballista job: {e}");
            }
        }
    }

    /// Checks a run id a client chose: plain characters, and no run has it.
    pub async fn check_run_id(&self, run_id: &str) -> Result<(), BadRequest> {
        let plain = !run_id.is_empty()
            && run_id.len() <= 100
            && run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !plain {
            return Err(BadRequest::RunId(format!("'{run_id}' is not a run id (up to 100 letters, digits, - and _)")));
        }
        if self.run_info(run_id).await.is_some() {
            return Err(BadRequest::RunId(format!("a run with id '{run_id}' already exists")));
        }
        Ok(())
    }

    /// Checks a request, so a bad one is refused before anything runs.
    pub fn validate(&self, job: Job, given: &BTreeMap<String, String>) -> Result<(), BadRequest> {
        params::timeout(job, given)?;
        match job {
            Job::Kpi => params::kpi(given).map(|_| ()),
            Job::Archive => params::archive(given, &self.targets.archive_dest, &self.targets.allowed_dests).map(|_| ()),
            Job::Compact => params::compact(given, &self.targets.archive_dest, &self.targets.allowed_dests).map(|_| ()),
            Job::Sql => params::sql(given).map(|_| ()),
        }
    }

    /// Runs `run` (its id, job, parameters, trigger and `rerun_of` set)
    /// to its end, telling `progress` what it is doing; the recorded run
    /// comes back whatever happened.
    pub async fn execute(self: Arc<Self>, run: Run, progress: mpsc::Sender<String>) -> Run {
        use tracing::Instrument;
        // Every line logged while the run goes on carries its id and job.
        let span = tracing::info_span!("run", run = %run.run_id, job = %run.job);
        self.execute_here(run, progress).instrument(span).await
    }

    /// Records `run` as running, then runs it in the background: whoever
    /// asks for it once this returns finds it.
    pub async fn spawn(self: Arc<Self>, run: Run, progress: mpsc::Sender<String>) -> tokio::task::JoinHandle<Run> {
        use tracing::Instrument;
        let span = tracing::info_span!("run", run = %run.run_id, job = %run.job);
        let begun = self.begin(run).instrument(span.clone()).await;
        tokio::spawn(self.carry_on(begun, progress).instrument(span))
    }

    async fn execute_here(self: Arc<Self>, run: Run, progress: mpsc::Sender<String>) -> Run {
        let begun = self.begin(run).await;
        self.carry_on(begun, progress).await
    }

    /// Marks `run` running here and records it.
    async fn begin(&self, mut run: Run) -> Begun {
        run.status = RunStatus::Running;
        run.started_at_ms = now_ms();
        run.scheduler = self.instance.clone();
        let params = run.params.clone();
        // The run history keeps parameters with their secrets masked.
        run.params = params::masked(&run.params);
        let (switch, stopped) = tokio::sync::watch::channel(None);
        self.active.lock().expect("active lock").insert(run.run_id.clone(), switch);
        self.history.record(&run).await;
        tracing::info!(run = %run.run_id, "job run started");
        Begun { run, params, stopped }
    }

    /// Runs a begun run to its end and records how it ended.
    async fn carry_on(self: Arc<Self>, begun: Begun, progress: mpsc::Sender<String>) -> Run {
        let (run_id, params, job) = (begun.run.run_id.clone(), begun.params.clone(), begun.run.job);
        let this = self.clone();
        let work = async move {
            match job {
                Job::Kpi => this.kpi(&run_id, &params, &progress).await,
                Job::Archive => this.archive(&run_id, &params, &progress).await,
                Job::Compact => this.compact(&params, &progress).await,
                Job::Sql => this.sql(&run_id, &params, &progress).await,
            }
        };
        self.finish(begun, work).await
    }

    /// Runs a begun run's `work` to its end, or until it is stopped or
    /// times out, and records how it ended.
    async fn finish(
        self: Arc<Self>,
        begun: Begun,
        work: impl std::future::Future<Output = Result<Value, bodies::RunError>>,
    ) -> Run {
        let Begun { mut run, params, mut stopped } = begun;
        let started = Instant::now();
        // A panic in a job ends its run as failed, never leaves it running.
        let work = AssertUnwindSafe(work).catch_unwind();
        let limit = params::timeout(run.job, &params).unwrap_or(params::default_timeout(run.job));
        let result = tokio::select! {
            result = work => Ok(result),
            stop = stopped.wait_for(Option::is_some) => Err(stop.map(|s| *s).ok().flatten().unwrap_or(Stop::Cancelled)),
            _ = tokio::time::sleep(limit) => Err(Stop::TimedOut(limit)),
        };
        let duration = json!({"duration_ms": started.elapsed().as_millis() as u64});
        let status = match result {
            Err(stop) => {
                self.cancel_ballista_jobs(&run.run_id).await;
                // A job whose submission was on its way when the run was
                // dropped reaches the scheduler a moment later.
                let (runner, id) = (self.clone(), run.run_id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    runner.cancel_ballista_jobs(&id).await;
                });
                run.summary = duration;
                match stop {
                    Stop::Cancelled => {
                        run.error = "cancelled by a user".into();
                        RunStatus::Cancelled
                    }
                    Stop::Interrupted => {
                        run.error = "this scheduler lost the leadership; the new leader reruns it".into();
                        RunStatus::Interrupted
                    }
                    Stop::TimedOut(limit) => {
                        run.error = format!(
                            "the run took longer than its timeout of {}: it was stopped and its Ballista jobs \
                             cancelled (the timeout parameter sets it)",
                            humantime::format_duration(limit)
                        );
                        RunStatus::Failed
                    }
                }
            }
            Ok(Ok(Ok(mut summary))) => {
                summary["duration_ms"] = duration["duration_ms"].clone();
                // The archive job reports `skipped` when below its
                // threshold, the KPI job `superseded` when Redis holds a
                // newer window's KPIs.
                let said = summary.get("status").and_then(Value::as_str).and_then(|s| s.parse().ok());
                run.summary = summary;
                match said {
                    Some(s @ (RunStatus::Skipped | RunStatus::Superseded)) => s,
                    _ => RunStatus::Succeeded,
                }
            }
            Ok(Ok(Err(e))) => {
                run.error = stockyard_mask::text(&e.to_string());
                run.summary = duration;
                RunStatus::Failed
            }
            Ok(Err(panic)) => {
                tracing::error!(run = %run.run_id, "the job panicked: {}", panic_text(panic.as_ref()));
                run.error = stockyard_mask::text(&format!(
                    "the {} job stopped on an internal error (a bug; please report it): {}",
                    run.job,
                    panic_text(panic.as_ref())
                ));
                run.summary = duration;
                RunStatus::Failed
            }
        };
        run.end(now_ms(), status);
        run.ballista_jobs = self.ballista_jobs(&run.run_id).await;
        let ballista_jobs = run.ballista_jobs.join(",");
        tracing::info!(run = %run.run_id, status = %run.status, error = %run.error, %ballista_jobs, "job run ended");
        self.counters.ended(&run);
        self.history.record(&run).await;
        // Only now: a scheduler stopping waits for its runs to leave
        // `active`, and must not resign before their ends are recorded.
        self.active.lock().expect("active lock").remove(&run.run_id);
        run
    }

    /// The Ballista jobs a run submitted: their names carry its run id.
    async fn jobs_of(&self, run_id: &str) -> Vec<stockyard_proto::JobInfo> {
        let Some(scheduler) = self.ballista.get() else { return Vec::new() };
        let jobs = crate::ballista::jobs(scheduler).await.unwrap_or_default();
        jobs.into_iter().filter(|j| j.name.ends_with(run_id)).collect()
    }

    /// The ids of [`Self::jobs_of`], sorted.
    pub(crate) async fn ballista_jobs(&self, run_id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.jobs_of(run_id).await.into_iter().map(|j| j.id).collect();
        ids.sort();
        ids
    }
}
