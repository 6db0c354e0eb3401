//! The stream runtime: a stream is one SQL file (a Kafka source, sinks,
//! one `INSERT INTO … SELECT`) run as deterministic micro-batches. Each
//! batch reads fixed offset ranges, aggregates them into per-pane partial
//! states with DataFusion's own accumulators, merges them into the window
//! state, writes the sinks, and only then commits offsets, watermark and
//! state in one write to the state store: a redone batch writes the same
//! rows, so every sink shows each batch once. `../shared/spec/streaming.md`
//! is the contract.

pub mod definition;
pub mod manager;
pub mod plan;
pub mod progress;
pub mod stream;
pub mod view;
pub mod watermark;
pub mod window;

pub use definition::{Definition, DefinitionError, Environment};
pub use manager::{StreamControl, StreamInfo, StreamState, Streams};
pub use view::{SinkView, WindowView};

/// Why a stream cannot go on (the next batch tries again).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The broker could not be reached or read.
    #[error(transparent)]
    Kafka(#[from] stockyard_stream_source::KafkaError),
    /// A sink could not be written.
    #[error(transparent)]
    Sink(#[from] stockyard_stream_sinks::SinkError),
    /// The state store could not be read or written.
    #[error("state store: {0}")]
    State(#[from] stockyard_state::StateError),
    /// Boxed: DataFusion's error is large, and every step returns this.
    #[error("{0}")]
    Plan(Box<datafusion::error::DataFusionError>),
    /// An Arrow operation on the rows or the pane states failed.
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The stream's stored state is unreadable or no longer fits its query.
    #[error("the stored state of stream '{stream}' is unreadable: {reason}")]
    Corrupt {
        /// The stream's name.
        stream: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<datafusion::error::DataFusionError> for StreamError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        StreamError::Plan(Box::new(e))
    }
}
