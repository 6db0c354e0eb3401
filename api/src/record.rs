//! A run as the scheduler records it: in its run store, in REST answers,
//! and (converted) in gRPC's `RunInfo`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::run::{Job, RunStatus, Trigger, UnknownWord};

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Run {
    /// Unique across schedulers and restarts.
    pub run_id: String,
    /// The job it runs.
    pub job: Job,
    /// Where it stands.
    pub status: RunStatus,
    /// What started it.
    pub trigger: Trigger,
    /// Its parameters, as the CLI writes them, secrets masked.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Milliseconds since the UNIX epoch.
    pub started_at_ms: u64,
    /// When it ended, once it has.
    #[serde(default, deserialize_with = "zero_as_none")]
    pub ended_at_ms: Option<u64>,
    /// How long it ran, once it has ended.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// What the job reports: rows, documents read and rejected, files
    /// written, … (see [`KpiSummary`] and [`ArchiveSummary`]); null while
    /// the run goes on.
    #[serde(default, alias = "summary_json", deserialize_with = "object_or_text")]
    #[schema(value_type = Object, nullable)]
    pub summary: Value,
    /// Why it failed or stopped; empty otherwise.
    #[serde(default)]
    pub error: String,
    /// The Ballista jobs it submitted.
    #[serde(default)]
    pub ballista_jobs: Vec<String>,
    /// Instance id of the scheduler that ran it.
    #[serde(default)]
    pub scheduler: String,
    /// For the rerun of an interrupted run: the run it replaces.
    #[serde(default)]
    pub rerun_of: String,
    /// On an interrupted run: the rerun that replaces it.
    #[serde(default)]
    pub rerun_as: String,
}

impl Run {
    /// A run about to start.
    pub fn new(run_id: String, job: Job, trigger: Trigger, params: BTreeMap<String, String>) -> Self {
        Run {
            run_id,
            job,
            status: RunStatus::Running,
            trigger,
            params,
            started_at_ms: 0,
            ended_at_ms: None,
            duration_ms: None,
            summary: Value::Null,
            error: String::new(),
            ballista_jobs: Vec::new(),
            scheduler: String::new(),
            rerun_of: String::new(),
            rerun_as: String::new(),
        }
    }

    /// Records the run's end at `now_ms` with `status`.
    pub fn end(&mut self, now_ms: u64, status: RunStatus) {
        self.status = status;
        self.ended_at_ms = Some(now_ms);
        self.duration_ms = Some(now_ms.saturating_sub(self.started_at_ms));
    }

    /// The KPI job's summary, for a KPI run that reported one.
    pub fn kpi_summary(&self) -> Option<KpiSummary> {
        (self.job == Job::Kpi).then(|| serde_json::from_value(self.summary.clone()).ok()).flatten()
    }

    /// The archive job's summary, for an archive run that reported one.
    pub fn archive_summary(&self) -> Option<ArchiveSummary> {
        (self.job == Job::Archive).then(|| serde_json::from_value(self.summary.clone()).ok()).flatten()
    }
}

/// What a KPI run reports (the fields metrics and the CLI read; the
/// summary holds more).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KpiSummary {
    /// Documents the KPI queries read, over every collection.
    #[serde(default)]
    pub documents_read: u64,
    /// Documents left out because a field the KPIs need was bad.
    #[serde(default)]
    pub documents_rejected: u64,
    /// Time spent writing Redis.
    #[serde(default)]
    pub redis_write_ms: Option<u64>,
}

/// What an archive run reports (the fields metrics and the CLI read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ArchiveSummary {
    /// Documents archived.
    #[serde(default)]
    pub total_records: u64,
    /// Bytes of Parquet written.
    #[serde(default)]
    pub total_bytes: u64,
}

/// `0` (the old store's "not yet") as `None`.
fn zero_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.filter(|ms| *ms > 0))
}

/// A summary as an object, or as the JSON text older stores kept.
fn object_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(text) if text.is_empty() => Value::Null,
        Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        other => other,
    })
}

impl From<&Run> for stockyard_proto::RunInfo {
    fn from(r: &Run) -> Self {
        stockyard_proto::RunInfo {
            run_id: r.run_id.clone(),
            job: r.job.to_string(),
            status: r.status.to_string(),
            params: r.params.clone().into_iter().collect(),
            trigger: r.trigger.to_string(),
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms.unwrap_or(0),
            summary_json: if r.summary.is_null() { String::new() } else { r.summary.to_string() },
            error: r.error.clone(),
            ballista_jobs: r.ballista_jobs.clone(),
            scheduler: r.scheduler.clone(),
            rerun_of: r.rerun_of.clone(),
            rerun_as: r.rerun_as.clone(),
        }
    }
}

impl TryFrom<stockyard_proto::RunInfo> for Run {
    type Error = UnknownWord;

    fn try_from(r: stockyard_proto::RunInfo) -> Result<Self, Self::Error> {
        let ended = (r.ended_at_ms > 0).then_some(r.ended_at_ms);
        Ok(Run {
            job: r.job.parse()?,
            status: r.status.parse()?,
            trigger: r.trigger.parse()?,
            params: r.params.into_iter().collect(),
            started_at_ms: r.started_at_ms,
            ended_at_ms: ended,
            duration_ms: ended.map(|e| e.saturating_sub(r.started_at_ms)),
            summary: if r.summary_json.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&r.summary_json).unwrap_or(Value::String(r.summary_json))
            },
            run_id: r.run_id,
            error: r.error,
            ballista_jobs: r.ballista_jobs,
            scheduler: r.scheduler,
            rerun_of: r.rerun_of,
            rerun_as: r.rerun_as,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stored_by_an_older_scheduler_still_reads() {
        // The shape runs were stored in before the run record was typed.
        let old = r#"{"run_id":"kpi-1","job":"kpi","status":"succeeded","params":{"window":"15m"},
            "trigger":"schedule:kpi (due)","started_at_ms":1000,"ended_at_ms":0,
            "summary_json":"{\"documents_read\":7,\"documents_rejected\":2}","error":"",
            "ballista_jobs":["a"],"scheduler":"s1","rerun_of":"","rerun_as":""}"#;
        let run: Run = serde_json::from_str(old).unwrap();
        assert_eq!(run.job, Job::Kpi);
        assert_eq!(run.trigger, Trigger::schedule("kpi", "due"));
        assert_eq!(run.ended_at_ms, None);
        assert_eq!(
            run.kpi_summary(),
            Some(KpiSummary { documents_read: 7, documents_rejected: 2, redis_write_ms: None })
        );
        assert_eq!(run.archive_summary(), None);
    }

    #[test]
    fn a_run_goes_through_grpc_unchanged() {
        let mut run = Run::new("archive-1".into(), Job::Archive, Trigger::Cli, BTreeMap::new());
        run.started_at_ms = 1_000;
        run.summary = serde_json::json!({"total_records": 3, "total_bytes": 4096});
        run.end(3_500, RunStatus::Succeeded);
        let back = Run::try_from(stockyard_proto::RunInfo::from(&run)).unwrap();
        assert_eq!(back, run);
        assert_eq!(back.duration_ms, Some(2_500));
        assert_eq!(back.archive_summary(), Some(ArchiveSummary { total_records: 3, total_bytes: 4096 }));
    }
}
