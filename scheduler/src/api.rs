//! The REST API under `/api/`: everything the web UI shows, as JSON. Each
//! answer is built from live state (Ballista's, the run history, the state
//! store, Redis); a part that cannot be read says why in an `error` field
//! instead of failing the whole answer. Connection strings are shown
//! redacted or not at all.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ballista_scheduler::cluster::JobState as JobStore;
use serde::Deserialize;
use serde_json::{Value, json};
use stockyard_mongo::MongoCatalog;
use stockyard_proto::RunInfo;

use crate::Scheduler;
use crate::runner::{CancelError, JobRunner};
use crate::schedules::{ScheduleError, Schedules};

/// What the handlers read.
#[derive(Clone)]
pub(crate) struct Api {
    pub scheduler: Scheduler,
    pub jobs: Arc<dyn JobStore>,
    pub runner: Arc<JobRunner>,
    pub schedules: Arc<Schedules>,
    pub catalog: Arc<MongoCatalog>,
    pub redis_url: String,
    /// The HTTP port's access token, if one is required.
    pub token: Option<String>,
    /// Whether the HTTP port serves TLS (session cookies are then `Secure`).
    pub tls: bool,
    /// Whether this scheduler leads, and which one does.
    pub leadership: Arc<crate::leader::Leadership>,
    /// The streams this scheduler runs (as the leader) or lists.
    pub streams: Arc<stockyard_stream_runtime::Streams>,
}

pub(crate) type Answer = Result<Json<Value>, (StatusCode, Json<Value>)>;

pub(crate) fn fail(status: StatusCode, message: impl std::fmt::Display) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": message.to_string() })))
}

/// A run with its summary as an object rather than a JSON string.
pub(crate) fn run_view(r: &RunInfo) -> Value {
    let summary: Value = serde_json::from_str(&r.summary_json).unwrap_or(Value::Null);
    let ended = (r.ended_at_ms > 0).then_some(r.ended_at_ms);
    json!({
        "run_id": r.run_id, "job": r.job, "status": r.status, "trigger": r.trigger,
        "params": r.params, "started_at_ms": r.started_at_ms, "ended_at_ms": ended,
        "duration_ms": ended.map(|e| e.saturating_sub(r.started_at_ms)),
        "summary": summary, "error": r.error, "ballista_jobs": r.ballista_jobs,
        "scheduler": r.scheduler, "rerun_of": r.rerun_of, "rerun_as": r.rerun_as,
    })
}

/// `GET /api/executors`: registered executors with their running tasks.
pub(crate) async fn executors(State(api): State<Api>) -> Answer {
    let list = crate::executors(&api.scheduler).await.map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let running = crate::detail::running_tasks(&api.scheduler).await;
    Ok(Json(Value::Array(list.iter().map(|e| executor_view(e, &running)).collect())))
}

fn executor_view(e: &stockyard_proto::ExecutorInfo, running: &HashMap<String, usize>) -> Value {
    json!({
        "id": e.id, "host": e.host, "flight_port": e.flight_port, "grpc_port": e.grpc_port,
        "task_slots": e.task_slots, "running_tasks": running.get(&e.id).copied().unwrap_or(0),
        "last_heartbeat": e.last_heartbeat, "state": e.state,
    })
}

/// `GET /api/jobs`: Ballista jobs, newest first.
pub(crate) async fn jobs(State(api): State<Api>) -> Answer {
    let list = crate::jobs(&api.scheduler).await.map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(Value::Array(
        list.into_iter()
            .map(|j| {
                json!({
                    "id": j.id, "name": j.name, "status": j.status,
                    "completed_stages": j.completed_stages, "total_stages": j.total_stages,
                    "queued_at": j.queued_at, "started_at": j.started_at,
                    "ended_at": j.ended_at, "error": j.error,
                })
            })
            .collect(),
    )))
}

/// Refuses an id from a request that is not a plain name: ids name keys
/// and files.
fn plain(what: &'static str, id: &str) -> Result<(), (StatusCode, Json<Value>)> {
    stockyard_plan::names::path_part(what, id).map_err(|e| fail(StatusCode::BAD_REQUEST, e))
}

/// `GET /api/jobs/{id}`: one Ballista job's stages and tasks.
pub(crate) async fn job(State(api): State<Api>, Path(id): Path<String>) -> Answer {
    plain("job id", &id)?;
    match crate::detail::job(&api.jobs, &id).await {
        Ok(Some(job)) => Ok(Json(job)),
        Ok(None) => Err(fail(StatusCode::NOT_FOUND, format!("no Ballista job '{id}'"))),
        Err(e) => Err(fail(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// Filters of `GET /api/runs`.
#[derive(Debug, Deserialize)]
pub(crate) struct RunFilter {
    job: Option<String>,
    status: Option<String>,
    /// Runs whose trigger starts with this (`schedule:kpi`, `cli`, `ui`).
    trigger: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/runs`: recorded runs, newest first.
pub(crate) async fn runs(State(api): State<Api>, Query(f): Query<RunFilter>) -> Answer {
    let keep = |r: &RunInfo| {
        f.job.as_ref().is_none_or(|j| j.is_empty() || &r.job == j)
            && f.status.as_ref().is_none_or(|s| s.is_empty() || &r.status == s)
            && f.trigger.as_ref().is_none_or(|t| r.trigger.starts_with(t.as_str()))
    };
    let runs = api.runner.runs().await;
    Ok(Json(Value::Array(runs.iter().filter(|r| keep(r)).take(f.limit.unwrap_or(200)).map(run_view).collect())))
}

/// `GET /api/runs/{id}`: a run, its Ballista jobs in full, and for a
/// `sql` run its result while this scheduler keeps it.
pub(crate) async fn run(State(api): State<Api>, Path(id): Path<String>) -> Answer {
    plain("run id", &id)?;
    let Some(run) = api.runner.run_info(&id).await else {
        return Err(fail(StatusCode::NOT_FOUND, format!("no run '{id}'")));
    };
    let mut view = run_view(&run);
    // A running run's jobs are not recorded yet: find them by name.
    let mut ids = run.ballista_jobs.clone();
    if ids.is_empty() {
        ids = api.runner.ballista_jobs(&run.run_id).await;
    }
    let mut jobs = Vec::new();
    for job in &ids {
        match crate::detail::job(&api.jobs, job).await {
            Ok(Some(detail)) => jobs.push(detail),
            Ok(None) => jobs.push(json!({"id": job, "error": "the scheduler no longer keeps this job"})),
            Err(e) => jobs.push(json!({"id": job, "error": e})),
        }
    }
    view["jobs"] = Value::Array(jobs);
    view["result"] = api.runner.result(&id).unwrap_or(Value::Null);
    Ok(Json(view))
}

/// Body of `POST /api/runs`.
#[derive(Debug, Deserialize)]
pub(crate) struct StartRun {
    job: String,
    #[serde(default)]
    params: HashMap<String, String>,
}

/// `POST /api/runs`: starts a run (`kpi`, `archive` or `sql`) and answers
/// with its id at once; the run goes on whoever waits for it.
pub(crate) async fn start_run(
    State(api): State<Api>,
    Json(req): Json<StartRun>,
) -> Result<Response, (StatusCode, Json<Value>)> {
    api.runner.validate(&req.job, &req.params).map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    crate::service::admit(&api.scheduler, &api.leadership).await.map_err(|refusal| {
        let status = match refusal {
            crate::service::Refusal::NotLeading(_) => StatusCode::CONFLICT,
            crate::service::Refusal::NoExecutor(_) => StatusCode::SERVICE_UNAVAILABLE,
            crate::service::Refusal::Executors(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        fail(status, refusal)
    })?;
    let id = crate::runner::new_run_id(&req.job);
    let (progress, _) = tokio::sync::mpsc::channel(1);
    tokio::spawn(api.runner.clone().run_with_id(id.clone(), req.job, req.params, "ui".into(), progress));
    Ok((StatusCode::ACCEPTED, Json(json!({"run_id": id}))).into_response())
}

/// `POST /api/runs/{id}/cancel`.
pub(crate) async fn cancel_run(State(api): State<Api>, Path(id): Path<String>) -> Answer {
    plain("run id", &id)?;
    match api.runner.cancel(&id).await {
        Ok(()) => Ok(Json(json!({"run_id": id, "cancelling": true}))),
        Err(e @ CancelError::Unknown(_)) => Err(fail(StatusCode::NOT_FOUND, e)),
        Err(e @ CancelError::NotRunning(..)) => Err(fail(StatusCode::CONFLICT, e)),
    }
}

fn schedule_failure(e: ScheduleError) -> (StatusCode, Json<Value>) {
    let status = match e {
        ScheduleError::Bad(_) => StatusCode::BAD_REQUEST,
        ScheduleError::Unknown(_) => StatusCode::NOT_FOUND,
        ScheduleError::Exists(_) | ScheduleError::Running(..) => StatusCode::CONFLICT,
        ScheduleError::State(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    fail(status, e)
}

/// `GET /api/schedules`: each schedule with its next and last run.
pub(crate) async fn schedules(State(api): State<Api>) -> Answer {
    let list = api.schedules.list().await.map_err(schedule_failure)?;
    Ok(Json(Value::Array(
        list.iter()
            .map(|s| {
                let i = s.info();
                json!({
                    "name": i.name, "job": i.job, "params": i.params, "every": i.every, "cron": i.cron,
                    "paused": i.paused, "next_run_ms": (i.next_run_ms > 0).then_some(i.next_run_ms),
                    "last_run_id": i.last_run_id, "last_status": i.last_status,
                    "last_started_ms": (i.last_started_ms > 0).then_some(i.last_started_ms),
                    "skipped_ticks": i.skipped_ticks,
                })
            })
            .collect(),
    )))
}

/// `POST /api/schedules/{name}/{action}`: trigger, pause, resume or remove.
pub(crate) async fn change_schedule(State(api): State<Api>, Path((name, action)): Path<(String, String)>) -> Answer {
    if action == "trigger"
        && let Some(why) = api.leadership.not_leading()
    {
        return Err(fail(StatusCode::CONFLICT, why));
    }
    let (schedule, run_id) = match action.as_str() {
        "pause" => (api.schedules.set_paused(&name, true).await, String::new()),
        "resume" => (api.schedules.set_paused(&name, false).await, String::new()),
        "remove" => (api.schedules.remove(&name).await, String::new()),
        "trigger" => match api.schedules.trigger(&name).await {
            Ok((s, run)) => (Ok(s), run),
            Err(e) => (Err(e), String::new()),
        },
        other => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("'{other}' is not a schedule action (trigger, pause, resume, remove)"),
            ));
        }
    };
    let s = schedule.map_err(schedule_failure)?;
    Ok(Json(json!({"name": s.name, "paused": s.paused, "run_id": (!run_id.is_empty()).then_some(run_id)})))
}

/// `GET /api/kpis`: the KPIs in Redis now, with their age.
pub(crate) async fn kpis(State(api): State<Api>) -> Answer {
    let mut kpis =
        stockyard_jobs::kpi::read(&api.redis_url).await.map_err(|e| fail(StatusCode::SERVICE_UNAVAILABLE, e))?;
    kpis["age_s"] = json!(kpis["last_update"].as_str().and_then(age_s));
    Ok(Json(kpis))
}

/// Seconds since an RFC 3339 time (`kpi:last_update`).
pub(crate) fn age_s(time: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    Some((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
}

/// `GET /api/archives`: archive runs, newest first, with what each wrote.
pub(crate) async fn archives(State(api): State<Api>) -> Answer {
    let runs = api.runner.runs().await;
    Ok(Json(Value::Array(runs.iter().filter(|r| r.job == "archive").map(run_view).collect())))
}

/// `GET /api/overview`: the cluster at a glance, and what is wrong with it.
pub(crate) async fn overview(State(api): State<Api>) -> Answer {
    let mut problems = Vec::new();
    let executors = match crate::executors(&api.scheduler).await {
        Ok(list) => {
            let running = crate::detail::running_tasks(&api.scheduler).await;
            list.iter().map(|e| executor_view(e, &running)).collect()
        }
        Err(e) => {
            problems.push(format!("cannot list executors: {e}"));
            Vec::new()
        }
    };
    if !executors.iter().any(|e| e["state"] == "active") {
        problems.push("no active executor: queries and jobs wait until one registers".to_string());
    }
    if let Some(why) = api.leadership.not_leading() {
        problems.push(why);
    }
    if let Some(e) = api.catalog.recent_failure() {
        problems.push(format!("MongoDB ({}): {e}", api.catalog.source().redacted_uri()));
    }
    let kpi = match stockyard_jobs::kpi::freshness(&api.redis_url).await {
        Ok((written, expires)) => {
            json!({"last_update": written, "age_s": written.as_deref().and_then(age_s), "expires_in_s": expires})
        }
        Err(e) => {
            problems.push(e.to_string());
            json!({"error": e.to_string()})
        }
    };
    let runs = api.runner.runs().await;
    let running: Vec<Value> = runs.iter().filter(|r| r.status == "running").map(run_view).collect();
    let recent: Vec<Value> = runs.iter().filter(|r| r.status != "running").take(10).map(run_view).collect();
    let archive = runs.iter().find(|r| r.job == "archive").map(run_view).unwrap_or(Value::Null);
    let kpi_run = runs.iter().find(|r| r.job == "kpi").map(run_view).unwrap_or(Value::Null);
    Ok(Json(json!({
        "healthy": problems.is_empty(),
        "problems": problems,
        "leader": leader_view(&api),
        "executors": executors,
        "running_runs": running,
        "recent_runs": recent,
        "kpi": kpi,
        "last_kpi_run": kpi_run,
        "last_archive_run": archive,
    })))
}

/// Which scheduler leads, as the overview shows it.
fn leader_view(api: &Api) -> Value {
    let me = &api.leadership.me;
    match api.leadership.leader() {
        Some(l) => json!({
            "address": l.grpc, "http": l.http, "id": l.id, "this_scheduler": l.id == me.id,
            "elected": api.leadership.shared, "this_id": me.id,
        }),
        None => json!({"address": null, "this_scheduler": false, "elected": api.leadership.shared, "this_id": me.id}),
    }
}
