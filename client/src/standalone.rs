//! A scheduler and N executors in one process: `stockyard standalone` and
//! `stockyard sql --standalone`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stockyard_executor::ExecutorSettings;
use stockyard_scheduler::{BoundScheduler, MongoSettings, SchedulerSettings};

use crate::Failure;
use crate::cli::{HostPort, Remote, Schedulers};

/// A running in-process cluster.
pub struct Cluster {
    /// Where clients reach the scheduler's gRPC API.
    pub scheduler: HostPort,
    /// The scheduler's HTTP address.
    pub http: SocketAddr,
}

impl Cluster {
    /// How a client in this process reaches it (no token: it is ours).
    pub fn remote(&self) -> Remote {
        Remote::new(Schedulers(vec![self.scheduler.clone()]), Default::default())
    }
}

/// What to start.
pub struct StandaloneSpec {
    pub bind_host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// 0 picks a free port.
    pub http_port: u16,
    pub executors: usize,
    pub concurrent_tasks: usize,
    pub mongo: MongoSettings,
    pub redis_url: String,
    /// State store and whether it gets the default schedules.
    pub state: String,
    pub default_schedules: bool,
    /// Whether SQL may use this machine's files.
    pub allow_local_files: bool,
    /// Token the HTTP port requires.
    pub token: Option<String>,
}

fn free_port(host: &str) -> Result<u16, Failure> {
    std::net::TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Failure::new(format!("cannot find a free port on {host}: {e}")))
}

/// Starts the scheduler and the executors on this runtime and returns once
/// every executor has registered.
pub async fn start(spec: StandaloneSpec) -> Result<Cluster, Failure> {
    let settings = SchedulerSettings {
        bind_host: spec.bind_host.clone(),
        external_host: spec.bind_host.clone(),
        port: spec.port,
        http_port: spec.http_port,
        mongo: spec.mongo.clone(),
        redis_url: spec.redis_url.clone(),
        state: spec.state.clone(),
        default_schedules: spec.default_schedules,
        allow_local_files: spec.allow_local_files,
        token: spec.token.clone(),
        archive_dest: std::env::var("STOCKYARD_ARCHIVE_DEST")
            .unwrap_or_else(|_| stockyard_scheduler::DEFAULT_ARCHIVE_DEST.into()),
        archive_dests: std::env::var("STOCKYARD_ARCHIVE_DESTS")
            .map(|v| v.split(',').filter(|d| !d.is_empty()).map(str::to_string).collect())
            .unwrap_or_default(),
        ..Default::default()
    };
    let bound = BoundScheduler::bind(&settings).await.map_err(Failure::from_error)?;
    let grpc = bound.grpc_addr();
    let http = bound.http_addr();
    let scheduler = bound.scheduler();
    tokio::spawn(async move {
        if let Err(e) = bound.serve(std::future::pending()).await {
            tracing::error!("standalone scheduler stopped: {e}");
        }
    });
    for _ in 0..spec.executors {
        let settings = ExecutorSettings {
            schedulers: vec![format!("{}:{}", spec.bind_host, grpc.port())],
            access: stockyard_gateway::Access { token: spec.token.clone(), tls: None },
            bind_host: spec.bind_host.clone(),
            port: free_port(&spec.bind_host)?,
            grpc_port: free_port(&spec.bind_host)?,
            concurrent_tasks: spec.concurrent_tasks,
            mongo_uri: spec.mongo.uri.clone(),
            mongo_database: spec.mongo.database.clone(),
            mongo_round_trip: spec.mongo.round_trip,
            allow_local_files: spec.allow_local_files,
            ..Default::default()
        };
        tokio::spawn(async move {
            if let Err(e) = stockyard_executor::run(settings).await {
                tracing::error!("standalone executor stopped: {e}");
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let registered = stockyard_scheduler::executors(&scheduler).await.map(|e| e.len()).unwrap_or(0);
        if registered >= spec.executors {
            break;
        }
        if Instant::now() > deadline {
            return Err(Failure::new(format!(
                "only {registered} of {} executors registered within 60 s",
                spec.executors
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Cluster { scheduler: HostPort { host: spec.bind_host, port: grpc.port() }, http })
}
