//! The HTTP port: health probes, Prometheus metrics, the REST API and the
//! web UI, behind the access token when one is set (`crate::auth`).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::api::{self, Api};

pub(crate) fn router(state: Api) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route("/api/overview", get(api::overview))
        .route("/api/executors", get(api::executors))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/runs", get(api::runs).post(api::start_run))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/cancel", post(api::cancel_run))
        .route("/api/schedules", get(api::schedules))
        .route("/api/schedules/{name}/{action}", post(api::change_schedule))
        .route("/api/kpis", get(api::kpis))
        .route("/api/archives", get(api::archives))
        .route("/api/streams", get(crate::streams::all).post(crate::streams::create))
        .route("/api/streams/{name}", get(crate::streams::one))
        .route("/api/streams/{name}/results", get(crate::streams::results))
        .route("/api/streams/{name}/{action}", post(crate::streams::control))
        .route("/api/services", get(crate::services::services))
        .route("/api/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route("/api/{*rest}", get(no_such_endpoint).post(no_such_endpoint))
        .route("/login", get(crate::auth::login_page).post(crate::auth::login))
        .merge(crate::ui::router())
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::require))
        .with_state(state)
}

/// Refusals axum makes itself (a path that does not decode, a method the
/// route does not take) answered as JSON under `/api/`, like ours.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !api || json || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let status = response.status();
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_string(),
        _ => status.canonical_reason().unwrap_or("refused").to_lowercase(),
    };
    error(status, text)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn no_such_endpoint() -> Response {
    error(StatusCode::NOT_FOUND, "no such API endpoint (see the README's REST API section)".into())
}

async fn metrics(State(api): State<Api>) -> Response {
    match crate::metrics::render(&api).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The leader is ready when at least one executor is registered: before
/// that no query runs. A standby is ready as it is: it answers where the
/// leader is, and a drain must be able to count it as available.
async fn readyz(State(api): State<Api>) -> Response {
    if !api.leadership.is_leader()
        && let Some(leader) = api.leadership.leader()
    {
        return (StatusCode::OK, format!("ready: standby, the leader is at {}\n", leader.grpc)).into_response();
    }
    match crate::executors(&api.scheduler).await {
        Ok(e) if !e.is_empty() => (StatusCode::OK, format!("ready: {} executors\n", e.len())).into_response(),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: no executors registered\n").into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
