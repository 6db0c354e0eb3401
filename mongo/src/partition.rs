//! Splitting a collection into ranges of one field, one range a partition.
//!
//! Split points come from a `$sample` of the field. MongoDB compares values
//! only within a type bracket, so ranges alone would miss documents whose
//! field is missing, null, NaN, an array or of another type; the first
//! partition takes all of those. Arrays are excluded from every range
//! (their elements could fall in two), so no document matches two
//! partitions: each is read exactly once. `_id` is never an array, so its
//! ranges stay plain index ranges.

use mongodb::bson::{Bson, Document, doc};

/// `$type` aliases of every BSON type.
const ALL_TYPES: [&str; 21] = [
    "double",
    "string",
    "object",
    "array",
    "binData",
    "undefined",
    "objectId",
    "bool",
    "date",
    "null",
    "regex",
    "dbPointer",
    "javascript",
    "symbol",
    "javascriptWithScope",
    "int",
    "timestamp",
    "long",
    "decimal",
    "minKey",
    "maxKey",
];

/// The type brackets split points may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bracket {
    /// Doubles, 32- and 64-bit integers and decimals, compared as numbers.
    Number,
    /// Strings and symbols.
    String,
    /// Dates.
    Date,
    /// ObjectIds.
    ObjectId,
}

impl Bracket {
    /// The `$type` aliases MongoDB compares together.
    pub fn types(self) -> &'static [&'static str] {
        match self {
            Bracket::Number => &["double", "int", "long", "decimal"],
            Bracket::String => &["string", "symbol"],
            Bracket::Date => &["date"],
            Bracket::ObjectId => &["objectId"],
        }
    }

    /// The bracket of `value`, if split points can be taken from it.
    pub fn of(value: &Bson) -> Option<Bracket> {
        match value {
            Bson::Int32(_) | Bson::Int64(_) => Some(Bracket::Number),
            Bson::Double(d) if !d.is_nan() => Some(Bracket::Number),
            Bson::String(_) => Some(Bracket::String),
            Bson::DateTime(_) => Some(Bracket::Date),
            Bson::ObjectId(_) => Some(Bracket::ObjectId),
            _ => None,
        }
    }

    /// The name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Bracket::Number => "number",
            Bracket::String => "string",
            Bracket::Date => "date",
            Bracket::ObjectId => "objectId",
        }
    }

    /// The bracket called `name`.
    pub fn from_name(name: &str) -> Option<Bracket> {
        [Bracket::Number, Bracket::String, Bracket::Date, Bracket::ObjectId].into_iter().find(|b| b.name() == name)
    }
}

/// Ranges of `field`: `points.len() + 1` partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// Field the ranges are of.
    pub field: String,
    /// Bracket of the split points; other types go to the first partition.
    pub bracket: Bracket,
    /// Ascending, distinct, all of `bracket`.
    pub points: Vec<Bson>,
}

impl Splits {
    /// How many partitions these splits make.
    pub fn partitions(&self) -> usize {
        self.points.len() + 1
    }

    /// The filter selecting partition `i`.
    pub fn filter(&self, i: usize) -> Document {
        let f = self.field.as_str();
        let mut range = Document::new();
        if i > 0 {
            range.insert("$gte", self.points[i - 1].clone());
        }
        if i < self.points.len() {
            range.insert("$lt", self.points[i].clone());
        }
        // Bounds of one bracket already match only that bracket.
        let arrays = f != "_id";
        if arrays {
            range.insert("$not", doc! {"$type": "array"});
        }
        if i > 0 {
            return doc! {f: range};
        }
        let others: Vec<&str> =
            ALL_TYPES.iter().copied().filter(|t| !self.bracket.types().contains(t) && *t != "array").collect();
        let mut any = vec![
            Bson::Document(doc! {f: range}),
            Bson::Document(doc! {f: Bson::Null}),
            Bson::Document(doc! {f: {"$type": others}}),
        ];
        if arrays {
            any.push(Bson::Document(doc! {f: {"$type": "array"}}));
        }
        if self.bracket == Bracket::Number {
            any.push(Bson::Document(doc! {f: f64::NAN}));
        }
        doc! {"$or": any}
    }
}

fn order(a: &Bson, b: &Bson) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let number = |v: &Bson| match v {
        Bson::Int32(x) => Some(f64::from(*x)),
        Bson::Int64(x) => Some(*x as f64),
        Bson::Double(x) => Some(*x),
        _ => None,
    };
    match (a, b) {
        (Bson::String(x), Bson::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.cmp(y),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

/// Up to `partitions` ranges of `field` from `sample` (its values in some
/// documents); `None` when one partition is all the sample supports.
pub fn from_sample(field: &str, sample: Vec<Bson>, partitions: usize) -> Option<Splits> {
    if partitions < 2 {
        return None;
    }
    // The bracket most sampled values share.
    let mut counts = [0usize; 4];
    let brackets = [Bracket::Number, Bracket::String, Bracket::Date, Bracket::ObjectId];
    for v in &sample {
        if let Some(b) = Bracket::of(v) {
            counts[brackets.iter().position(|x| *x == b).expect("listed")] += 1;
        }
    }
    let (best, _) = counts.iter().enumerate().max_by_key(|(_, c)| **c).filter(|(_, c)| **c > 0)?;
    let bracket = brackets[best];
    let mut values: Vec<Bson> = sample.into_iter().filter(|v| Bracket::of(v) == Some(bracket)).collect();
    values.sort_by(order);
    let mut points: Vec<Bson> = Vec::new();
    for k in 1..partitions {
        let v = &values[k * values.len() / partitions];
        if points.last().is_none_or(|p| order(p, v).is_lt()) && order(&values[0], v).is_lt() {
            points.push(v.clone());
        }
    }
    (!points.is_empty()).then(|| Splits { field: field.to_string(), bracket, points })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_the_dominant_bracket() {
        let sample: Vec<Bson> = (0..100).map(Bson::Int32).chain([Bson::String("x".into()), Bson::Null]).collect();
        let s = from_sample("q", sample, 4).unwrap();
        assert_eq!(s.bracket, Bracket::Number);
        assert_eq!(s.points, vec![Bson::Int32(25), Bson::Int32(50), Bson::Int32(75)]);
        assert_eq!(s.filter(2), doc! {"q": {"$gte": 50, "$lt": 75, "$not": {"$type": "array"}}});
        let first = s.filter(0);
        let any = first.get_array("$or").unwrap();
        assert_eq!(any.len(), 5, "range, null/missing, other types, arrays, NaN");
        let ids = Splits { field: "_id".into(), ..s };
        assert_eq!(ids.filter(1), doc! {"_id": {"$gte": 25, "$lt": 50}}, "a plain index range");
        assert_eq!(ids.filter(0).get_array("$or").unwrap().len(), 4, "no array clause for _id");
    }

    #[test]
    fn too_few_distinct_values_make_fewer_partitions() {
        let sample = vec![Bson::String("a".into()); 50];
        assert!(from_sample("s", sample, 4).is_none());
        let sample: Vec<Bson> = ["a", "a", "b", "b"].iter().map(|s| Bson::String(s.to_string())).collect();
        assert_eq!(from_sample("s", sample, 4).unwrap().points, vec![Bson::String("b".into())]);
    }
}
