//! The rest of a document: every field its typed columns do not hold
//! exactly, as canonical Extended JSON. Typed columns plus the rest give the
//! document back whole, whatever its types, which is what the archive
//! promises.

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
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

/// Why a document's rest could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("a document is not valid BSON: {0}")]
pub struct RestError(String);

/// The fields of `doc` that `schema`'s columns do not hold exactly, as
/// canonical Extended JSON; `None` when the columns hold it all.
pub fn rest(doc: &RawDocument, schema: &Schema) -> Result<Option<String>, RestError> {
    let mut rest = Document::new();
    for element in doc {
        let (key, value) = element.map_err(|e| RestError(e.to_string()))?;
        let key = key.as_str();
        if key == ARCHIVE_MARK {
            continue;
        }
        if let Ok(field) = schema.field_with_name(key) {
            if exact(field, value) {
                continue;
            }
        }
        let value = Bson::try_from(value).map_err(|e| RestError(e.to_string()))?;
        rest.insert(key, value);
    }
    Ok((!rest.is_empty()).then(|| Bson::Document(rest).into_canonical_extjson().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::KIND_KEY;
    use mongodb::bson::{RawDocumentBuf, doc, oid::ObjectId};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("_id", DataType::Utf8, true).with_metadata([(KIND_KEY.to_string(), "objectId".to_string())].into()),
            Field::new("quantity", DataType::Int32, true),
            Field::new("status", DataType::Utf8, true),
        ])
    }

    #[test]
    fn exact_fields_stay_out_of_the_rest() {
        let d = RawDocumentBuf::try_from(&doc! {"_id": ObjectId::new(), "quantity": 5, "status": "PENDING", ARCHIVE_MARK: "run"}).unwrap();
        assert_eq!(rest(&d, &schema()).unwrap(), None);
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
