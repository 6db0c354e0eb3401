//! A Stockyard executor: Ballista's executor process with our extension
//! codecs. It registers with the leading scheduler, heartbeats, runs tasks
//! and serves its shuffle output to other executors over Arrow Flight. It
//! reaches the schedulers and other executors through a gateway that
//! follows the leader and sends the cluster's token.
//!
//! Both of its ports check the token: gRPC through [`front`] (Ballista's
//! own task server listens on loopback behind it), Arrow Flight in
//! [`flight`].

mod announce;
pub mod engine;
pub mod flight;
pub mod front;
pub mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use stockyard_mongo::MongoSource;
use stockyard_plan::{LogicalCodec, PhysicalCodec};

/// Where an executor listens and which scheduler it serves.
#[derive(Clone)]
pub struct ExecutorSettings {
    /// Schedulers (`HOST:PORT`, gRPC); the executor serves whichever leads.
    pub schedulers: Vec<String>,
    /// The cluster's token, sent on every call to the scheduler, and TLS
    /// to the schedulers when they serve it.
    pub access: stockyard_gateway::Access,
    /// Address the executor's servers bind to.
    pub bind_host: String,
    /// Host name other executors use to fetch this one's shuffle data.
    pub external_host: Option<String>,
    /// Arrow Flight port (shuffle data).
    pub port: u16,
    /// Executor gRPC port (tasks pushed by the scheduler).
    pub grpc_port: u16,
    /// Task slots; 0 means one per core.
    pub concurrent_tasks: usize,
    /// Directory for shuffle files; a temporary one when `None`.
    pub work_dir: Option<String>,
    /// How often the executor tells the scheduler it is alive.
    pub heartbeat_interval: Duration,
    /// How long to keep retrying the first connection to the scheduler.
    pub connect_timeout: Duration,
    /// MongoDB connection string this executor reads with (never sent).
    pub mongo_uri: String,
    /// MongoDB database.
    pub mongo_database: String,
    /// How long one round trip of a MongoDB read may wait.
    pub mongo_round_trip: Duration,
    /// Whether tasks may read and write this machine's files (file scans
    /// and COPY of local paths); off, such a task fails and says why.
    pub allow_local_files: bool,
    /// Port for `/metrics` and `/healthz` over HTTP; none when `None`.
    pub metrics_port: Option<u16>,
}

impl std::fmt::Debug for ExecutorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorSettings")
            .field("schedulers", &self.schedulers)
            .field("access", &self.access)
            .field("bind_host", &self.bind_host)
            .field("external_host", &self.external_host)
            .field("port", &self.port)
            .field("grpc_port", &self.grpc_port)
            .field("concurrent_tasks", &self.concurrent_tasks)
            .field("work_dir", &self.work_dir)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("connect_timeout", &self.connect_timeout)
            .field("mongo_uri", &stockyard_mask::uri(&self.mongo_uri))
            .field("mongo_database", &self.mongo_database)
            .field("allow_local_files", &self.allow_local_files)
            .field("metrics_port", &self.metrics_port)
            .finish()
    }
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        Self {
            schedulers: vec!["127.0.0.1:50050".into()],
            access: Default::default(),
            bind_host: "127.0.0.1".into(),
            external_host: None,
            port: 50051,
            grpc_port: 50052,
            concurrent_tasks: 0,
            work_dir: None,
            heartbeat_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            mongo_uri: "mongodb://127.0.0.1:27017".into(),
            mongo_database: "supply_chain".into(),
            mongo_round_trip: stockyard_mongo::source::ROUND_TRIP,
            allow_local_files: false,
            metrics_port: None,
        }
    }
}

/// Why an executor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// Ballista's executor failed.
    #[error("executor: {0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
    /// No scheduler could be reached or none leads.
    #[error("executor: {0}")]
    Scheduler(#[from] stockyard_gateway::GatewayError),
}

/// Runs an executor until it is told to stop (SIGTERM or Ctrl-C: it then
/// tells the scheduler, drains its running tasks and exits) or fails.
pub async fn run(settings: ExecutorSettings) -> Result<(), ExecutorError> {
    let concurrent_tasks = match settings.concurrent_tasks {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    // Ballista's own default work dir is deleted as soon as it is made; keep
    // ours for the life of the executor.
    let (work_dir, _temp) = match settings.work_dir {
        Some(dir) => (dir, None),
        None => {
            let temp = tempfile::Builder::new().prefix("stockyard-executor-").tempdir().map_err(|e| {
                ballista_core::error::BallistaError::Configuration(format!("cannot create a work dir: {e}"))
            })?;
            (temp.path().display().to_string(), Some(temp))
        }
    };
    let cannot = |port: u16, what: &str, e: &dyn std::fmt::Display| {
        ballista_core::error::BallistaError::Configuration(format!(
            "cannot listen on {}:{port} for {what}: {e}",
            settings.bind_host
        ))
    };
    // Ballista binds the Flight port in a background task and, if it is
    // taken, stops quietly with status 0: say which port it is instead.
    std::net::TcpListener::bind((settings.bind_host.as_str(), settings.port))
        .map_err(|e| cannot(settings.port, "Arrow Flight", &e))?;
    let flight_addr: std::net::SocketAddr = format!("{}:{}", settings.bind_host, settings.port)
        .parse()
        .or_else(|_| format!("[{}]:{}", settings.bind_host, settings.port).parse())
        .map_err(|e| cannot(settings.port, "Arrow Flight", &e))?;
    let front = tokio::net::TcpListener::bind((settings.bind_host.as_str(), settings.grpc_port))
        .await
        .map_err(|e| cannot(settings.grpc_port, "executor gRPC", &e))?;
    // Ballista's task server: on loopback, reached only through the front.
    let inner = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| cannot(0, "the executor's task server on 127.0.0.1", &e))?;
    let token = settings.access.token.clone();
    front::serve(front, inner, token.as_deref());
    let metrics = Arc::new(metrics::ExecutorMetrics::default());
    if let Some(port) = settings.metrics_port {
        serve_metrics(&settings.bind_host, port, metrics.clone()).await?;
    }
    let gateway = stockyard_gateway::Gateway::start(settings.schedulers.clone(), settings.access.clone()).await?;
    gateway.rewrite_calls(announce::public_grpc_port(settings.grpc_port));
    let leader = gateway.leader(settings.connect_timeout).await?;
    tracing::info!(%leader, "found the leading scheduler");
    let dialer = gateway.dialer();
    // With a token, shuffle reads from other executors go through the
    // gateway too, which sends it; without one they go straight there.
    let config_producer: Option<ballista_core::ConfigProducer> = token.is_some().then(|| {
        use ballista_core::extension::SessionConfigExt;
        let dialer = dialer.clone();
        let producer: ballista_core::ConfigProducer = Arc::new(move || {
            datafusion::prelude::SessionConfig::new_with_ballista()
                .with_ballista_override_create_grpc_client_endpoint(dialer.clone())
        });
        producer
    });
    let mongo = Arc::new(
        MongoSource::new(settings.mongo_uri, settings.mongo_database).with_round_trip(settings.mongo_round_trip),
    );
    let config = ExecutorProcessConfig {
        bind_host: "127.0.0.1".into(),
        external_host: settings.external_host,
        port: settings.port,
        grpc_port: inner.port(),
        override_arrow_flight_service: Some(flight::provider(flight_addr, token)),
        override_config_producer: config_producer,
        scheduler_host: gateway.addr().ip().to_string(),
        scheduler_port: gateway.addr().port(),
        scheduler_connect_timeout_seconds: settings.connect_timeout.as_secs().clamp(1, u16::MAX as u64) as u16,
        concurrent_tasks,
        override_runtime_producer: Some(runtime_producer(work_dir.clone())),
        work_dir: Some(work_dir),
        executor_heartbeat_interval_seconds: settings.heartbeat_interval.as_secs().max(1),
        // Shuffle files of finished jobs are removed after a day, checked hourly.
        job_data_ttl_seconds: 24 * 3600,
        job_data_clean_up_interval_seconds: 3600,
        override_logical_codec: Some(Arc::new(LogicalCodec::new(Some(mongo.clone())))),
        override_physical_codec: Some(Arc::new(PhysicalCodec::new(Some(mongo)))),
        override_execution_engine: Some(Arc::new(engine::TaskEngine {
            allow_local_files: settings.allow_local_files,
            metrics: metrics.clone(),
        })),
        // With push scheduling, Ballista sends a task's status to the
        // scheduler that launched it, by the name that scheduler gave. Every
        // connection goes to the gateway, which adds the token and TLS; the
        // name rides along as the origin, so the status reaches the
        // launcher if it is a member, and calls naming the gateway itself
        // reach the leader.
        override_create_grpc_client_endpoint: Some(dialer),
        ..Default::default()
    };
    let config = Arc::new(config);
    // Ballista 54 registers with the scheduler before its own gRPC server
    // listens, and the scheduler's call back can be refused: a failure right
    // at start is retried.
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        match drive(start_executor_process(config.clone())).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < START_ATTEMPTS && started.elapsed() < Duration::from_secs(10) => {
                tracing::warn!("executor failed to start (attempt {attempt} of {START_ATTEMPTS}): {e}; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Serves `/metrics` and `/healthz` on `host:port` in the background.
async fn serve_metrics(host: &str, port: u16, metrics: Arc<metrics::ExecutorMetrics>) -> Result<(), ExecutorError> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind((host, port)).await.map_err(|e| {
        ballista_core::error::BallistaError::Configuration(format!("cannot listen on {host}:{port} for metrics: {e}"))
    })?;
    let app = axum::Router::new().route("/healthz", get(|| async { "ok\n" })).route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()) }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the metrics server stopped: {e}");
        }
    });
    Ok(())
}

/// How often a failing start is tried.
const START_ATTEMPTS: u32 = 5;

/// Polls `process` at least every 200 ms as well as when it wakes. On
/// SIGTERM, Ballista 54's executor waits for its running tasks with a future
/// that never registers a waker (`TasksDrainedFuture`): unless something
/// polls it again it waits forever, and a stopped executor never exits.
async fn drive<F: Future>(process: F) -> F::Output {
    let mut process = std::pin::pin!(process);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            out = &mut process => return out,
            _ = tick.tick() => {}
        }
    }
}

/// Each task's runtime: spill files in the work directory (as Ballista's
/// own), and one [`stockyard_plan::store::Registry`] shared by all, so a
/// task reads an `s3://` or `hdfs://` archive with this executor's own
/// credentials.
fn runtime_producer(work_dir: String) -> ballista_core::RuntimeProducer {
    let registry = Arc::new(stockyard_plan::store::Registry::default());
    Arc::new(move |_| {
        datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_temp_file_path(work_dir.clone())
            .with_object_store_registry(registry.clone())
            .build_arc()
    })
}
