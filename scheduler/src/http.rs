//! The HTTP port: health probes and a JSON view of the cluster. The web UI
//! and the full REST API grow from here.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use std::sync::Arc;

use crate::runner::JobRunner;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::Scheduler;

pub(crate) fn router(scheduler: Scheduler, runner: Arc<JobRunner>) -> Router {
    let for_metrics = scheduler.clone();
    let metrics = move || {
        let (scheduler, runner) = (for_metrics.clone(), runner.clone());
        async move {
            match crate::metrics::render(&scheduler, &runner).await {
                Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route("/api/executors", get(api_executors))
        .route("/api/jobs", get(api_jobs))
        .with_state(scheduler)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Ready when at least one executor is registered: before that no query runs.
async fn readyz(State(s): State<Scheduler>) -> Response {
    match crate::executors(&s).await {
        Ok(e) if !e.is_empty() => (StatusCode::OK, format!("ready: {} executors\n", e.len())).into_response(),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: no executors registered\n").into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn api_executors(State(s): State<Scheduler>) -> Response {
    match crate::executors(&s).await {
        Ok(list) => Json(Value::Array(
            list.into_iter()
                .map(|e| {
                    json!({
                        "id": e.id, "host": e.host, "flight_port": e.flight_port,
                        "grpc_port": e.grpc_port, "task_slots": e.task_slots,
                        "last_heartbeat": e.last_heartbeat, "state": e.state,
                    })
                })
                .collect(),
        ))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn api_jobs(State(s): State<Scheduler>) -> Response {
    match crate::jobs(&s).await {
        Ok(list) => Json(Value::Array(
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
        ))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
