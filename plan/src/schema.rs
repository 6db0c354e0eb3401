//! Arrow schemas as bytes (DataFusion's protobuf form, field metadata
//! included), for plan nodes and the job API.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use prost::Message;

/// `schema` as protobuf bytes.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    let proto = datafusion_proto::protobuf::Schema::try_from(schema)
        .map_err(|e| DataFusionError::Internal(format!("encoding a schema: {e}")))?;
    Ok(proto.encode_to_vec())
}

/// A schema from [`encode_schema`]'s bytes.
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef> {
    let proto = datafusion_proto::protobuf::Schema::decode(bytes)
        .map_err(|e| DataFusionError::Internal(format!("decoding a schema: {e}")))?;
    let schema = Schema::try_from(&proto).map_err(|e| DataFusionError::Internal(format!("decoding a schema: {e}")))?;
    Ok(Arc::new(schema))
}
