//! The fast path for flat schemas (only scalar columns), the common case of
//! fact collections: one bounds-checked pass over each document's bytes.
//! A scalar column takes only a few BSON types, so any other value is
//! skipped by its length and counted as the wrong type, never decoded.
//! Documents with nested columns go through the `bson` crate instead.

use datafusion::arrow::array::{
    BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};

use crate::value::{Counts, Reason, oid_hex, whole_i32, whole_i64};

/// A scalar column's builder.
pub(crate) enum Flat {
    Null(usize),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    String(StringBuilder),
    ObjectId(StringBuilder),
    Timestamp(TimestampMillisecondBuilder),
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Bytes the value of BSON type `t` at `at` takes, or `None` when they run
/// past `end` or the type is unknown.
fn value_len(b: &[u8], t: u8, at: usize, end: usize) -> Option<usize> {
    let len = |n: i32| usize::try_from(n).ok();
    let string = |at: usize| -> Option<usize> {
        let n = len(le_i32(b, at)?)?;
        (n >= 1).then_some(4 + n)
    };
    let cstring = |at: usize| -> Option<usize> { Some(b.get(at..end)?.iter().position(|&c| c == 0)? + 1) };
    let size = match t {
        0x01 | 0x09 | 0x11 | 0x12 => 8,
        0x02 | 0x0D | 0x0E => string(at)?,
        0x03 | 0x04 | 0x0F => len(le_i32(b, at)?)?,
        0x05 => 5 + len(le_i32(b, at)?)?,
        0x06 | 0x0A | 0x7F | 0xFF => 0,
        0x07 => 12,
        0x08 => 1,
        0x0B => {
            let pattern = cstring(at)?;
            pattern + cstring(at + pattern)?
        }
        0x0C => string(at)? + 12,
        0x10 => 4,
        0x13 => 16,
        _ => return None,
    };
    (at.checked_add(size)? <= end).then_some(size)
}

impl Flat {
    pub(crate) fn append_null(&mut self) {
        match self {
            Flat::Null(n) => *n += 1,
            Flat::Int32(b) => b.append_null(),
            Flat::Int64(b) => b.append_null(),
            Flat::Float64(b) => b.append_null(),
            Flat::Bool(b) => b.append_null(),
            Flat::String(b) | Flat::ObjectId(b) => b.append_null(),
            Flat::Timestamp(b) => b.append_null(),
        }
    }

    /// Appends the value `v` of BSON type `t` (`v` holds exactly its bytes).
    fn append(&mut self, t: u8, v: &[u8]) -> Result<(), Reason> {
        if matches!(t, 0x06 | 0x0A) {
            self.append_null();
            return Ok(());
        }
        let f64_at = || f64::from_le_bytes(v.try_into().expect("8 bytes by value_len"));
        let i64_at = || i64::from_le_bytes(v.try_into().expect("8 bytes by value_len"));
        let i32_at = || i32::from_le_bytes(v.try_into().expect("4 bytes by value_len"));
        match (self, t) {
            (Flat::Null(n), _) => *n += 1,
            (Flat::Int32(b), 0x10) => b.append_value(i32_at()),
            (Flat::Int32(b), 0x12) => b.append_value(i32::try_from(i64_at()).map_err(|_| Reason::OutOfRange)?),
            (Flat::Int32(b), 0x01) => b.append_value(whole_i32(f64_at())?),
            (Flat::Int64(b), 0x10) => b.append_value(i64::from(i32_at())),
            (Flat::Int64(b), 0x12) => b.append_value(i64_at()),
            (Flat::Int64(b), 0x01) => b.append_value(whole_i64(f64_at())?),
            (Flat::Float64(b), 0x01) => b.append_value(f64_at()),
            (Flat::Float64(b), 0x10) => b.append_value(f64::from(i32_at())),
            (Flat::Float64(b), 0x12) => b.append_value(i64_at() as f64),
            (Flat::Bool(b), 0x08) => match v[0] {
                0 => b.append_value(false),
                1 => b.append_value(true),
                _ => return Err(Reason::Malformed),
            },
            (Flat::String(b), 0x02) => {
                // length, bytes, NUL
                let text = v.get(4..v.len() - 1).filter(|_| v.last() == Some(&0)).ok_or(Reason::Malformed)?;
                b.append_value(std::str::from_utf8(text).map_err(|_| Reason::Malformed)?)
            }
            (Flat::ObjectId(b), 0x07) => {
                let bytes: &[u8; 12] = v.try_into().expect("12 bytes by value_len");
                b.append_value(std::str::from_utf8(&oid_hex(bytes)).expect("hex digits are ASCII"))
            }
            (Flat::Timestamp(b), 0x09) => b.append_value(i64_at()),
            _ => return Err(Reason::WrongType),
        }
        Ok(())
    }
}

/// Top-level scalar columns with their names, for [`append`].
pub(crate) struct FlatColumns<'a> {
    pub names: &'a [Vec<u8>],
    pub columns: &'a mut [Flat],
    pub index: &'a std::collections::HashMap<Vec<u8>, usize>,
    pub stamp: &'a mut [u64],
}

/// Appends the document `b` (its whole bytes). Columns it lacks read null;
/// at malformed bytes it stops, the rest reading null, and counts it.
pub(crate) fn append(b: &[u8], row: u64, cols: &mut FlatColumns<'_>, counts: &mut [Counts]) {
    let ok = walk(b, row, cols, counts);
    if ok.is_none() {
        counts[0][Reason::Malformed as usize] += 1;
    }
    for (i, column) in cols.columns.iter_mut().enumerate() {
        if cols.stamp[i] != row {
            column.append_null();
        }
    }
}

fn walk(b: &[u8], row: u64, cols: &mut FlatColumns<'_>, counts: &mut [Counts]) -> Option<()> {
    let declared = usize::try_from(le_i32(b, 0)?).ok()?;
    if declared < 5 || declared > b.len() || b[declared - 1] != 0 {
        return None;
    }
    let end = declared - 1;
    let mut at = 4;
    let mut hint = 0usize;
    while at < end {
        let t = b[at];
        let key_start = at + 1;
        let key_len = b.get(key_start..end)?.iter().position(|&c| c == 0)?;
        let key = &b[key_start..key_start + key_len];
        let value_at = key_start + key_len + 1;
        let size = value_len(b, t, value_at, end)?;
        at = value_at + size;
        let i = match cols.names.get(hint) {
            Some(name) if name.as_slice() == key => hint,
            _ => match cols.index.get(key) {
                Some(&i) => i,
                None => continue,
            },
        };
        hint = i + 1;
        if cols.stamp[i] == row {
            continue;
        }
        cols.stamp[i] = row;
        let column = &mut cols.columns[i];
        if let Err(reason) = column.append(t, &b[value_at..at]) {
            column.append_null();
            counts[i][reason as usize] += 1;
        }
    }
    (at == end).then_some(())
}

impl Flat {
    /// The builder for `field`, if it is a scalar column this path reads.
    pub(crate) fn for_field(field: &datafusion::arrow::datatypes::Field) -> Option<Flat> {
        use datafusion::arrow::datatypes::{DataType, TimeUnit};
        Some(match field.data_type() {
            DataType::Null => Flat::Null(0),
            DataType::Int32 => Flat::Int32(Int32Builder::new()),
            DataType::Int64 => Flat::Int64(Int64Builder::new()),
            DataType::Float64 => Flat::Float64(Float64Builder::new()),
            DataType::Boolean => Flat::Bool(BooleanBuilder::new()),
            DataType::Utf8 => match crate::schema::utf8_kind(field) {
                "string" => Flat::String(StringBuilder::new()),
                "objectId" => Flat::ObjectId(StringBuilder::new()),
                _ => return None,
            },
            DataType::Timestamp(TimeUnit::Millisecond, tz) => {
                Flat::Timestamp(TimestampMillisecondBuilder::new().with_timezone_opt(tz.clone()))
            }
            _ => return None,
        })
    }

    /// The column so far; the builder starts afresh.
    pub(crate) fn finish(&mut self) -> datafusion::arrow::array::ArrayRef {
        use std::sync::Arc;
        match self {
            Flat::Null(n) => Arc::new(datafusion::arrow::array::NullArray::new(std::mem::take(n))),
            Flat::Int32(b) => Arc::new(b.finish()),
            Flat::Int64(b) => Arc::new(b.finish()),
            Flat::Float64(b) => Arc::new(b.finish()),
            Flat::Bool(b) => Arc::new(b.finish()),
            Flat::String(b) | Flat::ObjectId(b) => Arc::new(b.finish()),
            Flat::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}
