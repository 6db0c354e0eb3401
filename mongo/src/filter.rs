//! SQL predicates as MongoDB query filters.
//!
//! A filter is pushed down only when MongoDB's answer contains every row
//! SQL would keep; DataFusion re-checks it (`Inexact`) unless MongoDB's
//! answer is exactly SQL's (`Exact`). The differences that matter:
//! - SQL reads a value of the wrong type as null, so a comparison drops the
//!   row; MongoDB compares within a type bracket and also drops it, but
//!   matches arrays by element and, for numbers, values SQL cannot read
//!   (5.5 in an int column). Exact filters therefore add `$type` and
//!   exclude arrays; numeric ones stay `Inexact`;
//! - `IS NULL` also holds for unreadable values, which MongoDB's `null`
//!   does not match: never pushed;
//! - NaN sorts above every number in Arrow and below in MongoDB: `>`, `>=`
//!   and `<>` on doubles also ask for NaN.

use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use mongodb::bson::{Bson, DateTime, Document, doc};

use crate::schema::utf8_kind;

/// A translated filter and whether MongoDB evaluates it exactly as SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// Query filter sent to MongoDB.
    pub filter: Document,
    /// Whether MongoDB's answer is exactly SQL's, so DataFusion need not
    /// check it again (`Exact`).
    pub exact: bool,
}

/// How DataFusion should treat `expr` over `schema`.
pub fn support(expr: &Expr, schema: &Schema) -> TableProviderFilterPushDown {
    match translate(expr, schema) {
        Some(Pushed { exact: true, .. }) => TableProviderFilterPushDown::Exact,
        Some(_) => TableProviderFilterPushDown::Inexact,
        None => TableProviderFilterPushDown::Unsupported,
    }
}

/// The conjunction of every translatable filter, `None` when none is.
/// Plain ranges on one field merge into one `{field: {$gte, $lt}}`: the
/// shape a server can answer from an index.
pub fn combine(filters: &[Expr], schema: &Schema) -> Option<Document> {
    let mut parts: Vec<Bson> = Vec::new();
    for filter in filters.iter().filter_map(|f| translate(f, schema)).map(|p| p.filter) {
        if let Some((field, ops)) = plain_range(&filter) {
            let fits = |part: &Bson| {
                part.as_document()
                    .and_then(plain_range)
                    .is_some_and(|(f, existing)| f == field && ops.keys().all(|k| !existing.contains_key(k)))
            };
            if let Some(Bson::Document(d)) = parts.iter().position(fits).and_then(|i| parts.get_mut(i)) {
                if let Ok(range) = d.get_document_mut(field) {
                    range.extend(ops.clone());
                }
                continue;
            }
        }
        parts.push(Bson::Document(filter));
    }
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next().and_then(|b| b.as_document().cloned()),
        _ => Some(doc! {"$and": parts}),
    }
}

/// `{field: {range ops only}}`: the field and its operators.
fn plain_range(filter: &Document) -> Option<(&str, &Document)> {
    let (field, Bson::Document(ops)) = filter.iter().next()? else { return None };
    let plain = filter.len() == 1
        && !field.starts_with('$')
        && !ops.is_empty()
        && ops.keys().all(|k| RANGE.contains(&k.as_str()));
    plain.then_some((field.as_str(), ops))
}

#[derive(Clone, Copy, PartialEq)]
enum ColumnKind {
    String,
    Number,
    Double,
    Date,
    Bool,
}

fn column<'a>(expr: &'a Expr, schema: &Schema) -> Option<(&'a str, ColumnKind)> {
    let (name, through_cast) = match expr {
        Expr::Column(c) => (c.name.as_str(), false),
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Column(col) => (col.name.as_str(), true),
            _ => return None,
        },
        _ => return None,
    };
    let field = schema.field_with_name(name).ok()?;
    let kind = match field.data_type() {
        DataType::Utf8 if utf8_kind(field) == "string" && !through_cast => ColumnKind::String,
        DataType::Int32 | DataType::Int64 => ColumnKind::Number,
        DataType::Float64 => ColumnKind::Double,
        DataType::Timestamp(TimeUnit::Millisecond, _) => ColumnKind::Date,
        DataType::Boolean if !through_cast => ColumnKind::Bool,
        _ => return None,
    };
    Some((name, kind))
}

fn literal(value: &ScalarValue, kind: ColumnKind) -> Option<Bson> {
    use ScalarValue as S;
    Some(match (kind, value) {
        (ColumnKind::String, S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s))) => {
            Bson::String(s.clone())
        }
        (ColumnKind::Number | ColumnKind::Double, v) => match v {
            S::Int8(Some(x)) => Bson::Int64(i64::from(*x)),
            S::Int16(Some(x)) => Bson::Int64(i64::from(*x)),
            S::Int32(Some(x)) => Bson::Int64(i64::from(*x)),
            S::Int64(Some(x)) => Bson::Int64(*x),
            S::UInt8(Some(x)) => Bson::Int64(i64::from(*x)),
            S::UInt16(Some(x)) => Bson::Int64(i64::from(*x)),
            S::UInt32(Some(x)) => Bson::Int64(i64::from(*x)),
            S::UInt64(Some(x)) => Bson::Int64(i64::try_from(*x).ok()?),
            S::Float32(Some(x)) if !x.is_nan() => Bson::Double(f64::from(*x)),
            S::Float64(Some(x)) if !x.is_nan() => Bson::Double(*x),
            _ => return None,
        },
        (ColumnKind::Date, v) => {
            let millis = match v {
                S::TimestampSecond(Some(x), _) => x.checked_mul(1000)?,
                S::TimestampMillisecond(Some(x), _) => *x,
                S::TimestampMicrosecond(Some(x), _) if x % 1000 == 0 => x / 1000,
                S::TimestampNanosecond(Some(x), _) if x % 1_000_000 == 0 => x / 1_000_000,
                _ => return None,
            };
            Bson::DateTime(DateTime::from_millis(millis))
        }
        (ColumnKind::Bool, S::Boolean(Some(b))) => Bson::Boolean(*b),
        _ => return None,
    })
}

fn flip(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq => Operator::Eq,
        Operator::NotEq => Operator::NotEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        _ => return None,
    })
}

/// Range operators, which bracket by type in MongoDB.
const RANGE: [&str; 4] = ["$gt", "$gte", "$lt", "$lte"];

/// `{name: {<op>: value}}` with the guards that make it exact, where any do.
fn comparison(name: &str, kind: ColumnKind, op: &str, value: Bson) -> Pushed {
    let mut condition = doc! {op: value};
    match kind {
        // A time window is the filter most worth an index, and a plain
        // range is what every server can use one for: some scan the whole
        // collection once guards sit beside it. A range on a date matches
        // only dates (type bracketing) or arrays holding one, so it is a
        // superset of SQL's rows, re-checked above the scan.
        ColumnKind::Date if RANGE.contains(&op) => Pushed { filter: doc! {name: condition}, exact: false },
        ColumnKind::String | ColumnKind::Date | ColumnKind::Bool => {
            let bson_type = match kind {
                ColumnKind::String => "string",
                ColumnKind::Date => "date",
                _ => "bool",
            };
            condition.insert("$type", bson_type);
            condition.insert("$not", doc! {"$type": "array"});
            Pushed { filter: doc! {name: condition}, exact: true }
        }
        ColumnKind::Double if matches!(op, "$gt" | "$gte" | "$ne" | "$nin") => {
            Pushed { filter: doc! {"$or": [{name: condition}, {name: f64::NAN}]}, exact: false }
        }
        ColumnKind::Number | ColumnKind::Double => Pushed { filter: doc! {name: condition}, exact: false },
    }
}

fn operator(op: Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "$eq",
        Operator::NotEq => "$ne",
        Operator::Lt => "$lt",
        Operator::LtEq => "$lte",
        Operator::Gt => "$gt",
        Operator::GtEq => "$gte",
        _ => return None,
    })
}

/// `expr` as a MongoDB filter, when it can be pushed down at all.
pub fn translate(expr: &Expr, schema: &Schema) -> Option<Pushed> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let (l, r) = (translate(left, schema), translate(right, schema));
            match (l, r) {
                (Some(l), Some(r)) => {
                    Some(Pushed { filter: doc! {"$and": [l.filter, r.filter]}, exact: l.exact && r.exact })
                }
                // Dropping one side of an AND widens it: still a superset.
                (Some(one), None) | (None, Some(one)) => Some(Pushed { exact: false, ..one }),
                (None, None) => None,
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let (l, r) = (translate(left, schema)?, translate(right, schema)?);
            Some(Pushed { filter: doc! {"$or": [l.filter, r.filter]}, exact: l.exact && r.exact })
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (col, lit, op) = match (left.as_ref(), right.as_ref()) {
                (c, Expr::Literal(v, _)) => (c, v, *op),
                (Expr::Literal(v, _), c) => (c, v, flip(*op)?),
                _ => return None,
            };
            let (name, kind) = column(col, schema)?;
            let value = literal(lit, kind)?;
            Some(comparison(name, kind, operator(op)?, value))
        }
        Expr::Between(b) if !b.negated => {
            let (name, kind) = column(&b.expr, schema)?;
            let (Expr::Literal(lo, _), Expr::Literal(hi, _)) = (b.low.as_ref(), b.high.as_ref()) else {
                return None;
            };
            let lo = comparison(name, kind, "$gte", literal(lo, kind)?);
            let hi = comparison(name, kind, "$lte", literal(hi, kind)?);
            Some(Pushed { filter: doc! {"$and": [lo.filter, hi.filter]}, exact: lo.exact && hi.exact })
        }
        Expr::InList(list) => {
            let (name, kind) = column(&list.expr, schema)?;
            let values = list
                .list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => literal(v, kind),
                    _ => None,
                })
                .collect::<Option<Vec<Bson>>>()?;
            let op = if list.negated { "$nin" } else { "$in" };
            Some(comparison(name, kind, op, Bson::Array(values)))
        }
        Expr::IsNotNull(inner) => {
            let (name, kind) = column(inner, schema)?;
            Some(match kind {
                ColumnKind::String | ColumnKind::Date | ColumnKind::Bool => {
                    let mut p = comparison(name, kind, "$ne", Bson::Null);
                    p.exact = true;
                    p
                }
                _ => Pushed { filter: doc! {name: {"$ne": Bson::Null}}, exact: false },
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::prelude::{col, lit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("q", DataType::Int32, true),
            Field::new("p", DataType::Float64, true),
            Field::new("t", crate::schema::timestamp_type(), true),
            Field::new("_id", DataType::Utf8, true)
                .with_metadata([(crate::schema::KIND_KEY.to_string(), "objectId".to_string())].into()),
        ])
    }

    #[test]
    fn strings_are_exact_numbers_inexact() {
        let s = schema();
        let p = translate(&col("s").eq(lit("DC-01")), &s).unwrap();
        assert!(p.exact);
        assert_eq!(p.filter, doc! {"s": {"$eq": "DC-01", "$type": "string", "$not": {"$type": "array"}}});
        let p = translate(&lit(5).lt(col("q")), &s).unwrap();
        assert_eq!(p, Pushed { filter: doc! {"q": {"$gt": 5i64}}, exact: false });
        let p = translate(&col("p").gt_eq(lit(2.5)), &s).unwrap();
        // NaN != NaN, so compare the printed form.
        assert_eq!(format!("{}", p.filter), r#"{ "$or": [{ "p": { "$gte": 2.5 } }, { "p": NaN }] }"#);
    }

    #[test]
    fn what_is_not_pushed() {
        let s = schema();
        assert!(translate(&col("s").is_null(), &s).is_none(), "IS NULL also holds for unreadable values");
        assert!(translate(&col("_id").eq(lit("6b02")), &s).is_none(), "ObjectId hex is not a string in MongoDB");
        assert!(translate(&col("s").like(lit("a%")), &s).is_none());
        let or = col("s").eq(lit("a")).or(col("s").like(lit("b%")));
        assert!(translate(&or, &s).is_none(), "an OR with an unpushable side");
        let and = col("s").eq(lit("a")).and(col("s").like(lit("b%")));
        assert!(!translate(&and, &s).unwrap().exact, "an AND with an unpushable side widens");
    }

    #[test]
    fn timestamps_become_dates() {
        let s = schema();
        let t = lit(ScalarValue::TimestampMillisecond(Some(-1000), Some("UTC".into())));
        let p = translate(&col("t").lt(t.clone()), &s).unwrap();
        // Plain, for an index; DataFusion re-checks arrays.
        assert_eq!(p, Pushed { filter: doc! {"t": {"$lt": DateTime::from_millis(-1000)}}, exact: false });
        let p = translate(&col("t").eq(t), &s).unwrap();
        assert!(p.exact);
    }

    #[test]
    fn a_window_becomes_one_range() {
        let s = schema();
        let at = |ms: i64| lit(ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into())));
        let window = [col("t").gt_eq(at(1000)), col("t").lt(at(2000)), col("s").eq(lit("DC-01"))];
        let f = combine(&window, &s).unwrap();
        assert_eq!(
            f,
            doc! {"$and": [
                {"t": {"$gte": DateTime::from_millis(1000), "$lt": DateTime::from_millis(2000)}},
                {"s": {"$eq": "DC-01", "$type": "string", "$not": {"$type": "array"}}},
            ]}
        );
        let f = combine(&window[..2], &s).unwrap();
        assert_eq!(f, doc! {"t": {"$gte": DateTime::from_millis(1000), "$lt": DateTime::from_millis(2000)}});
        // Two lower bounds do not overwrite each other.
        let f = combine(&[col("t").gt_eq(at(1000)), col("t").gt_eq(at(1500))], &s).unwrap();
        assert_eq!(
            f,
            doc! {"$and": [{"t": {"$gte": DateTime::from_millis(1000)}}, {"t": {"$gte": DateTime::from_millis(1500)}}]}
        );
    }
}
