//! Streams on the scheduler: the gRPC calls behind `stockyard streams` and
//! the REST endpoints under `/api/streams`, both over one
//! [`stockyard_stream_runtime::Streams`]. Only the leader creates and
//! changes streams (it runs them); any scheduler lists them.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use stockyard_api::views::ErrorAnswer;
use stockyard_stream_runtime::manager::StreamsError;
use stockyard_stream_runtime::{SinkView, StreamControl, StreamInfo, Streams};
use tonic::Status;

use crate::api::{Answer, Api, Typed, fail};
use crate::leader::Leadership;

/// The pause between batches when a stream is caught up, unless asked.
pub const DEFAULT_TRIGGER: Duration = Duration::from_secs(1);

/// A stream as the job API carries it.
pub fn proto(s: &StreamInfo) -> stockyard_proto::StreamInfo {
    stockyard_proto::StreamInfo {
        name: s.name.clone(),
        state: s.state.to_string(),
        error: s.error.clone().unwrap_or_default(),
        sources: s.sources.clone(),
        sink: s.sink.clone(),
        trigger_ms: s.trigger_ms,
        lag: s.lag,
        watermark: s.watermark.clone().unwrap_or_default(),
        batches: s.batches,
        records: s.records,
        rows_in: s.rows_in,
        rows_out: s.rows_out,
        late_rows: s.late_rows,
        rejected_rows: s.rejected_rows,
        rejected_not_json: s.rejected.not_json,
        rejected_not_an_object: s.rejected.not_an_object,
        rejected_bad_event_time: s.rejected.bad_event_time,
        unreadable_values: s.unreadable_values,
        last_batch_ms: s.last_batch_ms,
    }
}

fn status(e: StreamsError) -> Status {
    match e {
        StreamsError::Invalid(_) => Status::invalid_argument(e.to_string()),
        StreamsError::Unknown(_) => Status::not_found(e.to_string()),
        StreamsError::Exists(_) => Status::already_exists(e.to_string()),
        StreamsError::State(_) => Status::unavailable(e.to_string()),
    }
}

fn http_status(e: StreamsError) -> (StatusCode, Json<Value>) {
    let s = status(e);
    fail(http_code(s.code()), s.message())
}

/// A trigger as the CLI and the API write it (`1s`, `500ms`).
fn trigger(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Ok(DEFAULT_TRIGGER);
    }
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("the trigger must be longer than 0s".into()),
        Err(e) => Err(format!("trigger '{text}' is not a duration ({e})")),
    }
}

/// One change asked through either port.
pub async fn change(
    streams: &Streams,
    leadership: &Leadership,
    name: &str,
    action: &str,
    sql: &str,
    trigger_text: &str,
) -> Result<Option<StreamInfo>, (tonic::Code, String)> {
    if let Some(why) = leadership.not_leading() {
        return Err((tonic::Code::Unavailable, why));
    }
    let result = if action == "create" {
        let trigger = trigger(trigger_text).map_err(|e| (tonic::Code::InvalidArgument, e))?;
        streams.create(name, sql, trigger).await.map(Some)
    } else {
        let control: StreamControl = action.parse().map_err(|e| (tonic::Code::InvalidArgument, e))?;
        streams.control(name, control).await
    };
    result.map_err(|e| {
        let s = status(e);
        (s.code(), s.message().to_string())
    })
}

/// `ListStreams`.
pub async fn list(streams: &Streams, name: &str) -> Result<Vec<stockyard_proto::StreamInfo>, Status> {
    let list = if name.is_empty() { streams.list().await } else { streams.get(name).await.map(|s| vec![s]) };
    Ok(list.map_err(status)?.iter().map(proto).collect())
}

fn view(s: &StreamInfo) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// Every stream with its state, progress and lag.
#[utoipa::path(get, path = "/api/streams", responses((status = 200, body = Vec<StreamInfo>), (status = 503, body = ErrorAnswer)))]
pub(crate) async fn all(State(api): State<Api>) -> Answer {
    let list = api.streams.list().await.map_err(http_status)?;
    Ok(Json(Value::Array(list.iter().map(view).collect())))
}

/// One stream.
#[utoipa::path(get, path = "/api/streams/{name}", params(("name" = String, Path, description = "stream name")),
    responses((status = 200, body = StreamInfo), (status = 404, body = ErrorAnswer), (status = 503, body = ErrorAnswer)))]
pub(crate) async fn one(State(api): State<Api>, Path(name): Path<String>) -> Answer {
    let s = api.streams.get(&name).await.map_err(http_status)?;
    Ok(Json(view(&s)))
}

/// `GET /api/streams/{name}/results`: what the stream's sink shows after
/// its last batch on this scheduler (open and recent final windows), or
/// the same shape with no windows before one ran.
#[utoipa::path(get, path = "/api/streams/{name}/results", params(("name" = String, Path, description = "stream name")),
    responses((status = 200, body = SinkView), (status = 404, body = ErrorAnswer), (status = 503, body = ErrorAnswer)))]
pub(crate) async fn results(State(api): State<Api>, Path(name): Path<String>) -> Typed<SinkView> {
    let results = api.streams.results(&name).await.map_err(http_status)?;
    Ok(Json(results.unwrap_or_else(|| SinkView::empty(&name))))
}

/// The body of `POST /api/streams`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct NewStream {
    /// The stream's name, unique.
    name: String,
    /// Its SQL file's text: source and sink tables, one `INSERT INTO … SELECT`.
    sql: String,
    /// The pause between batches when caught up (`1s`, `500ms`).
    #[serde(default)]
    trigger: String,
}

fn http_code(code: tonic::Code) -> StatusCode {
    match code {
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Creates and starts a stream.
#[utoipa::path(post, path = "/api/streams", request_body = NewStream, responses((status = 200, body = StreamInfo),
    (status = 400, body = ErrorAnswer), (status = 409, body = ErrorAnswer), (status = 503, body = ErrorAnswer)))]
pub(crate) async fn create(State(api): State<Api>, crate::api::Body(req): crate::api::Body<NewStream>) -> Answer {
    let made = change(&api.streams, &api.leadership, &req.name, "create", &req.sql, &req.trigger)
        .await
        .map_err(|(code, m)| fail(http_code(code), m))?;
    Ok(Json(made.as_ref().map(view).unwrap_or(Value::Null)))
}

/// Pauses, resumes, stops or drops a stream.
#[utoipa::path(post, path = "/api/streams/{name}/{action}", params(("name" = String, Path, description = "stream name"),
    ("action" = String, Path, description = "pause, resume, stop or drop")),
    responses((status = 200, body = Object), (status = 400, body = ErrorAnswer), (status = 404, body = ErrorAnswer),
    (status = 409, body = ErrorAnswer), (status = 503, body = ErrorAnswer)))]
pub(crate) async fn control(State(api): State<Api>, Path((name, action)): Path<(String, String)>) -> Answer {
    if action == "create" {
        return Err(fail(StatusCode::BAD_REQUEST, "create a stream with POST /api/streams"));
    }
    let changed = change(&api.streams, &api.leadership, &name, &action, "", "")
        .await
        .map_err(|(code, m)| fail(http_code(code), m))?;
    Ok(Json(match changed {
        Some(s) => view(&s),
        None => serde_json::json!({ "name": name, "dropped": true }),
    }))
}

/// Runs the streams while this scheduler leads.
pub fn start(streams: Arc<Streams>, leadership: Arc<Leadership>) {
    tokio::spawn(streams.run(move || leadership.is_leader()));
}
