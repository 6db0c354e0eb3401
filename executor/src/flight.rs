//! The executor's Arrow Flight port: Ballista's shuffle service behind the
//! cluster's token. Other executors fetch shuffle partitions here and
//! clients fetch results, all through their gateways, which send the
//! token. A fetch names its job id, which Ballista joins onto the work
//! directory, so it must be a plain name.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo, SchemaResult, Ticket,
};
use ballista_core::error::BallistaError;
use ballista_core::serde::decode_protobuf;
use ballista_core::serde::scheduler::Action as BallistaAction;
use ballista_executor::ArrowFlightServerProvider;
use ballista_executor::flight_service::BallistaFlightService;
use tonic::{Request, Response, Status, Streaming};

/// Ballista's largest gRPC message, kept for the shuffle stream.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Ballista's shuffle service with job ids checked.
struct CheckedFlight {
    inner: BallistaFlightService,
}

/// Refuses a fetch whose job id is not a plain name.
fn check_fetch(bytes: &[u8]) -> Result<(), Status> {
    let action = decode_protobuf(bytes).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let BallistaAction::FetchPartition { job_id, .. } = &action;
    stockyard_plan::names::path_part("job id", job_id.as_str()).map_err(|e| Status::invalid_argument(e.to_string()))
}

type Inner = BallistaFlightService;

#[tonic::async_trait]
impl FlightService for CheckedFlight {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        r: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.inner.handshake(r).await
    }
    async fn list_flights(&self, r: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.inner.list_flights(r).await
    }
    async fn get_flight_info(&self, r: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.inner.get_flight_info(r).await
    }
    async fn poll_flight_info(&self, r: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        self.inner.poll_flight_info(r).await
    }
    async fn get_schema(&self, r: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        self.inner.get_schema(r).await
    }
    async fn do_get(&self, r: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        check_fetch(&r.get_ref().ticket)?;
        self.inner.do_get(r).await
    }
    async fn do_put(&self, r: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        self.inner.do_put(r).await
    }
    async fn do_action(&self, r: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        check_fetch(&r.get_ref().body)?;
        self.inner.do_action(r).await
    }
    async fn list_actions(&self, r: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        self.inner.list_actions(r).await
    }
    async fn do_exchange(&self, r: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.inner.do_exchange(r).await
    }
}

/// Ballista's hook for the Flight server: ours, on `bind` (Ballista's own
/// bind address is loopback only, see `front`), checking `token`.
pub fn provider(bind: SocketAddr, token: Option<String>) -> Arc<ArrowFlightServerProvider> {
    let bearer: Option<Arc<str>> = token.map(|t| format!("Bearer {t}").into());
    Arc::new(move |work_dir, _ballista_addr, mut shutdown, config| {
        let bearer = bearer.clone();
        let service = CheckedFlight { inner: BallistaFlightService::new(work_dir) };
        let check = move |request: Request<()>| -> Result<Request<()>, Status> {
            if let Some(bearer) = &bearer {
                let given = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
                stockyard_gateway::bearer::check(given, bearer, "executor").map_err(Status::unauthenticated)?;
            }
            Ok(request)
        };
        let server = FlightServiceServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let server = tonic::service::interceptor::InterceptedService::new(server, check);
        tokio::spawn(async move {
            tracing::info!(%bind, "Arrow Flight listening");
            ballista_core::utils::create_grpc_server(&config)
                .add_service(server)
                .serve_with_shutdown(bind, shutdown.recv())
                .await
                .map_err(BallistaError::TonicError)
        })
    })
}
