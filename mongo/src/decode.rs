//! Raw BSON documents straight into Arrow builders: no `bson::Document` is
//! ever built. A value that does not fit its column becomes null and is
//! counted per column and reason; malformed bytes end the document early
//! (its remaining columns read null) and are counted too. Nothing here
//! panics on any input.
//!
//! Reading a value as its column type (`shared/spec/supply-chain.md`):
//! `Int32` takes int32, and int64 or double holding a whole number in
//! range; `Int64` takes int32, int64 and whole doubles in range; `Float64`
//! takes double, int32 and int64; `Utf8` takes strings (or, by its
//! metadata, ObjectIds as hex or anything as extended JSON); `Timestamp`
//! takes dates; `Boolean` booleans; `Decimal128` decimals and integers that
//! fit; `Binary` binary; `Struct` documents; `List` arrays.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder, ListArray,
    NullArray, RecordBatch, RecordBatchOptions, StringBuilder, StructArray, TimestampMillisecondBuilder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use mongodb::bson::{RawBsonRef, RawDocument};

use crate::decimal;
use crate::flat::Flat;
use crate::schema::utf8_kind;
pub use crate::value::{Counts, Reason};
use crate::value::{oid_hex, whole_i32, whole_i64};

enum Utf8Kind {
    String,
    ObjectId,
    Json,
}

enum Column {
    Null(usize),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Utf8(StringBuilder, Utf8Kind),
    Timestamp(TimestampMillisecondBuilder, Option<Arc<str>>),
    Decimal(Decimal128Builder, u8, i8),
    Binary(BinaryBuilder),
    Struct(Box<Document>, Vec<bool>),
    List(FieldRef, Box<Column>, Vec<i32>, Vec<bool>),
}

impl Column {
    fn new(field: &Field) -> Result<Column, ArrowError> {
        Ok(match field.data_type() {
            DataType::Null => Column::Null(0),
            DataType::Int32 => Column::Int32(Int32Builder::new()),
            DataType::Int64 => Column::Int64(Int64Builder::new()),
            DataType::Float64 => Column::Float64(Float64Builder::new()),
            DataType::Boolean => Column::Bool(BooleanBuilder::new()),
            DataType::Utf8 => Column::Utf8(
                StringBuilder::new(),
                match utf8_kind(field) {
                    "objectId" => Utf8Kind::ObjectId,
                    "json" => Utf8Kind::Json,
                    _ => Utf8Kind::String,
                },
            ),
            DataType::Timestamp(TimeUnit::Millisecond, tz) => {
                Column::Timestamp(TimestampMillisecondBuilder::new(), tz.clone())
            }
            DataType::Decimal128(p, s) => Column::Decimal(Decimal128Builder::new(), *p, *s),
            DataType::Binary => Column::Binary(BinaryBuilder::new()),
            DataType::Struct(fields) => Column::Struct(Box::new(Document::new(fields.clone())?), Vec::new()),
            DataType::List(item) => Column::List(item.clone(), Box::new(Column::new(item)?), vec![0], Vec::new()),
            other => {
                return Err(ArrowError::NotYetImplemented(format!(
                    "column '{}': MongoDB values cannot be read as {other}",
                    field.name()
                )));
            }
        })
    }

    fn append_null(&mut self) {
        match self {
            Column::Null(n) => *n += 1,
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Bool(b) => b.append_null(),
            Column::Utf8(b, _) => b.append_null(),
            Column::Timestamp(b, _) => b.append_null(),
            Column::Decimal(b, ..) => b.append_null(),
            Column::Binary(b) => b.append_null(),
            Column::Struct(doc, valid) => {
                doc.append_nulls();
                valid.push(false);
            }
            Column::List(_, _, offsets, valid) => {
                offsets.push(*offsets.last().unwrap_or(&0));
                valid.push(false);
            }
        }
    }

    /// Appends `value`, or nothing and the reason it does not fit. Nested
    /// values that do not fit are nulled and counted in `nested`.
    fn append(&mut self, value: RawBsonRef<'_>, nested: &mut Counts) -> Result<(), Reason> {
        use RawBsonRef as V;
        match (self, value) {
            (Column::Null(n), _) => *n += 1,
            (Column::Int32(b), V::Int32(v)) => b.append_value(v),
            (Column::Int32(b), V::Int64(v)) => b.append_value(i32::try_from(v).map_err(|_| Reason::OutOfRange)?),
            (Column::Int32(b), V::Double(v)) => b.append_value(whole_i32(v)?),
            (Column::Int64(b), V::Int32(v)) => b.append_value(i64::from(v)),
            (Column::Int64(b), V::Int64(v)) => b.append_value(v),
            (Column::Int64(b), V::Double(v)) => b.append_value(whole_i64(v)?),
            (Column::Float64(b), V::Double(v)) => b.append_value(v),
            (Column::Float64(b), V::Int32(v)) => b.append_value(f64::from(v)),
            (Column::Float64(b), V::Int64(v)) => b.append_value(v as f64),
            (Column::Bool(b), V::Boolean(v)) => b.append_value(v),
            (Column::Utf8(b, Utf8Kind::String), V::String(s)) => b.append_value(s),
            (Column::Utf8(b, Utf8Kind::ObjectId), V::ObjectId(oid)) => {
                b.append_value(std::str::from_utf8(&oid_hex(&oid.bytes())).expect("hex digits are ASCII"))
            }
            (Column::Utf8(b, Utf8Kind::Json), v) => {
                let bson = mongodb::bson::Bson::try_from(v).map_err(|_| Reason::Malformed)?;
                b.append_value(bson.into_relaxed_extjson().to_string())
            }
            (Column::Timestamp(b, _), V::DateTime(d)) => b.append_value(d.timestamp_millis()),
            (Column::Decimal(b, p, s), V::Decimal128(d)) => {
                let d = decimal::parse(d.bytes()).ok_or(Reason::OutOfRange)?;
                b.append_value(decimal::to_scaled(d, *p, *s).ok_or(Reason::OutOfRange)?)
            }
            (Column::Decimal(b, p, s), V::Int32(v)) => {
                let d = decimal::Decimal { coefficient: i128::from(v), exponent: 0 };
                b.append_value(decimal::to_scaled(d, *p, *s).ok_or(Reason::OutOfRange)?)
            }
            (Column::Decimal(b, p, s), V::Int64(v)) => {
                let d = decimal::Decimal { coefficient: i128::from(v), exponent: 0 };
                b.append_value(decimal::to_scaled(d, *p, *s).ok_or(Reason::OutOfRange)?)
            }
            (Column::Binary(b), V::Binary(bin)) => b.append_value(bin.bytes),
            (Column::Struct(doc, valid), V::Document(d)) => {
                doc.append(d, nested);
                valid.push(true);
            }
            (Column::List(_, item, offsets, valid), V::Array(array)) => {
                let mut len = 0i32;
                for element in array {
                    match element {
                        Ok(V::Null | V::Undefined) => item.append_null(),
                        Ok(v) => {
                            if let Err(reason) = item.append(v, nested) {
                                item.append_null();
                                nested[reason as usize] += 1;
                            }
                        }
                        Err(_) => {
                            nested[Reason::Malformed as usize] += 1;
                            break;
                        }
                    }
                    len += 1;
                }
                offsets.push(offsets.last().copied().unwrap_or(0) + len);
                valid.push(true);
            }
            _ => return Err(Reason::WrongType),
        }
        Ok(())
    }

    fn finish(&mut self, field: &Field) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Column::Null(n) => Arc::new(NullArray::new(std::mem::take(n))) as ArrayRef,
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::Float64(b) => Arc::new(b.finish()),
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Utf8(b, _) => Arc::new(b.finish()),
            Column::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Column::Decimal(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
            Column::Binary(b) => Arc::new(b.finish()),
            Column::Struct(doc, valid) => {
                let children = doc.finish_columns()?;
                let nulls = NullBuffer::from(std::mem::take(valid));
                if children.is_empty() {
                    Arc::new(StructArray::new_empty_fields(nulls.len(), Some(nulls)))
                } else {
                    Arc::new(StructArray::try_new(doc.fields.clone(), children, Some(nulls))?)
                }
            }
            Column::List(item_field, item, offsets, valid) => {
                let values = item.finish(item_field)?;
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nulls = NullBuffer::from(std::mem::take(valid));
                Arc::new(ListArray::try_new(item_field.clone(), offsets, values, Some(nulls))?)
            }
        })
        .and_then(|a: ArrayRef| {
            if a.data_type() == field.data_type() {
                Ok(a)
            } else {
                Err(ArrowError::SchemaError(format!(
                    "column '{}' decoded as {} but declared {}",
                    field.name(),
                    a.data_type(),
                    field.data_type()
                )))
            }
        })
    }
}

/// The fields of one document level: top-level columns or a struct's.
struct Document {
    fields: Fields,
    columns: Vec<Column>,
    index: HashMap<String, usize>,
    /// Row number at which each column was last set, to find the missing
    /// ones and ignore repeated keys.
    stamp: Vec<u64>,
    row: u64,
}

impl Document {
    fn new(fields: Fields) -> Result<Self, ArrowError> {
        let columns = fields.iter().map(|f| Column::new(f)).collect::<Result<Vec<_>, _>>()?;
        let index = fields.iter().enumerate().map(|(i, f)| (f.name().clone(), i)).collect();
        let stamp = vec![0; fields.len()];
        Ok(Self { fields, columns, index, stamp, row: 0 })
    }

    fn append_nulls(&mut self) {
        for c in &mut self.columns {
            c.append_null();
        }
    }

    /// Appends one document, counting rejected values in `counts` (one
    /// entry per column at the top level, all in `counts[0]` below it).
    fn append_counted(&mut self, doc: &RawDocument, counts: &mut [Counts], per_column: bool) {
        self.row += 1;
        let row = self.row;
        let mut hint = 0usize;
        for element in doc.iter_elements() {
            let element = match element {
                Ok(e) => e,
                Err(_) => {
                    counts[0][Reason::Malformed as usize] += 1;
                    break;
                }
            };
            let key = element.key().as_str();
            // Documents mostly repeat the field order: try the next column first.
            let i = match self.fields.get(hint) {
                Some(f) if f.name() == key => hint,
                _ => match self.index.get(key) {
                    Some(&i) => i,
                    None => continue,
                },
            };
            hint = i + 1;
            if self.stamp[i] == row {
                continue;
            }
            self.stamp[i] = row;
            let slot = if per_column { i } else { 0 };
            let column = &mut self.columns[i];
            match element.value() {
                Ok(RawBsonRef::Null | RawBsonRef::Undefined) => column.append_null(),
                Ok(value) => {
                    let mut nested = Counts::default();
                    if let Err(reason) = column.append(value, &mut nested) {
                        column.append_null();
                        counts[slot][reason as usize] += 1;
                    }
                    for (c, n) in counts[slot].iter_mut().zip(nested) {
                        *c += n;
                    }
                }
                Err(_) => {
                    column.append_null();
                    counts[slot][Reason::Malformed as usize] += 1;
                }
            }
        }
        for (i, column) in self.columns.iter_mut().enumerate() {
            if self.stamp[i] != row {
                column.append_null();
            }
        }
    }

    fn append(&mut self, doc: &RawDocument, nested: &mut Counts) {
        let mut counts = [*nested];
        self.append_counted(doc, &mut counts, false);
        *nested = counts[0];
    }

    fn finish_columns(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        let fields = self.fields.clone();
        self.columns.iter_mut().zip(fields.iter()).map(|(c, f)| c.finish(f)).collect()
    }
}

/// Scalar columns only: read by [`crate::flat`].
struct FlatState {
    names: Vec<Vec<u8>>,
    columns: Vec<Flat>,
    index: HashMap<Vec<u8>, usize>,
    stamp: Vec<u64>,
    row: u64,
}

enum Body {
    Flat(FlatState),
    Nested(Document),
}

/// Decodes documents into record batches of a fixed schema.
pub struct Decoder {
    schema: SchemaRef,
    body: Body,
    rows: usize,
    rejected: Vec<Counts>,
}

impl Decoder {
    /// A decoder for `schema`; fails for column types MongoDB values cannot
    /// be read as. Schemas of scalar columns take the fast path.
    pub fn new(schema: SchemaRef) -> Result<Self, ArrowError> {
        let flat: Option<Vec<Flat>> = schema.fields().iter().map(|f| Flat::for_field(f)).collect();
        let body = match flat {
            Some(columns) if !columns.is_empty() => {
                let names: Vec<Vec<u8>> = schema.fields().iter().map(|f| f.name().as_bytes().to_vec()).collect();
                let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
                let stamp = vec![0; columns.len()];
                Body::Flat(FlatState { names, columns, index, stamp, row: 0 })
            }
            _ => Body::Nested(Document::new(schema.fields().clone())?),
        };
        Ok(Self::with_body(schema, body))
    }

    /// A decoder that always takes the general path (to test one path
    /// against the other).
    pub fn new_general(schema: SchemaRef) -> Result<Self, ArrowError> {
        let body = Body::Nested(Document::new(schema.fields().clone())?);
        Ok(Self::with_body(schema, body))
    }

    fn with_body(schema: SchemaRef, body: Body) -> Self {
        let rejected = vec![Counts::default(); schema.fields().len().max(1)];
        Self { schema, body, rows: 0, rejected }
    }

    /// Appends one document.
    pub fn append(&mut self, doc: &RawDocument) {
        match &mut self.body {
            Body::Nested(top) => top.append_counted(doc, &mut self.rejected, true),
            Body::Flat(_) => return self.append_bytes(doc.as_bytes()),
        }
        self.rows += 1;
    }

    /// Appends a document given as bytes, which may be malformed.
    pub fn append_bytes(&mut self, bytes: &[u8]) {
        self.rows += 1;
        match &mut self.body {
            Body::Flat(state) => {
                state.row += 1;
                let mut cols = crate::flat::FlatColumns {
                    names: &state.names,
                    columns: &mut state.columns,
                    index: &state.index,
                    stamp: &mut state.stamp,
                };
                crate::flat::append(bytes, state.row, &mut cols, &mut self.rejected);
            }
            Body::Nested(top) => match RawDocument::from_bytes(bytes) {
                Ok(doc) => top.append_counted(doc, &mut self.rejected, true),
                Err(_) => {
                    top.row += 1;
                    top.append_nulls();
                    self.rejected[0][Reason::Malformed as usize] += 1;
                }
            },
        }
    }

    /// Rows appended since the last [`Decoder::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Rejected values so far, per column (index as in the schema).
    pub fn rejected(&self) -> &[Counts] {
        &self.rejected
    }

    /// The rows appended so far as a batch; the decoder starts afresh.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = std::mem::take(&mut self.rows);
        let columns = match &mut self.body {
            Body::Nested(top) => top.finish_columns()?,
            Body::Flat(state) => state.columns.iter_mut().map(Flat::finish).collect(),
        };
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Int32Type, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use mongodb::bson::{Bson, RawDocumentBuf, doc, oid::ObjectId};

    fn raw(d: mongodb::bson::Document) -> RawDocumentBuf {
        RawDocumentBuf::try_from(&d).unwrap()
    }

    #[test]
    fn reads_values_by_the_spec_rules_and_counts_the_rest() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("q", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("t", crate::schema::timestamp_type(), true),
            Field::new("p", DataType::Float64, true),
        ]));
        let mut d = Decoder::new(schema).unwrap();
        for doc in [
            doc! {"q": 5i32, "s": "a", "t": mongodb::bson::DateTime::from_millis(-86_400_000), "p": 1.5},
            doc! {"q": 6.0, "s": 7i32, "p": 2i64},
            doc! {"q": 6.5, "t": "2026-01-01", "p": "x"},
            doc! {"q": 3_000_000_000i64, "s": Bson::Null, "q2": 1},
            doc! {"s": "dup", "q": "5"},
        ] {
            d.append(&raw(doc));
        }
        let batch = d.finish().unwrap();
        let q = batch.column(0).as_primitive::<Int32Type>();
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![Some(5), Some(6), None, None, None]);
        let s = batch.column(1).as_string::<i32>();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Some("a"), None, None, None, Some("dup")]);
        assert_eq!(batch.column(2).null_count(), 4);
        let table = pretty_format_batches(std::slice::from_ref(&batch)).unwrap().to_string();
        assert!(table.contains("1969-12-31T00:00:00Z"), "dates before 1970 stay exact:\n{table}");
        assert_eq!(d.rejected()[0], [1, 2, 0], "q: '5' is the wrong type; 6.5 and 3e9 do not fit");
        assert_eq!(d.rejected()[1], [1, 0, 0]);
        assert_eq!(d.rejected()[2], [1, 0, 0]);
        assert_eq!(d.rejected()[3], [1, 0, 0]);
    }

    #[test]
    fn nested_documents_arrays_ids_and_decimals() {
        let docs = vec![
            raw(doc! {"_id": ObjectId::parse_str("6b024cab249a8006423f8c6f").unwrap(),
            "n": {"a": 1i32, "b": ["x", "y", 2i32]}, "l": [1i32, 2.0, 2.5],
            "d": Bson::Decimal128("12.50".parse().unwrap())}),
            raw(doc! {"_id": "custom", "n": "not a doc", "l": Bson::Null, "d": 3i32}),
            raw(doc! {"_id": ObjectId::new(), "n": {"a": 2i32}, "d": Bson::Decimal128("-0.01".parse().unwrap())}),
        ];
        let schema = crate::schema::infer(docs.iter().map(|d| d.as_ref()));
        let mut d = Decoder::new(schema).unwrap();
        for doc in &docs {
            d.append(doc);
        }
        let batch = d.finish().unwrap();
        let table = pretty_format_batches(&[batch]).unwrap().to_string();
        assert!(table.contains("6b024cab249a8006423f8c6f"), "{table}");
        assert!(table.contains("{a: 1, b: [x, y, ]}"), "{table}");
        assert!(table.contains("[1.0, 2.0, 2.5]"), "{table}");
        assert!(table.contains("12.50") && table.contains("-0.01"), "{table}");
        // "custom" is not an ObjectId; "not a doc" is not a document; 2 in
        // a string list; 3 fits decimal(38, 2) as 3.00.
        assert_eq!(d.rejected()[0], [1, 0, 0]);
        assert_eq!(d.rejected()[1], [2, 0, 0]);
        assert_eq!(d.rejected()[3], [0, 0, 0]);
        assert!(table.contains("| 3.00"), "{table}");
    }

    #[test]
    fn garbage_bytes_never_panic() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("n", DataType::Struct(vec![Field::new("x", DataType::Utf8, true)].into()), true),
        ]));
        let mut d = Decoder::new(schema).unwrap();
        let good = raw(doc! {"a": 1i32, "n": {"x": "y"}});
        let bytes = good.as_bytes().to_vec();
        let mut state = 7u64;
        for i in 0..2000 {
            let mut b = bytes.clone();
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let at = (state >> 33) as usize % b.len();
            b[at] = (state >> 17) as u8;
            b.truncate(b.len() - (i % 3));
            d.append_bytes(&b);
        }
        let batch = d.finish().unwrap();
        assert_eq!(batch.num_rows(), 2000);
    }
}

#[cfg(test)]
mod flat_tests {
    use super::*;
    use datafusion::arrow::datatypes::Schema;
    use mongodb::bson::{Bson, RawDocumentBuf, doc, oid::ObjectId};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("_id", DataType::Utf8, true)
                .with_metadata([(crate::schema::KIND_KEY.to_string(), "objectId".to_string())].into()),
            Field::new("q", DataType::Int32, true),
            Field::new("n", DataType::Int64, true),
            Field::new("p", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("t", crate::schema::timestamp_type(), true),
        ]))
    }

    fn docs() -> Vec<RawDocumentBuf> {
        let values = [
            Bson::Int32(5),
            Bson::Int64(7),
            Bson::Double(2.0),
            Bson::Double(2.5),
            Bson::Double(f64::NAN),
            Bson::Int64(1 << 40),
            Bson::String("x".into()),
            Bson::Boolean(true),
            Bson::Null,
            Bson::DateTime(mongodb::bson::DateTime::from_millis(-1)),
            Bson::ObjectId(ObjectId::new()),
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::Document(doc! {"a": 1}),
            Bson::Decimal128("1.5".parse().unwrap()),
            Bson::Binary(mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: vec![1, 2],
            }),
            Bson::JavaScriptCode("f()".into()),
            Bson::Undefined,
            Bson::MaxKey,
        ];
        let names = ["_id", "q", "n", "p", "s", "b", "t", "other"];
        let mut out = Vec::new();
        for i in 0..values.len() * names.len() {
            let mut d = mongodb::bson::Document::new();
            for (j, name) in names.iter().enumerate() {
                if (i + j) % 5 != 0 {
                    d.insert(*name, values[(i * 7 + j * 3) % values.len()].clone());
                }
            }
            out.push(RawDocumentBuf::try_from(&d).unwrap());
        }
        out
    }

    #[test]
    fn the_fast_path_reads_exactly_what_the_general_path_reads() {
        let (mut fast, mut general) = (Decoder::new(schema()).unwrap(), Decoder::new_general(schema()).unwrap());
        assert!(matches!(fast.body, Body::Flat(_)) && matches!(general.body, Body::Nested(_)));
        for d in docs() {
            fast.append(&d);
            general.append(&d);
        }
        assert_eq!(fast.rejected(), general.rejected());
        let (a, b) = (fast.finish().unwrap(), general.finish().unwrap());
        // NaN != NaN: compare the printed batches.
        let show = |x| datafusion::arrow::util::pretty::pretty_format_batches(&[x]).unwrap().to_string();
        assert_eq!(show(a), show(b));
    }

    #[test]
    fn the_fast_path_survives_garbage() {
        let mut fast = Decoder::new(schema()).unwrap();
        let mut state = 11u64;
        let mut n = 0;
        for d in docs() {
            for cut in 0..4 {
                let mut bytes = d.as_bytes().to_vec();
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let at = (state >> 33) as usize % bytes.len();
                bytes[at] = (state >> 13) as u8;
                bytes.truncate(bytes.len().saturating_sub(cut));
                fast.append_bytes(&bytes);
                n += 1;
            }
        }
        fast.append_bytes(&[]);
        fast.append_bytes(&[5, 0, 0, 0]);
        assert_eq!(fast.finish().unwrap().num_rows(), n + 2);
    }
}
