//! Extension codecs: our nodes as [`stockyard_proto::PlanExtension`]
//! messages, everything else through Ballista's codecs.
//!
//! Our bytes start with [`MAGIC`]. `0xff` cannot begin a protobuf message
//! (its wire type, 7, is invalid), so Ballista's encodings never collide.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::{TableReference, internal_err};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use mongodb::bson::{Bson, Document, RawDocument, doc};
use prost::Message;
use stockyard_mongo::{Bracket, MongoScanExec, MongoScanSpec, MongoSource, MongoTable, ScanOptions, Splits};
use stockyard_proto::{MongoScan, PartitionedRange, PlanExtension, plan_extension::Node};

use crate::archive::{ArchiveSpec, ArchiveTable, ArchiveWriteExec};
use crate::history::HotColdTable;
use crate::history::check::LedgerCheckExec;
use crate::history::ledger::Snapshot;
use crate::history::read::ArchiveReadExec;
use crate::range::{PartitionedRangeExec, PartitionedRangeTable, RangeSpec};
use crate::schema::{decode_schema, encode_schema};

/// Prefix of every node this crate encodes.
pub const MAGIC: &[u8] = b"\xffSY1";

fn encode(node: Node, buf: &mut Vec<u8>) -> Result<()> {
    buf.extend_from_slice(MAGIC);
    PlanExtension { node: Some(node) }
        .encode(buf)
        .map_err(|e| DataFusionError::Internal(format!("encoding a Stockyard plan node: {e}")))
}

/// Our node in `buf`, `None` when the bytes are someone else's.
fn decode(buf: &[u8]) -> Result<Option<Node>> {
    let Some(body) = buf.strip_prefix(MAGIC) else {
        return Ok(None);
    };
    let msg = PlanExtension::decode(body)
        .map_err(|e| DataFusionError::Internal(format!("decoding a Stockyard plan node: {e}")))?;
    match msg.node {
        Some(node) => Ok(Some(node)),
        None => internal_err!("a Stockyard plan node without a body (written by a newer version?)"),
    }
}

/// An in-memory table's rows, partition by partition, as Arrow IPC.
fn memory_to_proto(table: &MemTable) -> Result<stockyard_proto::MemoryTable> {
    let mut partitions = Vec::with_capacity(table.batches.len());
    for partition in &table.batches {
        let Ok(batches) = partition.try_read() else {
            return internal_err!("an in-memory table is being written while its plan is sent");
        };
        let mut buf = Vec::new();
        let mut writer = StreamWriter::try_new(&mut buf, &table.schema())?;
        for batch in batches.iter() {
            writer.write(batch)?;
        }
        writer.finish()?;
        drop(writer);
        partitions.push(buf);
    }
    Ok(stockyard_proto::MemoryTable { partitions })
}

fn memory_from_proto(table: &stockyard_proto::MemoryTable, schema: SchemaRef) -> Result<MemTable> {
    let mut partitions = Vec::with_capacity(table.partitions.len());
    for bytes in &table.partitions {
        let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
        partitions.push(reader.collect::<std::result::Result<Vec<_>, _>>()?);
    }
    MemTable::try_new(schema, partitions)
}

fn range_to_proto(spec: &RangeSpec, projection: Option<&Vec<usize>>) -> PartitionedRange {
    PartitionedRange {
        rows: spec.rows,
        partitions: spec.partitions,
        batch_delay_ms: spec.batch_delay_ms,
        batch_size: spec.batch_size,
        projection: projection.map(|p| p.iter().map(|&i| i as u32).collect()).unwrap_or_default(),
        has_projection: projection.is_some(),
    }
}

fn range_from_proto(p: &PartitionedRange) -> (RangeSpec, Option<Vec<usize>>) {
    let spec = RangeSpec {
        rows: p.rows,
        partitions: p.partitions,
        batch_delay_ms: p.batch_delay_ms,
        batch_size: p.batch_size,
    };
    let projection = p.has_projection.then(|| p.projection.iter().map(|&i| i as usize).collect());
    (spec, projection)
}

fn bson_bytes(d: &Document) -> Result<Vec<u8>> {
    d.to_vec().map_err(|e| DataFusionError::Internal(format!("encoding a MongoDB filter: {e}")))
}

fn bson_doc(bytes: &[u8]) -> Result<Document> {
    RawDocument::from_bytes(bytes)
        .and_then(Document::try_from)
        .map_err(|e| DataFusionError::Internal(format!("decoding a MongoDB filter: {e}")))
}

fn scan_to_proto(spec: &MongoScanSpec) -> Result<MongoScan> {
    let (split_field, split_bracket, split_points) = match &spec.splits {
        Some(s) => (s.field.clone(), s.bracket.name().to_string(), bson_bytes(&doc! {"p": s.points.clone()})?),
        None => Default::default(),
    };
    Ok(MongoScan {
        collection: spec.collection.clone(),
        schema: encode_schema(&spec.schema)?,
        projection: spec.projection.iter().flatten().map(|&i| i as u32).collect(),
        has_projection: spec.projection.is_some(),
        filter: spec.filter.as_ref().map(bson_bytes).transpose()?.unwrap_or_default(),
        split_field,
        split_bracket,
        split_points,
        limit: spec.limit.unwrap_or(0) as u64,
        has_limit: spec.limit.is_some(),
        share: spec.share.clone().unwrap_or_default(),
        rest: spec.rest,
    })
}

fn scan_from_proto(p: &MongoScan) -> Result<MongoScanSpec> {
    let splits = if p.split_points.is_empty() {
        None
    } else {
        let bracket = Bracket::from_name(&p.split_bracket)
            .ok_or_else(|| DataFusionError::Internal(format!("unknown split bracket '{}'", p.split_bracket)))?;
        let points = match bson_doc(&p.split_points)?.remove("p") {
            Some(Bson::Array(points)) => points,
            _ => return internal_err!("MongoDB split points without a list"),
        };
        Some(Splits { field: p.split_field.clone(), bracket, points })
    };
    Ok(MongoScanSpec {
        collection: p.collection.clone(),
        schema: decode_schema(&p.schema)?,
        projection: p.has_projection.then(|| p.projection.iter().map(|&i| i as usize).collect()),
        filter: (!p.filter.is_empty()).then(|| bson_doc(&p.filter)).transpose()?,
        splits,
        limit: p.has_limit.then_some(p.limit as usize),
        share: (!p.share.is_empty()).then(|| p.share.clone()),
        rest: p.rest,
    })
}

fn archive_to_proto(
    spec: &ArchiveSpec,
    collection_schema: Option<&SchemaRef>,
) -> Result<stockyard_proto::ArchiveWrite> {
    Ok(stockyard_proto::ArchiveWrite {
        collection: spec.collection.clone(),
        event_time: spec.event_time.clone(),
        run: spec.run.clone(),
        attempt: spec.attempt.clone(),
        dest: spec.dest.clone(),
        collection_schema: collection_schema.map(|s| encode_schema(s)).transpose()?.unwrap_or_default(),
    })
}

fn archive_from_proto(a: &stockyard_proto::ArchiveWrite) -> Result<(ArchiveSpec, SchemaRef)> {
    let spec = ArchiveSpec {
        collection: a.collection.clone(),
        event_time: a.event_time.clone(),
        run: a.run.clone(),
        attempt: a.attempt.clone(),
        dest: a.dest.clone(),
    };
    let schema =
        if a.collection_schema.is_empty() { Arc::new(Schema::empty()) } else { decode_schema(&a.collection_schema)? };
    Ok((spec, schema))
}

fn no_source(collection: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "cannot read MongoDB collection {collection} here: this process has no MongoDB source configured"
    ))
}

/// Logical codec for the client and the scheduler: our table providers.
/// With a MongoDB source, decoded MongoDB tables can be scanned.
#[derive(Debug, Default)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    mongo: Option<Arc<MongoSource>>,
    archive: Option<String>,
}

impl LogicalCodec {
    /// A codec whose decoded MongoDB tables read from `mongo`.
    pub fn new(mongo: Option<Arc<MongoSource>>) -> Self {
        Self { inner: Default::default(), mongo, archive: None }
    }

    /// This codec, whose decoded archive and history tables read the
    /// archive at `dest` (the scheduler's own destination).
    pub fn with_archive(mut self, dest: impl Into<String>) -> Self {
        self.archive = Some(dest.into());
        self
    }
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match decode(buf)? {
            Some(Node::PartitionedRange(p)) => {
                let (spec, _) = range_from_proto(&p);
                Ok(Arc::new(PartitionedRangeTable { spec }))
            }
            Some(Node::MongoTable(t)) => {
                let options = ScanOptions {
                    partitions: (t.partitions > 0).then_some(t.partitions as usize),
                    partition_field: t.partition_field,
                    share: (!t.share.is_empty()).then_some(t.share),
                };
                Ok(Arc::new(MongoTable::new(t.collection, schema, options, self.mongo.clone())))
            }
            Some(Node::ArchiveTable(a)) => {
                let (spec, collection_schema) = archive_from_proto(&a)?;
                Ok(Arc::new(ArchiveTable::new(spec, collection_schema, self.mongo.clone())))
            }
            Some(Node::MemoryTable(m)) => Ok(Arc::new(memory_from_proto(&m, schema)?)),
            Some(Node::HotColdTable(t)) => Ok(Arc::new(HotColdTable::new(
                t.collection,
                t.event_time,
                decode_schema(&t.collection_schema)?,
                t.archive_only,
                self.mongo.clone(),
                self.archive.clone(),
            ))),
            Some(Node::MongoScan(_) | Node::ArchiveWrite(_) | Node::LedgerCheck(_) | Node::ArchiveRead(_)) => {
                internal_err!("a plan node where a table was expected")
            }
            None => self.inner.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = PartitionedRangeTable::from_provider(node.as_ref()) {
            return encode(Node::PartitionedRange(range_to_proto(&table.spec, None)), buf);
        }
        if let Some(table) = ArchiveTable::from_provider(node.as_ref()) {
            return encode(Node::ArchiveTable(archive_to_proto(&table.spec, Some(&table.collection_schema))?), buf);
        }
        if let Some(table) = HotColdTable::from_provider(node.as_ref()) {
            let proto = stockyard_proto::HotColdTable {
                collection: table.collection.clone(),
                event_time: table.event_time.clone(),
                collection_schema: encode_schema(&table.collection_schema)?,
                archive_only: table.archive_only,
            };
            return encode(Node::HotColdTable(proto), buf);
        }
        if let Some(table) = (node.as_ref() as &dyn std::any::Any).downcast_ref::<MemTable>() {
            return encode(Node::MemoryTable(memory_to_proto(table)?), buf);
        }
        if let Some(table) = MongoTable::from_provider(node.as_ref()) {
            let proto = stockyard_proto::MongoTable {
                collection: table.collection().to_string(),
                partitions: table.options().partitions.unwrap_or(0) as u32,
                partition_field: table.options().partition_field.clone(),
                share: table.options().share.clone().unwrap_or_default(),
            };
            return encode(Node::MongoTable(proto), buf);
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}

/// Physical codec for the scheduler and the executors: our scan nodes,
/// bound on decoding to this process's own MongoDB source.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    mongo: Option<Arc<MongoSource>>,
}

impl PhysicalCodec {
    /// A codec whose decoded MongoDB scans read from `mongo`.
    pub fn new(mongo: Option<Arc<MongoSource>>) -> Self {
        Self { inner: Default::default(), mongo }
    }
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match decode(buf)? {
            Some(Node::PartitionedRange(p)) => {
                let (spec, projection) = range_from_proto(&p);
                Ok(Arc::new(PartitionedRangeExec::try_new(spec, projection)?))
            }
            Some(Node::MongoScan(p)) => {
                let source = self.mongo.clone().ok_or_else(|| no_source(&p.collection))?;
                Ok(Arc::new(MongoScanExec::try_new(scan_from_proto(&p)?, source)?))
            }
            Some(Node::ArchiveWrite(a)) => {
                let [input] = inputs else {
                    return internal_err!("an archive write needs one input, got {}", inputs.len());
                };
                Ok(Arc::new(ArchiveWriteExec::new(archive_from_proto(&a)?.0, input.clone())))
            }
            Some(Node::LedgerCheck(c)) => {
                let [input] = inputs else {
                    return internal_err!("a ledger check needs one input, got {}", inputs.len());
                };
                let source = self.mongo.clone().ok_or_else(|| no_source(crate::history::ledger::LEDGER))?;
                let snapshot = Snapshot::checked(c.in_both, c.done);
                Ok(Arc::new(LedgerCheckExec::new(snapshot, source, input.clone())))
            }
            Some(Node::ArchiveRead(r)) => {
                let [input] = inputs else {
                    return internal_err!("an archive read needs one input, got {}", inputs.len());
                };
                Ok(Arc::new(ArchiveReadExec::new(r.dest, input.clone())))
            }
            Some(Node::MongoTable(_) | Node::ArchiveTable(_) | Node::MemoryTable(_) | Node::HotColdTable(_)) => {
                internal_err!("a table where a plan node was expected")
            }
            None => self.inner.try_decode(buf, inputs, ctx),
        }
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(exec) = node.downcast_ref::<PartitionedRangeExec>() {
            return encode(Node::PartitionedRange(range_to_proto(exec.spec(), exec.projection())), buf);
        }
        if let Some(exec) = node.downcast_ref::<ArchiveWriteExec>() {
            return encode(Node::ArchiveWrite(archive_to_proto(exec.spec(), None)?), buf);
        }
        if let Some(exec) = node.downcast_ref::<MongoScanExec>() {
            return encode(Node::MongoScan(scan_to_proto(exec.spec())?), buf);
        }
        if let Some(exec) = node.downcast_ref::<LedgerCheckExec>() {
            let snapshot = exec.snapshot();
            let check = stockyard_proto::LedgerCheck { in_both: snapshot.in_both.clone(), done: snapshot.done };
            return encode(Node::LedgerCheck(check), buf);
        }
        if let Some(exec) = node.downcast_ref::<ArchiveReadExec>() {
            return encode(Node::ArchiveRead(stockyard_proto::ArchiveRead { dest: exec.dest().to_string() }), buf);
        }
        self.inner.try_encode(node, buf)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;
    use datafusion_proto::physical_plan::AsExecutionPlan;
    use datafusion_proto::protobuf::PhysicalPlanNode;

    #[tokio::test]
    async fn range_scan_round_trips_through_the_physical_codec() {
        let spec = RangeSpec { rows: 1000, partitions: 7, batch_delay_ms: 3, batch_size: 64 };
        let plan: Arc<dyn ExecutionPlan> =
            Arc::new(PartitionedRangeExec::try_new(spec.clone(), Some(vec![1])).unwrap());
        let codec = PhysicalCodec::default();
        let proto = PhysicalPlanNode::try_from_physical_plan(plan, &codec).unwrap();
        let ctx = SessionContext::new();
        let back = proto.try_into_physical_plan(&ctx.task_ctx(), &codec).unwrap();
        let back = back.downcast_ref::<PartitionedRangeExec>().expect("our node comes back");
        assert_eq!(back.spec(), &spec);
        assert_eq!(back.projection(), Some(&vec![1]));
        assert_eq!(back.schema().field(0).name(), "partition");
    }

    #[tokio::test]
    async fn an_in_memory_table_travels_with_its_rows() {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::arrow::record_batch::RecordBatch;
        let schema = Arc::new(Schema::new(vec![
            Field::new("dc_id", DataType::Utf8, true),
            Field::new("capacity", DataType::Int64, true),
        ]));
        let batch = |ids: Vec<Option<&str>>, caps: Vec<Option<i64>>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(ids)), Arc::new(Int64Array::from(caps))],
            )
            .unwrap()
        };
        let partitions = vec![
            vec![batch(vec![Some("DC-01"), None], vec![Some(10), Some(20)]), batch(vec![Some("DC-03")], vec![None])],
            vec![],
        ];
        let table: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema.clone(), partitions.clone()).unwrap());
        let codec = LogicalCodec::default();
        let mut buf = Vec::new();
        codec.try_encode_table_provider(&TableReference::bare("dcs_dim"), table, &mut buf).unwrap();
        let ctx = SessionContext::new();
        let back =
            codec.try_decode_table_provider(&buf, &TableReference::bare("dcs_dim"), schema, &ctx.task_ctx()).unwrap();
        let back =
            (back.as_ref() as &dyn std::any::Any).downcast_ref::<MemTable>().expect("an in-memory table comes back");
        assert_eq!(back.batches.len(), 2);
        assert_eq!(*back.batches[0].read().await, partitions[0]);
        assert!(back.batches[1].read().await.is_empty());
    }

    #[tokio::test]
    async fn mongo_scan_round_trips_without_the_connection_string() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("_id", DataType::Utf8, true),
            Field::new("order_ts", stockyard_mongo::schema::timestamp_type(), true),
        ]));
        let spec = MongoScanSpec {
            collection: "orders_fact".into(),
            schema,
            projection: Some(vec![1]),
            filter: Some(doc! {"dc_id": {"$eq": "DC-01"}}),
            splits: Some(Splits {
                field: "order_ts".into(),
                bracket: Bracket::Date,
                points: vec![Bson::DateTime(mongodb::bson::DateTime::from_millis(-5))],
            }),
            limit: Some(10),
            share: Some("kpi-run-1".into()),
            rest: true,
        };
        let secret = "mongodb://app:hunter2@db.internal:27017";
        let source = Arc::new(MongoSource::new(secret, "supply_chain"));
        let plan: Arc<dyn ExecutionPlan> = Arc::new(MongoScanExec::try_new(spec.clone(), source.clone()).unwrap());
        let codec = PhysicalCodec::new(Some(source));
        let proto = PhysicalPlanNode::try_from_physical_plan(plan, &codec).unwrap();
        let bytes = prost::Message::encode_to_vec(&proto);
        assert!(!String::from_utf8_lossy(&bytes).contains("hunter2"), "no password on the wire");
        assert!(!String::from_utf8_lossy(&bytes).contains("db.internal"), "no host on the wire");
        let executor = PhysicalCodec::new(Some(Arc::new(MongoSource::new("mongodb://other:27017", "supply_chain"))));
        let ctx = SessionContext::new();
        let back = proto.try_into_physical_plan(&ctx.task_ctx(), &executor).unwrap();
        let back = back.downcast_ref::<MongoScanExec>().expect("our node comes back");
        assert_eq!(back.spec(), &spec);
        let err = proto.try_into_physical_plan(&ctx.task_ctx(), &PhysicalCodec::default()).unwrap_err();
        assert!(err.to_string().contains("no MongoDB source"), "{err}");
    }

    #[test]
    fn foreign_bytes_are_not_ours() {
        assert!(decode(b"\x0a\x02hi").unwrap().is_none());
        assert!(decode(b"\xffSY1\xff\xff").is_err());
    }
}
