//! The rest of a document: every field its typed columns do not hold
//! exactly, as canonical Extended JSON. Typed columns plus the rest give the
//! document back whole, whatever its types, which is what the archive
//! promises.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int32Type, Int64Type, Schema, TimeUnit, TimestampMillisecondType,
};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, RawBsonRef, RawDocument};

use crate::schema::utf8_kind;

/// The column holding the rest, last in a scan that asks for it.
pub const REST_COLUMN: &str = "_rest";

/// The field the archive job marks selected documents with; it is never
/// part of an archived document.
pub const ARCHIVE_MARK: &str = "_stockyard_archive";

/// Whether a column of `field`'s type holds `value` so that it comes back
/// with the same BSON type and value.
pub fn exact(field: &Field, value: RawBsonRef) -> bool {
    match (field.data_type(), value) {
        (DataType::Utf8, RawBsonRef::String(_)) => utf8_kind(field) == "string",
        (DataType::Utf8, RawBsonRef::ObjectId(_)) => utf8_kind(field) == "objectId",
        (DataType::Int32, RawBsonRef::Int32(_))
        | (DataType::Int64, RawBsonRef::Int64(_))
        | (DataType::Float64, RawBsonRef::Double(_))
        | (DataType::Boolean, RawBsonRef::Boolean(_))
        | (DataType::Timestamp(TimeUnit::Millisecond, _), RawBsonRef::DateTime(_)) => true,
        _ => false,
    }
}

/// Why a document's rest could not be taken, or an archived row not be
/// turned back into a document.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The document's bytes are not valid BSON.
    #[error("a document is not valid BSON: {0}")]
    Bson(#[from] bson::error::Error),
    /// The rest column's text is not JSON.
    #[error("the {REST_COLUMN} column is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The batch has a rest column of another type.
    #[error("{REST_COLUMN} is not a string column")]
    NotText,
    /// The rest column holds JSON that is not an object.
    #[error("{REST_COLUMN} holds {0}, not a document")]
    NotDocument(Bson),
}

/// The fields of `doc` that `schema`'s columns do not hold exactly, as
/// canonical Extended JSON; `None` when the columns hold it all.
pub fn rest(doc: &RawDocument, schema: &Schema) -> Result<Option<String>, RestError> {
    let mut rest = Document::new();
    for element in doc {
        let (key, value) = element?;
        let key = key.as_str();
        if key == ARCHIVE_MARK {
            continue;
        }
        if let Ok(field) = schema.field_with_name(key)
            && exact(field, value)
        {
            continue;
        }
        let value = Bson::try_from(value)?;
        rest.insert(key, value);
    }
    Ok((!rest.is_empty()).then(|| Bson::Document(rest).into_canonical_extjson().to_string()))
}

/// The documents an archived batch holds: each typed column's value in
/// its BSON type, then the rest over it. The inverse of reading with
/// [`rest`]; fields come back in column order, then the rest's order.
pub fn documents(batch: &RecordBatch) -> Result<Vec<Document>, RestError> {
    let schema = batch.schema();
    let mut docs = vec![Document::new(); batch.num_rows()];
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if field.name() == REST_COLUMN {
            let rest = column.as_string_opt::<i32>().ok_or(RestError::NotText)?;
            for (doc, value) in docs.iter_mut().zip(rest.iter()) {
                let Some(json) = value else { continue };
                let value: serde_json::Value = serde_json::from_str(json)?;
                match Bson::try_from(value)? {
                    Bson::Document(fields) => doc.extend(fields),
                    other => return Err(RestError::NotDocument(other)),
                }
            }
            continue;
        }
        for (row, doc) in docs.iter_mut().enumerate() {
            if column.is_null(row) {
                continue;
            }
            let value = match field.data_type() {
                DataType::Utf8 => {
                    let s = column.as_string::<i32>().value(row);
                    match utf8_kind(field) {
                        "objectId" => {
                            ObjectId::parse_str(s).map(Bson::ObjectId).unwrap_or_else(|_| Bson::String(s.into()))
                        }
                        _ => Bson::String(s.into()),
                    }
                }
                DataType::Int32 => Bson::Int32(column.as_primitive::<Int32Type>().value(row)),
                DataType::Int64 => Bson::Int64(column.as_primitive::<Int64Type>().value(row)),
                DataType::Float64 => Bson::Double(column.as_primitive::<Float64Type>().value(row)),
                DataType::Boolean => Bson::Boolean(column.as_boolean().value(row)),
                DataType::Timestamp(TimeUnit::Millisecond, _) => Bson::DateTime(mongodb::bson::DateTime::from_millis(
                    column.as_primitive::<TimestampMillisecondType>().value(row),
                )),
                // Never exact: such values are all in the rest.
                _ => continue,
            };
            doc.insert(field.name(), value);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::KIND_KEY;
    use mongodb::bson::{RawDocumentBuf, doc, oid::ObjectId};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("_id", DataType::Utf8, true)
                .with_metadata([(KIND_KEY.to_string(), "objectId".to_string())].into()),
            Field::new("quantity", DataType::Int32, true),
            Field::new("status", DataType::Utf8, true),
        ])
    }

    #[test]
    fn exact_fields_stay_out_of_the_rest() {
        let d = RawDocumentBuf::try_from(
            &doc! {"_id": ObjectId::new(), "quantity": 5, "status": "PENDING", ARCHIVE_MARK: "run"},
        )
        .unwrap();
        assert_eq!(rest(&d, &schema()).unwrap(), None);
    }

    #[test]
    fn typed_columns_plus_the_rest_give_every_document_back() {
        use crate::decode::Decoder;
        use datafusion::arrow::array::StringArray;
        use std::sync::Arc;

        let schema = Arc::new(schema());
        let originals = vec![
            doc! {"_id": ObjectId::new(), "quantity": 5, "status": "PENDING"},
            doc! {"_id": "custom", "quantity": 5.0, "status": Bson::Null, "note": {"a": [1i64, "x"]}},
            doc! {"_id": ObjectId::new(), "quantity": "7", "big": i64::MAX, "when": mongodb::bson::DateTime::from_millis(-1)},
            doc! {"_id": ObjectId::new()},
        ];
        let mut decoder = Decoder::new(schema.clone()).unwrap();
        let mut rests = Vec::new();
        for d in &originals {
            let raw = RawDocumentBuf::try_from(d).unwrap();
            decoder.append(&raw);
            rests.push(rest(&raw, &schema).unwrap());
        }
        let batch = decoder.finish().unwrap();
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from(rests)));
        let mut fields = schema.fields().to_vec();
        fields.push(Arc::new(Field::new(REST_COLUMN, DataType::Utf8, true)));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let sorted = |d: &Document| {
            let mut pairs: Vec<_> = d.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs
        };
        let back = documents(&batch).unwrap();
        assert_eq!(back.iter().map(sorted).collect::<Vec<_>>(), originals.iter().map(sorted).collect::<Vec<_>>());
    }

    #[test]
    fn other_types_nulls_and_unknown_fields_go_to_the_rest() {
        let d = RawDocumentBuf::try_from(&doc! {
            "_id": "custom", "quantity": 5.0, "status": Bson::Null, "note": {"a": [1i64]}, ARCHIVE_MARK: "run",
        })
        .unwrap();
        let rest: Document = serde_json::from_str::<serde_json::Value>(&rest(&d, &schema()).unwrap().unwrap())
            .map(|v| Bson::try_from(v).unwrap().as_document().unwrap().clone())
            .unwrap();
        assert_eq!(
            rest,
            doc! {"_id": "custom", "quantity": 5.0, "status": Bson::Null, "note": {"a": [1i64]}},
            "canonical Extended JSON keeps each type"
        );
    }
}
