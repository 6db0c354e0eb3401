//! What a stream's sink shows: the JSON object a Redis sink's key holds
//! (`shared/spec/streaming.md`), which the UI also reads for a Parquet
//! sink's last final windows.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A sink's value after a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SinkView {
    /// The stream's name.
    pub stream: String,
    /// The batch that wrote it; 0 before one ran.
    pub batch: u64,
    /// The watermark after that batch, RFC 3339.
    #[serde(default)]
    pub watermark: Option<String>,
    /// When the batch wrote it, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// A windowed stream's open windows, then its last final ones, newest
    /// first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<WindowView>>,
    /// A stateless stream's last rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub rows: Option<Vec<Value>>,
}

impl SinkView {
    /// The view of `stream` before any batch: no windows, no rows.
    pub fn empty(stream: &str) -> Self {
        SinkView {
            stream: stream.into(),
            batch: 0,
            watermark: None,
            updated_at: None,
            windows: Some(Vec::new()),
            rows: Some(Vec::new()),
        }
    }
}

/// One event-time window and its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WindowView {
    /// Its start, RFC 3339.
    pub window_start: String,
    /// Its end, exclusive, RFC 3339.
    pub window_end: String,
    /// The watermark passed its end: the rows will not change.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The query's rows for it, as JSON objects.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
}
