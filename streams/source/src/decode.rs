//! JSON record values into Arrow, by the reading rules of the spec (the
//! same as for MongoDB values): a number is read into an integer column
//! only when it is whole and fits, into a float column always; a string
//! column takes only strings; a timestamp is an RFC 3339 string or epoch
//! milliseconds. An unreadable value reads as null and is counted; a record
//! that is not a JSON object, or whose event time is unreadable, is
//! skipped and counted by reason.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray, StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Records left out, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rejects {
    /// The value is not JSON (or is empty).
    pub not_json: u64,
    /// The value is JSON but not an object.
    pub not_an_object: u64,
    /// The event time is missing or unreadable.
    pub bad_event_time: u64,
}

impl Rejects {
    /// Every record left out.
    pub fn total(&self) -> u64 {
        self.not_json + self.not_an_object + self.bad_event_time
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Rejects) {
        self.not_json += other.not_json;
        self.not_an_object += other.not_an_object;
        self.bad_event_time += other.bad_event_time;
    }
}

/// What a set of record values decoded into.
#[derive(Debug)]
pub struct Decoded {
    /// The records that were read, in the order given.
    pub batch: RecordBatch,
    /// Each row's event time, in nanoseconds since the epoch (none without
    /// an event-time column).
    pub event_ns: Vec<i64>,
    /// Records left out.
    pub rejects: Rejects,
    /// Values that read as null because they had another type.
    pub unreadable_values: u64,
}

/// Whether a column of this type can be read from JSON.
pub fn supported(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::Utf8View
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Timestamp(_, _)
    )
}

/// Reads `values` into `schema`'s columns; `event_time` is the index of the
/// timestamp column that orders the stream, when it has one.
pub fn decode<'a>(
    values: impl IntoIterator<Item = Option<&'a [u8]>>,
    schema: &SchemaRef,
    event_time: Option<usize>,
) -> Decoded {
    let mut rejects = Rejects::default();
    let mut objects = Vec::new();
    let mut event_ns = Vec::new();
    for value in values {
        let Some(parsed) = value.and_then(|v| serde_json::from_slice::<Value>(v).ok()) else {
            rejects.not_json += 1;
            continue;
        };
        let Value::Object(object) = parsed else {
            rejects.not_an_object += 1;
            continue;
        };
        if let Some(et) = event_time {
            let Some(ns) = object.get(schema.field(et).name()).and_then(timestamp_ns) else {
                rejects.bad_event_time += 1;
                continue;
            };
            event_ns.push(ns);
        }
        objects.push(object);
    }
    let mut unreadable_values = 0;
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| {
            let values = objects.iter().map(|o| o.get(field.name()).filter(|v| !v.is_null()));
            let (array, unreadable) = column(field.data_type(), values);
            unreadable_values += unreadable;
            array
        })
        .collect();
    let batch = RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(objects.len())),
    )
    .expect("columns built for the schema");
    Decoded { batch, event_ns, rejects, unreadable_values }
}

/// An RFC 3339 string or epoch milliseconds, in nanoseconds.
fn timestamp_ns(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok()?.timestamp_nanos_opt(),
        Value::Number(n) => n.as_i64()?.checked_mul(1_000_000),
        _ => None,
    }
}

fn whole(value: &Value, min: i64, max: i64) -> Option<i64> {
    let n = value.as_number()?;
    let i = match n.as_i64() {
        Some(i) => i,
        None => {
            let f = n.as_f64()?;
            if f.fract() != 0.0 || !f.is_finite() || f < i64::MIN as f64 || f >= i64::MAX as f64 {
                return None;
            }
            f as i64
        }
    };
    (min..=max).contains(&i).then_some(i)
}

/// One column from the values present (absent and null values are
/// `None`), with the count of values of another type.
fn column<'a>(data_type: &DataType, values: impl Iterator<Item = Option<&'a Value>>) -> (ArrayRef, u64) {
    let mut unreadable = 0u64;
    let mut read = |v: Option<&'a Value>, f: &dyn Fn(&Value) -> Option<i128>| -> Option<i128> {
        let v = v?;
        let r = f(v);
        unreadable += u64::from(r.is_none());
        r
    };
    macro_rules! ints {
        ($array:ty, $t:ty) => {{
            let a: $array = values
                .map(|v| read(v, &|v| whole(v, <$t>::MIN as i64, <$t>::MAX as i64).map(i128::from)).map(|i| i as $t))
                .collect();
            Arc::new(a) as ArrayRef
        }};
    }
    macro_rules! times {
        ($array:ty, $div:expr, $tz:expr) => {{
            let a: $array = values
                .map(|v| read(v, &|v| timestamp_ns(v).map(i128::from)).map(|ns| (ns as i64).div_euclid($div)))
                .collect();
            Arc::new(a.with_timezone_opt($tz.clone())) as ArrayRef
        }};
    }
    let array: ArrayRef = match data_type {
        DataType::Int8 => ints!(Int8Array, i8),
        DataType::Int16 => ints!(Int16Array, i16),
        DataType::Int32 => ints!(Int32Array, i32),
        DataType::Int64 => ints!(Int64Array, i64),
        DataType::Float64 | DataType::Float32 => {
            let mut unread = 0;
            let floats: Vec<Option<f64>> = values
                .map(|v| {
                    let v = v?;
                    let f = v.as_f64();
                    unread += u64::from(f.is_none());
                    f
                })
                .collect();
            unreadable += unread;
            if *data_type == DataType::Float32 {
                Arc::new(floats.into_iter().map(|f| f.map(|f| f as f32)).collect::<Float32Array>())
            } else {
                Arc::new(Float64Array::from(floats))
            }
        }
        DataType::Boolean => {
            let mut unread = 0;
            let a: BooleanArray = values
                .map(|v| {
                    let b = v?.as_bool();
                    unread += u64::from(b.is_none());
                    b
                })
                .collect();
            unreadable += unread;
            Arc::new(a)
        }
        DataType::Utf8 | DataType::Utf8View => {
            let mut unread = 0;
            let strings: Vec<Option<&str>> = values
                .map(|v| {
                    let s = v?.as_str();
                    unread += u64::from(s.is_none());
                    s
                })
                .collect();
            unreadable += unread;
            if *data_type == DataType::Utf8View {
                Arc::new(StringViewArray::from(strings))
            } else {
                Arc::new(StringArray::from(strings))
            }
        }
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => times!(TimestampNanosecondArray, 1, tz),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => times!(TimestampMicrosecondArray, 1_000, tz),
        DataType::Timestamp(TimeUnit::Millisecond, tz) => times!(TimestampMillisecondArray, 1_000_000, tz),
        DataType::Timestamp(TimeUnit::Second, tz) => times!(TimestampSecondArray, 1_000_000_000, tz),
        other => {
            // Refused when the stream is created; all null if it gets here.
            let n = values.count();
            arrow::array::new_null_array(other, n)
        }
    };
    (array, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("qty", DataType::Int32, true),
            Field::new("price", DataType::Float64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        ]))
    }

    #[test]
    fn values_are_read_by_the_rules_and_bad_records_counted() {
        let values: Vec<Option<&[u8]>> = vec![
            Some(br#"{"id":"a","qty":5,"price":2,"ts":"2026-12-01T10:00:00Z"}"#),
            Some(br#"{"id":7,"qty":5.0,"price":"2","ts":1796119200000}"#),
            Some(br#"{"id":"c","qty":5.5,"ts":"2026-12-01T10:00:00+01:00"}"#),
            Some(br#"{"id":"d","qty":3000000000,"ts":"yesterday"}"#),
            Some(br#"{"id":"e"}"#),
            Some(b"not json"),
            Some(b"[1,2]"),
            None,
        ];
        let d = decode(values, &schema(), Some(3));
        assert_eq!(d.rejects, Rejects { not_json: 2, not_an_object: 1, bad_event_time: 2 });
        assert_eq!(d.batch.num_rows(), 3);
        // id 7 (a number), price "2" (a string) and qty 5.5 are unreadable.
        assert_eq!(d.unreadable_values, 3);
        let pretty = arrow::util::pretty::pretty_format_batches(&[d.batch]).unwrap().to_string();
        assert_eq!(
            pretty,
            "+----+-----+-------+---------------------+
| id | qty | price | ts                  |
+----+-----+-------+---------------------+
| a  | 5   | 2.0   | 2026-12-01T10:00:00 |
|    | 5   |       | 2026-12-01T10:00:00 |
| c  |     |       | 2026-12-01T09:00:00 |
+----+-----+-------+---------------------+"
        );
        let ten = 1_796_119_200_000_000_000i64;
        assert_eq!(d.event_ns, vec![ten, ten, ten - 3_600_000_000_000]);
    }
}
