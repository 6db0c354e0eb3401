//! The supply-chain jobs, as SQL over the MongoDB collections of
//! `shared/spec/supply-chain.md`: the KPI job ([`kpi`]) computes five KPIs
//! over a window and writes them to Redis in one transaction; the archive
//! job ([`archive`]) moves old facts to Parquet exactly once.

pub mod archive;
pub mod kpi;
pub mod tables;

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A query failed (MongoDB unreachable, a task failed…).
    #[error("computing the KPIs failed: {0}")]
    Compute(String),
    /// Redis refused or did not answer; nothing was written.
    #[error("writing to Redis failed (nothing written): {0}")]
    Redis(String),
    /// Redis refused or did not answer a read of the cached KPIs.
    #[error("reading the KPIs from Redis failed: {0}")]
    RedisRead(String),
}
