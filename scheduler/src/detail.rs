//! A Ballista job as the UI shows it: its stages with their tasks, rows,
//! bytes, durations and errors, and each stage's plan as a tree of
//! operators, which the page draws as a graph.

use std::collections::HashMap;
use std::sync::Arc;

use ballista_core::serde::protobuf::job_status::Status as JobState;
use ballista_core::serde::protobuf::task_status::Status as TaskState;
use ballista_scheduler::cluster::JobState as JobStore;
use ballista_scheduler::state::execution_stage::{ExecutionStage, TaskInfo};
use datafusion::physical_plan::{ExecutionPlan, displayable};
use serde_json::{Value, json};

use crate::Scheduler;

/// The job `job_id`, or `None` when the scheduler does not know it.
pub async fn job(jobs: &Arc<dyn JobStore>, job_id: &str) -> Result<Option<Value>, String> {
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
    let stages: Vec<Value> = ids
        .iter()
        .map(|id| {
            let mut from = inputs.remove(id).unwrap_or_default();
            from.sort();
            stage(*id, &graph.stages()[id], from)
        })
        .collect();
    let (start, end) = (graph.start_time(), graph.end_time());
    Ok(Some(json!({
        "id": job_id,
        "name": graph.job_name(),
        "status": status,
        "error": error,
        "started_at_ms": start,
        "ended_at_ms": end,
        "duration_ms": if end >= start && end > 0 { end - start } else { 0 },
        "stage_count": graph.stage_count(),
        "completed_stages": graph.completed_stages(),
        "stages": stages,
    })))
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

fn stage(id: usize, stage: &ExecutionStage, inputs: Vec<usize>) -> Value {
    let (status, partitions, tasks, error): (&str, usize, Vec<Option<&TaskInfo>>, &str) = match stage {
        ExecutionStage::UnResolved(_) => ("waiting", 0, Vec::new(), ""),
        ExecutionStage::Resolved(s) => ("ready", s.partitions, vec![None; s.partitions], ""),
        ExecutionStage::Running(s) => ("running", s.partitions, s.task_infos.iter().map(Option::as_ref).collect(), ""),
        ExecutionStage::Successful(s) => ("succeeded", s.partitions, s.task_infos.iter().map(Some).collect(), ""),
        ExecutionStage::Failed(s) => {
            ("failed", s.partitions, s.task_infos.iter().map(Option::as_ref).collect(), s.error_message.as_str())
        }
    };
    let tasks: Vec<Value> = tasks.iter().enumerate().map(|(p, t)| task(p, *t)).collect();
    let count = |state: &str| tasks.iter().filter(|t| t["status"] == state).count();
    let sum = |field: &str| tasks.iter().filter_map(|t| t[field].as_u64()).sum::<u64>();
    let starts = tasks.iter().filter_map(|t| t["started_at_ms"].as_u64()).filter(|t| *t > 0).min();
    let ends = tasks.iter().filter_map(|t| t["ended_at_ms"].as_u64()).max();
    let plan = stage.plan();
    json!({
        "id": id,
        "status": status,
        "partitions": partitions,
        "tasks_succeeded": count("succeeded"),
        "tasks_running": count("running"),
        "tasks_failed": count("failed"),
        "output_rows": sum("rows"),
        "output_bytes": sum("bytes"),
        "duration_ms": match (starts, ends) { (Some(s), Some(e)) if e >= s => e - s, _ => 0 },
        "error": error,
        "inputs": inputs,
        "outputs": output_links(stage),
        "plan": operator(plan),
        "tasks": tasks,
    })
}

fn task(partition: usize, info: Option<&TaskInfo>) -> Value {
    let Some(info) = info else {
        return json!({"partition": partition, "status": "pending"});
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
    json!({
        "partition": partition,
        "task_id": info.task_id,
        "status": status,
        "executor": executor,
        "started_at_ms": start,
        "ended_at_ms": end,
        "duration_ms": end.saturating_sub(start),
        "rows": rows,
        "bytes": bytes,
        "error": error,
    })
}

/// An operator and its inputs: `{"name", "detail", "children"}`.
fn operator(plan: &dyn ExecutionPlan) -> Value {
    let detail = displayable(plan).one_line().to_string();
    json!({
        "name": plan.name(),
        "detail": detail.trim(),
        "children": plan.children().into_iter().map(|c| operator(c.as_ref())).collect::<Vec<_>>(),
    })
}
