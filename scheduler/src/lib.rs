//! The Stockyard scheduler: Ballista's scheduler with our extension codecs,
//! serving Ballista's gRPC API and Stockyard's job API on one port, and
//! health and JSON endpoints on an HTTP port.

mod api;
mod auth;
mod ballista;
mod counters;
mod flight_sql;
mod grpc;
mod guard;
mod http;
mod job_view;
pub mod leader;
mod metrics;
mod openapi;
pub mod runner;
pub mod schedules;
mod services;
mod standby;
pub mod streams;
pub mod tls;
mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::create_scheduler;
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use runner::{JobRunner, JobTargets};
use schedules::Schedules;
use stockyard_mongo::{MongoCatalog, MongoSource};
use stockyard_plan::{LogicalCodec, PhysicalCodec};
use stockyard_proto::stockyard_server::StockyardServer;
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;

pub use ballista::{executors, jobs};

/// How often the list of collections is refreshed.
const TABLES_REFRESH: Duration = Duration::from_secs(15);

/// How long an inferred collection schema is reused.
const CATALOG_TTL: Duration = Duration::from_secs(60);

/// The Ballista scheduler type every Stockyard scheduler runs.
pub type Scheduler = SchedulerServer<LogicalPlanNode, PhysicalPlanNode>;

/// How a scheduler listens and when it gives up on an executor.
#[derive(Clone)]
pub struct SchedulerSettings {
    /// Address both listeners bind to.
    pub bind_host: String,
    /// Host name executors and clients are told to use for this scheduler.
    pub external_host: String,
    /// gRPC port (Ballista's API and Stockyard's job API).
    pub port: u16,
    /// HTTP port (`/healthz`, `/readyz`, `/api/…`).
    pub http_port: u16,
    /// An executor silent for this long is declared dead and its tasks rerun.
    pub executor_timeout: Duration,
    /// The MongoDB database whose collections are tables.
    pub mongo: MongoSettings,
    /// The Redis the KPI job writes to (may hold a password: never shown).
    pub redis_url: String,
    /// Where the archive job writes when a run names no destination.
    pub archive_dest: String,
    /// More places a run may name as its destination; a run's `dest` must
    /// lie under `archive_dest` or one of these.
    pub archive_dests: Vec<String>,
    /// The state store: `memory`, `file:DIR` or `etcd://HOST:PORT,…`.
    pub state: String,
    /// How long the run history is kept.
    pub history_retention: Duration,
    /// Whether a new state store gets the `kpi` (every minute) and
    /// `archive` (every 5 minutes) schedules.
    pub default_schedules: bool,
    /// Whether `sql` jobs may name this machine's files (`CREATE EXTERNAL
    /// TABLE`, `COPY`); off, they are refused.
    pub allow_local_files: bool,
    /// The bytes of JSON a `sql` run keeps for the UI at most (its first
    /// 1,000 rows); a run whose rows take more fails, as Spark's
    /// `spark.driver.maxResultSize` does.
    pub max_result_bytes: usize,
    /// Host names the HTTP port answers to besides IP literals, loopback
    /// names and `external_host` (DNS rebinding is refused).
    pub allowed_hosts: Vec<String>,
    /// Token both ports require (gRPC calls, API, metrics, UI); open when
    /// `None`.
    pub token: Option<String>,
    /// Certificate and key: both ports then speak only TLS.
    pub tls: Option<tls::TlsFiles>,
    /// How this scheduler's own jobs check its certificate: the
    /// authority (default: the certificate itself) and the name in it
    /// (default: the bind host).
    pub tls_client: Option<stockyard_gateway::ClientTls>,
}

impl std::fmt::Debug for SchedulerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerSettings")
            .field("bind_host", &self.bind_host)
            .field("external_host", &self.external_host)
            .field("port", &self.port)
            .field("http_port", &self.http_port)
            .field("executor_timeout", &self.executor_timeout)
            .field("mongo", &self.mongo)
            .field("redis_url", &stockyard_mask::uri(&self.redis_url))
            .field("archive_dest", &self.archive_dest)
            .field("archive_dests", &self.archive_dests)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("state", &stockyard_mask::uri(&self.state))
            .field("history_retention", &self.history_retention)
            .field("default_schedules", &self.default_schedules)
            .field("allow_local_files", &self.allow_local_files)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("token", &self.token.as_ref().map(|_| stockyard_mask::MASK))
            .field("tls", &self.tls)
            .field("tls_client", &self.tls_client)
            .finish()
    }
}

/// Where MongoDB tables come from.
#[derive(Clone)]
pub struct MongoSettings {
    /// Connection string (may hold a password: never logged or sent).
    pub uri: String,
    /// Database whose collections become tables.
    pub database: String,
    /// Documents sampled to infer a collection's schema.
    pub sample_size: usize,
    /// How long one round trip of a read may wait (a stalled MongoDB fails
    /// a query after this instead of hanging it).
    pub round_trip: Duration,
}

impl std::fmt::Debug for MongoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoSettings")
            .field("uri", &stockyard_mask::uri(&self.uri))
            .field("database", &self.database)
            .field("sample_size", &self.sample_size)
            .field("round_trip", &self.round_trip)
            .finish()
    }
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self {
            uri: "mongodb://127.0.0.1:27017".into(),
            database: "supply_chain".into(),
            sample_size: stockyard_mongo::catalog::DEFAULT_SAMPLE_SIZE,
            round_trip: stockyard_mongo::source::ROUND_TRIP,
        }
    }
}

impl MongoSettings {
    /// The source these settings name.
    pub fn source(&self) -> Arc<MongoSource> {
        Arc::new(MongoSource::new(self.uri.clone(), self.database.clone()).with_round_trip(self.round_trip))
    }
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            bind_host: "127.0.0.1".into(),
            external_host: "127.0.0.1".into(),
            port: 50050,
            http_port: 8080,
            executor_timeout: Duration::from_secs(30),
            mongo: MongoSettings::default(),
            redis_url: "redis://127.0.0.1:6379".into(),
            archive_dest: DEFAULT_ARCHIVE_DEST.into(),
            archive_dests: Vec::new(),
            allowed_hosts: Vec::new(),
            state: DEFAULT_STATE.into(),
            history_retention: Duration::from_secs(7 * 24 * 3600),
            default_schedules: true,
            allow_local_files: false,
            max_result_bytes: runner::result::MAX_RESULT_BYTES,
            token: None,
            tls: None,
            tls_client: None,
        }
    }
}

/// The archive's default destination (cli.md), under the scheduler's directory.
pub const DEFAULT_ARCHIVE_DEST: &str = "data/archive";

/// The state store by default (cli.md): files under the scheduler's
/// directory.
pub const DEFAULT_STATE: &str = "file:data/state";

/// Why a scheduler could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A listener could not be opened.
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        /// `host:port` the listener was to bind.
        addr: String,
        /// Which server it was for: `gRPC` or `HTTP`.
        what: &'static str,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// Ballista refused to start.
    #[error("scheduler: {0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
    /// A server stopped with an error.
    #[error("{what} server failed: {message}")]
    Serve {
        /// Which server stopped: `gRPC` or `HTTP`.
        what: &'static str,
        /// The server's error.
        message: String,
    },
    /// The state store cannot be opened.
    #[error("state store: {0}")]
    State(#[from] stockyard_state::StateError),
    /// The gateway the scheduler's own jobs connect through.
    #[error("{0}")]
    Gateway(#[from] stockyard_gateway::GatewayError),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// A bound, not yet serving scheduler; [`BoundScheduler::serve`] runs it.
pub struct BoundScheduler {
    scheduler: Scheduler,
    catalog: Arc<MongoCatalog>,
    runner: Arc<JobRunner>,
    schedules: Arc<Schedules>,
    leadership: Arc<leader::Leadership>,
    streams: Arc<stockyard_stream_runtime::Streams>,
    default_schedules: bool,
    executor_timeout: Duration,
    /// Ballista's job store, for the stages and tasks of any job.
    jobs: Arc<dyn ballista_scheduler::cluster::JobState>,
    token: Option<String>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    redis_url: String,
    grpc: TcpListener,
    http: TcpListener,
    allowed_hosts: guard::AllowedHosts,
}

impl BoundScheduler {
    /// Builds the Ballista scheduler and opens both listeners, so that a
    /// taken port is reported before anything runs.
    pub async fn bind(settings: &SchedulerSettings) -> Result<Self, SchedulerError> {
        let grpc = listen(&settings.bind_host, settings.port, "gRPC").await?;
        let http = listen(&settings.bind_host, settings.http_port, "HTTP").await?;
        let port = grpc.local_addr().map(|a| a.port()).unwrap_or(settings.port);
        let mut config = SchedulerConfig {
            external_host: settings.external_host.clone(),
            bind_host: settings.bind_host.clone(),
            bind_port: port,
            // Dead executors are removed by our own watch (see `standby`):
            // Ballista's would stop executors that serve a newer leader.
            executor_timeout_seconds: standby::BALLISTA_TIMEOUT.as_secs(),
            expire_dead_executor_interval_seconds: 1,
            ..Default::default()
        };
        stockyard_mask::register_uri(&settings.redis_url);
        if let Some(t) = &settings.token {
            stockyard_mask::register(t);
        }
        let source = settings.mongo.source();
        // History and archive tables are planned here, over this
        // scheduler's archive destination.
        let archive = runner::params::absolute_dest(&settings.archive_dest);
        config.override_logical_codec = Some(Arc::new(LogicalCodec::new(Some(source.clone())).with_archive(archive)));
        config.override_physical_codec = Some(Arc::new(PhysicalCodec::new(Some(source.clone()))));
        // Ballista's sessions, plus our rule that keeps a join's output off
        // the build side of the next join (a broadcast of the fact stream).
        config.override_session_builder = Some(Arc::new(|session| {
            let state = ballista_core::utils::default_session_builder(session)?;
            Ok(stockyard_plan::build_side::install(state))
        }));
        let catalog = Arc::new(MongoCatalog::new(source.clone(), settings.mongo.sample_size, CATALOG_TTL));
        let own_host = match settings.bind_host.as_str() {
            "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
            host => host,
        };
        let store = stockyard_state::open(&settings.state).await?;
        tracing::info!(state = %store.describe(), "state store");
        let http_port = http.local_addr().map(|a| a.port()).unwrap_or(settings.http_port);
        let me = leader::Member {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            grpc: format!("{}:{port}", settings.external_host),
            http: format!("{}:{http_port}", settings.external_host),
        };
        tracing::info!(id = %me.id, "scheduler instance");
        let tls = settings.tls.as_ref().map(tls::acceptor).transpose().map_err(SchedulerError::Tls)?;
        let own_tls = match (&settings.tls, &settings.tls_client) {
            (None, _) => None,
            (Some(_), Some(client)) => Some(client.clone()),
            (Some(files), None) => Some(stockyard_gateway::ClientTls {
                ca: std::fs::read(&files.cert)
                    .map_err(|e| SchedulerError::Tls(format!("{}: {e}", files.cert.display())))?,
                domain: None,
            }),
        };
        // The scheduler's own jobs are Ballista clients too: with a token
        // or TLS they go through a gateway that adds them, like any client;
        // with neither, straight to this scheduler. With a token, calls to
        // the executors (tasks, cancels, clean-up) go through it as well.
        let own = format!("{own_host}:{port}");
        let own = match (&settings.token, own_tls) {
            (None, None) => stockyard_plan::session::Route::direct(own),
            (token, tls) => {
                let access = stockyard_gateway::Access { token: token.clone(), tls };
                let gateway = stockyard_gateway::Gateway::fixed(own, access).await?;
                if token.is_some() {
                    config.override_create_grpc_client_endpoint = Some(gateway.dialer());
                }
                stockyard_plan::session::Route { scheduler: gateway.addr().to_string(), dialer: Some(gateway.dialer()) }
            }
        };
        let targets = JobTargets {
            scheduler: own,
            mongo: source,
            catalog: catalog.clone(),
            allow_local_files: settings.allow_local_files,
            max_result_bytes: settings.max_result_bytes,
            redis_url: settings.redis_url.clone(),
            archive_dest: runner::params::absolute_dest(&settings.archive_dest),
            allowed_dests: std::iter::once(&settings.archive_dest)
                .chain(&settings.archive_dests)
                .map(|d| runner::params::absolute_dest(d))
                .collect(),
        };
        let runner = Arc::new(JobRunner::new(targets, store.clone(), settings.history_retention, me.id.clone()));
        let schedules = Schedules::new(store.clone(), runner.clone());
        // Streams may join the MongoDB collections, read once and refreshed.
        let collections: Arc<dyn datafusion::catalog::SchemaProvider> =
            Arc::new(stockyard_mongo::CatalogSchema::new(catalog.clone(), stockyard_mongo::ScanOptions::default()));
        let streams = stockyard_stream_runtime::Streams::new(
            store.clone(),
            stockyard_stream_runtime::Environment {
                local_files: settings.allow_local_files,
                tables: Some(collections),
            },
        );
        let leadership = leader::Leadership::start(store, me);
        let config = Arc::new(config);
        let cluster = BallistaCluster::new_from_config(&config).await?;
        let jobs = cluster.job_state();
        let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config).await?;
        runner.set_ballista(scheduler.clone());
        Ok(Self {
            scheduler,
            catalog,
            runner,
            schedules,
            leadership,
            streams,
            default_schedules: settings.default_schedules,
            executor_timeout: settings.executor_timeout,
            jobs,
            token: settings.token.clone(),
            tls,
            redis_url: settings.redis_url.clone(),
            grpc,
            http,
            allowed_hosts: guard::AllowedHosts::new(&settings.external_host, &settings.allowed_hosts),
        })
    }

    /// The gRPC address actually bound (useful with port 0).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("bound listener has an address")
    }

    /// A handle on the scheduler's state, for in-process callers.
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler.clone()
    }

    /// The HTTP address actually bound.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener has an address")
    }

    /// Serves until `shutdown` completes or a server fails.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), SchedulerError> {
        let Self {
            scheduler,
            catalog,
            runner,
            schedules,
            leadership,
            streams,
            default_schedules,
            executor_timeout,
            jobs,
            token,
            tls,
            redis_url,
            grpc,
            http,
            allowed_hosts,
        } = self;
        let catalog_for_refresh = catalog.clone();
        let scheduler_for_revive = scheduler.clone();
        let api = api::Api {
            scheduler: scheduler.clone(),
            jobs,
            runner: runner.clone(),
            schedules: schedules.clone(),
            catalog: catalog.clone(),
            redis_url,
            token: token.clone(),
            tls: tls.is_some(),
            leadership: leadership.clone(),
            streams: streams.clone(),
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let max = 64 * 1024 * 1024;
        let flight_catalog = catalog.clone();
        let mut routes = RoutesBuilder::default();
        routes
            .add_service(
                SchedulerGrpcServer::new(scheduler.clone())
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max),
            )
            .add_service(StockyardServer::new(grpc::JobApi::new(
                scheduler.clone(),
                catalog,
                runner.clone(),
                schedules.clone(),
                leadership.clone(),
                streams.clone(),
            )))
            .add_service(
                arrow_flight::flight_service_server::FlightServiceServer::new(flight_sql::FlightSql::new(
                    runner.clone(),
                    scheduler.clone(),
                    leadership.clone(),
                    flight_catalog,
                ))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            );
        let token: Option<Arc<str>> = token.map(Into::into);
        let grpc_routes =
            routes.routes().into_axum_router().layer(axum::middleware::from_fn_with_state(token, auth::require_grpc));
        // Served through axum with the peer address attached: Ballista's
        // handlers read it as `ConnectInfo<SocketAddr>`.
        let grpc_app = grpc_routes.into_make_service_with_connect_info::<SocketAddr>();
        let http_app = http::router(api).layer(axum::middleware::from_fn_with_state(allowed_hosts, guard::guard));
        let (grpc_stop, http_stop) = (stopped(stop_rx.clone()), stopped(stop_rx));
        let grpc_server = async {
            match &tls {
                // `tap_io` makes axum attach the peer address for any listener.
                Some(acceptor) => {
                    let listener = tls::TlsListener::new(grpc, acceptor.clone()).tap_io(|_| ());
                    axum::serve(listener, grpc_app).with_graceful_shutdown(grpc_stop).await
                }
                None => axum::serve(grpc.tap_io(no_delay), grpc_app).with_graceful_shutdown(grpc_stop).await,
            }
        };
        let http_server = async {
            match &tls {
                Some(acceptor) => {
                    let listener = tls::TlsListener::new(http, acceptor.clone());
                    axum::serve(listener, http_app).with_graceful_shutdown(http_stop).await
                }
                None => axum::serve(http.tap_io(no_delay), http_app).with_graceful_shutdown(http_stop).await,
            }
        };
        let resigning = leadership.clone();
        let stopping = runner.clone();
        let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            shutdown.await;
            // Its runs stop (recorded as interrupted, for the next leader
            // to rerun) before the leadership is let go.
            stopping.stop_all(Duration::from_secs(5)).await;
            resigning.resign().await;
            let _ = stop_tx.send(true);
            // Connections that stay open (a client waiting on a long job,
            // a run in flight) must not keep a stopped scheduler alive.
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            let _ = gone_tx.send(());
        });
        tokio::spawn(refresh_tables(catalog_for_refresh));
        tokio::spawn(revive_offers(scheduler_for_revive));
        tokio::spawn(standby::watch_executors(scheduler.clone(), leadership.clone(), executor_timeout));
        // Defaults first when the store answers at once, so a client right
        // after start sees them; otherwise the schedule loop keeps trying.
        let seeded = !default_schedules
            || tokio::time::timeout(Duration::from_secs(3), schedules.seed_defaults()).await.is_ok_and(|r| r.is_ok());
        streams::start(streams, leadership.clone());
        tokio::spawn(schedules.run(!seeded, leadership));
        let (g, h) = tokio::select! {
            both = async { tokio::join!(grpc_server, http_server) } => both,
            _ = gone_rx => {
                tracing::warn!("connections still open {}s after the stop signal: stopping anyway", SHUTDOWN_GRACE.as_secs());
                return Ok(());
            }
        };
        g.map_err(|e| SchedulerError::Serve { what: "gRPC", message: e.to_string() })?;
        h.map_err(|e| SchedulerError::Serve { what: "HTTP", message: e.to_string() })?;
        Ok(())
    }
}

/// How long a stopping scheduler waits for its connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Sends small answers at once: with Nagle's algorithm on, a gRPC answer
/// written in pieces waits for the client's delayed ACK, 40 ms a call.
fn no_delay(tcp: &mut tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
}

/// Ballista 54 resets the tasks of an executor it declares lost but offers
/// them again only on the next task update or registration; with nothing
/// else running, a job would wait forever. While jobs run, an empty status
/// update from a live executor every second makes it offer them.
async fn revive_offers(scheduler: Scheduler) {
    use ballista_core::serde::protobuf::UpdateTaskStatusParams;
    use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpc;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if scheduler.running_job_number() == 0 {
            continue;
        }
        let Ok(executors) = ballista::executors(&scheduler).await else { continue };
        if let Some(live) = executors.into_iter().find(|e| e.state == "active") {
            let nudge = UpdateTaskStatusParams { executor_id: live.id, task_status: Vec::new() };
            let _ = SchedulerGrpc::update_task_status(&scheduler, tonic::Request::new(nudge)).await;
        }
    }
}

/// Keeps the list of MongoDB collections fresh in the background.
async fn refresh_tables(catalog: Arc<MongoCatalog>) {
    let mut reported = false;
    loop {
        match catalog.tables().await {
            Ok(_) => reported = false,
            Err(e) if !reported => {
                tracing::warn!("MongoDB collections unavailable (retrying every {}s): {e}", TABLES_REFRESH.as_secs());
                reported = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(TABLES_REFRESH).await;
    }
}

async fn listen(host: &str, port: u16, what: &'static str) -> Result<TcpListener, SchedulerError> {
    let addr = format!("{host}:{port}");
    TcpListener::bind(&addr).await.map_err(|source| SchedulerError::Bind { addr, what, source })
}
