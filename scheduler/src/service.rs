//! Stockyard's job API (`stockyard.Stockyard` in the proto), answered from
//! the Ballista scheduler's state.

use ballista_core::serde::protobuf::executor_status::Status as ExecStatus;
use ballista_core::serde::protobuf::job_status::Status as JobState;
use std::sync::Arc;
use std::time::Duration;
use stockyard_proto::stockyard_server::Stockyard;
use stockyard_proto::{
    ExecutorInfo, JobInfo, ListExecutorsRequest, ListExecutorsResponse, ListJobsRequest, ListJobsResponse,
};

use stockyard_mongo::MongoCatalog;
use stockyard_proto::{JobEvent, ListRunsRequest, ListRunsResponse, RunJobRequest, job_event};
use tokio_stream::wrappers::ReceiverStream;

use crate::runner::JobRunner;
use crate::schedules::{Schedule, ScheduleError, Schedules};
use stockyard_proto::{ChangeScheduleRequest, ChangeScheduleResponse, ListSchedulesRequest, ListSchedulesResponse};
use stockyard_proto::{DescribeTableRequest, DescribeTableResponse, ListTablesRequest, ListTablesResponse};
use tonic::{Request, Response, Status};

use crate::Scheduler;
use crate::leader::Leadership;
use stockyard_proto::{GetLeaderRequest, GetLeaderResponse};

/// The gRPC service.
pub(crate) struct JobApi {
    scheduler: Scheduler,
    catalog: Arc<MongoCatalog>,
    runner: Arc<JobRunner>,
    schedules: Arc<Schedules>,
    leadership: Arc<Leadership>,
    streams: Arc<stockyard_stream_runtime::Streams>,
}

fn schedule_status(e: ScheduleError) -> Status {
    match e {
        ScheduleError::Bad(_) => Status::invalid_argument(e.to_string()),
        ScheduleError::Unknown(_) => Status::not_found(e.to_string()),
        ScheduleError::Exists(_) | ScheduleError::Running(..) => Status::failed_precondition(e.to_string()),
        ScheduleError::State(_) => Status::unavailable(e.to_string()),
    }
}

impl JobApi {
    pub(crate) fn new(
        scheduler: Scheduler,
        catalog: Arc<MongoCatalog>,
        runner: Arc<JobRunner>,
        schedules: Arc<Schedules>,
        leadership: Arc<Leadership>,
        streams: Arc<stockyard_stream_runtime::Streams>,
    ) -> Self {
        Self { scheduler, catalog, runner, schedules, leadership, streams }
    }

    /// Refuses work only the leader runs, naming the leader.
    fn require_leader(&self) -> Result<(), Status> {
        match self.leadership.not_leading() {
            Some(why) => Err(Status::unavailable(why)),
            None => Ok(()),
        }
    }
}

/// Why a run cannot start on this scheduler now.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// Another scheduler leads (or none does): runs start there.
    #[error("{0}")]
    NotLeading(String),
    /// No active executor: the run would wait for one for ever.
    #[error("the scheduler has no executors; start one with `stockyard executor --scheduler {0}`")]
    NoExecutor(String),
    /// The executors cannot be listed.
    #[error("cannot list the executors: {0}")]
    Executors(String),
}

/// The one admission check for runs started by a person, over gRPC
/// (`RunJob`) or REST (`POST /api/runs`): this scheduler leads and has an
/// active executor.
pub(crate) async fn admit(scheduler: &Scheduler, leadership: &crate::leader::Leadership) -> Result<(), Refusal> {
    if let Some(why) = leadership.not_leading() {
        return Err(Refusal::NotLeading(why));
    }
    let active = executors(scheduler).await.map_err(Refusal::Executors)?.iter().any(|e| e.state == "active");
    if !active {
        return Err(Refusal::NoExecutor(leadership.me.grpc.clone()));
    }
    Ok(())
}

/// Executors the scheduler knows, sorted by host and port.
pub async fn executors(scheduler: &Scheduler) -> Result<Vec<ExecutorInfo>, String> {
    let manager = &scheduler.state.executor_manager;
    let states = manager.get_executors_state().await.map_err(|e| e.to_string())?;
    let mut out: Vec<ExecutorInfo> = states
        .into_iter()
        .map(|(meta, last_heartbeat, _)| {
            let state = match manager.get_executor_hearbeat(&meta.id).and_then(|h| h.status).and_then(|s| s.status) {
                Some(ExecStatus::Active(_)) => "active",
                Some(ExecStatus::Dead(_)) => "dead",
                Some(ExecStatus::Terminating(_)) => "terminating",
                Some(ExecStatus::Unknown(_)) | None => "unknown",
            };
            ExecutorInfo {
                id: meta.id,
                host: meta.host,
                flight_port: meta.port.into(),
                grpc_port: meta.grpc_port.into(),
                task_slots: meta.specification.task_slots,
                last_heartbeat: last_heartbeat.map(|d| d.as_secs()).unwrap_or(0),
                state: state.into(),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.host, a.flight_port).cmp(&(&b.host, b.flight_port)));
    Ok(out)
}

/// Ballista jobs the scheduler knows, newest first.
pub async fn jobs(scheduler: &Scheduler) -> Result<Vec<JobInfo>, String> {
    let all = scheduler.state.task_manager.get_all_jobs().await.map_err(|e| e.to_string())?;
    let mut out: Vec<JobInfo> = all
        .into_iter()
        .map(|job| {
            let (status, queued_at, error) = match &job.status.status {
                Some(JobState::Queued(q)) => ("queued", q.queued_at, String::new()),
                Some(JobState::Running(r)) => ("running", r.queued_at, String::new()),
                Some(JobState::Failed(f)) => ("failed", f.queued_at, f.error.clone()),
                Some(JobState::Successful(s)) => ("succeeded", s.queued_at, String::new()),
                None => ("unknown", 0, String::new()),
            };
            JobInfo {
                id: job.job_id.to_string(),
                name: job.job_name,
                status: status.into(),
                completed_stages: job.completed_stages as u32,
                total_stages: job.num_stages as u32,
                queued_at,
                started_at: job.start_time,
                ended_at: job.end_time,
                error,
            }
        })
        .collect();
    out.sort_by(|a, b| (b.queued_at, &b.id).cmp(&(a.queued_at, &a.id)));
    Ok(out)
}

/// Cancels a queued or running Ballista job.
pub async fn cancel_job(scheduler: &Scheduler, job_id: &str) -> Result<(), String> {
    scheduler.cancel_job(job_id.to_string().into()).await.map_err(|e| e.to_string())
}

#[tonic::async_trait]
impl Stockyard for JobApi {
    type RunJobStream = ReceiverStream<Result<JobEvent, Status>>;

    async fn run_job(&self, request: Request<RunJobRequest>) -> Result<Response<Self::RunJobStream>, Status> {
        let request = request.into_inner();
        self.runner.validate(&request.job, &request.params).map_err(|e| Status::invalid_argument(e.0))?;
        admit(&self.scheduler, &self.leadership).await.map_err(|refusal| match refusal {
            Refusal::NotLeading(why) => Status::unavailable(why),
            e @ Refusal::NoExecutor(_) => Status::failed_precondition(e.to_string()),
            e @ Refusal::Executors(_) => Status::internal(e.to_string()),
        })?;
        let (events, stream) = tokio::sync::mpsc::channel(64);
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::channel::<String>(64);
        let runner = self.runner.clone();
        let trigger = if request.trigger.is_empty() { "cli".to_string() } else { request.trigger };
        // The run goes on if the client goes away: it is recorded either way.
        let run_id = match request.run_id.as_str() {
            "" => crate::runner::new_run_id(&request.job),
            chosen => {
                runner.check_run_id(chosen).await.map_err(|e| Status::invalid_argument(e.0))?;
                chosen.to_string()
            }
        };
        let _ = events.send(Ok(JobEvent { event: Some(job_event::Event::RunId(run_id.clone())) })).await;
        let job = tokio::spawn(runner.run_with_id(run_id, request.job, request.params, trigger, progress_tx));
        tokio::spawn(async move {
            while let Some(message) = progress_rx.recv().await {
                let _ = events.send(Ok(JobEvent { event: Some(job_event::Event::Progress(message)) })).await;
            }
            let result = match job.await {
                Ok(run) => Ok(JobEvent { event: Some(job_event::Event::Result(run)) }),
                Err(e) => Err(Status::internal(format!("the job runner failed: {e}"))),
            };
            let _ = events.send(result).await;
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn list_runs(&self, _request: Request<ListRunsRequest>) -> Result<Response<ListRunsResponse>, Status> {
        Ok(Response::new(ListRunsResponse { runs: self.runner.runs().await }))
    }

    async fn list_schedules(
        &self,
        _request: Request<ListSchedulesRequest>,
    ) -> Result<Response<ListSchedulesResponse>, Status> {
        let schedules = self.schedules.list().await.map_err(schedule_status)?;
        Ok(Response::new(ListSchedulesResponse { schedules: schedules.iter().map(Schedule::info).collect() }))
    }

    async fn list_streams(
        &self,
        request: Request<stockyard_proto::ListStreamsRequest>,
    ) -> Result<Response<stockyard_proto::ListStreamsResponse>, Status> {
        let streams = crate::streams::list(&self.streams, &request.into_inner().name).await?;
        Ok(Response::new(stockyard_proto::ListStreamsResponse { streams }))
    }

    async fn change_stream(
        &self,
        request: Request<stockyard_proto::ChangeStreamRequest>,
    ) -> Result<Response<stockyard_proto::ChangeStreamResponse>, Status> {
        let r = request.into_inner();
        let changed = crate::streams::change(&self.streams, &self.leadership, &r.name, &r.action, &r.sql, &r.trigger)
            .await
            .map_err(|(code, message)| Status::new(code, message))?;
        Ok(Response::new(stockyard_proto::ChangeStreamResponse { stream: changed.as_ref().map(crate::streams::proto) }))
    }

    async fn change_schedule(
        &self,
        request: Request<ChangeScheduleRequest>,
    ) -> Result<Response<ChangeScheduleResponse>, Status> {
        let request = request.into_inner();
        let name = request.name.as_str();
        if request.action == "trigger" {
            self.require_leader()?;
        }
        let (schedule, run_id) = match request.action.as_str() {
            "add" => {
                let mut info = request.schedule.unwrap_or_default();
                info.name = name.to_string();
                (self.schedules.add(&info).await, String::new())
            }
            "pause" => (self.schedules.set_paused(name, true).await, String::new()),
            "resume" => (self.schedules.set_paused(name, false).await, String::new()),
            "remove" => (self.schedules.remove(name).await, String::new()),
            "trigger" => match self.schedules.trigger(name).await {
                Ok((s, run)) => (Ok(s), run),
                Err(e) => (Err(e), String::new()),
            },
            other => {
                return Err(Status::invalid_argument(format!(
                    "'{other}' is not a schedule action (add, pause, resume, trigger, remove)"
                )));
            }
        };
        let schedule = schedule.map_err(schedule_status)?;
        Ok(Response::new(ChangeScheduleResponse { schedule: Some(schedule.info()), run_id }))
    }

    async fn get_leader(&self, _request: Request<GetLeaderRequest>) -> Result<Response<GetLeaderResponse>, Status> {
        let leader = self.leadership.leader();
        Ok(Response::new(GetLeaderResponse {
            last_leader_grpc: self.leadership.last_leader().map(|l| l.grpc).unwrap_or_default(),
            is_leader: self.leadership.is_leader(),
            leader_grpc: leader.as_ref().map(|l| l.grpc.clone()).unwrap_or_default(),
            leader_http: leader.as_ref().map(|l| l.http.clone()).unwrap_or_default(),
            leader_id: leader.map(|l| l.id).unwrap_or_default(),
        }))
    }

    async fn list_executors(
        &self,
        _request: Request<ListExecutorsRequest>,
    ) -> Result<Response<ListExecutorsResponse>, Status> {
        let executors = executors(&self.scheduler).await.map_err(Status::internal)?;
        Ok(Response::new(ListExecutorsResponse { executors }))
    }

    async fn list_jobs(&self, _request: Request<ListJobsRequest>) -> Result<Response<ListJobsResponse>, Status> {
        let jobs = jobs(&self.scheduler).await.map_err(Status::internal)?;
        Ok(Response::new(ListJobsResponse { jobs }))
    }

    async fn list_tables(&self, _request: Request<ListTablesRequest>) -> Result<Response<ListTablesResponse>, Status> {
        // A collection made a moment ago should be queryable, but a query
        // must not wait long on a MongoDB it may not even read.
        self.catalog.refresh_if_stale(Duration::from_secs(2), Duration::from_secs(1), Duration::from_secs(5)).await;
        let unavailable =
            self.catalog.recent_failure().map(|m| format!("{}: {m}", self.catalog.source().redacted_uri()));
        Ok(Response::new(ListTablesResponse {
            tables: self.catalog.known_tables(),
            unavailable: unavailable.unwrap_or_default(),
        }))
    }

    async fn describe_table(
        &self,
        request: Request<DescribeTableRequest>,
    ) -> Result<Response<DescribeTableResponse>, Status> {
        let name = request.into_inner().name;
        match self.catalog.schema(&name).await {
            Ok(Some(schema)) => {
                let schema =
                    stockyard_plan::schema::encode_schema(&schema).map_err(|e| Status::internal(e.to_string()))?;
                Ok(Response::new(DescribeTableResponse { found: true, schema }))
            }
            Ok(None) => Ok(Response::new(DescribeTableResponse { found: false, schema: vec![] })),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}
