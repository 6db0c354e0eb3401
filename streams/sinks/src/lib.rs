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
    #[error("sink '{location}': {source}")]
    Write {
        /// The sink's location, password masked.
        location: String,
        /// What went wrong, secrets masked.
        #[source]
        source: stockyard_mask::Masked,
    },
    /// The sink did not answer in time.
    #[error("sink '{location}': no answer within {} s", .waited.as_secs())]
    Timeout {
        /// The sink's location, password masked.
        location: String,
        /// How long it was given.
        waited: std::time::Duration,
    },
}

impl SinkError {
    fn write(location: &str, e: &(dyn std::error::Error + 'static)) -> Self {
        SinkError::Write { location: stockyard_mask::uri(location), source: stockyard_mask::Masked::new(e) }
    }

    fn timeout(location: &str, waited: std::time::Duration) -> Self {
        SinkError::Timeout { location: stockyard_mask::uri(location), waited }
    }
}
