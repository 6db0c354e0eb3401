//! Protobuf messages for Stockyard: the plan nodes our extension codecs put on
//! the wire between client, scheduler and executors, and the job API that the
//! `stockyard` CLI speaks to the scheduler (next to Ballista's own gRPC API).
//!
//! The schema is `proto/stockyard.proto`; this crate only compiles it.

#![allow(clippy::all)]
tonic::include_proto!("stockyard");
