//! Stockyard's DataFusion plan nodes and the extension codecs that carry them
//! between the client, the scheduler and the executors.
//!
//! Every process of a cluster registers the same [`codec::LogicalCodec`] and
//! [`codec::PhysicalCodec`]; they encode our own nodes and hand everything
//! else to Ballista's codecs, so Ballista's shuffle nodes and file formats
//! keep working unchanged.

pub mod archive;
pub mod build_side;
pub mod codec;
pub mod fault;
pub mod history;
pub mod names;
pub mod range;
pub mod schema;
pub mod session;
pub mod store;

pub use codec::{LogicalCodec, PhysicalCodec};
