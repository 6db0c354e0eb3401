//! The cluster's answers: the overview the UI opens on, the services it
//! leans on, and the KPIs in Redis as the dashboard reads them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::record::Run;
use crate::views::Executor;

/// `GET /api/overview`: the cluster at a glance, and what is wrong with it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    /// No problems.
    pub healthy: bool,
    /// Each problem, in words (no executor, not leading, MongoDB or Redis
    /// down).
    pub problems: Vec<String>,
    /// Which scheduler leads.
    pub leader: Leader,
    /// The registered executors.
    pub executors: Vec<Executor>,
    /// Runs not finished yet, newest first.
    pub running_runs: Vec<Run>,
    /// The last ten finished runs, newest first.
    pub recent_runs: Vec<Run>,
    /// How fresh the KPIs in Redis are.
    pub kpi: KpiFreshness,
    /// The newest KPI run.
    pub last_kpi_run: Option<Run>,
    /// The newest archive run.
    pub last_archive_run: Option<Run>,
}

/// Which scheduler leads, as this one sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Leader {
    /// The leader's gRPC address; null when none is known.
    pub address: Option<String>,
    /// The leader's HTTP address (its UI and REST API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// The leader's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// This scheduler leads.
    pub this_scheduler: bool,
    /// Leadership is elected in a shared state store (etcd), not assumed.
    pub elected: bool,
    /// This scheduler's id.
    pub this_id: String,
}

/// When the KPIs in Redis were written, and when they expire.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct KpiFreshness {
    /// `kpi:last_update`, RFC 3339; null when Redis holds no KPIs.
    pub last_update: Option<String>,
    /// Seconds since `last_update`.
    pub age_s: Option<f64>,
    /// Seconds before the keys expire.
    pub expires_in_s: Option<i64>,
    /// Why Redis could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/kpis`: what the cache holds now, all of it from one run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KpiCache {
    /// Each KPI by name (`inventory_level`, …): the spec's envelope
    /// (`window_start`, `window_end`, `generated_at`, `rows`), null when
    /// absent.
    #[schema(value_type = BTreeMap<String, Option<Object>>)]
    pub kpis: BTreeMap<String, Value>,
    /// `kpi:data_quality`: documents read and rejected per collection.
    #[schema(value_type = Option<Object>)]
    pub data_quality: Value,
    /// `kpi:last_update`, RFC 3339.
    pub last_update: Option<String>,
    /// Seconds before the keys expire.
    pub expires_in_s: Option<i64>,
    /// Seconds since `last_update`.
    pub age_s: Option<f64>,
}

/// One service the cluster uses, up or down (`GET /api/services`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Service {
    /// `scheduler`, `executor`, `executors`, `mongodb`, `redis` or `kafka`.
    pub name: String,
    /// Where it is, passwords masked.
    pub address: String,
    /// It answered within the check's time.
    pub up: bool,
    /// Why it is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The scheduler: this one leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leading: Option<bool>,
    /// An executor: `active`, `terminating` or `dead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// An executor: its last heartbeat, seconds since the UNIX epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<u64>,
    /// The scheduler: CPU seconds its process used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// The scheduler: its process's resident memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

impl Service {
    /// `name` at `address`, up, or down with `error`.
    pub fn checked(name: &str, address: String, result: Result<(), String>) -> Self {
        let (up, error) = match result {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
        Service {
            name: name.into(),
            address,
            up,
            error,
            leading: None,
            state: None,
            last_heartbeat: None,
            cpu_seconds: None,
            memory_bytes: None,
        }
    }
}
