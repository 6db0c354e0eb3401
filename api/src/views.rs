//! The REST API's request bodies and answers, beside [`crate::Run`]. Each
//! is what a handler serializes, so the OpenAPI document generated from
//! them is the answer's shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::record::Run;
use crate::run::{Job, RunStatus};

/// Every refusal and failure: what went wrong, in words.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorAnswer {
    /// Names the bad value or the part that failed.
    pub error: String,
}

/// A registered executor, with the tasks it runs now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Executor {
    /// Ballista's executor id.
    pub id: String,
    /// The host its Flight and gRPC ports listen on.
    pub host: String,
    /// Arrow Flight port (shuffle reads).
    pub flight_port: u32,
    /// gRPC port (task launches).
    pub grpc_port: u32,
    /// Tasks it runs at once.
    pub task_slots: u32,
    /// Tasks running on it now.
    pub running_tasks: u64,
    /// Seconds since the UNIX epoch.
    pub last_heartbeat: u64,
    /// `active`, `terminating` or `dead`.
    pub state: String,
}

impl Executor {
    /// The view of `e` running `running_tasks`.
    pub fn new(e: &stockyard_proto::ExecutorInfo, running_tasks: u64) -> Self {
        Executor {
            id: e.id.clone(),
            host: e.host.clone(),
            flight_port: e.flight_port,
            grpc_port: e.grpc_port,
            task_slots: e.task_slots,
            running_tasks,
            last_heartbeat: e.last_heartbeat,
            state: e.state.clone(),
        }
    }
}

/// A Ballista job, as lists show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BallistaJob {
    /// Ballista's job id.
    pub id: String,
    /// Its name: the statement's kind and the run id that submitted it.
    pub name: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// Stages done.
    pub completed_stages: u32,
    /// Stages in all.
    pub total_stages: u32,
    /// Milliseconds since the UNIX epoch.
    pub queued_at: u64,
    /// Milliseconds since the UNIX epoch, 0 before it starts.
    pub started_at: u64,
    /// Milliseconds since the UNIX epoch, 0 before it ends.
    pub ended_at: u64,
    /// Why it failed.
    pub error: String,
}

impl From<stockyard_proto::JobInfo> for BallistaJob {
    fn from(j: stockyard_proto::JobInfo) -> Self {
        BallistaJob {
            id: j.id,
            name: j.name,
            status: j.status,
            completed_stages: j.completed_stages,
            total_stages: j.total_stages,
            queued_at: j.queued_at,
            started_at: j.started_at,
            ended_at: j.ended_at,
            error: j.error,
        }
    }
}

/// A run with its Ballista jobs in full and, for a `sql` run, its result
/// while the scheduler keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: Run,
    /// Each Ballista job with its stages and tasks, or an `error` where the
    /// scheduler no longer keeps it.
    pub jobs: Vec<crate::job_view::RunJob>,
    /// A `sql` run's result: columns, up to 1,000 rows, the row count.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
}

/// Body of `POST /api/runs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The job to run.
    pub job: Job,
    /// Its parameters, as the CLI writes them (`window`: `15m`, …).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// Answer of `POST /api/runs`: the run goes on whoever waits for it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunStarted {
    /// The new run's id.
    pub run_id: String,
}

/// Answer of `POST /api/runs/{id}/cancel`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Cancelling {
    /// The run being stopped.
    pub run_id: String,
    /// Always true: the run stops shortly.
    pub cancelling: bool,
}

/// A schedule with its next and last run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    /// Its name, unique.
    pub name: String,
    /// The job it starts.
    pub job: Job,
    /// The job's parameters.
    pub params: BTreeMap<String, String>,
    /// Its interval (`1m`), or empty with a cron expression.
    pub every: String,
    /// Its cron expression, or empty with an interval.
    pub cron: String,
    /// Whether its ticks are held.
    pub paused: bool,
    /// When it fires next, unless paused.
    pub next_run_ms: Option<u64>,
    /// Its last run's id, empty before the first.
    pub last_run_id: String,
    /// Its last run's status, until the first run none.
    pub last_status: Option<RunStatus>,
    /// When its last run started.
    pub last_started_ms: Option<u64>,
    /// Ticks skipped because the last run still ran.
    pub skipped_ticks: u64,
}

/// Answer of `POST /api/schedules/{name}/{action}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleChanged {
    /// The schedule.
    pub name: String,
    /// Whether it is paused now.
    pub paused: bool,
    /// The run a `trigger` started.
    pub run_id: Option<String>,
}
