//! Stockyard's run vocabulary and the REST API's shapes.
//!
//! A run's job, status and trigger are types here ([`Job`], [`RunStatus`],
//! [`Trigger`]), parsed and printed in one place for the CLI, the REST API,
//! gRPC, the schedules and the run store. The REST answers are the serde
//! types of [`views`] and [`Run`]; the scheduler's OpenAPI document
//! (`/api/openapi.json`) is generated from them, so it cannot drift from
//! what the handlers send.

pub mod action;
pub mod cluster;
pub mod job_view;
pub mod params;
pub mod record;
pub mod run;
pub mod views;

pub use action::{ScheduleAction, UnknownAction};
pub use record::{ArchiveSummary, KpiSummary, Run};
pub use run::{Job, RunStatus, Trigger, UnknownWord};

/// gRPC metadata key on a refusal because the scheduler does not lead:
/// the client asks the leader instead of taking the refusal as final.
pub const NOT_LEADING: &str = "stockyard-not-leading";
