//! The collections of `shared/spec/supply-chain.md` with their declared
//! types: jobs read with these schemas, not inferred ones, so a dirty
//! document reads by the spec's rules.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
use stockyard_mongo::schema::{KIND_KEY, timestamp_type};
use stockyard_mongo::{MongoSource, MongoTable, ScanOptions};
use stockyard_plan::history::{ARCHIVE_SCHEMA, HISTORY_SCHEMA, HotColdTable};

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn id() -> Field {
    // `_id` is an ObjectId unless a writer chose otherwise; the jobs never
    // read it.
    Field::new("_id", DataType::Utf8, true).with_metadata([(KIND_KEY.to_string(), "objectId".to_string())].into())
}

fn ts(name: &str) -> Field {
    Field::new(name, timestamp_type(), true)
}

fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

/// `(collection, schema, event-time field)` for every collection; the
/// event time is `None` for dimensions.
pub fn collections() -> Vec<(&'static str, SchemaRef, Option<&'static str>)> {
    vec![
        (
            "skus_dim",
            schema(vec![
                id(),
                utf8("sku_id"),
                utf8("product_name"),
                utf8("category"),
                Field::new("unit_price", DataType::Float64, true),
                utf8("supplier_id"),
            ]),
            None,
        ),
        (
            "dcs_dim",
            schema(vec![
                id(),
                utf8("dc_id"),
                utf8("dc_name"),
                utf8("region"),
                Field::new("capacity_units", DataType::Int64, true),
            ]),
            None,
        ),
        (
            "suppliers_dim",
            schema(vec![
                id(),
                utf8("supplier_id"),
                utf8("supplier_name"),
                Field::new("promised_lead_time_days", DataType::Float64, true),
            ]),
            None,
        ),
        (
            "orders_fact",
            schema(vec![
                id(),
                utf8("order_id"),
                utf8("sku_id"),
                utf8("dc_id"),
                Field::new("quantity", DataType::Int32, true),
                Field::new("unit_price", DataType::Float64, true),
                utf8("status"),
                ts("order_ts"),
            ]),
            Some("order_ts"),
        ),
        (
            "shipments_fact",
            schema(vec![
                id(),
                utf8("shipment_id"),
                utf8("supplier_id"),
                utf8("sku_id"),
                utf8("dc_id"),
                Field::new("quantity", DataType::Int32, true),
                ts("shipped_ts"),
                ts("expected_arrival_ts"),
                ts("arrival_ts"),
            ]),
            Some("arrival_ts"),
        ),
        (
            "inventory_fact",
            schema(vec![
                id(),
                utf8("sku_id"),
                utf8("dc_id"),
                Field::new("on_hand_qty", DataType::Int32, true),
                Field::new("reserved_qty", DataType::Int32, true),
                ts("inventory_ts"),
            ]),
            Some("inventory_ts"),
        ),
    ]
}

/// Registers every collection in `ctx` as a table with its declared
/// schema. Facts are split by their event time into `partitions` ranges
/// (`None`: by size); `source` is `None` where plans are only built.
/// Queries registered with the same `share` key (one job run) read each
/// range of a collection once.
pub fn register(
    ctx: &SessionContext,
    source: Option<Arc<MongoSource>>,
    partitions: Option<usize>,
    share: Option<&str>,
) -> Result<()> {
    for (name, schema, event_time) in collections() {
        let options = ScanOptions {
            partitions: if event_time.is_some() { partitions } else { Some(1) },
            partition_field: event_time.unwrap_or("_id").to_string(),
            share: share.map(str::to_string),
        };
        ctx.register_table(name, Arc::new(MongoTable::new(name, schema, options, source.clone())))?;
    }
    Ok(())
}

/// Adds the schemas `archive` and `history` to `ctx`'s default catalog:
/// for each fact collection `X`, `archive.X` (its archive) and `history.X`
/// (MongoDB and the archive as one table; see `stockyard_plan::history`).
/// They are planned here and read where the plan is run, on the scheduler.
pub fn register_history(ctx: &SessionContext) -> Result<()> {
    let catalog = ctx.catalog("datafusion").expect("the default catalog exists");
    for (schema_name, archive_only) in [(ARCHIVE_SCHEMA, true), (HISTORY_SCHEMA, false)] {
        let schema = Arc::new(MemorySchemaProvider::new());
        for (name, columns, event_time) in collections() {
            let Some(event_time) = event_time else { continue };
            schema.register_table(
                name.to_string(),
                Arc::new(HotColdTable::new(name, event_time, columns, archive_only, None, None)),
            )?;
        }
        catalog.register_schema(schema_name, schema)?;
    }
    Ok(())
}
