//! The executor's public gRPC port.
//!
//! Ballista's executor server takes any call: `LaunchTask` with any plan,
//! `CancelTasks`, `RemoveJobData` of any job id. It cannot check a caller,
//! so it listens on a loopback port of its own and this front takes the
//! executor's advertised port: it lets a call through only with the
//! cluster's token (when one is set) and a job id that is a plain name,
//! then hands it to Ballista's server unchanged.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response, header::AUTHORIZATION};
use axum::serve::ListenerExt;
use ballista_core::serde::protobuf::RemoveJobDataParams;
use prost::Message;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;

/// The gRPC path of the call that removes a job's shuffle directory.
const REMOVE_JOB_DATA: &str = "/ballista.protobuf.ExecutorGrpc/RemoveJobData";

/// The largest `RemoveJobData` request read whole to check its job id.
const SMALL_CALL: usize = 64 * 1024;

#[derive(Clone)]
struct Front {
    /// `Bearer <token>`, when the cluster has one.
    bearer: Option<Arc<str>>,
    /// Ballista's executor server on loopback.
    inner: Channel,
}

/// Serves the front on `listener` in the background, in front of
/// Ballista's executor server at `inner`.
pub fn serve(listener: TcpListener, inner: SocketAddr, token: Option<&str>) {
    let channel = Endpoint::from_shared(format!("http://{inner}"))
        .expect("a socket address is a URI")
        .tcp_nodelay(true)
        .connect_lazy();
    let front = Front { bearer: token.map(|t| format!("Bearer {t}").into()), inner: channel };
    let app = axum::Router::new().fallback(forward).with_state(front);
    tokio::spawn(async move {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the executor's gRPC port stopped: {e}");
        }
    });
}

async fn forward(State(front): State<Front>, request: Request<Body>) -> Response<Body> {
    if let Some(bearer) = &front.bearer {
        let given = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        if let Err(why) = stockyard_gateway::bearer::check(given, bearer, "executor") {
            return tonic::Status::unauthenticated(why).into_http();
        }
    }
    let request = if request.uri().path() == REMOVE_JOB_DATA {
        match checked_removal(request).await {
            Ok(request) => request,
            Err(status) => return status.into_http(),
        }
    } else {
        request
    };
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, tonic::body::Body::new(body));
    match front.inner.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => tonic::Status::unavailable(format!("the executor's task server is unreachable: {e}")).into_http(),
    }
}

/// Reads a `RemoveJobData` call whole and lets it on only when its job id
/// is a plain name: Ballista joins it onto the work directory.
async fn checked_removal(request: Request<Body>) -> Result<Request<Body>, tonic::Status> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, SMALL_CALL)
        .await
        .map_err(|e| tonic::Status::invalid_argument(format!("cannot read the call: {e}")))?;
    // One uncompressed gRPC message: a flag byte, a 4-byte length, the message.
    let message = match bytes.first() {
        Some(0) if bytes.len() >= 5 => &bytes[5..],
        _ => return Err(tonic::Status::invalid_argument("RemoveJobData must be one uncompressed message")),
    };
    let params = RemoveJobDataParams::decode(message).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
    stockyard_plan::names::path_part("job id", &params.job_id)
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
