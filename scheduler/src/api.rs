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
use stockyard_api::cluster::{KpiCache, KpiFreshness, Leader, Overview};
use stockyard_api::job_view::{GoneJob, JobDetail, RunJob};
use stockyard_api::views::{
    BallistaJob, Cancelling, ErrorAnswer, Executor, RunDetail, RunStarted, ScheduleChanged, ScheduleView, StartRun,
};
use stockyard_api::{Job, Run, RunStatus, ScheduleAction, Trigger};
use stockyard_mongo::MongoCatalog;

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

/// A JSON request body; one that does not read is refused with a 400
/// naming the problem, as JSON like every other refusal.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = (StatusCode, Json<Value>);

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) =
            Json::<Value>::from_request(req, state).await.map_err(|e| fail(StatusCode::BAD_REQUEST, e.body_text()))?;
        serde_json::from_value(value).map(Body).map_err(|e| fail(StatusCode::BAD_REQUEST, e))
    }
}

/// An answer of a typed shape, or a refusal.
pub(crate) type Typed<T> = Result<Json<T>, (StatusCode, Json<Value>)>;

/// Registered executors with their running tasks.
#[utoipa::path(get, path = "/api/executors", responses(
    (status = 200, body = Vec<Executor>), (status = 500, body = ErrorAnswer)))]
pub(crate) async fn executors(State(api): State<Api>) -> Typed<Vec<Executor>> {
    let list = crate::executors(&api.scheduler).await.map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let running = crate::job_view::running_tasks(&api.scheduler).await;
    Ok(Json(list.iter().map(|e| executor_view(e, &running)).collect()))
}

fn executor_view(e: &stockyard_proto::ExecutorInfo, running: &HashMap<String, usize>) -> Executor {
    Executor::new(e, running.get(&e.id).copied().unwrap_or(0) as u64)
}

/// Ballista jobs, newest first.
#[utoipa::path(get, path = "/api/jobs", responses(
    (status = 200, body = Vec<BallistaJob>), (status = 500, body = ErrorAnswer)))]
pub(crate) async fn jobs(State(api): State<Api>) -> Typed<Vec<BallistaJob>> {
    let list = crate::jobs(&api.scheduler).await.map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(list.into_iter().map(BallistaJob::from).collect()))
}

/// Refuses an id from a request that is not a plain name: ids name keys
/// and files.
fn plain(what: &'static str, id: &str) -> Result<(), (StatusCode, Json<Value>)> {
    stockyard_plan::names::path_part(what, id).map_err(|e| fail(StatusCode::BAD_REQUEST, e))
}

/// One Ballista job's stages and tasks.
#[utoipa::path(get, path = "/api/jobs/{id}", params(("id" = String, Path, description = "Ballista job id")),
    responses((status = 200, body = JobDetail), (status = 400, body = ErrorAnswer), (status = 404, body = ErrorAnswer)))]
pub(crate) async fn job(State(api): State<Api>, Path(id): Path<String>) -> Typed<JobDetail> {
    plain("job id", &id)?;
    match crate::job_view::job(&api.jobs, &id).await {
        Ok(Some(job)) => Ok(Json(job)),
        Ok(None) => Err(fail(StatusCode::NOT_FOUND, format!("no Ballista job '{id}'"))),
        Err(e) => Err(fail(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// Filters of `GET /api/runs`; an empty one is no filter (a form's "any").
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunFilter {
    /// Runs of this job.
    #[serde(default, deserialize_with = "blank_is_none")]
    job: Option<Job>,
    /// Runs in this status.
    #[serde(default, deserialize_with = "blank_is_none")]
    status: Option<RunStatus>,
    /// Runs whose trigger starts with this (`schedule:kpi`, `cli`, `ui`).
    trigger: Option<String>,
    /// At most this many runs (200 unless set).
    #[serde(default, deserialize_with = "limit")]
    limit: Option<usize>,
}

/// A query field parsed by its type's parser, empty as absent.
fn blank_is_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// The `limit` field: a whole number, empty as absent.
fn limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("limit: '{text}' is not a whole number of runs"))),
    }
}

/// A query that does not read, refused with a 400 naming the problem.
pub(crate) fn bad_query(e: axum::extract::rejection::QueryRejection) -> (StatusCode, Json<Value>) {
    fail(StatusCode::BAD_REQUEST, e.body_text())
}

/// Recorded runs, newest first.
#[utoipa::path(get, path = "/api/runs", params(RunFilter),
    responses((status = 200, body = Vec<Run>), (status = 400, body = ErrorAnswer)))]
pub(crate) async fn runs(
    State(api): State<Api>,
    filter: Result<Query<RunFilter>, axum::extract::rejection::QueryRejection>,
) -> Typed<Vec<Run>> {
    let Query(f) = filter.map_err(bad_query)?;
    let keep = |r: &Run| {
        f.job.is_none_or(|j| r.job == j)
            && f.status.is_none_or(|s| r.status == s)
            && f.trigger.as_ref().is_none_or(|t| r.trigger.to_string().starts_with(t.as_str()))
    };
    let runs = api.runner.runs().await;
    Ok(Json(runs.into_iter().filter(|r| keep(r)).take(f.limit.unwrap_or(200)).collect()))
}

/// A run, its Ballista jobs in full, and for a `sql` run its result while
/// this scheduler keeps it.
#[utoipa::path(get, path = "/api/runs/{id}", params(("id" = String, Path, description = "run id")),
    responses((status = 200, body = RunDetail), (status = 400, body = ErrorAnswer), (status = 404, body = ErrorAnswer)))]
pub(crate) async fn run(State(api): State<Api>, Path(id): Path<String>) -> Typed<RunDetail> {
    plain("run id", &id)?;
    let Some(run) = api.runner.run_info(&id).await else {
        return Err(fail(StatusCode::NOT_FOUND, format!("no run '{id}'")));
    };
    // A running run's jobs are not recorded yet: find them by name.
    let mut ids = run.ballista_jobs.clone();
    if ids.is_empty() {
        ids = api.runner.ballista_jobs(&run.run_id).await;
    }
    let mut jobs = Vec::new();
    for job in &ids {
        match crate::job_view::job(&api.jobs, job).await {
            Ok(Some(detail)) => jobs.push(RunJob::Known(detail)),
            Ok(None) => {
                let error = "the scheduler no longer keeps this job".into();
                jobs.push(RunJob::Gone(GoneJob { id: job.clone(), error }))
            }
            Err(error) => jobs.push(RunJob::Gone(GoneJob { id: job.clone(), error })),
        }
    }
    let result = api.runner.result(&id);
    Ok(Json(RunDetail { run, jobs, result }))
}

/// Starts a run and answers with its id at once; the run goes on whoever
/// waits for it. Refused while another scheduler leads (409) or no
/// executor is active (503), like gRPC `RunJob`.
#[utoipa::path(post, path = "/api/runs", request_body = StartRun, responses(
    (status = 202, body = RunStarted), (status = 400, body = ErrorAnswer), (status = 409, body = ErrorAnswer),
    (status = 503, body = ErrorAnswer)))]
pub(crate) async fn start_run(
    State(api): State<Api>,
    Body(req): Body<StartRun>,
) -> Result<Response, (StatusCode, Json<Value>)> {
    api.runner.validate(req.job, &req.params).map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    crate::ballista::admit(&api.scheduler, &api.leadership).await.map_err(|refusal| {
        let status = match refusal {
            crate::ballista::Refusal::NotLeading(_) => StatusCode::CONFLICT,
            crate::ballista::Refusal::NoExecutor(_) => StatusCode::SERVICE_UNAVAILABLE,
            crate::ballista::Refusal::Executors(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        fail(status, refusal)
    })?;
    let run = Run::new(crate::runner::new_run_id(req.job), req.job, Trigger::Ui, req.params);
    let run_id = run.run_id.clone();
    let (progress, _) = tokio::sync::mpsc::channel(1);
    // Recorded before the answer, so a GET with the id finds it.
    drop(api.runner.clone().spawn(run, progress).await);
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run_id })).into_response())
}

/// Stops a running run.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", params(("id" = String, Path, description = "run id")),
    responses((status = 200, body = Cancelling), (status = 400, body = ErrorAnswer), (status = 404, body = ErrorAnswer),
    (status = 409, body = ErrorAnswer)))]
pub(crate) async fn cancel_run(State(api): State<Api>, Path(id): Path<String>) -> Typed<Cancelling> {
    plain("run id", &id)?;
    match api.runner.cancel(&id).await {
        Ok(()) => Ok(Json(Cancelling { run_id: id, cancelling: true })),
        Err(e @ CancelError::Unknown(_)) => Err(fail(StatusCode::NOT_FOUND, e)),
        Err(e @ CancelError::NotRunning(..)) => Err(fail(StatusCode::CONFLICT, e)),
    }
}

fn schedule_failure(e: ScheduleError) -> (StatusCode, Json<Value>) {
    let status = match e {
        ScheduleError::Bad(_) | ScheduleError::Params(_) => StatusCode::BAD_REQUEST,
        ScheduleError::Unknown(_) => StatusCode::NOT_FOUND,
        ScheduleError::Exists(_) | ScheduleError::Running(..) => StatusCode::CONFLICT,
        ScheduleError::State(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    fail(status, e)
}

/// Each schedule with its next and last run.
#[utoipa::path(get, path = "/api/schedules", responses(
    (status = 200, body = Vec<ScheduleView>), (status = 503, body = ErrorAnswer)))]
pub(crate) async fn schedules(State(api): State<Api>) -> Typed<Vec<ScheduleView>> {
    let list = api.schedules.list().await.map_err(schedule_failure)?;
    Ok(Json(list.iter().map(crate::schedules::Schedule::view).collect()))
}

/// Triggers, pauses, resumes or removes a schedule.
#[utoipa::path(post, path = "/api/schedules/{name}/{action}", params(
    ("name" = String, Path, description = "schedule name"),
    ("action" = ScheduleAction, Path, description = "trigger, pause, resume or remove (add is gRPC's: it needs the schedule)")),
    responses((status = 200, body = ScheduleChanged), (status = 400, body = ErrorAnswer),
    (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer), (status = 503, body = ErrorAnswer)))]
pub(crate) async fn change_schedule(
    State(api): State<Api>,
    Path((name, action)): Path<(String, String)>,
) -> Typed<ScheduleChanged> {
    let action: ScheduleAction = action.parse().map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    match action {
        ScheduleAction::Add => {
            return Err(fail(StatusCode::BAD_REQUEST, "add a schedule with `stockyard schedules add` (gRPC)"));
        }
        ScheduleAction::Trigger => {
            if let Some(why) = api.leadership.not_leading() {
                return Err(fail(StatusCode::CONFLICT, why));
            }
        }
        _ => {}
    }
    let (s, run_id) = api.schedules.apply(&name, action, None).await.map_err(schedule_failure)?;
    Ok(Json(ScheduleChanged { name: s.name, paused: s.paused, run_id }))
}

/// The KPIs in Redis now, with their age.
#[utoipa::path(get, path = "/api/kpis", responses((status = 200, body = KpiCache), (status = 503, body = ErrorAnswer)))]
pub(crate) async fn kpis(State(api): State<Api>) -> Typed<KpiCache> {
    let mut kpis =
        stockyard_jobs::kpi::read(&api.redis_url).await.map_err(|e| fail(StatusCode::SERVICE_UNAVAILABLE, e))?;
    kpis.age_s = kpis.last_update.as_deref().and_then(age_s);
    Ok(Json(kpis))
}

/// Seconds since an RFC 3339 time (`kpi:last_update`).
pub(crate) fn age_s(time: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    Some((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
}

/// Archive runs, newest first, with what each wrote.
#[utoipa::path(get, path = "/api/archives", responses((status = 200, body = Vec<Run>)))]
pub(crate) async fn archives(State(api): State<Api>) -> Typed<Vec<Run>> {
    let runs = api.runner.runs().await;
    Ok(Json(runs.into_iter().filter(|r| r.job == Job::Archive).collect()))
}

/// The cluster at a glance, and what is wrong with it.
#[utoipa::path(get, path = "/api/overview", responses((status = 200, body = Overview)))]
pub(crate) async fn overview(State(api): State<Api>) -> Typed<Overview> {
    let mut problems = Vec::new();
    let executors = match crate::executors(&api.scheduler).await {
        Ok(list) => {
            let running = crate::job_view::running_tasks(&api.scheduler).await;
            list.iter().map(|e| executor_view(e, &running)).collect()
        }
        Err(e) => {
            problems.push(format!("cannot list executors: {e}"));
            Vec::new()
        }
    };
    if !executors.iter().any(|e: &Executor| e.state == "active") {
        problems.push("no active executor: queries and jobs wait until one registers".to_string());
    }
    if let Some(why) = api.leadership.not_leading() {
        problems.push(why);
    }
    if let Some(e) = api.catalog.recent_failure() {
        problems.push(format!("MongoDB ({}): {e}", api.catalog.source().redacted_uri()));
    }
    let kpi = match stockyard_jobs::kpi::freshness(&api.redis_url).await {
        Ok((written, expires)) => KpiFreshness {
            age_s: written.as_deref().and_then(age_s),
            last_update: written,
            expires_in_s: expires,
            error: None,
        },
        Err(e) => {
            problems.push(e.to_string());
            KpiFreshness { error: Some(e.to_string()), ..KpiFreshness::default() }
        }
    };
    let runs = api.runner.runs().await;
    let first = |job: Job| runs.iter().find(|r| r.job == job).cloned();
    Ok(Json(Overview {
        healthy: problems.is_empty(),
        problems,
        leader: leader_view(&api),
        executors,
        running_runs: runs.iter().filter(|r| !r.status.is_final()).cloned().collect(),
        recent_runs: runs.iter().filter(|r| r.status.is_final()).take(10).cloned().collect(),
        kpi,
        last_kpi_run: first(Job::Kpi),
        last_archive_run: first(Job::Archive),
    }))
}

/// Which scheduler leads, as the overview shows it.
fn leader_view(api: &Api) -> Leader {
    let me = &api.leadership.me;
    let elected = api.leadership.shared;
    match api.leadership.leader() {
        Some(l) => Leader {
            this_scheduler: l.id == me.id,
            address: Some(l.grpc),
            http: Some(l.http),
            id: Some(l.id),
            elected,
            this_id: me.id.clone(),
        },
        None => Leader { address: None, http: None, id: None, this_scheduler: false, elected, this_id: me.id.clone() },
    }
}
