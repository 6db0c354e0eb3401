//! Writing event streams to Kafka: one topic per stream (created when
//! missing), records spread over its partitions by key, a backfill in time
//! order or a live rate stamped with the wall clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use stockyard_stream_source::{Broker, KafkaError, KafkaLocation};

use crate::events::{Disorder, Event, EventGenerator, EventKind, Quality};
use crate::{GenerateError, Mode, World};

/// Records per produce request.
const CHUNK: usize = 2000;

/// What to write, per stream.
#[derive(Debug, Clone)]
pub struct EventOptions {
    /// Same seed and options, same records (but for a live run's, which the wall clock times).
    pub seed: u64,
    /// `HOST:PORT[,HOST:PORT…]` of the brokers.
    pub brokers: String,
    /// The streams to write, each to the topic of its name.
    pub streams: Vec<EventKind>,
    /// Records per stream: a backfill's count over its range, or a live rate.
    pub mode: Mode,
    /// Products are the SKUs of the MongoDB data with this many rows.
    pub skus: u32,
    /// Retail stores that sales and stock readings are spread over.
    pub stores: u32,
    /// Partitions of a topic this run creates.
    pub partitions: i32,
    /// Shares of dirty, out-of-order and late records.
    pub disorder: Disorder,
}

impl EventOptions {
    /// Checks the options, naming the bad value.
    pub fn validate(&self) -> Result<(), GenerateError> {
        let bad = |m: String| Err(GenerateError::Options(m));
        let d = &self.disorder;
        for (name, share) in
            [("dirty share", d.dirty_share), ("out-of-order share", d.out_of_order_share), ("late share", d.late_share)]
        {
            if !(0.0..=1.0).contains(&share) {
                return bad(format!("{name} '{share}' is not between 0 and 1"));
            }
        }
        if self.partitions < 1 {
            return bad(format!("partitions '{}' must be at least 1", self.partitions));
        }
        if self.streams.is_empty() {
            return bad("no stream to write".into());
        }
        match &self.mode {
            Mode::Backfill { start, end, .. } if start >= end => {
                bad(format!("start '{}' is not before end '{}'", start.to_rfc3339(), end.to_rfc3339()))
            }
            Mode::Live { rate: 0, .. } => bad("rate must be at least 1 record a second".into()),
            _ => Ok(()),
        }
    }

    /// Records this run writes, over every stream.
    pub fn total(&self) -> u64 {
        let per = match &self.mode {
            Mode::Backfill { docs, .. } => *docs,
            Mode::Live { rate, duration } => (*rate as f64 * duration.as_secs_f64()).round() as u64,
        };
        per * self.streams.len() as u64
    }

    /// The generator of one stream.
    pub fn generator(&self, kind: EventKind) -> EventGenerator {
        // The same world as `stockyard generate` into MongoDB with these
        // SKUs, so `skus_dim` is the products' dimension.
        let world = World::new(self.seed, self.skus, 1, 1);
        EventGenerator::new(kind, world, self.stores, self.seed, self.disorder)
    }

    /// The records of one stream's backfill, in the order they are written.
    pub fn backfill(&self, kind: EventKind) -> Result<Vec<Event>, GenerateError> {
        let Mode::Backfill { docs, start, end } = &self.mode else {
            return Err(GenerateError::Options("a live run's records are timed by the wall clock".into()));
        };
        let mut g = self.generator(kind);
        Ok((0..*docs).map(|i| g.next_at(slice(*start, *end, i, *docs))).collect())
    }
}

/// Record `i` of `n` happens at the start of the i-th of `n` equal slices.
fn slice(start: DateTime<Utc>, end: DateTime<Utc>, i: u64, n: u64) -> i64 {
    let (s, e) = (start.timestamp_millis(), end.timestamp_millis());
    s + ((e - s) as i128 * i as i128 / n as i128) as i64
}

/// What a run wrote to one stream's topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamSummary {
    /// The topic written, named after the stream.
    pub topic: String,
    /// Partitions of the topic, found or created.
    pub partitions: i32,
    /// Records written.
    pub records: u64,
    /// Records written with a chaos fault.
    pub dirty: u64,
    /// Records written out of order, but not late.
    pub out_of_order: u64,
    /// Records written late.
    pub late: u64,
}

impl StreamSummary {
    fn count(&mut self, e: &Event) {
        self.records += 1;
        match e.quality {
            Quality::Clean => {}
            Quality::Dirty => self.dirty += 1,
            Quality::OutOfOrder => self.out_of_order += 1,
            Quality::Late => self.late += 1,
        }
    }
}

/// One stream's topic, open for writing.
struct Topic {
    broker: Broker,
    partitions: i32,
    pending: BTreeMap<i32, Vec<Vec<u8>>>,
    summary: StreamSummary,
}

impl Topic {
    async fn open(opts: &EventOptions, kind: EventKind) -> Result<Self, GenerateError> {
        let location: KafkaLocation = format!("kafka://{}/{}", opts.brokers, kind.name())
            .parse()
            .map_err(|e: stockyard_stream_source::LocationError| GenerateError::Options(e.to_string()))?;
        let broker = Broker::connect(&location).await?;
        let partitions = match broker.partitions().await {
            Ok(p) => p.len() as i32,
            Err(KafkaError::NoTopic { .. }) => {
                broker.create_topic(opts.partitions).await?;
                opts.partitions
            }
            Err(e) => return Err(e.into()),
        };
        let summary = StreamSummary { topic: kind.name().into(), partitions, ..Default::default() };
        Ok(Topic { broker, partitions, pending: BTreeMap::new(), summary })
    }

    async fn push(&mut self, e: Event) -> Result<bool, GenerateError> {
        self.summary.count(&e);
        let p = e.partition(self.partitions);
        let queue = self.pending.entry(p).or_default();
        queue.push(e.value);
        if queue.len() >= CHUNK {
            let values = std::mem::take(queue);
            self.broker.produce(p, values).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn flush(&mut self) -> Result<(), GenerateError> {
        for (p, values) in std::mem::take(&mut self.pending) {
            if !values.is_empty() {
                self.broker.produce(p, values).await?;
            }
        }
        Ok(())
    }
}

/// Writes the streams of `opts`, calling `progress(written, total)` as
/// records land; returns a summary per stream.
pub async fn produce(
    opts: &EventOptions,
    progress: impl Fn(u64, u64) + Sync,
) -> Result<Vec<StreamSummary>, GenerateError> {
    opts.validate()?;
    let total = opts.total();
    let written = std::sync::atomic::AtomicU64::new(0);
    let tick = |n: u64| {
        let all = written.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        progress(all, total);
    };
    progress(0, total);
    let runs = opts.streams.iter().map(|&kind| {
        let tick = &tick;
        async move {
            let mut topic = Topic::open(opts, kind).await?;
            match &opts.mode {
                Mode::Backfill { docs, start, end } => {
                    let mut g = opts.generator(kind);
                    let mut since = 0;
                    for i in 0..*docs {
                        since += 1;
                        if topic.push(g.next_at(slice(*start, *end, i, *docs))).await? {
                            tick(std::mem::take(&mut since));
                        }
                    }
                    topic.flush().await?;
                    tick(since);
                }
                Mode::Live { rate, duration } => {
                    let run = format!("{}.{}", opts.seed, Utc::now().timestamp());
                    live(&mut topic, opts.generator(kind).with_run(run), *rate, *duration, tick).await?
                }
            }
            Ok::<_, GenerateError>(topic.summary)
        }
    });
    futures::future::try_join_all(runs).await
}

/// `rate` records a second for `duration`, sent every 100 ms.
async fn live(
    topic: &mut Topic,
    mut g: EventGenerator,
    rate: u64,
    duration: Duration,
    tick: &impl Fn(u64),
) -> Result<(), GenerateError> {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        let elapsed = started.elapsed().min(duration);
        let due = (rate as f64 * elapsed.as_secs_f64()).round() as u64;
        let now = Utc::now().timestamp_millis();
        let n = due - sent;
        for _ in 0..n {
            topic.push(g.next_at(now)).await?;
        }
        topic.flush().await?;
        sent = due;
        tick(n);
        if elapsed >= duration {
            return Ok(());
        }
    }
}
