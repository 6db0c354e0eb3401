//! The archive's files a query reads: the hive directories
//! (`event_date=…/event_hour=…`) that its filters can match, and in them
//! only the files the ledger says are the archive.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use datafusion::arrow::array::{Array, AsArray, Date32Array, Int32Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, DataFusionError};
use datafusion::error::Result;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::create_physical_expr;
use mongodb::bson::{Bson, Document};
use object_store::path::Path;

use stockyard_mongo::MongoSource;

use super::compacted::{self, Hour};
use super::ledger::Snapshot;
use crate::store::Destination;

/// The partition column of the event date.
pub const EVENT_DATE: &str = "event_date";
/// The partition column of the event hour, 0–23.
pub const EVENT_HOUR: &str = "event_hour";

/// The partition columns, as `archive.X` shows them.
pub fn partition_fields() -> Vec<Arc<Field>> {
    vec![
        Arc::new(Field::new(EVENT_DATE, DataType::Date32, false)),
        Arc::new(Field::new(EVENT_HOUR, DataType::Int32, false)),
    ]
}

/// One archive file to read.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedFile {
    /// Its path in the destination's store.
    pub path: Path,
    /// Its size in bytes.
    pub size: u64,
    /// Its hour's date.
    pub date: NaiveDate,
    /// Its hour.
    pub hour: u32,
}

/// Which hours a query's filters can match.
#[derive(Debug, Clone, Default)]
pub struct Pruning {
    /// Bounds on the event time, in ms: `lo` ≤ t, t ≤ `hi`.
    lo: Option<i64>,
    hi: Option<i64>,
    /// Filters over the partition columns alone (`archive.X`).
    on_partitions: Vec<Expr>,
}

impl Pruning {
    /// What `filters` say about the hours: bounds on `event_time` (a
    /// column of `schema`), and, with `partition_columns`, filters on
    /// those.
    pub fn new(filters: &[Expr], event_time: &str, schema: &Schema, partition_columns: bool) -> Self {
        let mut pruning = Self::default();
        for filter in filters {
            let columns = filter.column_refs();
            if columns.iter().all(|c| c.name == event_time) {
                // MongoDB's translation already reads every form of a time
                // literal (zones, casts, folded `now() - interval`), and a
                // plain range on one date field is what it gives for these.
                if let Some(range) = stockyard_mongo::filter::combine(std::slice::from_ref(filter), schema) {
                    pruning.narrow(&range, event_time);
                }
            } else if partition_columns && columns.iter().all(|c| c.name == EVENT_DATE || c.name == EVENT_HOUR) {
                pruning.on_partitions.push(filter.clone());
            }
        }
        pruning
    }

    fn narrow(&mut self, range: &Document, event_time: &str) {
        let Ok(ops) = range.get_document(event_time) else { return };
        if range.len() != 1 {
            return;
        }
        for (op, value) in ops {
            let Bson::DateTime(t) = value else { continue };
            // Dates are whole milliseconds: `< t` is `<= t - 1`.
            let t = t.timestamp_millis();
            let (lo, hi) = match op.as_str() {
                "$gt" => (Some(t + 1), None),
                "$gte" => (Some(t), None),
                "$lt" => (None, Some(t - 1)),
                "$lte" => (None, Some(t)),
                "$eq" => (Some(t), Some(t)),
                _ => (None, None),
            };
            self.lo = self.lo.max(lo);
            self.hi = match (self.hi, hi) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// Whether any of `date`'s hours can match the bounds.
    fn date(&self, date: NaiveDate) -> bool {
        let start = date.and_time(NaiveTime::MIN).and_utc().timestamp_millis();
        self.within(start, start + 24 * HOUR_MS)
    }

    /// Whether the hour `[start, end)` meets the bounds.
    fn within(&self, start: i64, end: i64) -> bool {
        self.lo.is_none_or(|lo| lo < end) && self.hi.is_none_or(|hi| hi >= start)
    }

    /// The hours of `candidates` that can match.
    fn hours(&self, candidates: Vec<(NaiveDate, u32)>) -> Result<Vec<(NaiveDate, u32)>> {
        let mut kept: Vec<(NaiveDate, u32)> = candidates
            .into_iter()
            .filter(|(date, hour)| {
                let start = date.and_time(NaiveTime::MIN).and_utc().timestamp_millis() + i64::from(*hour) * HOUR_MS;
                self.within(start, start + HOUR_MS)
            })
            .collect();
        if self.on_partitions.is_empty() || kept.is_empty() {
            return Ok(kept);
        }
        let schema: SchemaRef = Arc::new(Schema::new(partition_fields()));
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
        let dates = Date32Array::from_iter_values(kept.iter().map(|(d, _)| (*d - epoch).num_days() as i32));
        let hours = Int32Array::from_iter_values(kept.iter().map(|(_, h)| *h as i32));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(dates), Arc::new(hours)])?;
        let df_schema = DFSchema::try_from(schema)?;
        let mut keep = vec![true; kept.len()];
        for filter in &self.on_partitions {
            let expr = create_physical_expr(filter, &df_schema, &ExecutionProps::new())?;
            let answer = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
            let answer = answer
                .as_boolean_opt()
                .ok_or_else(|| DataFusionError::Plan(format!("the filter {filter} is not true or false")))?;
            for (i, k) in keep.iter_mut().enumerate() {
                *k &= answer.is_valid(i) && answer.value(i);
            }
        }
        let mut keep = keep.into_iter();
        kept.retain(|_| keep.next().unwrap_or(false));
        Ok(kept)
    }
}

const HOUR_MS: i64 = 3_600_000;

/// The hours of `collection` under `dest` that `pruning` keeps, from the
/// hive directories; the dates it leaves out are not listed.
pub async fn hours(dest: &Destination, collection: &str, pruning: &Pruning) -> Result<Vec<(NaiveDate, u32)>> {
    let base = dest.path([collection]);
    let mut candidates = Vec::new();
    for date_dir in
        dest.store.list_with_delimiter(Some(&base)).await.map_err(|e| failed(collection, e))?.common_prefixes
    {
        let Some(date) = value(&date_dir, EVENT_DATE).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        if !pruning.date(date) {
            continue;
        }
        let listed = dest.store.list_with_delimiter(Some(&date_dir)).await.map_err(|e| failed(collection, e))?;
        for hour_dir in listed.common_prefixes {
            if let Some(hour) = value(&hour_dir, EVENT_HOUR).and_then(|h| h.parse::<u32>().ok()).filter(|h| *h < 24) {
                candidates.push((date, hour));
            }
        }
    }
    let mut kept = pruning.hours(candidates)?;
    kept.sort();
    Ok(kept)
}

/// The directory of `collection`'s hour `hour` of `date`.
pub fn hour_dir(dest: &Destination, collection: &str, date: NaiveDate, hour: u32) -> Path {
    dest.path([collection, &format!("{EVENT_DATE}={}", date.format("%Y-%m-%d")), &format!("{EVENT_HOUR}={hour}")])
}

/// `collection`'s files under `dest` in the hours `pruning` keeps that are
/// the archive: those `snapshot` holds, as the hours' compaction records
/// (read first, from `source`) leave them. Hours it leaves out are not
/// listed.
pub async fn list(
    dest: &Destination,
    source: &MongoSource,
    collection: &str,
    pruning: &Pruning,
    snapshot: &Snapshot,
) -> Result<Vec<ArchivedFile>> {
    let hours = hours(dest, collection, pruning).await?;
    // Before the listing: a merged file committed after it was read is not
    // held, and the files it replaced are still there (they go only after
    // its commit).
    let records = compacted::read(source, collection, &hours).await?;
    let never = Hour::default();
    let mut files = Vec::new();
    for &(date, hour) in &hours {
        let record = records.get(&(date, hour)).unwrap_or(&never);
        let dir = hour_dir(dest, collection, date, hour);
        for object in dest.store.list_with_delimiter(Some(&dir)).await.map_err(|e| failed(collection, e))?.objects {
            let name = object.location.filename().unwrap_or_default();
            if name.ends_with(".parquet") && record.holds(name, snapshot) {
                files.push(ArchivedFile { path: object.location.clone(), size: object.size, date, hour });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn failed(collection: &str, e: object_store::Error) -> DataFusionError {
    DataFusionError::External(format!("listing the archive of {collection}: {e}").into())
}

/// `key`'s value in the last part of `dir` (`key=value`).
fn value<'a>(dir: &'a Path, key: &str) -> Option<&'a str> {
    dir.filename()?.strip_prefix(key)?.strip_prefix('=')
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::logical_expr::{col, lit};
    use datafusion::scalar::ScalarValue;

    fn schema() -> Schema {
        Schema::new(vec![Field::new("order_ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true)])
    }

    fn at(t: &str) -> Expr {
        let ms = chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp_millis();
        lit(ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into())))
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_time_range_keeps_only_the_hours_it_meets() {
        let filters =
            [col("order_ts").gt_eq(at("2026-01-05T06:30:00Z")), col("order_ts").lt(at("2026-01-05T08:00:00Z"))];
        let pruning = Pruning::new(&filters, "order_ts", &schema(), false);
        assert!(!pruning.date(day("2026-01-04")));
        assert!(pruning.date(day("2026-01-05")));
        let candidates = (0..24).map(|h| (day("2026-01-05"), h)).chain([(day("2026-01-06"), 0)]).collect();
        // 06:30 is in hour 6; the end, 08:00, is where hour 8 starts, and
        // `<` leaves it out.
        assert_eq!(pruning.hours(candidates).unwrap(), vec![(day("2026-01-05"), 6), (day("2026-01-05"), 7)]);
    }

    #[test]
    fn filters_on_the_partition_columns_prune_in_the_archive_table() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let days = (day("2026-01-05") - epoch).num_days() as i32;
        let filters = [col(EVENT_DATE).eq(lit(ScalarValue::Date32(Some(days)))), col(EVENT_HOUR).lt(lit(2))];
        let pruning = Pruning::new(&filters, "order_ts", &schema(), true);
        let candidates =
            vec![(day("2026-01-05"), 0), (day("2026-01-05"), 1), (day("2026-01-05"), 2), (day("2026-01-06"), 0)];
        assert_eq!(pruning.hours(candidates).unwrap(), vec![(day("2026-01-05"), 0), (day("2026-01-05"), 1)]);
        // Other filters prune nothing.
        let other = Pruning::new(&[col("quantity").gt(lit(3))], "order_ts", &schema(), true);
        assert_eq!(other.hours(vec![(day("2026-01-05"), 0)]).unwrap().len(), 1);
    }
}
