//! The Ballista scheduler's state as Stockyard reads it: executors and
//! jobs in Stockyard's words, cancelling a job, and the admission check
//! every run started by a person passes.

use ballista_core::error::BallistaError;
use ballista_core::serde::protobuf::executor_status::Status as ExecStatus;
use ballista_core::serde::protobuf::job_status::Status as JobState;
use stockyard_proto::{ExecutorInfo, JobInfo};

use crate::Scheduler;

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
    Executors(#[source] BallistaError),
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
pub async fn executors(scheduler: &Scheduler) -> Result<Vec<ExecutorInfo>, BallistaError> {
    let manager = &scheduler.state.executor_manager;
    let states = manager.get_executors_state().await?;
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
