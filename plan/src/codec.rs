//! Extension codecs: our nodes as [`stockyard_proto::PlanExtension`]
//! messages, everything else through Ballista's codecs.
//!
//! Our bytes start with [`MAGIC`]. `0xff` cannot begin a protobuf message
//! (its wire type, 7, is invalid), so Ballista's encodings never collide.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{TableReference, internal_err};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use prost::Message;
use stockyard_proto::{PartitionedRange, PlanExtension, plan_extension::Node};

use crate::range::{PartitionedRangeExec, PartitionedRangeTable, RangeSpec};

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

/// Logical codec for the client and the scheduler: our table providers.
#[derive(Debug, Default)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
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
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
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

/// Physical codec for the scheduler and the executors: our scan nodes.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
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
            None => self.inner.try_decode(buf, inputs, ctx),
        }
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(exec) = node.downcast_ref::<PartitionedRangeExec>() {
            return encode(
                Node::PartitionedRange(range_to_proto(exec.spec(), exec.projection())),
                buf,
            );
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

    #[test]
    fn foreign_bytes_are_not_ours() {
        assert!(decode(b"\x0a\x02hi").unwrap().is_none());
        assert!(decode(b"\xffSY1\xff\xff").is_err());
    }
}
