//! Where a stream stands, as the state store keeps it: the intent of the
//! batch in flight (written before it reads anything: its offset ranges,
//! the watermark rows are late against, which partitions were idle and the
//! clock), and the commit of the last finished batch (offsets, watermark,
//! counts, the last final windows, and the pane states as Arrow IPC), one
//! value written in one put so it changes all at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Serialize};
use stockyard_stream_source::Rejects;

use crate::watermark::PartitionClock;

/// Key of a stream's definition.
pub fn definition_key(name: &str) -> String {
    format!("streams/{name}")
}
/// Key of a stream's last commit.
pub fn commit_key(name: &str) -> String {
    format!("stream-commits/{name}")
}
/// Key of a stream's batch in flight.
pub fn intent_key(name: &str) -> String {
    format!("stream-intents/{name}")
}

/// What a stream has counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Records read from Kafka.
    pub records: u64,
    /// Rows on time, into the query.
    pub rows_in: u64,
    /// Rows written to the sink.
    pub rows_out: u64,
    /// Rows below the watermark when read, left out.
    pub late_rows: u64,
    /// Records that could not be read, by reason.
    pub rejected: Rejects,
    /// Values read as null because they had another type.
    pub unreadable_values: u64,
}

/// A window as the Redis sink shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRows {
    /// The window's start, in nanoseconds since the epoch (0 for a stateless stream's rows).
    pub start_ns: i64,
    /// Its end, exclusive, in nanoseconds since the epoch (0 for a stateless stream's rows).
    pub end_ns: i64,
    /// Its rows, as JSON objects.
    pub rows: Vec<serde_json::Value>,
}

/// The last finished batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The batch number; 0 before the first.
    pub batch: u64,
    /// The next offset to read, per partition.
    pub offsets: BTreeMap<i32, i64>,
    /// What the watermark knows of each partition.
    pub clocks: BTreeMap<i32, PartitionClock>,
    /// The watermark, in nanoseconds since the epoch; `None` until there is one.
    pub watermark_ns: Option<i64>,
    /// What the stream has counted, over every batch.
    pub counts: Counts,
    /// The last final windows (Redis sinks), newest first; for a
    /// stateless stream, its last rows under one entry.
    pub finals: Vec<WindowRows>,
    /// Milliseconds the last batch took.
    pub last_batch_ms: u64,
    /// Records behind the end of the topic after the last batch.
    pub lag: u64,
    /// The same, per partition.
    #[serde(default)]
    pub partition_lag: BTreeMap<i32, u64>,
}

/// The batch in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The batch number: one more than the last commit's.
    pub batch: u64,
    /// `[from, to)` per partition.
    pub ranges: BTreeMap<i32, (i64, i64)>,
    /// Rows with an event time below this are late.
    pub late_before_ns: Option<i64>,
    /// Partitions counted as idle, decided when planned so a redone batch agrees.
    pub idle: BTreeSet<i32>,
    /// The wall clock when the batch was planned, in milliseconds since the epoch.
    pub now_ms: i64,
    /// Records behind the end of the topic once this batch is read.
    pub lag: u64,
    /// The same, per partition.
    #[serde(default)]
    pub partition_lag: BTreeMap<i32, u64>,
}

/// `progress` and the pane states as one value.
pub fn encode(progress: &Progress, schema: Option<&SchemaRef>, states: &[RecordBatch]) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(progress).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    if let Some(schema) = schema {
        let mut writer = StreamWriter::try_new(&mut out, schema).map_err(|e| e.to_string())?;
        for b in states {
            writer.write(b).map_err(|e| e.to_string())?;
        }
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// What [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<(Progress, Vec<RecordBatch>), String> {
    let len = bytes.get(..8).ok_or("too short")?;
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
    let json = bytes.get(8..8 + len).ok_or("too short")?;
    let progress: Progress = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let rest = &bytes[8 + len..];
    let mut states = Vec::new();
    if !rest.is_empty() {
        let reader = StreamReader::try_new(Cursor::new(rest), None).map_err(|e| e.to_string())?;
        for b in reader {
            states.push(b.map_err(|e| e.to_string())?);
        }
    }
    Ok((progress, states))
}
