//! The client's session: DataFusion planning locally, execution on a
//! Ballista scheduler, with our codecs and table functions registered.

use std::sync::Arc;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::range::{FUNCTION_NAME, PartitionedRangeFunc};
use crate::{LogicalCodec, PhysicalCodec};

/// A session whose queries run on the scheduler at `host:port`; `job_name`
/// labels the Ballista jobs it submits.
pub fn remote_context(scheduler: &str, job_name: &str) -> Result<SessionContext> {
    let config = SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
        .with_ballista_job_name(job_name);
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build()
        .upgrade_for_ballista(format!("http://{scheduler}"))?;
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udtf(FUNCTION_NAME, Arc::new(PartitionedRangeFunc));
    Ok(ctx)
}
