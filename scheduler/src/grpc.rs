//! Stockyard's gRPC job API (`stockyard.Stockyard` in the proto).

use std::sync::Arc;
use std::time::Duration;
use stockyard_api::{Job, Run, ScheduleAction, Trigger};
use stockyard_proto::stockyard_server::Stockyard;
use stockyard_proto::{ListExecutorsRequest, ListExecutorsResponse, ListJobsRequest, ListJobsResponse};

use stockyard_mongo::MongoCatalog;
use stockyard_proto::{JobEvent, ListRunsRequest, ListRunsResponse, RunJobRequest, job_event};
use tokio_stream::wrappers::ReceiverStream;

use crate::runner::JobRunner;
use crate::schedules::{Schedule, ScheduleError, Schedules};
use stockyard_proto::{ChangeScheduleRequest, ChangeScheduleResponse, ListSchedulesRequest, ListSchedulesResponse};
use stockyard_proto::{DescribeTableRequest, DescribeTableResponse, ListTablesRequest, ListTablesResponse};
use tonic::{Request, Response, Status};

use crate::Scheduler;
use crate::ballista::{Refusal, admit, executors, jobs};
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
        ScheduleError::Bad(_) | ScheduleError::Params(_) => Status::invalid_argument(e.to_string()),
        ScheduleError::Unknown(_) => Status::not_found(e.to_string()),
        ScheduleError::Exists(_) | ScheduleError::Running(..) => Status::failed_precondition(e.to_string()),
        ScheduleError::State(_) => Status::unavailable(e.to_string()),
    }
}

/// A standby's refusal, marked so a client knows to ask the leader.
fn not_leading(why: String) -> Status {
    let mut status = Status::unavailable(why);
    status.metadata_mut().insert(stockyard_api::NOT_LEADING, tonic::metadata::MetadataValue::from_static("1"));
    status
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
            Some(why) => Err(not_leading(why)),
            None => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl Stockyard for JobApi {
    type RunJobStream = ReceiverStream<Result<JobEvent, Status>>;

    async fn run_job(&self, request: Request<RunJobRequest>) -> Result<Response<Self::RunJobStream>, Status> {
        let request = request.into_inner();
        let job: Job =
            request.job.parse().map_err(|e: stockyard_api::UnknownWord| Status::invalid_argument(e.to_string()))?;
        let params = request.params.into_iter().collect();
        self.runner.validate(job, &params).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let trigger: Trigger = match request.trigger.as_str() {
            "" => Trigger::Cli,
            text => text.parse().map_err(|e: stockyard_api::UnknownWord| Status::invalid_argument(e.to_string()))?,
        };
        admit(&self.scheduler, &self.leadership).await.map_err(|refusal| match refusal {
            Refusal::NotLeading(why) => not_leading(why),
            e @ Refusal::NoExecutor(_) => Status::failed_precondition(e.to_string()),
            e @ Refusal::Executors(_) => Status::internal(e.to_string()),
        })?;
        let (events, stream) = tokio::sync::mpsc::channel(64);
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::channel::<String>(64);
        let runner = self.runner.clone();
        // The run goes on if the client goes away: it is recorded either way.
        let run_id = match request.run_id.as_str() {
            "" => crate::runner::new_run_id(job),
            chosen => {
                runner.check_run_id(chosen).await.map_err(|e| Status::invalid_argument(e.to_string()))?;
                chosen.to_string()
            }
        };
        let _ = events.send(Ok(JobEvent { event: Some(job_event::Event::RunId(run_id.clone())) })).await;
        let job = runner.spawn(Run::new(run_id, job, trigger, params), progress_tx).await;
        tokio::spawn(async move {
            while let Some(message) = progress_rx.recv().await {
                let _ = events.send(Ok(JobEvent { event: Some(job_event::Event::Progress(message)) })).await;
            }
            let result = match job.await {
                Ok(run) => Ok(JobEvent { event: Some(job_event::Event::Result((&run).into())) }),
                Err(e) => Err(Status::internal(format!("the job runner failed: {e}"))),
            };
            let _ = events.send(result).await;
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn list_runs(&self, _request: Request<ListRunsRequest>) -> Result<Response<ListRunsResponse>, Status> {
        let runs = self.runner.runs().await.iter().map(Into::into).collect();
        Ok(Response::new(ListRunsResponse { runs }))
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
        let action: ScheduleAction = request
            .action
            .parse()
            .map_err(|e: stockyard_api::UnknownAction| Status::invalid_argument(e.to_string()))?;
        if action == ScheduleAction::Trigger {
            self.require_leader()?;
        }
        let (schedule, run_id) = self.schedules.apply(name, action, request.schedule).await.map_err(schedule_status)?;
        let run_id = run_id.unwrap_or_default();
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
        let executors = executors(&self.scheduler).await.map_err(|e| Status::internal(e.to_string()))?;
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
