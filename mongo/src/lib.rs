//! A DataFusion table provider for MongoDB collections.
//!
//! Each collection is a [`MongoTable`]; a scan ([`MongoScanExec`]) splits
//! it into ranges of one field, one partition each, so executors read it
//! in parallel and every document exactly once. Projections become find
//! projections, filters MongoDB evaluates exactly as SQL become query
//! filters, and raw BSON batches decode straight into Arrow arrays. The
//! connection string stays in each process's [`MongoSource`]: plans carry
//! only collection names, schemas, filters and ranges.

pub mod catalog;
pub mod decimal;
pub mod decode;
pub mod exec;
pub mod filter;
mod flat;
pub mod partition;
pub mod rest_column;
pub mod schema;
pub mod share;
pub mod source;
pub mod table;
mod value;

pub use catalog::{CatalogSchema, MongoCatalog};
pub use decode::Decoder;
pub use exec::{MongoScanExec, MongoScanSpec};
pub use partition::{Bracket, Splits};
pub use source::{MongoError, MongoSource, redact};
pub use table::{MongoTable, ScanOptions};
