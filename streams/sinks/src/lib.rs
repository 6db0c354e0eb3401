//! Where a stream's results go, each written so that redoing a batch gives
//! the same state: Parquet files named by the batch that wrote them and put
//! whole (a reader never sees half a file, a redone batch replaces its own
//! file), and a Redis key set to the stream's latest view in one MULTI/EXEC.

pub mod parquet;
pub mod redis;

pub use parquet::ParquetSink;
pub use redis::RedisSink;

/// Why a sink could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing to, or checking, the sink failed.
    #[error("sink '{location}': {reason}")]
    Write {
        /// The sink's location, password masked.
        location: String,
        /// What went wrong, secrets masked.
        reason: String,
    },
}

impl SinkError {
    fn write(location: &str, reason: impl std::fmt::Display) -> Self {
        SinkError::Write { location: stockyard_mask::uri(location), reason: stockyard_mask::text(&reason.to_string()) }
    }
}
