//! A Ballista job as the UI shows it (`GET /api/jobs/{id}`, and each job of
//! `GET /api/runs/{id}`): its stages with their tasks, rows, bytes,
//! durations and errors, and each stage's plan as a tree of operators.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A Ballista job in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    /// Ballista's job id.
    pub id: String,
    /// Its name: the statement's kind and the run id that submitted it.
    pub name: String,
    /// `queued`, `running`, `succeeded`, `failed` or `unknown`.
    pub status: String,
    /// Why it failed; empty otherwise.
    pub error: String,
    /// Milliseconds since the UNIX epoch.
    pub started_at_ms: u64,
    /// Milliseconds since the UNIX epoch, 0 while it runs.
    pub ended_at_ms: u64,
    /// How long it ran, 0 while it runs.
    pub duration_ms: u64,
    /// Stages in all.
    pub stage_count: usize,
    /// Stages done.
    pub completed_stages: usize,
    /// Its stages by id.
    pub stages: Vec<StageDetail>,
}

/// One stage of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StageDetail {
    /// The stage's id within its job.
    pub id: usize,
    /// `waiting`, `ready`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// Partitions, one task each; 0 while waiting for its inputs.
    pub partitions: usize,
    /// Tasks that succeeded.
    pub tasks_succeeded: usize,
    /// Tasks running now.
    pub tasks_running: usize,
    /// Tasks that failed.
    pub tasks_failed: usize,
    /// Rows its tasks wrote.
    pub output_rows: u64,
    /// Bytes its tasks wrote.
    pub output_bytes: u64,
    /// From its first task's start to its last task's end.
    pub duration_ms: u64,
    /// Why it failed; empty otherwise.
    pub error: String,
    /// The stages it reads.
    pub inputs: Vec<usize>,
    /// The stages that read it.
    pub outputs: Vec<usize>,
    /// Its plan.
    pub plan: Operator,
    /// One per partition.
    pub tasks: Vec<TaskDetail>,
}

/// One task: a stage's partition. A task not started yet has only its
/// partition and status (`pending`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskDetail {
    /// The partition it runs.
    pub partition: usize,
    /// `pending`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// Ballista's task id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<usize>,
    /// The executor running or that ran it; empty when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// Milliseconds since the UNIX epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// Milliseconds since the UNIX epoch, 0 while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    /// How long it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Rows it wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes it wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why it failed; empty otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An operator of a stage's plan and its inputs, which the page draws as
/// a graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Operator {
    /// The operator, e.g. `AggregateExec`.
    pub name: String,
    /// Its one-line description (expressions, partitioning).
    pub detail: String,
    /// Its inputs.
    #[schema(no_recursion)]
    pub children: Vec<Operator>,
}

/// A job a run names, in full, or why it cannot be shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RunJob {
    /// The job in full.
    Known(JobDetail),
    /// The scheduler no longer keeps it, or cannot read it.
    Gone(GoneJob),
}

/// A job the scheduler cannot show: only its id and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
// No other field: a client tells the two kinds of `RunJob` apart by shape.
#[serde(deny_unknown_fields)]
pub struct GoneJob {
    /// Ballista's job id.
    pub id: String,
    /// Why it is not shown.
    pub error: String,
}
