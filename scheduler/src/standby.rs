//! A scheduler that does not lead lets go of the executors that left it.
//!
//! Ballista stops (ends the process of) an executor whose heartbeats stop
//! for the executor timeout. An executor that follows a new leader stops
//! heartbeating to its old scheduler, which, still alive as a standby,
//! would end it a few seconds into serving the leader. So a standby marks
//! such executors as terminating, the way an executor leaving on its own
//! does, and Ballista forgets them without stopping them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ballista_core::serde::protobuf::executor_status::Status as ExecStatus;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpc;
use ballista_core::serde::protobuf::{ExecutorStatus, HeartBeatParams};

use crate::Scheduler;
use crate::leader::Leadership;

/// While this scheduler does not lead, marks every active executor silent
/// for half the executor timeout as terminating. Half: well after a
/// missed heartbeat (they come several times per timeout), well before
/// Ballista's expiry, which checks every third of it.
pub(crate) async fn release_departed(scheduler: Scheduler, leadership: Arc<Leadership>, executor_timeout: Duration) {
    let silent_for = (executor_timeout / 2).max(Duration::from_secs(2)).as_secs();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if leadership.is_leader() {
            continue;
        }
        let Ok(executors) = crate::ballista::executors(&scheduler).await else { continue };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        for e in
            executors.into_iter().filter(|e| e.state == "active" && now.saturating_sub(e.last_heartbeat) >= silent_for)
        {
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
