//! The KPI job: five supply-chain KPIs over a window of facts, as
//! `shared/spec/supply-chain.md` defines them, written to Redis in one
//! transaction with a TTL.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};

use stockyard_api::cluster::KpiCache;

use crate::{JobError, RedisFailure};

/// How long a write of the KPIs may wait for Redis.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes a run's keys unless Redis holds a later window's KPIs.
const WRITE_SCRIPT: &str = include_str!("kpi/write.lua");

/// How long a reader of the cache waits for Redis.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The five KPIs: Redis key and SQL (`kpi/<name>.sql`).
pub const KPIS: [(&str, &str); 5] = [
    ("kpi:inventory_level", include_str!("kpi/inventory_level.sql")),
    ("kpi:stockout_alerts", include_str!("kpi/stockout_alerts.sql")),
    ("kpi:supplier_performance", include_str!("kpi/supplier_performance.sql")),
    ("kpi:dc_utilization", include_str!("kpi/dc_utilization.sql")),
    ("kpi:regional_performance", include_str!("kpi/regional_performance.sql")),
];

/// Facts whose key fields are checked, with their event time and measured
/// quantity.
const FACTS: [(&str, &str, &str); 3] = [
    ("orders_fact", "order_ts", "quantity"),
    ("shipments_fact", "arrival_ts", "quantity"),
    ("inventory_fact", "inventory_ts", "on_hand_qty"),
];

/// What a run computes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiParams {
    /// The window ends here (excluded).
    pub now: DateTime<Utc>,
    /// The window's length: it starts at `now - window` (included).
    pub window: Duration,
    /// How long Redis keeps the keys.
    pub ttl: Duration,
    /// Write even over the KPIs of a newer window (a deliberate backfill).
    pub force: bool,
}

impl KpiParams {
    /// `[start, end)`.
    pub fn bounds(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let window = chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::zero());
        (self.now - window, self.now)
    }

    /// `sql` with the window filled in.
    pub fn render(&self, sql: &str) -> String {
        let (start, end) = self.bounds();
        let literal = |t: DateTime<Utc>| format!("arrow_cast('{}', 'Timestamp(ms, \"UTC\")')", iso(t));
        sql.replace("{start}", &literal(start))
            .replace("{end}", &literal(end))
            .replace("{window_minutes}", &format!("{:?}", self.window.as_secs_f64() / 60.0))
    }
}

/// ISO-8601 UTC, milliseconds only when there are any.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One run's results: the JSON of every key.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiOutput {
    /// `(key, JSON)`, the five KPIs then `kpi:data_quality`.
    pub values: Vec<(String, String)>,
    /// Rows per KPI, and documents read and rejected.
    pub summary: Value,
}

/// Arrow rows as a JSON array of objects, every field present (`null`
/// when null), fields in the query's column order.
fn rows_json(batches: &[RecordBatch]) -> Result<String, JobError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    if buf.is_empty() {
        return Ok("[]".into());
    }
    Ok(String::from_utf8(buf).map_err(external)?)
}

/// A failure outside arrow while rendering rows, its source kept.
fn external(e: impl std::error::Error + Send + Sync + 'static) -> ArrowError {
    ArrowError::ExternalError(Box::new(e))
}

/// Arrow rows as JSON values, for reading counts back.
fn rows(batches: &[RecordBatch]) -> Result<Vec<Value>, JobError> {
    parse_rows(&rows_json(batches)?)
}

/// [`rows_json`]'s text read back as values.
fn parse_rows(json: &str) -> Result<Vec<Value>, JobError> {
    match serde_json::from_str(json).map_err(external)? {
        Value::Array(rows) => Ok(rows),
        _ => Ok(Vec::new()),
    }
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, JobError> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// A dimension with more rows than this stays a MongoDB table rather than
/// travel inside the queries' plans.
const INLINE_MAX_ROWS: usize = 50_000;

/// Nor one whose rows take more memory than this: every task of a stage
/// that reads it receives the plan.
const INLINE_MAX_BYTES: usize = 8 << 20;

/// Reads each dimension once for the whole run and puts it in the session
/// as an in-memory table, which the queries then carry in their plans.
/// Otherwise every executor reads every dimension from MongoDB for itself:
/// on the seed workload, two thirds of all documents a run read.
async fn inline_dimensions(ctx: &SessionContext) -> Result<(), JobError> {
    let dimensions: Vec<&str> = crate::tables::collections()
        .into_iter()
        .filter(|(_, _, event_time)| event_time.is_none())
        .map(|(name, _, _)| name)
        .collect();
    let sqls: Vec<String> =
        dimensions.iter().map(|name| format!("SELECT * FROM {name} LIMIT {}", INLINE_MAX_ROWS + 1)).collect();
    let reads = sqls.iter().map(|sql| query(ctx, sql));
    for (name, batches) in dimensions.iter().zip(futures::future::try_join_all(reads).await?) {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        if rows > INLINE_MAX_ROWS || bytes > INLINE_MAX_BYTES {
            continue;
        }
        let schema = ctx.table_provider(*name).await?.schema();
        let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
        ctx.deregister_table(*name)?;
        ctx.register_table(*name, std::sync::Arc::new(table))?;
    }
    Ok(())
}

/// How many documents in the window each fact collection has, and which
/// were rejected (a key field unreadable, or an id no dimension knows).
/// Joins, not `NOT EXISTS`: Ballista cannot ship subquery expressions.
fn quality_sql(collection: &str, event_time: &str, measure: &str) -> String {
    let shipments = collection == "shipments_fact";
    let (supplier_join, supplier_rejected, supplier_reason) = if shipments {
        (
            "LEFT JOIN (SELECT DISTINCT supplier_id FROM suppliers_dim) p ON p.supplier_id = f.supplier_id",
            " OR p.supplier_id IS NULL",
            ", sum(CASE WHEN f.supplier_id IS NULL THEN 1 ELSE 0 END) AS unreadable_supplier_id,
               sum(CASE WHEN f.supplier_id IS NOT NULL AND p.supplier_id IS NULL THEN 1 ELSE 0 END) AS unknown_supplier_id",
        )
    } else {
        ("", "", "")
    };
    format!(
        "SELECT count(*) AS read,
                sum(CASE WHEN f.{measure} IS NULL OR s.sku_id IS NULL OR d.dc_id IS NULL{supplier_rejected}
                         THEN 1 ELSE 0 END) AS rejected,
                sum(CASE WHEN f.sku_id IS NULL THEN 1 ELSE 0 END) AS unreadable_sku_id,
                sum(CASE WHEN f.dc_id IS NULL THEN 1 ELSE 0 END) AS unreadable_dc_id,
                sum(CASE WHEN f.{measure} IS NULL THEN 1 ELSE 0 END) AS unreadable_{measure},
                sum(CASE WHEN f.sku_id IS NOT NULL AND s.sku_id IS NULL THEN 1 ELSE 0 END) AS unknown_sku_id,
                sum(CASE WHEN f.dc_id IS NOT NULL AND d.dc_id IS NULL THEN 1 ELSE 0 END) AS unknown_dc_id
                {supplier_reason}
         FROM {collection} f
         LEFT JOIN (SELECT DISTINCT sku_id FROM skus_dim) s ON s.sku_id = f.sku_id
         LEFT JOIN (SELECT DISTINCT dc_id FROM dcs_dim) d ON d.dc_id = f.dc_id
         {supplier_join}
         WHERE f.{event_time} >= {{start}} AND f.{event_time} < {{end}}"
    )
}

/// Runs the five KPIs and the data-quality counts on `ctx`, where the
/// supply-chain collections are tables (see [`crate::tables::register`]).
pub async fn compute(
    ctx: &SessionContext,
    params: &KpiParams,
    generated_at: DateTime<Utc>,
) -> Result<KpiOutput, JobError> {
    let (start, end) = params.bounds();
    // Written by hand so the keys keep the spec's order (serde_json's map
    // sorts them).
    let envelope = |rows: &str| {
        format!(
            r#"{{"window_start":{},"window_end":{},"generated_at":{},"rows":{rows}}}"#,
            json!(iso(start)),
            json!(iso(end)),
            json!(iso(generated_at)),
        )
    };
    // The eight queries are independent: run them at once, so the cluster
    // overlaps their stages instead of waiting on each in turn.
    let kpi_queries = KPIS.iter().map(|(_, sql)| params.render(sql));
    let quality_queries = FACTS.iter().map(|(c, t, m)| params.render(&quality_sql(c, t, m)));
    let sqls: Vec<String> = kpi_queries.chain(quality_queries).collect();
    inline_dimensions(ctx).await?;
    let results = futures::future::try_join_all(sqls.iter().map(|sql| query(ctx, sql))).await?;
    let mut results = results.into_iter();

    let mut values = Vec::new();
    let mut counts = serde_json::Map::new();
    let mut kpi_rows = std::collections::BTreeMap::new();
    for ((key, _), batches) in KPIS.iter().zip(results.by_ref()) {
        let count: usize = batches.iter().map(|b| b.num_rows()).sum();
        let name = key.trim_start_matches("kpi:");
        counts.insert(name.to_string(), json!(count));
        // Rendered once: the key's JSON, and the values its headline reads.
        let json = rows_json(&batches)?;
        kpi_rows.insert(name, parse_rows(&json)?);
        values.push((key.to_string(), envelope(&json)));
    }
    let mut quality = serde_json::Map::new();
    let (mut read, mut rejected) = (0u64, 0u64);
    for ((collection, _, _), batches) in FACTS.iter().zip(results) {
        let row = rows(&batches)?.into_iter().next().unwrap_or(Value::Null);
        let n = |f: &str| row.get(f).and_then(Value::as_u64).unwrap_or(0);
        read += n("read");
        rejected += n("rejected");
        let mut reasons = serde_json::Map::new();
        if let Value::Object(fields) = &row {
            for (k, v) in fields {
                if k != "read" && k != "rejected" && v.as_u64().unwrap_or(0) > 0 {
                    reasons.insert(k.clone(), v.clone());
                }
            }
        }
        quality
            .insert(collection.to_string(), json!({"read": n("read"), "rejected": n("rejected"), "reasons": reasons}));
    }
    values.push((
        "kpi:data_quality".to_string(),
        json!({
            "window_start": iso(start),
            "window_end": iso(end),
            "generated_at": iso(generated_at),
            "collections": quality,
        })
        .to_string(),
    ));
    let summary = json!({"rows": counts, "documents_read": read, "documents_rejected": rejected,
        "headline": headline(&kpi_rows)});
    Ok(KpiOutput { values, summary })
}

/// A run's KPIs in six numbers, kept in its summary so the run history
/// is the KPIs' history (the UI charts them over the last hours): units
/// available, stockout alerts, the mean DC utilisation, the on-time rate
/// over all shipments, the fulfilment rate over all orders, the revenue.
/// A figure with nothing to compute it from is null.
fn headline(rows: &std::collections::BTreeMap<&str, Vec<Value>>) -> Value {
    let of = |kpi: &str| rows.get(kpi).map(Vec::as_slice).unwrap_or_default();
    let sum = |kpi: &str, field: &str| of(kpi).iter().filter_map(|r| r[field].as_f64()).sum::<f64>();
    let ratio = |num: f64, den: f64| (den > 0.0).then(|| num / den);
    let utilizations: Vec<f64> = of("dc_utilization").iter().filter_map(|r| r["utilization_pct"].as_f64()).collect();
    let on_time: f64 = of("supplier_performance")
        .iter()
        .filter_map(|r| Some(r["on_time_rate"].as_f64()? * r["shipments"].as_f64()?))
        .sum();
    json!({
        "available_units": sum("inventory_level", "available_qty"),
        "stockout_alerts": of("stockout_alerts").len(),
        "mean_utilization_pct": ratio(utilizations.iter().sum(), utilizations.len() as f64),
        "on_time_rate": ratio(on_time, sum("supplier_performance", "shipments")),
        "fulfillment_rate": ratio(sum("regional_performance", "fulfilled_orders"), sum("regional_performance", "total_orders")),
        "revenue": sum("regional_performance", "revenue"),
    })
}

/// What a KPI write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Every key was replaced.
    Stored,
    /// Redis holds the KPIs of a window that ends later (`held`, RFC
    /// 3339): a late rerun or a backfill does not replace them.
    Superseded {
        /// The window end of the KPIs Redis holds.
        held: String,
    },
}

/// Writes every key and `kpi:last_update` at once (one script, which Redis
/// runs whole), each with the TTL: a reader never sees two runs mixed, and
/// a failed run writes nothing. Unless `force`, KPIs of a window that ends
/// later than `window_end` stay as they are.
pub async fn write(
    redis_url: &str,
    output: &KpiOutput,
    window_end: DateTime<Utc>,
    ttl: Duration,
    written_at: DateTime<Utc>,
    force: bool,
) -> Result<Written, JobError> {
    let redact = stockyard_mongo::redact(redis_url);
    let fail = |source: RedisFailure| JobError::Redis { server: redact.clone(), source };
    let client = redis::Client::open(redis_url).map_err(|e| fail(e.into()))?;
    let write = async {
        let mut con = client.get_multiplexed_async_connection().await.map_err(|e| fail(e.into()))?;
        let last_update = iso(written_at);
        let pairs = output.values.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let pairs: Vec<(&str, &str)> = pairs.chain([("kpi:last_update", last_update.as_str())]).collect();
        // EVAL runs the script whole: no reader sees part of a run.
        let mut call = redis::cmd("EVAL");
        call.arg(WRITE_SCRIPT).arg(pairs.len());
        for (key, _) in &pairs {
            call.arg(*key);
        }
        call.arg(iso(window_end)).arg(ttl.as_secs().max(1)).arg(if force { "1" } else { "0" });
        for (_, value) in &pairs {
            call.arg(*value);
        }
        let held: Option<String> = call.query_async(&mut con).await.map_err(|e| fail(e.into()))?;
        Ok(held.map_or(Written::Stored, |held| Written::Superseded { held }))
    };
    tokio::time::timeout(WRITE_TIMEOUT, write).await.map_err(|_| fail(RedisFailure::Timeout(WRITE_TIMEOUT)))?
}

/// Runs `pipe` (one MULTI/EXEC) on Redis for a reader of the cache, within 5 s.
async fn read_cache<T: redis::FromRedisValue>(redis_url: &str, pipe: &redis::Pipeline) -> Result<T, JobError> {
    let redact = stockyard_mongo::redact(redis_url);
    let fail = |source: RedisFailure| JobError::RedisRead { server: redact.clone(), source };
    let client = redis::Client::open(redis_url).map_err(|e| fail(e.into()))?;
    let read = async {
        let mut con = client.get_multiplexed_async_connection().await.map_err(|e| fail(e.into()))?;
        pipe.query_async(&mut con).await.map_err(|e| fail(e.into()))
    };
    tokio::time::timeout(READ_TIMEOUT, read).await.map_err(|_| fail(RedisFailure::Timeout(READ_TIMEOUT)))?
}

/// When the cached KPIs were written (`kpi:last_update`) and the seconds
/// left before they expire: two small reads, for callers polling freshness.
pub async fn freshness(redis_url: &str) -> Result<(Option<String>, Option<i64>), JobError> {
    let (written, ttl): (Option<String>, i64) =
        read_cache(redis_url, redis::pipe().atomic().get("kpi:last_update").ttl("kpi:last_update")).await?;
    Ok((written, (ttl >= 0).then_some(ttl)))
}

/// What the cache holds now, as the UI shows it: each KPI key's JSON (null
/// when absent), `kpi:data_quality`, `kpi:last_update` and the seconds left
/// before the keys expire. One MULTI/EXEC, so all of it comes from one run.
pub async fn read(redis_url: &str) -> Result<KpiCache, JobError> {
    let keys: Vec<&str> = KPIS.iter().map(|(k, _)| *k).chain(["kpi:data_quality", "kpi:last_update"]).collect();
    let (values, ttl): (Vec<Option<String>>, i64) =
        read_cache(redis_url, redis::pipe().atomic().mget(&keys).ttl("kpi:last_update")).await?;
    let parse = |v: &Option<String>| {
        v.as_deref().map(|s| serde_json::from_str(s).unwrap_or_else(|_| json!(s))).unwrap_or(Value::Null)
    };
    let kpis =
        KPIS.iter().zip(&values).map(|((k, _), v)| (k.trim_start_matches("kpi:").to_string(), parse(v))).collect();
    Ok(KpiCache {
        kpis,
        data_quality: parse(&values[KPIS.len()]),
        last_update: values[KPIS.len() + 1].clone(),
        expires_in_s: (ttl >= 0).then_some(ttl),
        age_s: None,
    })
}
