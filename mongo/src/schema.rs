//! Schema inference from sampled documents, and the BSON kind each Arrow
//! column reads.
//!
//! Rules, per field (nested documents and array elements alike):
//! - null and missing values are ignored; a field never seen with a value
//!   is a nullable `Utf8`;
//! - numbers widen without loss, int32 → int64 → double: the numeric kinds
//!   count together and the widest one seen is the column type;
//! - otherwise the kind most sampled values have wins (ties go to the kind
//!   listed first in [`Kind`]); values of other kinds read as null and are
//!   counted as rejected;
//! - documents become `Struct`s of their merged fields, arrays `List`s of
//!   their merged elements; ObjectIds are `Utf8` hex strings; dates are
//!   `Timestamp(ms, UTC)`; Decimal128 is `Decimal128(38, s)` with `s` the
//!   most fractional digits sampled; binary is `Binary`; anything else
//!   (regex, JavaScript, timestamps, min/max keys…) is `Utf8` holding its
//!   relaxed extended JSON.
//!
//! `_id` is always the first column; other fields keep the order in which
//! the sample first shows them.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use mongodb::bson::{RawBsonRef, RawDocument};

use crate::decimal;

/// Field metadata key naming the BSON kind a `Utf8` column reads.
pub const KIND_KEY: &str = "stockyard.bson";

/// How deep nested documents and arrays are typed; deeper values are kept
/// as extended JSON text.
pub const MAX_DEPTH: usize = 16;

/// The BSON kinds inference tells apart, in tie-break order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Int32, int64 and double together; the widest seen is the column type.
    Number,
    /// Strings, read as `Utf8`.
    String,
    /// Dates, read as `Timestamp(ms, UTC)`.
    Date,
    /// ObjectIds, read as `Utf8` hex strings.
    ObjectId,
    /// Booleans.
    Bool,
    /// Decimal128, read as `Decimal128(38, s)` with `s` the most fractional
    /// digits sampled.
    Decimal,
    /// Embedded documents, read as `Struct`s of their merged fields.
    Document,
    /// Arrays, read as `List`s of their merged elements.
    Array,
    /// Binary data, read as `Binary`.
    Binary,
    /// Anything else (regex, JavaScript, timestamps, min/max keys, values
    /// nested deeper than [`MAX_DEPTH`]), read as extended JSON text.
    Other,
}

/// What a sample showed of one field.
#[derive(Debug, Default, Clone)]
struct Stats {
    counts: HashMap<Kind, u64>,
    int32: bool,
    int64: bool,
    double: bool,
    decimal_scale: i32,
    fields: Vec<(String, Stats)>,
    elements: Option<Box<Stats>>,
}

impl Stats {
    fn field(&mut self, name: &str) -> &mut Stats {
        if let Some(i) = self.fields.iter().position(|(n, _)| n == name) {
            return &mut self.fields[i].1;
        }
        self.fields.push((name.to_string(), Stats::default()));
        &mut self.fields.last_mut().expect("just pushed").1
    }

    fn observe(&mut self, value: RawBsonRef<'_>, depth: usize) {
        let kind = match value {
            RawBsonRef::Null | RawBsonRef::Undefined => return,
            RawBsonRef::Int32(_) => {
                self.int32 = true;
                Kind::Number
            }
            RawBsonRef::Int64(_) => {
                self.int64 = true;
                Kind::Number
            }
            RawBsonRef::Double(_) => {
                self.double = true;
                Kind::Number
            }
            RawBsonRef::String(_) => Kind::String,
            RawBsonRef::DateTime(_) => Kind::Date,
            RawBsonRef::ObjectId(_) => Kind::ObjectId,
            RawBsonRef::Boolean(_) => Kind::Bool,
            RawBsonRef::Decimal128(d) => {
                if let Some(d) = decimal::parse(d.bytes()) {
                    self.decimal_scale = self.decimal_scale.max(decimal::scale_of(d).min(38));
                }
                Kind::Decimal
            }
            RawBsonRef::Binary(_) => Kind::Binary,
            RawBsonRef::Document(doc) if depth < MAX_DEPTH => {
                self.observe_document(doc, depth + 1);
                Kind::Document
            }
            RawBsonRef::Array(array) if depth < MAX_DEPTH => {
                let elements = self.elements.get_or_insert_with(Default::default);
                for element in array.into_iter().flatten() {
                    elements.observe(element, depth + 1);
                }
                Kind::Array
            }
            _ => Kind::Other,
        };
        *self.counts.entry(kind).or_default() += 1;
    }

    fn observe_document(&mut self, doc: &RawDocument, depth: usize) {
        for (key, value) in doc.iter().flatten() {
            self.field(key.as_str()).observe(value, depth);
        }
    }

    fn winner(&self) -> Option<Kind> {
        self.counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(k, _)| *k)
    }

    fn to_field(&self, name: &str) -> Field {
        let (data_type, kind) = match self.winner() {
            None => (DataType::Utf8, None),
            Some(Kind::Number) if self.double => (DataType::Float64, None),
            Some(Kind::Number) if self.int64 => (DataType::Int64, None),
            Some(Kind::Number) => (DataType::Int32, None),
            Some(Kind::String) => (DataType::Utf8, None),
            Some(Kind::Date) => (timestamp_type(), None),
            Some(Kind::ObjectId) => (DataType::Utf8, Some("objectId")),
            Some(Kind::Bool) => (DataType::Boolean, None),
            Some(Kind::Decimal) => (DataType::Decimal128(38, self.decimal_scale as i8), None),
            Some(Kind::Binary) => (DataType::Binary, None),
            Some(Kind::Document) => (
                DataType::Struct(Fields::from(self.fields.iter().map(|(n, s)| s.to_field(n)).collect::<Vec<_>>())),
                None,
            ),
            Some(Kind::Array) => {
                let element = self.elements.as_deref().cloned().unwrap_or_default();
                (DataType::List(Arc::new(element.to_field("item"))), None)
            }
            Some(Kind::Other) => (DataType::Utf8, Some("json")),
        };
        let field = Field::new(name, data_type, true);
        match kind {
            Some(k) => field.with_metadata([(KIND_KEY.to_string(), k.to_string())].into()),
            None => field,
        }
    }
}

/// The Arrow type of BSON dates.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Infers a schema from sampled documents, as the module docs describe.
pub fn infer<'a>(docs: impl IntoIterator<Item = &'a RawDocument>) -> SchemaRef {
    let mut root = Stats::default();
    root.field("_id");
    for doc in docs {
        root.observe_document(doc, 1);
    }
    Arc::new(Schema::new(root.fields.iter().map(|(n, s)| s.to_field(n)).collect::<Vec<_>>()))
}

/// The BSON kind named in a `Utf8` field's metadata: `"string"` (the
/// default), `"objectId"` or `"json"`.
pub fn utf8_kind(field: &Field) -> &str {
    field.metadata().get(KIND_KEY).map(String::as_str).unwrap_or("string")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{RawDocumentBuf, doc, oid::ObjectId};

    fn raw(d: mongodb::bson::Document) -> RawDocumentBuf {
        RawDocumentBuf::try_from(&d).unwrap()
    }

    #[test]
    fn infers_the_documented_types() {
        let docs = [
            raw(doc! {"_id": ObjectId::new(), "q": 1i32, "p": 2.5, "s": "a", "n": {"x": 1i32}, "l": [1i32, 2i64]}),
            raw(
                doc! {"_id": ObjectId::new(), "q": 5i64, "p": 3i32, "s": 7i32, "t": mongodb::bson::DateTime::from_millis(-5)},
            ),
            raw(
                doc! {"_id": ObjectId::new(), "q": mongodb::bson::Bson::Null, "s": "b", "z": mongodb::bson::Bson::Null},
            ),
        ];
        let schema = infer(docs.iter().map(|d| d.as_ref()));
        let types: Vec<(String, DataType)> =
            schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(types[0], ("_id".into(), DataType::Utf8));
        assert_eq!(utf8_kind(schema.field(0)), "objectId");
        assert_eq!(types[1], ("q".into(), DataType::Int64), "int32 widens to int64");
        assert_eq!(types[2], ("p".into(), DataType::Float64));
        assert_eq!(types[3], ("s".into(), DataType::Utf8), "two strings beat one int");
        assert!(matches!(&types[4].1, DataType::Struct(f) if f[0].data_type() == &DataType::Int32));
        assert!(matches!(&types[5].1, DataType::List(f) if f.data_type() == &DataType::Int64));
        assert_eq!(types[6], ("t".into(), timestamp_type()));
        assert_eq!(types[7], ("z".into(), DataType::Utf8), "only nulls: nullable text");
    }

    #[test]
    fn id_comes_first_even_when_missing() {
        let docs = [raw(doc! {"a": 1i32})];
        let schema = infer(docs.iter().map(|d| d.as_ref()));
        assert_eq!(schema.field(0).name(), "_id");
        assert_eq!(schema.field(1).name(), "a");
    }
}
