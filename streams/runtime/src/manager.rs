//! The streams of a scheduler: their definitions in the state store, one
//! task per running stream on the leader, and what `stockyard streams`
//! and `/api/streams` show. Only the leader runs streams; a standby that
//! takes over opens each one where its last commit left it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stockyard_state::StateStore;
use tokio::sync::watch;

use crate::definition::{Definition, Environment, Sink};
use crate::progress::{self, Progress};
use crate::stream::{Step, Stream, rfc3339};

/// The pause after a failed batch before the next try.
const RETRY: Duration = Duration::from_secs(2);

/// What a user asked a stream to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Run batches.
    Running,
    /// Keep the stream open but run no batches.
    Paused,
    /// Run no task for it; its position is kept, so resuming goes on from there.
    Stopped,
}

/// What a stream is, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    /// Asked to run, and its last batch did not fail.
    Running,
    /// Paused by a user: no batches run.
    Paused,
    /// Stopped by a user: no task runs it.
    Stopped,
    /// The last batch failed (it is retried: see the error).
    Failed,
}

impl std::fmt::Display for StreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamState::Running => "running",
            StreamState::Paused => "paused",
            StreamState::Stopped => "stopped",
            StreamState::Failed => "failed",
        })
    }
}

/// A change asked of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamControl {
    /// Run no batches, keeping the stream open.
    Pause,
    /// Run again after a pause or a stop.
    Resume,
    /// End its task; its definition and position are kept.
    Stop,
    /// Stop it and delete its definition, its last commit and its batch in flight.
    Drop,
}

impl std::str::FromStr for StreamControl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pause" => Ok(Self::Pause),
            "resume" => Ok(Self::Resume),
            "stop" => Ok(Self::Stop),
            "drop" => Ok(Self::Drop),
            other => Err(format!("'{other}' is not a stream action (pause, resume, stop, drop)")),
        }
    }
}

/// A stream as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    name: String,
    sql: String,
    trigger_ms: u64,
    desired: Desired,
    created_ms: i64,
    /// Where it reads and writes, for listings (no credentials).
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    sink: String,
}

/// A stream as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// What it is: as a user asked, or failed.
    pub state: StreamState,
    /// Why the last batch failed, while it is failing.
    pub error: Option<String>,
    /// Where it reads (`kafka://…/TOPIC`), credentials masked.
    pub sources: Vec<String>,
    /// Where it writes (a Parquet location, or a Redis URL and key), credentials masked.
    pub sink: String,
    /// Milliseconds between batches once caught up; while behind, the next batch starts at once.
    pub trigger_ms: u64,
    /// Records behind the end of each topic after the last batch.
    pub lag: u64,
    /// Records behind, per partition.
    pub partition_lag: BTreeMap<i32, u64>,
    /// The watermark as RFC 3339 (UTC, to the millisecond); `None` until there is one.
    pub watermark: Option<String>,
    /// The watermark in milliseconds since the epoch.
    pub watermark_ms: Option<i64>,
    /// Batches committed.
    pub batches: u64,
    /// Records read from Kafka.
    pub records: u64,
    /// Rows on time, into the query.
    pub rows_in: u64,
    /// Rows written to the sink.
    pub rows_out: u64,
    /// Rows below the watermark when read, left out.
    pub late_rows: u64,
    /// Records that could not be read, over every reason.
    pub rejected_rows: u64,
    /// Rejected rows by reason.
    pub rejected: stockyard_stream_source::Rejects,
    /// Values read as null because they had another type.
    pub unreadable_values: u64,
    /// Milliseconds the last batch took.
    pub last_batch_ms: u64,
    /// The stream's SQL, with secrets masked.
    pub sql: String,
}

/// Why a stream could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// The SQL, a name or a sink is wrong (exit status 2).
    #[error("{0}")]
    Invalid(String),
    /// No stream has this name.
    #[error("no stream named '{0}'")]
    Unknown(String),
    /// A stream of this name exists.
    #[error("a stream named '{0}' exists (drop it first)")]
    Exists(String),
    /// The state store failed.
    #[error("state store: {0}")]
    State(#[from] stockyard_state::StateError),
}

#[derive(Debug, Default)]
struct Live {
    error: Option<String>,
    progress: Option<Progress>,
    /// What the sink shows after the last batch.
    results: Option<crate::SinkView>,
}

struct Task {
    control: watch::Sender<Desired>,
    live: Arc<Mutex<Live>>,
    handle: tokio::task::JoinHandle<()>,
}

/// Every stream of this scheduler.
pub struct Streams {
    store: Arc<dyn StateStore>,
    env: Environment,
    tasks: Mutex<BTreeMap<String, Task>>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").field("store", &self.store.describe()).finish()
    }
}

impl Streams {
    /// The streams kept in `store`, in `env`.
    pub fn new(store: Arc<dyn StateStore>, env: Environment) -> Arc<Self> {
        Arc::new(Self { store, env, tasks: Mutex::default() })
    }

    /// Checks `sql` and starts it as stream `name`.
    pub async fn create(&self, name: &str, sql: &str, trigger: Duration) -> Result<StreamInfo, StreamsError> {
        let definition =
            Definition::parse(name, sql, &self.env).await.map_err(|e| StreamsError::Invalid(e.to_string()))?;
        if self.store.get(&progress::definition_key(name)).await?.is_some() {
            return Err(StreamsError::Exists(name.to_string()));
        }
        check_sink(&definition).await?;
        check_source(&definition).await?;
        let stored = Stored {
            name: name.to_string(),
            sql: sql.to_string(),
            trigger_ms: trigger.as_millis().max(1) as u64,
            desired: Desired::Running,
            created_ms: chrono::Utc::now().timestamp_millis(),
            sources: vec![stockyard_mask::uri(&definition.source.location.to_string())],
            sink: definition.sink.describe(),
        };
        // A stream of this name dropped earlier leaves nothing behind.
        self.store.delete(&progress::commit_key(name)).await?;
        self.store.delete(&progress::intent_key(name)).await?;
        self.save(&stored).await?;
        Ok(self.info(&stored))
    }

    async fn save(&self, stored: &Stored) -> Result<(), StreamsError> {
        let bytes = serde_json::to_vec(stored).expect("a stream is JSON");
        Ok(self.store.put(&progress::definition_key(&stored.name), bytes).await?)
    }

    async fn stored(&self) -> Result<Vec<Stored>, StreamsError> {
        let mut out = Vec::new();
        for (key, value) in self.store.list("streams/").await? {
            match serde_json::from_slice::<Stored>(&value) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!("stream at '{key}' is unreadable, left alone: {e}"),
            }
        }
        Ok(out)
    }

    async fn one(&self, name: &str) -> Result<Stored, StreamsError> {
        let bytes =
            self.store.get(&progress::definition_key(name)).await?.ok_or_else(|| StreamsError::Unknown(name.into()))?;
        serde_json::from_slice(&bytes).map_err(|e| StreamsError::Invalid(format!("stream '{name}' is unreadable: {e}")))
    }

    /// Pauses, resumes, stops or drops `name`.
    pub async fn control(&self, name: &str, action: StreamControl) -> Result<Option<StreamInfo>, StreamsError> {
        let mut stored = self.one(name).await?;
        stored.desired = match action {
            StreamControl::Pause => Desired::Paused,
            StreamControl::Resume => Desired::Running,
            StreamControl::Stop | StreamControl::Drop => Desired::Stopped,
        };
        if action == StreamControl::Drop {
            if let Some(task) = self.tasks.lock().expect("tasks lock").remove(name) {
                task.handle.abort();
            }
            self.store.delete(&progress::definition_key(name)).await?;
            self.store.delete(&progress::commit_key(name)).await?;
            self.store.delete(&progress::intent_key(name)).await?;
            return Ok(None);
        }
        self.save(&stored).await?;
        if let Some(task) = self.tasks.lock().expect("tasks lock").get(name) {
            task.control.send_replace(stored.desired);
        }
        Ok(Some(self.info(&stored)))
    }

    /// Every stream, by name.
    pub async fn list(&self) -> Result<Vec<StreamInfo>, StreamsError> {
        let stored = self.stored().await?;
        Ok(stored.iter().map(|s| self.info(s)).collect())
    }

    /// One stream.
    pub async fn get(&self, name: &str) -> Result<StreamInfo, StreamsError> {
        let stored = self.one(name).await?;
        Ok(self.info(&stored))
    }

    /// What stream `name`'s sink shows after its last batch on this
    /// scheduler (`None` before one ran here).
    pub async fn results(&self, name: &str) -> Result<Option<crate::SinkView>, StreamsError> {
        self.one(name).await?;
        let tasks = self.tasks.lock().expect("tasks lock");
        Ok(tasks.get(name).and_then(|t| t.live.lock().expect("live lock").results.clone()))
    }

    fn info(&self, stored: &Stored) -> StreamInfo {
        let tasks = self.tasks.lock().expect("tasks lock");
        let live = tasks.get(&stored.name).map(|t| {
            let l = t.live.lock().expect("live lock");
            (l.error.clone(), l.progress.clone())
        });
        let (error, progress) = live.unwrap_or_default();
        let progress = progress.unwrap_or_default();
        let state = match (stored.desired, &error) {
            (Desired::Stopped, _) => StreamState::Stopped,
            (Desired::Paused, _) => StreamState::Paused,
            (Desired::Running, Some(_)) => StreamState::Failed,
            (Desired::Running, None) => StreamState::Running,
        };
        let c = progress.counts;
        StreamInfo {
            name: stored.name.clone(),
            state,
            error,
            sources: stored.sources.clone(),
            sink: stored.sink.clone(),
            trigger_ms: stored.trigger_ms,
            lag: progress.lag,
            partition_lag: progress.partition_lag.clone(),
            watermark: progress.watermark_ns.map(rfc3339),
            watermark_ms: progress.watermark_ns.map(|w| w.div_euclid(1_000_000)),
            batches: progress.batch,
            records: c.records,
            rows_in: c.rows_in,
            rows_out: c.rows_out,
            late_rows: c.late_rows,
            rejected_rows: c.rejected.total(),
            rejected: c.rejected,
            unreadable_values: c.unreadable_values,
            last_batch_ms: progress.last_batch_ms,
            sql: stockyard_mask::sql(&stored.sql),
        }
    }

    /// Runs the streams while `leading` says this scheduler leads; stops
    /// them when it no longer does.
    pub async fn run(self: Arc<Self>, leading: impl Fn() -> bool + Send + 'static) {
        loop {
            if leading() {
                match self.stored().await {
                    Ok(stored) => self.reconcile(stored),
                    Err(e) => tracing::debug!("streams not read: {e}"),
                }
            } else {
                let mut tasks = self.tasks.lock().expect("tasks lock");
                if !tasks.is_empty() {
                    tracing::warn!(
                        "this scheduler no longer leads: its streams stop and the new leader goes on with them"
                    );
                    for (_, t) in std::mem::take(&mut *tasks) {
                        t.handle.abort();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Starts a task for every stream that should run and has none.
    fn reconcile(&self, stored: Vec<Stored>) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        tasks.retain(|name, t| {
            let keep = !t.handle.is_finished() && stored.iter().any(|s| &s.name == name);
            if !keep {
                t.handle.abort();
            }
            keep
        });
        for s in stored {
            if s.desired == Desired::Stopped || tasks.contains_key(&s.name) {
                continue;
            }
            let (control, watch) = watch::channel(s.desired);
            let live = Arc::new(Mutex::new(Live::default()));
            let handle = tokio::spawn(run_stream(s.clone(), self.store.clone(), self.env.clone(), watch, live.clone()));
            tasks.insert(s.name.clone(), Task { control, live, handle });
        }
    }
}

async fn check_sink(definition: &Definition) -> Result<(), StreamsError> {
    let invalid = |e: stockyard_stream_sinks::SinkError| {
        StreamsError::Invalid(format!("stream '{}': the sink cannot be written: {e}", definition.name))
    };
    match &definition.sink {
        Sink::Parquet { location, partition_by } => {
            stockyard_stream_sinks::ParquetSink::open(location, partition_by.clone())
                .map_err(invalid)?
                .check()
                .await
                .map_err(invalid)
        }
        Sink::Redis { url, key, ttl, .. } => {
            stockyard_stream_sinks::RedisSink::open(url, key, *ttl).map_err(invalid)?.check().await.map_err(invalid)
        }
    }
}

/// An unknown topic is refused now; a broker that does not answer is not
/// (the stream retries until it does, showing why it waits).
async fn check_source(definition: &Definition) -> Result<(), StreamsError> {
    let location = &definition.source.location;
    let probe = async {
        let broker = stockyard_stream_source::Broker::connect(location).await?;
        broker.partitions().await
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Err(e @ stockyard_stream_source::KafkaError::NoTopic { .. })) => {
            Err(StreamsError::Invalid(format!("stream '{}': {e}", definition.name)))
        }
        Ok(Err(e)) => {
            tracing::warn!("stream '{}' created while its broker does not answer: {e}", definition.name);
            Ok(())
        }
        Err(_) => Ok(()),
        Ok(Ok(_)) => Ok(()),
    }
}

/// One stream's loop on the leader.
async fn run_stream(
    stored: Stored,
    store: Arc<dyn StateStore>,
    env: Environment,
    mut control: watch::Receiver<Desired>,
    live: Arc<Mutex<Live>>,
) {
    let name = stored.name.clone();
    let trigger = Duration::from_millis(stored.trigger_ms);
    let fail = |e: String| {
        tracing::warn!(stream = %name, "batch failed (retried in {} s): {e}", RETRY.as_secs());
        live.lock().expect("live lock").error = Some(stockyard_mask::text(&e));
    };
    let mut stream: Option<Stream> = None;
    loop {
        let desired = *control.borrow_and_update();
        match desired {
            Desired::Stopped => return,
            Desired::Paused => {
                let _ = tokio::time::timeout(Duration::from_secs(1), control.changed()).await;
                continue;
            }
            Desired::Running => {}
        }
        if stream.is_none() {
            let opened = match Definition::parse(&stored.name, &stored.sql, &env).await {
                Ok(d) => Stream::open(d, store.clone()).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match opened {
                Ok(s) => {
                    live.lock().expect("live lock").progress = Some(s.progress.clone());
                    stream = Some(s);
                }
                Err(e) => {
                    fail(e);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        let s = stream.as_mut().expect("opened");
        let wait = match s.step().await {
            Ok(step) => {
                let mut l = live.lock().expect("live lock");
                l.error = None;
                l.progress = Some(s.progress.clone());
                if let Some(r) = s.results() {
                    l.results = Some(r.clone());
                }
                match step {
                    Step::Ran { caught_up: false } => Duration::ZERO,
                    Step::Ran { caught_up: true } | Step::Nothing => trigger,
                }
            }
            Err(e) => {
                fail(e.to_string());
                // Reopened from the last commit: nothing half-done is kept.
                stream = None;
                RETRY
            }
        };
        if !wait.is_zero() {
            let _ = tokio::time::timeout(wait, control.changed()).await;
        }
    }
}
