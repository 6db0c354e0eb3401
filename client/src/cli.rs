//! The command line, as `../shared/spec/cli.md` fixes it. Every setting also
//! comes from a `STOCKYARD_*` variable; a flag wins over the variable.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Stockyard: a distributed analytics engine for supply-chain data.
#[derive(Debug, Parser)]
#[command(name = "stockyard", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr: readable text, or one JSON object per line.
    #[arg(long, global = true, env = "STOCKYARD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scheduler: gRPC for clients and executors, HTTP for health and the API.
    Scheduler(SchedulerArgs),
    /// Run an executor that takes tasks from a scheduler.
    Executor(ExecutorArgs),
    /// Run a scheduler and N executors in one process.
    Standalone(StandaloneArgs),
    /// Run SQL on the cluster and print the result.
    Sql(SqlArgs),
    /// Run a job on the cluster and wait for it: prints a JSON summary last.
    #[command(subcommand)]
    Run(RunCommand),
    /// Manage the archive's ledger: abandon an interrupted run that cannot finish.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// List the executors the scheduler knows.
    Executors(ListArgs),
    /// List job runs (the run history), or with --ballista the Ballista jobs.
    Jobs(JobsArgs),
    /// List schedules, or add, pause, resume, trigger or remove one.
    Schedules(SchedulesArgs),
    /// List streams (continuous SQL over Kafka), or create, pause, resume, stop or drop one.
    Streams(StreamsArgs),
    /// Write supply-chain data to MongoDB: a backfill over a time range, or a live stream.
    Generate(GenerateArgs),
}

/// A `HOST:PORT` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

fn parse_host_port(s: &str) -> Result<HostPort, String> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("expected HOST:PORT, got '{s}'"))?;
    let port: u16 = port.parse().map_err(|_| format!("'{port}' in '{s}' is not a port number (1-65535)"))?;
    if host.is_empty() || port == 0 {
        return Err(format!("expected HOST:PORT with a host and a non-zero port, got '{s}'"));
    }
    Ok(HostPort { host: host.trim_matches(['[', ']']).to_string(), port })
}

/// Schedulers to reach, `HOST:PORT[,HOST:PORT…]`: any of them tells
/// where the leader is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedulers(pub Vec<HostPort>);

impl std::fmt::Display for Schedulers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<String> = self.0.iter().map(HostPort::to_string).collect();
        f.write_str(&all.join(","))
    }
}

fn parse_schedulers(s: &str) -> Result<Schedulers, String> {
    s.split(',').map(|one| parse_host_port(one.trim())).collect::<Result<Vec<_>, _>>().map(Schedulers)
}

/// The schedulers a client talks to and the cluster's token, with the
/// gateway (made on first use) that leads to whichever scheduler leads.
#[derive(Debug)]
pub struct Remote {
    pub schedulers: Schedulers,
    pub access: stockyard_gateway::Access,
    gateway: tokio::sync::OnceCell<stockyard_gateway::Gateway>,
}

impl Remote {
    pub fn new(schedulers: Schedulers, access: stockyard_gateway::Access) -> Self {
        Self { schedulers, access, gateway: tokio::sync::OnceCell::new() }
    }

    /// The gateway, once a leading scheduler is known.
    pub async fn gateway(&self, wait: Duration) -> Result<stockyard_gateway::Gateway, String> {
        let gateway = self
            .gateway
            .get_or_try_init(|| {
                let list = self.schedulers.0.iter().map(HostPort::to_string).collect();
                stockyard_gateway::Gateway::start(list, self.access.clone())
            })
            .await
            .map_err(|e| e.to_string())?;
        gateway.leader_or_fail(wait).await.map_err(|e| e.to_string())?;
        Ok(gateway.clone())
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.schedulers.fmt(f)
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("'{s}' is not a port number (1-65535)")),
    }
}

/// Durations as the spec writes them: `90s`, `15m`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    stockyard_api::params::duration(s).map_err(|e| e.to_string())
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}' is not a positive whole number")),
    }
}

fn parse_mongo_uri(s: &str) -> Result<String, String> {
    if s.starts_with("mongodb://") || s.starts_with("mongodb+srv://") {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{}' is not a MongoDB connection string (mongodb://… or mongodb+srv://…)",
            stockyard_mongo::redact(s)
        ))
    }
}

/// The MongoDB database a process reads.
#[derive(Debug, Args)]
pub struct MongoArgs {
    /// MongoDB connection string (its password is never shown or sent).
    #[arg(long, env = "STOCKYARD_MONGO_URI", default_value = "mongodb://127.0.0.1:27017", hide_env_values = true, value_parser = parse_mongo_uri)]
    pub mongo_uri: String,
    /// Database whose collections are tables.
    #[arg(long, env = "STOCKYARD_MONGO_DB", default_value = "supply_chain")]
    pub mongo_db: String,
    /// How long one round trip of a MongoDB read may wait: a MongoDB that
    /// accepts connections and then stalls fails a query after this.
    #[arg(long, env = "STOCKYARD_MONGO_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub mongo_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Address to listen on.
    #[arg(long, env = "STOCKYARD_BIND_HOST", default_value = "127.0.0.1")]
    pub bind_host: String,
    /// Host name executors and clients use to reach this scheduler.
    #[arg(long, env = "STOCKYARD_EXTERNAL_HOST")]
    pub external_host: Option<String>,
    /// gRPC port.
    #[arg(long, env = "STOCKYARD_PORT", default_value = "50050", value_parser = parse_port)]
    pub port: u16,
    /// HTTP port: `/healthz`, `/readyz`, `/api/…`.
    #[arg(long, env = "STOCKYARD_HTTP_PORT", default_value = "8080", value_parser = parse_port)]
    pub http_port: u16,
    /// An executor silent for this long is declared dead and its tasks rerun.
    #[arg(long, env = "STOCKYARD_EXECUTOR_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub executor_timeout: Duration,
    /// Documents sampled to infer a collection's schema.
    #[arg(long, env = "STOCKYARD_MONGO_SAMPLE_SIZE", default_value = "1000", value_parser = parse_positive)]
    pub mongo_sample_size: usize,
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// The Redis the KPI job writes to.
    #[arg(long, env = "STOCKYARD_REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true, value_parser = parse_redis_url)]
    pub redis_url: String,
    /// Where the archive job writes when a run names no destination: a
    /// local path (shared by every executor), file://, s3:// or hdfs://.
    #[arg(long, env = "STOCKYARD_ARCHIVE_DEST", default_value = stockyard_scheduler::DEFAULT_ARCHIVE_DEST, value_parser = parse_dest)]
    pub archive_dest: String,
    /// More places a run may name as its archive destination, `A,B`: a
    /// run's `dest` must lie under --archive-dest or one of these.
    #[arg(long, env = "STOCKYARD_ARCHIVE_DESTS", value_delimiter = ',', value_parser = parse_dest)]
    pub archive_dests: Vec<String>,
    /// The bytes of JSON a sql run keeps for the UI at most (its first
    /// 1,000 rows); a run whose rows take more fails. The rest of a result
    /// is counted, never kept.
    #[arg(long, env = "STOCKYARD_MAX_RESULT_BYTES", default_value = "67108864", value_parser = parse_positive)]
    pub max_result_bytes: usize,
    /// Host names the web UI and API answer to, `A,B`, besides IP
    /// addresses, localhost and --external-host: requests naming any
    /// other (DNS rebinding) are refused.
    #[arg(long, env = "STOCKYARD_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub local_files: LocalFilesArgs,
    #[command(flatten)]
    pub access: AccessArgs,
    /// PEM certificate chain: with --tls-key, both ports speak only TLS.
    #[arg(long, env = "STOCKYARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "STOCKYARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl SchedulerArgs {
    /// The certificate and key, when both are given.
    pub fn tls(&self) -> Option<stockyard_scheduler::tls::TlsFiles> {
        Some(stockyard_scheduler::tls::TlsFiles { cert: self.tls_cert.clone()?, key: self.tls_key.clone()? })
    }
}

#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// Schedulers to serve, `H:P[,H:P…]`: the executor registers with
    /// whichever leads and follows a new leader.
    #[arg(long, env = "STOCKYARD_SCHEDULER", default_value = "127.0.0.1:50050", value_parser = parse_schedulers)]
    pub scheduler: Schedulers,
    #[command(flatten)]
    pub access: AccessArgs,
    /// Address to listen on.
    #[arg(long, env = "STOCKYARD_BIND_HOST", default_value = "127.0.0.1")]
    pub bind_host: String,
    /// Host name other executors use to fetch this executor's shuffle data.
    #[arg(long, env = "STOCKYARD_EXTERNAL_HOST")]
    pub external_host: Option<String>,
    /// Arrow Flight port (shuffle data).
    #[arg(long, env = "STOCKYARD_FLIGHT_PORT", default_value = "50051", value_parser = parse_port)]
    pub port: u16,
    /// Executor gRPC port.
    #[arg(long, env = "STOCKYARD_GRPC_PORT", default_value = "50052", value_parser = parse_port)]
    pub grpc_port: u16,
    /// Tasks run at once [default: one per core].
    #[arg(long, env = "STOCKYARD_CONCURRENT_TASKS", value_parser = parse_positive)]
    pub concurrent_tasks: Option<usize>,
    /// Directory for shuffle files [default: a temporary directory].
    #[arg(long, env = "STOCKYARD_WORK_DIR")]
    pub work_dir: Option<String>,
    /// Port for this executor's `/metrics` and `/healthz` [default: none].
    #[arg(long, env = "STOCKYARD_METRICS_PORT", value_parser = parse_port)]
    pub metrics_port: Option<u16>,
    /// How often to heartbeat to the scheduler.
    #[arg(long, env = "STOCKYARD_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub local_files: LocalFilesArgs,
}

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Executors to run.
    #[arg(long, env = "STOCKYARD_EXECUTORS", default_value = "2", value_parser = parse_positive)]
    pub executors: usize,
    /// Address to listen on.
    #[arg(long, env = "STOCKYARD_BIND_HOST", default_value = "127.0.0.1")]
    pub bind_host: String,
    /// Scheduler gRPC port.
    #[arg(long, env = "STOCKYARD_PORT", default_value = "50050", value_parser = parse_port)]
    pub port: u16,
    /// HTTP port.
    #[arg(long, env = "STOCKYARD_HTTP_PORT", default_value = "8080", value_parser = parse_port)]
    pub http_port: u16,
    /// Task slots per executor [default: one per core].
    #[arg(long, env = "STOCKYARD_CONCURRENT_TASKS", value_parser = parse_positive)]
    pub concurrent_tasks: Option<usize>,
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// The Redis the KPI job writes to.
    #[arg(long, env = "STOCKYARD_REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true, value_parser = parse_redis_url)]
    pub redis_url: String,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub local_files: LocalFilesArgs,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row.
    Json,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Schedulers to run on, `H:P[,H:P…]`: work goes to the leader.
    #[arg(long, env = "STOCKYARD_SCHEDULER", default_value = "127.0.0.1:50050", value_parser = parse_schedulers)]
    pub scheduler: Schedulers,
    #[command(flatten)]
    pub access: AccessArgs,
    /// Start a scheduler and two executors in this process instead.
    #[arg(long)]
    pub standalone: bool,
    /// Partitions each MongoDB scan reads in parallel [default: by collection size].
    #[arg(long, env = "STOCKYARD_MONGO_PARTITIONS", value_parser = parse_positive)]
    pub mongo_partitions: Option<usize>,
    /// Field whose value ranges split a MongoDB scan.
    #[arg(long, env = "STOCKYARD_MONGO_PARTITION_FIELD", default_value = "_id")]
    pub mongo_partition_field: String,
    /// With --standalone: the MongoDB database to read.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// SQL statements separated by `;`; the last one's rows are printed.
    pub sql: String,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    stockyard_api::params::time(s).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// The five supply-chain KPIs over a window, into Redis.
    Kpi(KpiArgs),
    /// Old facts from MongoDB to partitioned Parquet, exactly once.
    Archive(ArchiveArgs),
    /// Merge each archive hour's files into one, atomically for readers.
    Compact(CompactArgs),
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Give up an interrupted archive run that stopped before its files were
    /// complete: its files are removed and its documents unmarked, so the
    /// next run archives them. Runs as an archive-job run; prints its summary.
    Abandon(AbandonArgs),
}

#[derive(Debug, Args)]
pub struct AbandonArgs {
    /// The archive run's id (`archive_id` in the run summaries).
    pub archive_id: String,
    #[command(flatten)]
    pub target: Target,
}

/// Where a job runs.
#[derive(Debug, Args)]
pub struct Target {
    /// Schedulers to run on, `H:P[,H:P…]`: work goes to the leader.
    #[arg(long, env = "STOCKYARD_SCHEDULER", default_value = "127.0.0.1:50050", value_parser = parse_schedulers)]
    pub scheduler: Schedulers,
    #[command(flatten)]
    pub access: AccessArgs,
    /// Start a scheduler and two executors in this process instead.
    #[arg(long)]
    pub standalone: bool,
    /// With --standalone: the MongoDB database to read.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// With --standalone: the Redis the KPIs go to.
    #[arg(long, env = "STOCKYARD_REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true, value_parser = parse_redis_url)]
    pub redis_url: String,
}

#[derive(Debug, Args)]
pub struct KpiArgs {
    /// End of the window (excluded) [default: now].
    #[arg(long, value_parser = parse_time)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
    /// Length of the window.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub window: Duration,
    /// How long Redis keeps the KPIs.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Write even when Redis holds the KPIs of a later window (a
    /// deliberate backfill); without it such a run ends `superseded`.
    #[arg(long)]
    pub force: bool,
    /// Stop the run, and cancel its Ballista jobs, after this long [default: 10m].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Facts older than `now - older-than` are archived [default: now].
    #[arg(long, value_parser = parse_time)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
    /// Archive only when the database's dataSize is at least this many MiB.
    #[arg(long, default_value = "300", allow_negative_numbers = true, value_parser = parse_megabytes)]
    pub threshold_mb: f64,
    /// Age from which facts are archived.
    #[arg(long, default_value = "120m", value_parser = parse_duration)]
    pub older_than: Duration,
    /// Archive base: a local path, file://, s3://bucket/prefix or hdfs://
    /// [default: the scheduler's --archive-dest].
    #[arg(long, value_parser = parse_dest)]
    pub dest: Option<String>,
    /// Stop the run, and cancel its Ballista jobs, after this long [default: 6h].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Archive base: a local path, file://, s3://bucket/prefix or hdfs://
    /// [default: the scheduler's --archive-dest].
    #[arg(long, value_parser = parse_dest)]
    pub dest: Option<String>,
    /// Merge an hour only when it has at least this many files to merge.
    #[arg(long, default_value = "2", value_parser = parse_files)]
    pub min_files: usize,
    /// Stop the run after this long [default: 6h].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub target: Target,
}

fn parse_files(s: &str) -> Result<usize, String> {
    stockyard_api::params::files(s).map_err(|e| e.to_string())
}

fn parse_megabytes(s: &str) -> Result<f64, String> {
    stockyard_api::params::megabytes(s).map_err(|e| e.to_string())
}

/// A destination as the scheduler's processes will read it: a relative
/// local path is made absolute here, where the user meant it.
fn parse_dest(s: &str) -> Result<String, String> {
    match s.split_once("://") {
        Some(("file" | "s3" | "hdfs", rest)) if !rest.is_empty() => Ok(s.to_string()),
        Some(_) => {
            Err(format!("'{s}' is not an archive destination (a local path, file://, s3://bucket/prefix or hdfs://)"))
        }
        None if s.is_empty() => Err("the archive destination is empty".into()),
        None => std::path::absolute(s).map(|p| p.display().to_string()).map_err(|e| format!("'{s}': {e}")),
    }
}

fn parse_redis_url(s: &str) -> Result<String, String> {
    if s.starts_with("redis://") || s.starts_with("rediss://") {
        Ok(s.to_string())
    } else {
        Err(format!("'{}' is not a Redis URL (redis://…)", stockyard_mongo::redact(s)))
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Schedulers to ask, `H:P[,H:P…]`: the leader answers.
    #[arg(long, env = "STOCKYARD_SCHEDULER", default_value = "127.0.0.1:50050", value_parser = parse_schedulers)]
    pub scheduler: Schedulers,
    #[command(flatten)]
    pub access: AccessArgs,
}

impl ListArgs {
    /// The schedulers to ask, with the token.
    pub fn remote(&self) -> Result<Remote, crate::Failure> {
        Ok(Remote::new(self.scheduler.clone(), self.access.access().map_err(crate::Failure::new)?))
    }
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// The Ballista jobs (queries and job stages) instead of job runs.
    #[arg(long)]
    pub ballista: bool,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Args)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    pub action: Option<ScheduleAction>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Add a schedule: a job every interval or on a cron expression.
    Add(AddSchedule),
    /// Stop firing a schedule until resumed.
    Pause(ScheduleName),
    /// Fire a paused schedule again.
    Resume(ScheduleName),
    /// Run a schedule's job now.
    Trigger(ScheduleName),
    /// Remove a schedule (a run in flight goes on).
    Remove(ScheduleName),
}

#[derive(Debug, Args)]
pub struct StreamsArgs {
    #[command(subcommand)]
    pub action: Option<StreamAction>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum StreamAction {
    /// Check a stream's SQL and start it; it runs until stopped.
    Create(CreateStream),
    /// Stop reading until resumed (the batch in flight finishes).
    Pause(StreamName),
    /// Read again after a pause or a stop.
    Resume(StreamName),
    /// Stop the stream after the batch in flight; its state is kept.
    Stop(StreamName),
    /// Stop the stream and forget its state (its sinks keep their data).
    Drop(StreamName),
}

#[derive(Debug, Args)]
pub struct StreamName {
    /// The stream.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct CreateStream {
    /// Its name (letters, digits, '_', '-', '.').
    pub name: String,
    /// The stream's SQL file.
    #[arg(long, conflicts_with = "sql", required_unless_present = "sql")]
    pub file: Option<std::path::PathBuf>,
    /// The stream's SQL.
    #[arg(long)]
    pub sql: Option<String>,
    /// A value for `${NAME}` in the SQL, as NAME=VALUE (the shipped streams
    /// in jobs/streams/ take KAFKA, REDIS and OUT). Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// The pause between batches when there is nothing to catch up on.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub trigger: Duration,
}

#[derive(Debug, Args)]
pub struct ScheduleName {
    /// The schedule.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct AddSchedule {
    /// Its name (letters, digits, - and _).
    pub name: String,
    /// The job: kpi, archive, or sql (with --sql).
    #[arg(long)]
    pub job: stockyard_api::Job,
    /// Fire every this long (90s, 1m, 5m).
    #[arg(long, value_parser = parse_duration, conflicts_with = "cron", required_unless_present = "cron")]
    pub every: Option<Duration>,
    /// Fire on this cron expression (5 fields, UTC): "*/5 * * * *".
    #[arg(long)]
    pub cron: Option<String>,
    /// A job parameter as NAME=VALUE (kpi: window, ttl; archive:
    /// threshold_mb, older_than, dest), repeatable.
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// The statement of an sql job.
    #[arg(long)]
    pub sql: Option<String>,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not NAME=VALUE")),
    }
}

/// Whether SQL may read and write the cluster machines' own files.
#[derive(Debug, Args)]
pub struct LocalFilesArgs {
    /// Let SQL read and write this machine's files: Parquet/CSV scans of
    /// local paths and COPY to them on executors, and CREATE EXTERNAL
    /// TABLE or COPY in the scheduler's sql jobs. Off by default, so that
    /// a client's query cannot read a server's disk.
    #[arg(long, env = "STOCKYARD_ALLOW_LOCAL_FILES", default_value = "false", action = clap::ArgAction::Set)]
    pub allow_local_files: bool,
}

/// The cluster token and TLS trust: what a scheduler requires, and what
/// executors and clients present and check.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// File holding the cluster's access token: a scheduler requires it on
    /// both ports, executors and clients send it; STOCKYARD_TOKEN gives it
    /// directly. None: the ports are open.
    #[arg(long, env = "STOCKYARD_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// PEM certificate(s) of the authority that signed the schedulers'
    /// certificates: connect to them over TLS, checking it.
    #[arg(long, env = "STOCKYARD_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The name the schedulers' certificates carry [default: the host of
    /// each scheduler address].
    #[arg(long, env = "STOCKYARD_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
}

impl AccessArgs {
    /// The token and TLS settings for reaching the schedulers.
    pub fn access(&self) -> Result<stockyard_gateway::Access, String> {
        let tls = match &self.tls_ca {
            None => None,
            Some(path) => Some(stockyard_gateway::ClientTls {
                ca: std::fs::read(path)
                    .map_err(|e| format!("cannot read the TLS authority {}: {e}", path.display()))?,
                domain: self.tls_domain.clone(),
            }),
        };
        Ok(stockyard_gateway::Access { token: self.token()?, tls })
    }

    /// The token, from the file or STOCKYARD_TOKEN.
    pub fn token(&self) -> Result<Option<String>, String> {
        let token = match &self.token_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?,
            None => match std::env::var("STOCKYARD_TOKEN") {
                Ok(t) => t,
                Err(_) => return Ok(None),
            },
        };
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err("the access token is empty (STOCKYARD_TOKEN or --token-file)".into());
        }
        Ok(Some(token))
    }
}

/// Where a scheduler keeps schedules and the run history.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// State store: memory, file:DIR, or etcd://HOST:PORT[,HOST:PORT…].
    #[arg(long, env = "STOCKYARD_STATE", default_value = stockyard_scheduler::DEFAULT_STATE, value_parser = parse_state)]
    pub state: String,
    /// How long finished job runs are kept.
    #[arg(long, env = "STOCKYARD_HISTORY_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub history_retention: Duration,
    /// Create the kpi (every minute) and archive (every 5 minutes)
    /// schedules in a new state store.
    #[arg(long, env = "STOCKYARD_DEFAULT_SCHEDULES", default_value = "true", action = clap::ArgAction::Set)]
    pub default_schedules: bool,
}

fn parse_state(s: &str) -> Result<String, String> {
    stockyard_state::check(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn parse_instant(s: &str) -> Result<std::time::SystemTime, String> {
    stockyard_api::params::time(s).map(std::time::SystemTime::from).map_err(|e| e.to_string())
}

fn parse_seed(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("'{s}' is not a seed (a whole number from 0 to {})", u64::MAX))
}

/// `NAME=VALUE` for a stream file's `${NAME}`.
fn parse_setting(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').ok_or_else(|| format!("'{s}' is not NAME=VALUE"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("'{name}' is not a name (letters, digits and '_')"));
    }
    if value.contains('\'') {
        return Err(format!("the value of {name} holds a quote (')"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `kafka://HOST:PORT[,HOST:PORT…]` as the brokers' `HOST:PORT` list.
fn parse_kafka_brokers(s: &str) -> Result<String, String> {
    let rest = s.strip_prefix("kafka://").ok_or_else(|| format!("'{s}' is not kafka://HOST:PORT[,HOST:PORT…]"))?;
    let brokers = rest.trim_end_matches('/');
    if brokers.contains('/') {
        return Err(format!("'{s}' names a topic; give only the brokers (each stream writes the topic of its name)"));
    }
    for b in brokers.split(',') {
        parse_host_port(b)?;
    }
    Ok(brokers.to_string())
}

/// The event streams one `--stream` value names (`all` names every one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStreams(pub Vec<stockyard_generator::events::EventKind>);

fn parse_event_streams(s: &str) -> Result<EventStreams, String> {
    use stockyard_generator::events::EventKind;
    Ok(EventStreams(if s.trim().eq_ignore_ascii_case("all") { EventKind::ALL.to_vec() } else { vec![s.parse()?] }))
}

/// A share written `0.02` or `2%`.
fn parse_share(s: &str) -> Result<f64, String> {
    let share = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => s.parse::<f64>(),
    };
    match share {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("'{s}' is not a share from 0 to 1 (like 0.02 or 2%)")),
    }
}

/// `stockyard generate`: a backfill (`--docs --start --end`) or a live
/// stream (`--rate --duration`); with neither, 10,000 facts over the last hour.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Same seed and flags, same documents (but for `_id` and live times).
    #[arg(long, default_value = "42", value_parser = parse_seed)]
    pub seed: u64,
    /// Backfill: fact documents to write, with --start and --end.
    #[arg(long, value_parser = parse_positive, requires_all = ["start", "end"], conflicts_with_all = ["rate", "duration"])]
    pub docs: Option<usize>,
    /// Backfill: earliest event time (RFC 3339).
    #[arg(long, value_parser = parse_instant, requires = "docs")]
    pub start: Option<std::time::SystemTime>,
    /// Backfill: event times are before this (RFC 3339).
    #[arg(long, value_parser = parse_instant, requires = "docs")]
    pub end: Option<std::time::SystemTime>,
    /// Live: fact documents (or records per stream) a second, stamped with
    /// the wall clock, for --duration (into Kafka: until stopped without it).
    #[arg(long, value_parser = parse_positive)]
    pub rate: Option<usize>,
    /// Live: how long to write.
    #[arg(long, value_parser = parse_duration, requires = "rate")]
    pub duration: Option<Duration>,
    /// Writes the seed event streams to these Kafka brokers instead of
    /// MongoDB: kafka://HOST:PORT[,HOST:PORT…]. Each stream goes to the topic
    /// of its name, created when missing.
    #[arg(long, value_parser = parse_kafka_brokers)]
    pub kafka: Option<String>,
    /// With --kafka: the streams to write (sales, inventory, orders,
    /// clickstream, or all), comma-separated.
    #[arg(long, requires = "kafka", value_delimiter = ',', default_value = "all", value_parser = parse_event_streams)]
    pub stream: Vec<EventStreams>,
    /// With --kafka: retail stores the sales and stock readings come from.
    #[arg(long, default_value = "50", value_parser = parse_positive)]
    pub stores: usize,
    /// With --kafka: partitions of a topic this run creates.
    #[arg(long, default_value = "2", value_parser = parse_positive)]
    pub partitions: usize,
    /// With --kafka: share of records stamped up to 2 minutes before their neighbours.
    #[arg(long, default_value = "0.05", value_parser = parse_share)]
    pub out_of_order_share: f64,
    /// With --kafka: share of records stamped 20 to 25 minutes before their
    /// neighbours (later than every shipped stream's lateness).
    #[arg(long, default_value = "0.005", value_parser = parse_share)]
    pub late_share: f64,
    /// Rows of skus_dim.
    #[arg(long, default_value = "5000", value_parser = parse_positive)]
    pub skus: usize,
    /// Rows of dcs_dim.
    #[arg(long, default_value = "40", value_parser = parse_positive)]
    pub dcs: usize,
    /// Rows of suppliers_dim.
    #[arg(long, default_value = "50", value_parser = parse_positive)]
    pub suppliers: usize,
    /// Share of fact documents with a null, missing, mistyped or unknown-id field.
    #[arg(long, default_value = "0.02", value_parser = parse_share)]
    pub dirty_share: f64,
    #[command(flatten)]
    pub mongo: MongoArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_errors_name_the_value() {
        assert_eq!(parse_host_port("db:50050").unwrap(), HostPort { host: "db".into(), port: 50050 });
        assert!(parse_host_port("nohost").unwrap_err().contains("'nohost'"));
        assert!(parse_host_port("h:99999").unwrap_err().contains("'99999'"));
        assert!(parse_host_port("h:0").is_err());
    }

    #[test]
    fn durations_follow_the_spec() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("soon").unwrap_err().contains("'soon'"));
        assert!(parse_duration("0s").is_err());
    }
}
