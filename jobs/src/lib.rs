//! The supply-chain jobs, as SQL over the MongoDB collections of
//! `shared/spec/supply-chain.md`: the KPI job ([`kpi`]) computes five KPIs
//! over a window and writes them to Redis in one transaction; the archive
//! job ([`archive`]) moves old facts to Parquet exactly once; the
//! compaction job ([`compact`]) merges each archive hour's files into one.

pub mod archive;
pub mod compact;
pub mod kpi;
pub mod tables;

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A query failed (MongoDB unreachable, a task failed…).
    #[error("computing the KPIs failed: {}", .0.strip_backtrace())]
    Compute(#[from] datafusion::error::DataFusionError),
    /// A query's rows could not be rendered as the JSON the spec stores.
    #[error("computing the KPIs failed: rendering the rows: {0}")]
    Render(#[from] datafusion::arrow::error::ArrowError),
    /// Redis refused or did not answer; nothing was written.
    #[error("writing to Redis failed (nothing written): {server}: {source}")]
    Redis {
        /// The server, its password masked.
        server: String,
        /// What Redis said, or that it did not answer.
        #[source]
        source: RedisFailure,
    },
    /// Redis refused or did not answer a read of the cached KPIs.
    #[error("reading the KPIs from Redis failed: {server}: {source}")]
    RedisRead {
        /// The server, its password masked.
        server: String,
        /// What Redis said, or that it did not answer.
        #[source]
        source: RedisFailure,
    },
}

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    /// Redis answered with an error, or the connection failed.
    #[error(transparent)]
    Refused(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(std::time::Duration),
}
