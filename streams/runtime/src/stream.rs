//! One stream's batches. A batch: plan it (offset ranges to the end of
//! each partition, the lateness bound, idle partitions, the clock) and
//! write that intent; read and decode the ranges; leave late rows out;
//! aggregate into pane states; emit the windows the new watermark made
//! final (Parquet) or the open and recent ones (Redis); write the sink;
//! commit. A batch found planned but not committed is redone from its
//! intent, so it reads the same records and writes the same rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use chrono::{DateTime, Utc};
use stockyard_state::StateStore;
use stockyard_stream_sinks::{ParquetSink, RedisSink};
use stockyard_stream_source::{Broker, decode};

use crate::StreamError;
use crate::definition::{Definition, Sink, Start};
use crate::plan::{Prepared, WindowPlan, conform};
use crate::progress::{self, Counts, Intent, Progress, WindowRows};
use crate::view::{SinkView, WindowView};
use crate::watermark;
use crate::window;

/// How long static tables are kept before they are read again.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(300);

/// How often the topic is asked for partitions added to it.
const PARTITIONS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The most records a batch reads from one partition: catching up after a
/// pause goes in large batches, not one unbounded one.
const MAX_RECORDS: i64 = 200_000;

/// Final windows of a Parquet sink kept for the UI's results.
const RECENT: usize = 3;

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A batch ran; `caught_up` when it read to the end of every partition.
    Ran {
        /// Whether the batch read to the end of every partition.
        caught_up: bool,
    },
    /// Nothing to read and no window to close.
    Nothing,
}

enum Writer {
    Parquet(ParquetSink),
    Redis(RedisSink, usize),
}

/// A running stream.
pub struct Stream {
    definition: Definition,
    store: Arc<dyn StateStore>,
    broker: Option<Broker>,
    prepared: Prepared,
    /// When the static tables in `prepared` were read.
    prepared_at: Instant,
    writer: Writer,
    /// Where late rows go, when the source keeps them.
    late_sink: Option<ParquetSink>,
    /// When the topic's partitions were last listed.
    partitions_listed: Option<Instant>,
    /// The committed position.
    pub progress: Progress,
    /// Pane states after the committed batch.
    states: Vec<RecordBatch>,
    state_schema: Option<SchemaRef>,
    /// The `window` column of the pane states.
    window_column: Option<usize>,
    /// A batch planned but not committed when the stream was opened:
    /// redone first. Later intents are this process's own.
    pending: Option<Intent>,
    /// Aggregate rows of final windows by start, for window functions over
    /// earlier windows: made from the pane states (kept long enough for
    /// them), so a reopened stream makes them again.
    history: BTreeMap<i64, Vec<RecordBatch>>,
    /// A Parquet sink's last final windows, newest first (in memory only:
    /// they are for the UI, the sink has them all).
    recent: Vec<WindowRows>,
    results: Option<SinkView>,
}

impl Stream {
    /// Opens the stream where its last commit left it.
    pub async fn open(definition: Definition, store: Arc<dyn StateStore>) -> Result<Self, StreamError> {
        let corrupt = |reason: String| StreamError::Corrupt { stream: definition.name.clone(), reason };
        let prepared =
            Prepared::new(&definition).await.map_err(|e| corrupt(format!("the query no longer plans: {e}")))?;
        let writer = match &definition.sink {
            Sink::Parquet { location, partition_by } => {
                Writer::Parquet(ParquetSink::open(location, partition_by.clone())?)
            }
            Sink::Redis { url, key, keep, ttl } => Writer::Redis(RedisSink::open(url, key, *ttl)?, *keep),
        };
        let late_sink = match &definition.source.keep_late {
            Some(location) => Some(ParquetSink::open(location, vec![])?),
            None => None,
        };
        let (state_schema, window_column) = match &definition.window {
            Some(spec) => {
                let split = WindowPlan::split(prepared.physical(vec![]).await?, spec).map_err(corrupt)?;
                (Some(split.state_schema()), Some(split.window_column))
            }
            None => (None, None),
        };
        let (progress, states) = match store.get(&progress::commit_key(&definition.name)).await? {
            Some(bytes) => progress::decode(&bytes).map_err(corrupt)?,
            None => (Progress::default(), vec![]),
        };
        let states = match &state_schema {
            Some(s) => conform(states, s)?,
            None => vec![],
        };
        let pending = match store.get(&progress::intent_key(&definition.name)).await? {
            Some(bytes) => serde_json::from_slice::<Intent>(&bytes).ok().filter(|i| i.batch == progress.batch + 1),
            None => None,
        };
        Ok(Self {
            definition,
            store,
            broker: None,
            prepared,
            prepared_at: Instant::now(),
            writer,
            late_sink,
            partitions_listed: None,
            progress,
            states,
            state_schema,
            window_column,
            pending,
            history: BTreeMap::new(),
            recent: Vec::new(),
            results: None,
        })
    }

    /// The definition it runs.
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    async fn broker(&mut self) -> Result<&Broker, StreamError> {
        if self.broker.is_none() {
            self.broker = Some(Broker::connect(&self.definition.source.location).await?);
        }
        Ok(self.broker.as_ref().expect("connected"))
    }

    /// Runs the next batch, or redoes the one in flight.
    pub async fn step(&mut self) -> Result<Step, StreamError> {
        let started = Instant::now();
        if self.prepared_at.elapsed() >= REFRESH {
            // Static tables read again; a redone batch may see newer ones.
            self.prepared = Prepared::new(&self.definition).await.map_err(|e| StreamError::Corrupt {
                stream: self.definition.name.clone(),
                reason: format!("the query no longer plans: {e}"),
            })?;
            self.prepared_at = Instant::now();
        }
        let name = self.definition.name.clone();
        let intent = match self.pending.take() {
            Some(i) => {
                tracing::info!(stream = %name, batch = i.batch, "redoing the batch in flight");
                i
            }
            None => match self.plan().await? {
                Some(i) => {
                    let bytes = serde_json::to_vec(&i).expect("an intent is JSON");
                    self.store.put(&progress::intent_key(&name), bytes).await?;
                    i
                }
                None => return Ok(Step::Nothing),
            },
        };
        let caught_up = intent.lag == 0;
        self.run(&intent, started).await?;
        Ok(Step::Ran { caught_up })
    }

    /// The next batch, or `None` when it would change nothing.
    async fn plan(&mut self) -> Result<Option<Intent>, StreamError> {
        let source = self.definition.source.clone();
        let now_ms = Utc::now().timestamp_millis();
        if self.progress.offsets.is_empty() {
            // A new stream: where it starts reading.
            let broker = self.broker().await?;
            let mut offsets = BTreeMap::new();
            for p in broker.partitions().await? {
                let at = match source.start {
                    Start::Earliest => 0,
                    Start::Latest => broker.end(p, 0).await?,
                };
                offsets.insert(p, at);
            }
            self.progress.clocks = offsets
                .keys()
                .map(|&p| (p, watermark::PartitionClock { max_event_ns: None, last_record_ms: now_ms }))
                .collect();
            self.progress.offsets = offsets;
        }
        if self.partitions_listed.is_none_or(|t| t.elapsed() >= PARTITIONS_EVERY) {
            // Partitions added to the topic are read from their start.
            let partitions = self.broker().await?.partitions().await?;
            for p in partitions {
                if let std::collections::btree_map::Entry::Vacant(e) = self.progress.offsets.entry(p) {
                    tracing::info!(stream = %self.definition.name, partition = p, "a new partition: read from its start");
                    e.insert(0);
                    self.progress
                        .clocks
                        .insert(p, watermark::PartitionClock { max_event_ns: None, last_record_ms: now_ms });
                }
            }
            self.partitions_listed = Some(Instant::now());
        }
        let offsets = self.progress.offsets.clone();
        let broker = self.broker().await?;
        let mut ranges = BTreeMap::new();
        let mut partition_lag = BTreeMap::new();
        for (&p, &from) in &offsets {
            let end = broker.end(p, from).await?;
            let to = end.min(from + MAX_RECORDS).max(from);
            partition_lag.insert(p, (end - to).max(0) as u64);
            ranges.insert(p, (from, to));
        }
        let lag = partition_lag.values().sum();
        let has_records: BTreeSet<i32> = ranges.iter().filter(|(_, (f, t))| t > f).map(|(p, _)| *p).collect();
        let idle_ms = source.idle_timeout.as_millis() as i64;
        let idle = watermark::idle(&self.progress.clocks, &has_records, now_ms, idle_ms);
        if has_records.is_empty() {
            // A batch without data only to close windows.
            let Some(spec) = self.definition.window else { return Ok(None) };
            let lateness = source.lateness.as_nanos() as i64;
            let next = watermark::advance(self.progress.watermark_ns, &self.progress.clocks, &idle, now_ms, lateness);
            let closes = next.is_some_and(|w| {
                self.pane_starts().iter().any(|&pane| {
                    spec.windows_of_pane(pane).any(|s| {
                        let end = s + spec.size;
                        end <= w && self.progress.watermark_ns.is_none_or(|prev| end > prev)
                    })
                })
            });
            if !closes {
                return Ok(None);
            }
        }
        Ok(Some(Intent {
            batch: self.progress.batch + 1,
            ranges,
            late_before_ns: self.progress.watermark_ns,
            idle,
            now_ms,
            lag,
            partition_lag,
        }))
    }

    /// The start of every pane in the state.
    fn pane_starts(&self) -> BTreeSet<i64> {
        let Some(column) = self.window_column else { return BTreeSet::new() };
        self.states.iter().flat_map(|b| window::starts(b.column(column).as_ref())).flatten().collect()
    }

    async fn run(&mut self, intent: &Intent, started: Instant) -> Result<(), StreamError> {
        let source = self.definition.source.clone();
        let mut counts = Counts::default();
        let mut clocks = self.progress.clocks.clone();
        let mut parts = Vec::new();
        let mut late = Vec::new();
        let mut offsets = self.progress.offsets.clone();
        // Every partition of the intent is known to the commit, also one it
        // read nothing from: a batch redone after a crash before the first
        // commit knows only its intent, and a partition left out of the
        // clocks would not hold the watermark back.
        for (&p, &(from, _)) in &intent.ranges {
            offsets.entry(p).or_insert(from);
            clocks.entry(p).or_insert(watermark::PartitionClock { max_event_ns: None, last_record_ms: intent.now_ms });
        }
        // Every partition is read and decoded at once, each on a core of
        // its own; the results are taken in partition order.
        let broker = self.broker().await?;
        let reads = intent.ranges.iter().filter(|(_, (from, to))| to > from).map(|(&p, &(from, to))| {
            let (schema, event_time) = (source.schema.clone(), source.event_time);
            async move {
                let records = broker.read(p, from, to).await?;
                let n = records.len();
                let decoded = tokio::task::spawn_blocking(move || {
                    decode(records.iter().map(|r| r.value.as_deref()), &schema, event_time)
                })
                .await
                .map_err(|e| StreamError::Corrupt { stream: String::new(), reason: format!("decoding failed: {e}") })?;
                Ok::<_, StreamError>((p, to, n, decoded))
            }
        });
        let read = futures::future::try_join_all(reads).await?;
        for (p, to, n, decoded) in read {
            counts.records += n as u64;
            offsets.insert(p, to);
            let clock = clocks.entry(p).or_insert(watermark::PartitionClock { max_event_ns: None, last_record_ms: 0 });
            if n > 0 {
                clock.last_record_ms = intent.now_ms;
            }
            counts.rejected.add(&decoded.rejects);
            counts.unreadable_values += decoded.unreadable_values;
            if let Some(m) = decoded.event_ns.iter().max() {
                clock.max_event_ns = Some(clock.max_event_ns.map_or(*m, |c| c.max(*m)));
            }
            let rows = match (self.definition.window, intent.late_before_ns) {
                (Some(_), Some(bound)) => {
                    let on_time: BooleanArray = decoded.event_ns.iter().map(|&t| Some(t >= bound)).collect();
                    let kept = filter_record_batch(&decoded.batch, &on_time)?;
                    counts.late_rows += (decoded.batch.num_rows() - kept.num_rows()) as u64;
                    if self.late_sink.is_some() && kept.num_rows() < decoded.batch.num_rows() {
                        late.push(filter_record_batch(&decoded.batch, &arrow::compute::not(&on_time)?)?);
                    }
                    kept
                }
                _ => decoded.batch,
            };
            counts.rows_in += rows.num_rows() as u64;
            parts.push(rows);
        }
        let lateness = source.lateness.as_nanos() as i64;
        let watermark_ns =
            watermark::advance(self.progress.watermark_ns, &clocks, &intent.idle, intent.now_ms, lateness);
        let plan = self.prepared.physical(parts).await?;
        let mut finals = self.progress.finals.clone();
        // Windows a Parquet sink gets now, for the results the UI shows.
        let mut closed: Vec<(i64, i64, Vec<RecordBatch>)> = Vec::new();
        let (out, states, open) = match self.definition.window {
            None => {
                let out = self.prepared.run(plan).await?;
                if let Writer::Redis(_, keep) = &self.writer {
                    let mut rows = json_rows(&out)?;
                    let mut kept = finals.pop().map(|w| w.rows).unwrap_or_default();
                    rows.reverse();
                    rows.append(&mut kept);
                    rows.truncate(*keep);
                    finals = vec![WindowRows { start_ns: 0, end_ns: 0, rows }];
                }
                (out, vec![], vec![])
            }
            Some(spec) => {
                let split = WindowPlan::split(plan, &spec)
                    .map_err(|e| StreamError::Corrupt { stream: self.definition.name.clone(), reason: e })?;
                let partial = split.partial(&self.prepared).await?;
                let mut all = self.states.clone();
                all.extend(partial);
                let merged = split.reduce(&self.prepared, all).await?;
                let column = split.window_column;
                let panes: BTreeSet<i64> =
                    merged.iter().flat_map(|b| window::starts(b.column(column).as_ref())).flatten().collect();
                let windows: BTreeSet<i64> = panes.iter().flat_map(|&p| spec.windows_of_pane(p)).collect();
                let previous = self.progress.watermark_ns;
                let is_final = |end: i64| watermark_ns.is_some_and(|w| end <= w);
                let mut out = Vec::new();
                let mut open = Vec::new();
                for &start in &windows {
                    let end = start + spec.size;
                    let newly_final = is_final(end) && previous.is_none_or(|p| end > p);
                    let wanted = newly_final || (!is_final(end) && matches!(self.writer, Writer::Redis(..)));
                    if !wanted {
                        continue;
                    }
                    let rows = match split.over {
                        None => split.finish(&self.prepared, window_input(&merged, column, &spec, start)?).await?,
                        Some(over) => {
                            // The aggregate rows of the earlier windows in
                            // the frames, then of this one.
                            let first = (start - over.horizon_ns).div_euclid(spec.slide) * spec.slide;
                            let first = if first < start - over.horizon_ns { first + spec.slide } else { first };
                            let mut rows = Vec::new();
                            for earlier in (first..=start).step_by(spec.slide as usize) {
                                if let Some(cached) = self.history.get(&earlier) {
                                    rows.extend(cached.iter().cloned());
                                    continue;
                                }
                                let input = window_input(&merged, column, &spec, earlier)?;
                                let agg = split.aggregate(&self.prepared, input).await?;
                                if is_final(earlier + spec.size) {
                                    self.history.insert(earlier, agg.clone());
                                }
                                rows.extend(agg);
                            }
                            split.finish_over(&self.prepared, start, rows).await?
                        }
                    };
                    if newly_final {
                        match &self.writer {
                            Writer::Redis(_, keep) => {
                                finals.insert(0, WindowRows { start_ns: start, end_ns: end, rows: json_rows(&rows)? });
                                finals.truncate(*keep);
                            }
                            Writer::Parquet(_) => closed.push((start, end, rows.clone())),
                        }
                        out.extend(rows);
                    } else {
                        open.push(WindowRows { start_ns: start, end_ns: end, rows: json_rows(&rows)? });
                    }
                }
                // Panes whose every window is final, and past the reach
                // of later windows' window functions, are done.
                let horizon = split.over.map_or(0, |o| o.horizon_ns);
                if let Some(w) = watermark_ns {
                    self.history.retain(|&start, _| start + spec.size + horizon >= w);
                }
                let keep_pane = |p: i64| !is_final(spec.pane_needed_until(p) + horizon);
                let mut states = Vec::new();
                for b in merged {
                    let mask: BooleanArray = window::starts(b.column(column).as_ref())
                        .into_iter()
                        .map(|s| Some(s.is_some_and(keep_pane)))
                        .collect();
                    let kept = filter_record_batch(&b, &mask)?;
                    if kept.num_rows() > 0 {
                        states.push(kept);
                    }
                }
                (out, states, open)
            }
        };
        let rows_out: usize = out.iter().map(RecordBatch::num_rows).sum();
        let view = match &self.writer {
            Writer::Parquet(sink) => {
                sink.write(intent.batch, &out).await?;
                let mut recent = Vec::new();
                for (start_ns, end_ns, rows) in closed.iter().rev().take(RECENT) {
                    recent.push(WindowRows { start_ns: *start_ns, end_ns: *end_ns, rows: json_rows(rows)? });
                }
                recent.extend(self.recent.iter().cloned());
                recent.truncate(RECENT);
                let view = self.redis_view(intent.batch, watermark_ns, vec![], &recent);
                self.recent = recent;
                view
            }
            Writer::Redis(sink, _) => {
                let view = self.redis_view(intent.batch, watermark_ns, open, &finals);
                sink.write(&serde_json::to_string(&view).unwrap_or_default()).await?;
                view
            }
        };
        if let Some(sink) = &self.late_sink {
            sink.write(intent.batch, &late).await?;
        }
        // A crash here leaves the sink written and the batch uncommitted:
        // the batch is redone and writes the same rows again.
        stockyard_plan::fault::point("stream-after-sink");
        counts.rows_out = rows_out as u64;
        let mut total = self.progress.counts;
        add(&mut total, &counts);
        let progress = Progress {
            batch: intent.batch,
            offsets,
            clocks,
            watermark_ns,
            counts: total,
            finals,
            last_batch_ms: started.elapsed().as_millis() as u64,
            lag: intent.lag,
            partition_lag: intent.partition_lag.clone(),
        };
        let bytes = progress::encode(&progress, self.state_schema.as_ref(), &states)
            .map_err(|e| StreamError::Corrupt { stream: self.definition.name.clone(), reason: e })?;
        self.store.put(&progress::commit_key(&self.definition.name), bytes).await?;
        self.progress = progress;
        self.states = states;
        self.results = Some(view);
        Ok(())
    }

    /// What the sink shows after the last batch (the value a Redis sink
    /// holds; for a Parquet sink, its last few final windows), for the UI.
    pub fn results(&self) -> Option<&SinkView> {
        self.results.as_ref()
    }

    /// The Redis sink's value: open windows and the last final ones,
    /// newest first.
    fn redis_view(
        &self,
        batch: u64,
        watermark_ns: Option<i64>,
        open: Vec<WindowRows>,
        finals: &[WindowRows],
    ) -> SinkView {
        let mut windows: Vec<(bool, &WindowRows)> = open.iter().map(|w| (false, w)).collect();
        windows.extend(finals.iter().map(|w| (true, w)));
        windows.sort_by(|a, b| b.1.start_ns.cmp(&a.1.start_ns).then(a.0.cmp(&b.0)));
        let mut view = SinkView {
            stream: self.definition.name.clone(),
            batch,
            watermark: watermark_ns.map(rfc3339),
            updated_at: Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            windows: None,
            rows: None,
        };
        if self.definition.window.is_some() {
            let window = |(is_final, w): (bool, &WindowRows)| WindowView {
                window_start: rfc3339(w.start_ns),
                window_end: rfc3339(w.end_ns),
                is_final,
                rows: w.rows.clone(),
            };
            view.windows = Some(windows.into_iter().map(window).collect());
        } else {
            view.rows = Some(finals.first().map(|w| w.rows.clone()).unwrap_or_default());
        }
        view
    }
}

fn add(total: &mut Counts, batch: &Counts) {
    total.records += batch.records;
    total.rows_in += batch.rows_in;
    total.rows_out += batch.rows_out;
    total.late_rows += batch.late_rows;
    total.rejected.add(&batch.rejected);
    total.unreadable_values += batch.unreadable_values;
}

/// An instant as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The states of the panes of the window starting at `start`, with their
/// `window` column set to that window.
pub fn window_input(
    states: &[RecordBatch],
    column: usize,
    spec: &window::WindowSpec,
    start: i64,
) -> Result<Vec<RecordBatch>, StreamError> {
    let mut out = Vec::new();
    for b in states {
        let mask: BooleanArray = window::starts(b.column(column).as_ref())
            .into_iter()
            .map(|s| Some(s.is_some_and(|s| s >= start && s < start + spec.size)))
            .collect();
        let rows = filter_record_batch(b, &mask)?;
        if rows.num_rows() == 0 {
            continue;
        }
        let mut columns = rows.columns().to_vec();
        columns[column] = window::column(rows.num_rows(), start, spec.size);
        out.push(RecordBatch::try_new(rows.schema(), columns)?);
    }
    if out.is_empty() {
        return Ok(out);
    }
    let schema = out[0].schema();
    Ok(vec![concat_batches(&schema, &out)?])
}

/// Rows as JSON objects (nulls written out), timestamps as RFC 3339 in UTC.
fn json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, StreamError> {
    let mut out = Vec::new();
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        let utc = Some(Arc::<str>::from("+00:00"));
        let columns: Vec<Arc<dyn Array>> = b
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(unit, None) => {
                    arrow::compute::cast(c, &DataType::Timestamp(*unit, utc.clone())).map_err(StreamError::from)
                }
                _ => Ok(c.clone()),
            })
            .collect::<Result<_, _>>()?;
        let fields: Vec<arrow::datatypes::Field> = b
            .schema()
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
            .collect();
        let b = RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)?;
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(Vec::new());
        writer.write(&b)?;
        writer.finish()?;
        let bytes = writer.into_inner();
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
            .map_err(|e| StreamError::Corrupt { stream: String::new(), reason: e.to_string() })?;
        out.extend(rows);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, StringViewArray, TimestampNanosecondArray};

    use super::*;

    const MIN: i64 = 60_000_000_000;

    fn local() -> crate::definition::Environment {
        crate::definition::Environment { local_files: true, tables: None }
    }

    fn rows(schema: &SchemaRef, data: &[(&str, &str, f64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringViewArray::from(data.iter().map(|d| d.0).collect::<Vec<_>>())),
                Arc::new(StringViewArray::from(data.iter().map(|d| d.1).collect::<Vec<_>>())),
                Arc::new(Float64Array::from(data.iter().map(|d| d.2).collect::<Vec<_>>())),
                Arc::new(TimestampNanosecondArray::from(data.iter().map(|d| d.3).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    /// Panes merged across batches give each hopping window exactly the
    /// aggregates of the rows in it, distinct counts included.
    #[tokio::test]
    async fn pane_states_merge_into_exact_windows() {
        let dir = tempfile::tempdir().unwrap();
        let sql = format!(
            "CREATE EXTERNAL TABLE orders (product_id VARCHAR, customer VARCHAR, price DOUBLE, ts TIMESTAMP)
               STORED AS KAFKA LOCATION 'kafka://127.0.0.1:9/orders' OPTIONS ('event_time' 'ts', 'watermark' '1m');
             CREATE EXTERNAL TABLE out STORED AS PARQUET LOCATION '{}';
             INSERT INTO out
             SELECT window.start AS ws, product_id, count(*) AS n, sum(price) AS revenue,
                    count(DISTINCT customer) AS customers
             FROM orders GROUP BY window(ts, '5 minutes', '1 minute'), product_id ORDER BY product_id",
            dir.path().display()
        );
        let d = Definition::parse("t", &sql, &local()).await.unwrap();
        let spec = d.window.unwrap();
        assert_eq!((spec.size, spec.slide), (5 * MIN, MIN));
        let prepared = Prepared::new(&d).await.unwrap();
        let ten = 600 * MIN;
        let schema = d.source.schema.clone();
        let batches = [
            rows(&schema, &[("a", "c1", 1.0, ten + MIN / 2), ("a", "c2", 2.0, ten + 2 * MIN + 10)]),
            rows(&schema, &[("a", "c1", 4.0, ten + 5 * MIN - 1), ("b", "c3", 8.0, ten + MIN)]),
        ];
        let mut states = Vec::new();
        let mut column = 0;
        for b in batches {
            let split = WindowPlan::split(prepared.physical(vec![b]).await.unwrap(), &spec).unwrap();
            column = split.window_column;
            let mut all = states.clone();
            all.extend(split.partial(&prepared).await.unwrap());
            states = split.reduce(&prepared, all).await.unwrap();
        }
        let split = WindowPlan::split(prepared.physical(vec![]).await.unwrap(), &spec).unwrap();
        // One state row per pane and product: a in 10:00, 10:02, 10:04; b in 10:01.
        assert_eq!(states.iter().map(RecordBatch::num_rows).sum::<usize>(), 4);
        let window = |start: i64| {
            let input = window_input(&states, column, &spec, start).unwrap();
            let split = &split;
            let prepared = &prepared;
            async move {
                let out = split.finish(prepared, input).await.unwrap();
                arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string()
            }
        };
        assert_eq!(
            window(ten).await,
            "+---------------------+------------+---+---------+-----------+
| ws                  | product_id | n | revenue | customers |
+---------------------+------------+---+---------+-----------+
| 1970-01-01T10:00:00 | a          | 3 | 7.0     | 2         |
| 1970-01-01T10:00:00 | b          | 1 | 8.0     | 1         |
+---------------------+------------+---+---------+-----------+"
        );
        assert_eq!(
            window(ten - 2 * MIN).await,
            "+---------------------+------------+---+---------+-----------+
| ws                  | product_id | n | revenue | customers |
+---------------------+------------+---+---------+-----------+
| 1970-01-01T09:58:00 | a          | 2 | 3.0     | 2         |
| 1970-01-01T09:58:00 | b          | 1 | 8.0     | 1         |
+---------------------+------------+---+---------+-----------+"
        );
        // [10:04, 10:09) holds only the row at 10:04:59.999….
        assert!(window(ten + 4 * MIN).await.contains("| 1970-01-01T10:04:00 | a          | 1 | 4.0     | 1         |"));
    }

    /// ORDER BY … LIMIT ranks each window's rows alone: a window of small
    /// revenues after one of large ones still gets its own top rows.
    #[tokio::test]
    async fn a_limit_ranks_each_window_alone() {
        let dir = tempfile::tempdir().unwrap();
        let sql = format!(
            "CREATE EXTERNAL TABLE orders (product_id VARCHAR, customer VARCHAR, price DOUBLE, ts TIMESTAMP)
               STORED AS KAFKA LOCATION 'kafka://127.0.0.1:9/orders' OPTIONS ('event_time' 'ts');
             CREATE EXTERNAL TABLE out STORED AS PARQUET LOCATION '{}';
             INSERT INTO out SELECT product_id, round(sum(price), 2) AS revenue
             FROM orders GROUP BY window(ts, '1 minute'), product_id ORDER BY revenue DESC, product_id LIMIT 2",
            dir.path().display()
        );
        let d = Definition::parse("t", &sql, &local()).await.unwrap();
        let spec = d.window.unwrap();
        let prepared = Prepared::new(&d).await.unwrap();
        let schema = d.source.schema.clone();
        let batch = rows(
            &schema,
            &[
                ("a", "c", 100.0, 0),
                ("b", "c", 90.0, 1),
                ("c", "c", 5.0, MIN),
                ("d", "c", 4.0, MIN),
                ("e", "c", 3.0, MIN),
            ],
        );
        let split = WindowPlan::split(prepared.physical(vec![batch]).await.unwrap(), &spec).unwrap();
        let states = split.reduce(&prepared, split.partial(&prepared).await.unwrap()).await.unwrap();
        let mut got = Vec::new();
        for start in [0, MIN] {
            let input = window_input(&states, split.window_column, &spec, start).unwrap();
            let out = split.finish(&prepared, input).await.unwrap();
            got.push(arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string());
        }
        assert!(
            got[0].contains("| a          | 100.0   |") && got[0].contains("| b          | 90.0    |"),
            "{}",
            got[0]
        );
        assert!(
            got[1].contains("| c          | 5.0     |") && got[1].contains("| d          | 4.0     |"),
            "{}",
            got[1]
        );
        assert!(!got[1].contains("| e "), "{}", got[1]);
    }

    /// Every stream shipped in jobs/streams/ reads and plans, with its
    /// `${…}` settings filled in and the MongoDB dimension it joins.
    #[tokio::test]
    async fn the_shipped_stream_files_plan() {
        use arrow::datatypes::{DataType, Field, Schema};
        let dir = tempfile::tempdir().unwrap();
        let dims = datafusion::catalog::MemorySchemaProvider::new();
        let skus = Arc::new(Schema::new(vec![
            Field::new("sku_id", DataType::Utf8, true),
            Field::new("product_name", DataType::Utf8, true),
            Field::new("category", DataType::Utf8, true),
            Field::new("unit_price", DataType::Float64, true),
        ]));
        let table = datafusion::datasource::MemTable::try_new(skus, vec![vec![]]).unwrap();
        datafusion::catalog::SchemaProvider::register_table(&dims, "skus_dim".into(), Arc::new(table)).unwrap();
        let env = crate::definition::Environment { local_files: true, tables: Some(Arc::new(dims)) };
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../jobs/streams");
        let mut planned = Vec::new();
        for entry in std::fs::read_dir(&shipped).unwrap() {
            let path = entry.unwrap().path();
            let sql = std::fs::read_to_string(&path)
                .unwrap()
                .replace("${KAFKA}", "127.0.0.1:9")
                .replace("${REDIS}", "redis://127.0.0.1:1")
                .replace("${OUT}", &dir.path().display().to_string());
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let d = Definition::parse(&name, &sql, &env).await.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!d.query.contains("${"), "{name}");
            planned.push((name, d.window.map(|w| (w.size / MIN, w.slide / MIN))));
        }
        planned.sort();
        let windowed: Vec<_> = planned.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        assert_eq!(
            windowed,
            [
                ("category_revenue", Some((5, 1))),
                ("clickstream_bronze", None),
                ("clickstream_quality", Some((1, 1))),
                ("inventory_alerts", Some((10, 2))),
                ("order_quality", Some((1, 1))),
                ("sales_metrics", Some((5, 1))),
                ("silver_page_views", None),
                ("silver_purchases", None),
                ("silver_sessions", Some((30, 30))),
                ("top_products", Some((5, 1))),
            ]
        );
    }

    #[tokio::test]
    async fn bad_stream_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let head = format!(
            "CREATE EXTERNAL TABLE orders (product_id VARCHAR, price DOUBLE, ts TIMESTAMP, note VARCHAR)
               STORED AS KAFKA LOCATION 'kafka://127.0.0.1:9/orders' OPTIONS ('event_time' 'ts');
             CREATE EXTERNAL TABLE out STORED AS PARQUET LOCATION '{}';",
            dir.path().display()
        );
        let refuse = |sql: String| async move { Definition::parse("t", &sql, &local()).await.unwrap_err().reason };
        let unknown_column =
            refuse(format!("{head} INSERT INTO out SELECT count(*) FROM orders GROUP BY window(ts, '1 minute'), nope"))
                .await;
        assert!(unknown_column.contains("nope"), "{unknown_column}");
        assert_eq!(
            refuse(format!("{head} INSERT INTO out SELECT count(*) FROM orders GROUP BY window(note, '1 minute')"))
                .await,
            "window(...) is on 'note', but the event time of 'orders' is 'ts' (windows follow the event time)"
        );
        assert_eq!(
            refuse(format!("{head} INSERT INTO out SELECT product_id, count(*) FROM orders GROUP BY product_id")).await,
            "a stream that aggregates needs GROUP BY window(ts, size[, slide]): without a window its groups never close"
        );
        let bad_option = refuse(
            "CREATE EXTERNAL TABLE s (ts TIMESTAMP) STORED AS KAFKA LOCATION 'kafka://h:1/t' OPTIONS ('wartermark' '1m');"
                .to_string(),
        )
        .await;
        assert_eq!(
            bad_option,
            "unknown option 'wartermark' for Kafka source 's' (known: format, event_time, watermark, start, idle_timeout, keep_late)"
        );
        assert_eq!(
            refuse(format!("{head} INSERT INTO other SELECT * FROM orders")).await,
            "INSERT INTO 'other': no such sink (declare it with CREATE EXTERNAL TABLE … STORED AS PARQUET or REDIS)"
        );
        assert!(
            Definition::parse("t", &format!("{head} INSERT INTO out SELECT * FROM orders"), &Default::default())
                .await
                .unwrap_err()
                .reason
                .contains("--allow-local-files")
        );
    }
}
