//! `stockyard`: one binary for every role of a Stockyard cluster (scheduler,
//! executor, standalone) and every client command (`sql`, `executors`,
//! `jobs`). The command line is specified in `shared/spec/cli.md`.

mod cli;
mod generate;
mod list;
mod run;
mod sql;
mod standalone;
mod streams;

use std::process::ExitCode;

use clap::Parser;
use cli::{ArchiveCommand, Cli, Command, RunCommand};
use stockyard_executor::ExecutorSettings;
use stockyard_mongo::ScanOptions;
use stockyard_scheduler::{BoundScheduler, MongoSettings, SchedulerSettings};
use tracing_subscriber::EnvFilter;

/// Work that failed: printed as `error: …`, exit status 1 (2 when the
/// command line or what it names is wrong).
#[derive(Debug)]
pub struct Failure(String, u8);

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into(), 1)
    }

    /// A bad command line or input: exit status 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self(message.into(), 2)
    }

    /// A failure from an error's display text.
    pub fn from_error(e: impl std::fmt::Display) -> Self {
        Self(e.to_string(), 1)
    }
}

fn init_logging(default: &str, format: cli::LogFormat) {
    let filter = EnvFilter::try_from_env("STOCKYARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    // Every line goes out with the process's secrets masked.
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| MaskedStderr);
    match format {
        cli::LogFormat::Text => logs.init(),
        // Span fields (the run id, the Ballista job) ride on every line.
        cli::LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
}

/// Standard error, with secrets masked (`stockyard_mask::text`). The log
/// formatter writes each event whole, so one write is one line.
struct MaskedStderr;

impl std::io::Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let masked = stockyard_mask::text(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(masked.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Remembers the secrets this process was given before anything can log
/// them: the token, passwords of connection strings in the environment
/// and the arguments, and object-store keys.
fn register_secrets() {
    for (name, value) in std::env::vars() {
        if name == "STOCKYARD_TOKEN"
            || (name.starts_with("AWS_") && stockyard_mask::is_secret_name(&name) && !name.ends_with("_ID"))
        {
            stockyard_mask::register(&value);
        } else if value.contains("://") {
            stockyard_mask::register_uri(&value);
        }
    }
    for arg in std::env::args().filter(|a| a.contains("://")) {
        stockyard_mask::register_uri(arg.split_once('=').map_or(arg.as_str(), |(_, v)| v));
    }
}

fn main() -> ExitCode {
    register_secrets();
    let cli = Cli::parse();
    let server = matches!(cli.command, Command::Scheduler(_) | Command::Executor(_) | Command::Standalone(_));
    init_logging(if server { "info" } else { "warn" }, cli.log_format);
    // Planning deep SQL (the KPI queries) recurses deeply, beyond the 2 MiB
    // default stack of a runtime thread in debug builds.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(16 << 20).build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Scheduler(a) => {
            let tls = a.tls();
            let settings = SchedulerSettings {
                external_host: a.external_host.unwrap_or_else(|| a.bind_host.clone()),
                bind_host: a.bind_host,
                port: a.port,
                http_port: a.http_port,
                executor_timeout: a.executor_timeout,
                mongo: MongoSettings {
                    uri: a.mongo.mongo_uri,
                    database: a.mongo.mongo_db,
                    sample_size: a.mongo_sample_size,
                    round_trip: a.mongo.mongo_timeout,
                },
                redis_url: a.redis_url,
                archive_dest: a.archive_dest,
                archive_dests: a.archive_dests,
                allowed_hosts: a.allowed_hosts,
                state: a.state.state,
                history_retention: a.state.history_retention,
                default_schedules: a.state.default_schedules,
                allow_local_files: a.local_files.allow_local_files,
                max_result_bytes: a.max_result_bytes,
                token: a.access.token().map_err(Failure::new)?,
                tls,
                // How its own jobs check its certificate, if not by itself.
                tls_client: a.access.access().map_err(Failure::new)?.tls,
            };
            let bound = BoundScheduler::bind(&settings).await.map_err(Failure::from_error)?;
            tracing::info!(grpc = %bound.grpc_addr(), http = %bound.http_addr(), "scheduler listening");
            bound.serve(shutdown_signal()).await.map_err(Failure::from_error)
        }
        Command::Executor(a) => {
            let settings = ExecutorSettings {
                schedulers: a.scheduler.0.iter().map(ToString::to_string).collect(),
                access: a.access.access().map_err(Failure::new)?,
                bind_host: a.bind_host,
                external_host: a.external_host,
                port: a.port,
                grpc_port: a.grpc_port,
                concurrent_tasks: a.concurrent_tasks.unwrap_or(0),
                work_dir: a.work_dir,
                heartbeat_interval: a.heartbeat_interval,
                mongo_uri: a.mongo.mongo_uri,
                mongo_database: a.mongo.mongo_db,
                mongo_round_trip: a.mongo.mongo_timeout,
                allow_local_files: a.local_files.allow_local_files,
                metrics_port: a.metrics_port,
                ..Default::default()
            };
            stockyard_executor::run(settings).await.map_err(Failure::from_error)
        }
        Command::Standalone(a) => {
            let cluster = standalone::start(standalone::StandaloneSpec {
                bind_host: a.bind_host,
                port: a.port,
                http_port: a.http_port,
                executors: a.executors,
                concurrent_tasks: a.concurrent_tasks.unwrap_or(0),
                mongo: MongoSettings {
                    uri: a.mongo.mongo_uri,
                    database: a.mongo.mongo_db,
                    round_trip: a.mongo.mongo_timeout,
                    ..Default::default()
                },
                redis_url: a.redis_url,
                state: a.state.state,
                default_schedules: a.state.default_schedules,
                allow_local_files: a.local_files.allow_local_files,
                token: a.access.token().map_err(Failure::new)?,
            })
            .await?;
            println!(
                "stockyard standalone: scheduler {} (gRPC), http://{} ({} executors); Ctrl-C stops",
                cluster.scheduler, cluster.http, a.executors
            );
            shutdown_signal().await;
            Ok(())
        }
        Command::Sql(a) => {
            let scheduler = if a.standalone {
                standalone::start(standalone::StandaloneSpec {
                    bind_host: "127.0.0.1".into(),
                    port: 0,
                    http_port: 0,
                    executors: 2,
                    concurrent_tasks: 0,
                    mongo: MongoSettings {
                        uri: a.mongo.mongo_uri,
                        database: a.mongo.mongo_db,
                        round_trip: a.mongo.mongo_timeout,
                        ..Default::default()
                    },
                    redis_url: String::new(),
                    // A throwaway cluster: nothing kept, nothing scheduled.
                    state: "memory".into(),
                    default_schedules: false,
                    // The user's own process: their own files.
                    allow_local_files: true,
                    token: None,
                })
                .await?
                .remote()
            } else {
                cli::Remote::new(a.scheduler, a.access.access().map_err(Failure::new)?)
            };
            let mongo =
                ScanOptions { partitions: a.mongo_partitions, partition_field: a.mongo_partition_field, share: None };
            sql::run(&a.sql, &scheduler, a.format, mongo).await
        }
        Command::Run(RunCommand::Kpi(a)) => {
            let mut params = std::collections::HashMap::new();
            if let Some(now) = a.now {
                params.insert("now".to_string(), stockyard_api::params::time_text(now));
            }
            params.insert("window".to_string(), humantime::format_duration(a.window).to_string());
            params.insert("ttl".to_string(), humantime::format_duration(a.ttl).to_string());
            if a.force {
                params.insert("force".to_string(), "true".to_string());
            }
            if let Some(timeout) = a.timeout {
                params.insert("timeout".to_string(), humantime::format_duration(timeout).to_string());
            }
            let scheduler = target(a.target).await?;
            run::run(&scheduler, stockyard_api::Job::Kpi, params).await
        }
        Command::Run(RunCommand::Archive(a)) => {
            let mut params = std::collections::HashMap::new();
            if let Some(now) = a.now {
                params.insert("now".to_string(), stockyard_api::params::time_text(now));
            }
            params.insert("threshold_mb".to_string(), a.threshold_mb.to_string());
            params.insert("older_than".to_string(), humantime::format_duration(a.older_than).to_string());
            if let Some(dest) = a.dest {
                params.insert("dest".to_string(), dest);
            }
            if let Some(timeout) = a.timeout {
                params.insert("timeout".to_string(), humantime::format_duration(timeout).to_string());
            }
            let scheduler = target(a.target).await?;
            run::run(&scheduler, stockyard_api::Job::Archive, params).await
        }
        Command::Run(RunCommand::Compact(a)) => {
            let mut params = std::collections::HashMap::from([("min_files".to_string(), a.min_files.to_string())]);
            if let Some(dest) = a.dest {
                params.insert("dest".to_string(), dest);
            }
            if let Some(timeout) = a.timeout {
                params.insert("timeout".to_string(), humantime::format_duration(timeout).to_string());
            }
            let scheduler = target(a.target).await?;
            run::run(&scheduler, stockyard_api::Job::Compact, params).await
        }
        Command::Archive(ArchiveCommand::Abandon(a)) => {
            let params = std::collections::HashMap::from([("abandon".to_string(), a.archive_id)]);
            let scheduler = target(a.target).await?;
            run::run(&scheduler, stockyard_api::Job::Archive, params).await
        }
        Command::Executors(a) => list::executors(&a.remote()?, a.format).await,
        Command::Jobs(a) if a.ballista => list::jobs(&a.list.remote()?, a.list.format).await,
        Command::Jobs(a) => list::runs(&a.list.remote()?, a.list.format).await,
        Command::Schedules(a) => {
            let remote = a.list.remote()?;
            match a.action {
                None => list::schedules(&remote, a.list.format).await,
                Some(action) => list::change_schedule(&remote, action).await,
            }
        }
        Command::Streams(a) => streams::run(a).await,
        Command::Generate(a) => generate::run(a).await,
    }
}

/// The scheduler a job runs on: the given one, or a fresh in-process
/// cluster with `--standalone`.
async fn target(t: cli::Target) -> Result<cli::Remote, Failure> {
    if !t.standalone {
        return Ok(cli::Remote::new(t.scheduler, t.access.access().map_err(Failure::new)?));
    }
    let cluster = standalone::start(standalone::StandaloneSpec {
        bind_host: "127.0.0.1".into(),
        port: 0,
        http_port: 0,
        executors: 2,
        concurrent_tasks: 0,
        mongo: MongoSettings {
            uri: t.mongo.mongo_uri,
            database: t.mongo.mongo_db,
            round_trip: t.mongo.mongo_timeout,
            ..Default::default()
        },
        redis_url: t.redis_url,
        // A throwaway cluster: nothing kept, nothing scheduled.
        state: "memory".into(),
        default_schedules: false,
        // Jobs (kpi, archive) read no local files through SQL.
        allow_local_files: false,
        token: None,
    })
    .await?;
    Ok(cluster.remote())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
