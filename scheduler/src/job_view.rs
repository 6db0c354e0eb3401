//! A Ballista job as the UI shows it ([`stockyard_api::job_view`]), read
//! off Ballista's execution graph.

use std::collections::HashMap;
use std::sync::Arc;

use ballista_core::serde::protobuf::job_status::Status as JobState;
use ballista_core::serde::protobuf::task_status::Status as TaskState;
use ballista_scheduler::cluster::JobState as JobStore;
use ballista_scheduler::state::execution_stage::{ExecutionStage, TaskInfo};
use datafusion::physical_plan::{ExecutionPlan, displayable};
use stockyard_api::job_view::{JobDetail, Operator, StageDetail, TaskDetail};

use crate::Scheduler;

/// The job `job_id`, or `None` when the scheduler does not know it.
pub async fn job(jobs: &Arc<dyn JobStore>, job_id: &str) -> Result<Option<JobDetail>, String> {
    let Some(graph) = jobs.get_execution_graph(&job_id.to_string().into()).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let (status, error) = match &graph.status().status {
        Some(JobState::Queued(_)) => ("queued", String::new()),
        Some(JobState::Running(_)) => ("running", String::new()),
        Some(JobState::Failed(f)) => ("failed", f.error.clone()),
        Some(JobState::Successful(_)) => ("succeeded", String::new()),
        None => ("unknown", String::new()),
    };
    let mut ids: Vec<usize> = graph.stages().keys().copied().collect();
    ids.sort();
    // A stage's inputs are the stages that link their output to it.
    let mut inputs: HashMap<usize, Vec<usize>> = HashMap::new();
    for (id, stage) in graph.stages() {
        for to in output_links(stage) {
            inputs.entry(*to).or_default().push(*id);
        }
    }
    let stages: Vec<StageDetail> = ids
        .iter()
        .map(|id| {
            let mut from = inputs.remove(id).unwrap_or_default();
            from.sort();
            stage(*id, &graph.stages()[id], from)
        })
        .collect();
    let (start, end) = (graph.start_time(), graph.end_time());
    Ok(Some(JobDetail {
        id: job_id.to_string(),
        name: graph.job_name().to_string(),
        status: status.to_string(),
        error,
        started_at_ms: start,
        ended_at_ms: end,
        duration_ms: if end >= start && end > 0 { end - start } else { 0 },
        stage_count: graph.stage_count(),
        completed_stages: graph.completed_stages(),
        stages,
    }))
}

/// Tasks running on each executor, by executor id.
pub async fn running_tasks(scheduler: &Scheduler) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for job in scheduler.state.task_manager.get_running_job_cache().values() {
        for task in job.execution_graph.read().await.running_tasks() {
            *out.entry(task.executor_id).or_default() += 1;
        }
    }
    out
}

fn output_links(stage: &ExecutionStage) -> &[usize] {
    match stage {
        ExecutionStage::UnResolved(s) => &s.output_links,
        ExecutionStage::Resolved(s) => &s.output_links,
        ExecutionStage::Running(s) => &s.output_links,
        ExecutionStage::Successful(s) => &s.output_links,
        ExecutionStage::Failed(s) => &s.output_links,
    }
}

fn stage(id: usize, stage: &ExecutionStage, inputs: Vec<usize>) -> StageDetail {
    let (status, partitions, tasks, error): (&str, usize, Vec<Option<&TaskInfo>>, &str) = match stage {
        ExecutionStage::UnResolved(_) => ("waiting", 0, Vec::new(), ""),
        ExecutionStage::Resolved(s) => ("ready", s.partitions, vec![None; s.partitions], ""),
        ExecutionStage::Running(s) => ("running", s.partitions, s.task_infos.iter().map(Option::as_ref).collect(), ""),
        ExecutionStage::Successful(s) => ("succeeded", s.partitions, s.task_infos.iter().map(Some).collect(), ""),
        ExecutionStage::Failed(s) => {
            ("failed", s.partitions, s.task_infos.iter().map(Option::as_ref).collect(), s.error_message.as_str())
        }
    };
    let tasks: Vec<TaskDetail> = tasks.iter().enumerate().map(|(p, t)| task(p, *t)).collect();
    let count = |state: &str| tasks.iter().filter(|t| t.status == state).count();
    let starts = tasks.iter().filter_map(|t| t.started_at_ms).filter(|t| *t > 0).min();
    let ends = tasks.iter().filter_map(|t| t.ended_at_ms).max();
    StageDetail {
        id,
        status: status.to_string(),
        partitions,
        tasks_succeeded: count("succeeded"),
        tasks_running: count("running"),
        tasks_failed: count("failed"),
        output_rows: tasks.iter().filter_map(|t| t.rows).sum(),
        output_bytes: tasks.iter().filter_map(|t| t.bytes).sum(),
        duration_ms: match (starts, ends) {
            (Some(s), Some(e)) if e >= s => e - s,
            _ => 0,
        },
        error: error.to_string(),
        inputs,
        outputs: output_links(stage).to_vec(),
        plan: operator(stage.plan()),
        tasks,
    }
}

fn task(partition: usize, info: Option<&TaskInfo>) -> TaskDetail {
    let Some(info) = info else {
        return TaskDetail {
            partition,
            status: "pending".into(),
            task_id: None,
            executor: None,
            started_at_ms: None,
            ended_at_ms: None,
            duration_ms: None,
            rows: None,
            bytes: None,
            error: None,
        };
    };
    let (status, executor, rows, bytes, error) = match &info.task_status {
        TaskState::Running(r) => ("running", r.executor_id.clone(), 0, 0, String::new()),
        TaskState::Failed(f) => ("failed", String::new(), 0, 0, f.error.clone()),
        TaskState::Successful(s) => (
            "succeeded",
            s.executor_id.clone(),
            s.partitions.iter().map(|p| p.num_rows).sum::<u64>(),
            s.partitions.iter().map(|p| p.num_bytes).sum::<u64>(),
            String::new(),
        ),
    };
    let (start, end) = (info.start_exec_time as u64, info.end_exec_time as u64);
    TaskDetail {
        partition,
        status: status.to_string(),
        task_id: Some(info.task_id),
        executor: Some(executor),
        started_at_ms: Some(start),
        ended_at_ms: Some(end),
        duration_ms: Some(end.saturating_sub(start)),
        rows: Some(rows),
        bytes: Some(bytes),
        error: Some(error),
    }
}

/// An operator and its inputs.
fn operator(plan: &dyn ExecutionPlan) -> Operator {
    Operator {
        name: plan.name().to_string(),
        detail: displayable(plan).one_line().to_string().trim().to_string(),
        children: plan.children().into_iter().map(|c| operator(c.as_ref())).collect(),
    }
}
