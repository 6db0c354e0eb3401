//! Which executors this scheduler lets go of, and how.
//!
//! Ballista's own expiry stops (ends the process of) an executor whose
//! heartbeats stop for the executor timeout, measured on the wall clock
//! against the last heartbeat. That is wrong for a scheduler that shares
//! its executors with a standby: a leader frozen past its lease wakes, sees
//! every executor silent (they follow the new leader now) and stops them
//! all, under the new leader's running jobs. So Ballista's expiry is put
//! out of reach ([`BALLISTA_TIMEOUT`]) and this module does it instead:
//!
//! - a leader removes an executor it has itself watched stay silent for
//!   the executor timeout, on the monotonic clock, starting over after any
//!   gap in its watch (it was frozen), by which time its campaign knows
//!   whether it still leads; it removes the executor from its state (its
//!   tasks are rescheduled) and does not stop it;
//! - a standby marks every executor silent for half the timeout as
//!   terminating, the way an executor leaving on its own does, and
//!   Ballista forgets it without stopping it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ballista_core::serde::protobuf::executor_status::Status as ExecStatus;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpc;
use ballista_core::serde::protobuf::{ExecutorStatus, ExecutorStoppedParams, HeartBeatParams};
use tokio::time::Instant;

use crate::Scheduler;
use crate::leader::Leadership;

/// Ballista's own executor timeout: a day, so its expiry never acts.
pub(crate) const BALLISTA_TIMEOUT: Duration = Duration::from_secs(86_400);

/// How often the watch looks.
const TICK: Duration = Duration::from_secs(1);

/// A gap in the watch this long means the process was frozen (or starved):
/// what it saw before proves nothing about now.
const GAP: Duration = Duration::from_secs(3);

/// An executor as the watch last saw it.
struct Seen {
    /// Its last heartbeat, as Ballista holds it.
    heartbeat: u64,
    /// Since when the watch has seen that same heartbeat.
    since: Instant,
}

/// Watches the executors forever: see the module's doc.
pub(crate) async fn watch_executors(scheduler: Scheduler, leadership: Arc<Leadership>, executor_timeout: Duration) {
    let silent_for = (executor_timeout / 2).max(Duration::from_secs(2)).as_secs();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut last_tick = Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        if now.duration_since(last_tick) > GAP {
            tracing::info!("the executor watch was held up for {:?}: watching afresh", now.duration_since(last_tick));
            seen.clear();
        }
        last_tick = now;
        let Ok(executors) = crate::ballista::executors(&scheduler).await else { continue };
        let active: Vec<_> = executors.into_iter().filter(|e| e.state == "active").collect();
        seen.retain(|id, _| active.iter().any(|e| &e.id == id));
        if leadership.is_leader() {
            for e in &active {
                let entry = seen.entry(e.id.clone()).or_insert(Seen { heartbeat: e.last_heartbeat, since: now });
                if entry.heartbeat != e.last_heartbeat {
                    *entry = Seen { heartbeat: e.last_heartbeat, since: now };
                }
                if now.duration_since(entry.since) >= executor_timeout {
                    let reason = format!("no heartbeat for {}s", executor_timeout.as_secs());
                    tracing::warn!(executor = %e.id, "removing an executor: {reason}");
                    let params = ExecutorStoppedParams { executor_id: e.id.clone(), reason };
                    let _ = SchedulerGrpc::executor_stopped(&scheduler, tonic::Request::new(params)).await;
                    seen.remove(&e.id);
                }
            }
            continue;
        }
        seen.clear();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        for e in active.into_iter().filter(|e| wall.saturating_sub(e.last_heartbeat) >= silent_for) {
            tracing::info!(executor = %e.id, "an executor went quiet on this standby (it follows the leader): releasing it");
            let leaving = HeartBeatParams {
                executor_id: e.id,
                metrics: Vec::new(),
                status: Some(ExecutorStatus {
                    status: Some(ExecStatus::Terminating("left for the leading scheduler".into())),
                }),
                metadata: None,
            };
            let _ = SchedulerGrpc::heart_beat_from_executor(&scheduler, tonic::Request::new(leaving)).await;
        }
    }
}
