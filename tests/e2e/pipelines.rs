//! The shipped streams (`jobs/streams/*.sql`) as a user runs them: events
//! from `stockyard generate --kafka`, the files created with `stockyard
//! streams create --file … --set …`, on a real broker and cluster. The
//! expected rows are computed here from the records as kafka-python reads
//! them back off the topic, by the spec's reading rules and the SQL's
//! words, not by the engine.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};
use stockyard_tests::{Cluster, Kafka, Mongo, Redis, http_get};

use crate::streams::files;

const MIN_MS: i64 = 60_000;
/// The backfill: 30 minutes of events from here.
const T0: &str = "2026-01-05T10:00:00Z";
const SEED: &str = "7";
const SKUS: &str = "300";
/// Where [`tick`] writes, after T0.
const TICK_MS: i64 = 6 * 60 * MIN_MS;

fn t0_ms() -> i64 {
    chrono::DateTime::parse_from_rfc3339(T0).unwrap().timestamp_millis()
}

fn time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A shipped stream file.
fn shipped(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../jobs/streams").join(format!("{name}.sql")).display().to_string()
}

/// `stockyard generate --kafka` of `docs` records per stream over the
/// `minutes` from T0, with the default disorder and chaos.
fn backfill(cluster: &Cluster, kafka: &Kafka, streams: &str, docs: usize, minutes: i64) -> Value {
    let (start, end) = (time(t0_ms()), time(t0_ms() + minutes * MIN_MS));
    let brokers = format!("kafka://127.0.0.1:{}", kafka.port);
    let out = cluster
        .stockyard(&[
            "generate",
            "--kafka",
            &brokers,
            "--stream",
            streams,
            "--docs",
            &docs.to_string(),
            "--start",
            &start,
            "--end",
            &end,
            "--seed",
            SEED,
            "--skus",
            SKUS,
            "--stores",
            "6",
        ])
        .ok();
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// A few clean records at T0 + 6 hours: the watermark passes every window
/// of the backfill.
fn tick(cluster: &Cluster, kafka: &Kafka, streams: &str) {
    clean_minute(cluster, kafka, streams, TICK_MS, "8");
}

/// 40 clean records per stream in the minute `after_ms` after T0.
fn clean_minute(cluster: &Cluster, kafka: &Kafka, streams: &str, after_ms: i64, seed: &str) {
    let (start, end) = (time(t0_ms() + after_ms), time(t0_ms() + after_ms + MIN_MS));
    let brokers = format!("kafka://127.0.0.1:{}", kafka.port);
    let clean = ["--dirty-share", "0", "--late-share", "0", "--out-of-order-share", "0"];
    let mut args = vec!["generate", "--kafka", &brokers, "--stream", streams, "--docs", "40", "--start", &start];
    args.extend(["--end", &end, "--seed", seed, "--skus", SKUS, "--stores", "6"]);
    args.extend(clean);
    cluster.stockyard(&args).ok();
}

/// `stockyard streams create NAME --file jobs/streams/NAME.sql --set …`,
/// reading from the broker on `kafka_port`.
fn create(cluster: &Cluster, name: &str, kafka_port: u16, redis: Option<&Redis>, out: &Path) {
    let kafka = format!("KAFKA=127.0.0.1:{kafka_port}");
    let redis = format!("REDIS={}", redis.map(Redis::url).unwrap_or_default());
    let out = format!("OUT={}", out.display());
    let file = shipped(name);
    let created = cluster
        .stockyard(&["streams", "create", name, "--file", &file, "--set", &kafka, "--set", &redis, "--set", &out])
        .ok();
    let created: Value = serde_json::from_str(created.stdout.trim()).unwrap();
    assert_eq!(created["state"], "running", "{created}");
}

fn status(cluster: &Cluster, name: &str) -> Value {
    let (code, body) = http_get(cluster.http_port, &format!("/api/streams/{name}"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until stream `name` has read `records` and its watermark passed
/// `passed_ms`.
fn wait(cluster: &Cluster, name: &str, records: usize, passed_ms: i64) {
    let done = stockyard_tests::within(Duration::from_secs(90), || {
        let s = status(cluster, name);
        s["records"].as_u64() == Some(records as u64)
            && s["watermark"]
                .as_str()
                .and_then(|w| chrono::DateTime::parse_from_rfc3339(w).ok())
                .is_some_and(|w| w.timestamp_millis() >= passed_ms)
    });
    assert!(done, "stream {name} did not read {records} records: {}\n{}", status(cluster, name), cluster.logs());
}

/// A record as the stream reads it (the spec's rules): a string field only
/// from a JSON string, a number from a JSON number, an integer only when
/// whole; the event time from an RFC 3339 string or epoch milliseconds.
#[derive(Debug, Clone)]
struct Rec {
    fields: Map<String, Value>,
    ts: i64,
}

impl Rec {
    fn s(&self, f: &str) -> Option<&str> {
        self.fields.get(f).and_then(Value::as_str)
    }
    fn f(&self, f: &str) -> Option<f64> {
        self.fields.get(f).and_then(Value::as_f64)
    }
    fn i(&self, f: &str) -> Option<i64> {
        let v = self.fields.get(f)?;
        v.as_i64()
            .filter(|&i| i32::try_from(i).is_ok())
            .or_else(|| v.as_f64().filter(|x| x.fract() == 0.0 && x.abs() < 2f64.powi(31)).map(|x| x as i64))
    }
}

/// Every readable record of `topic`, and how many there were in all.
fn records(kafka: &Kafka, topic: &str) -> (Vec<Rec>, usize) {
    let raw = kafka.consume_with_kafka_python(topic);
    let all = raw.len();
    let recs = raw
        .iter()
        .filter_map(|v| match serde_json::from_slice::<Value>(v) {
            Ok(Value::Object(fields)) => {
                let ts = match fields.get("ts")? {
                    Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok()?.timestamp_millis(),
                    Value::Number(n) => n.as_i64()?,
                    _ => return None,
                };
                Some(Rec { fields, ts })
            }
            _ => None,
        })
        .collect();
    (recs, all)
}

/// The starts of the windows of `size` sliding by `slide` that hold `ts`.
fn windows(ts: i64, size: i64, slide: i64) -> Vec<i64> {
    let last = ts.div_euclid(slide) * slide;
    (0..size / slide).map(|k| last - k * slide).filter(|s| ts < s + size).collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The final windows of a Redis sink's key, by start.
fn redis_finals(redis: &Redis, key: &str) -> BTreeMap<i64, Vec<Value>> {
    let raw = redis.command(&format!("GET {key}"));
    let value: Value = serde_json::from_str(raw.split_once("\r\n").unwrap().1.trim()).unwrap();
    value["windows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["final"] == true)
        .map(|w| (ms(&w["window_start"]), w["rows"].as_array().unwrap().clone()))
        .collect()
}

/// A timestamp as the sinks write it, in milliseconds.
fn ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let s = if s.ends_with('Z') { s.to_string() } else { format!("{s}Z") };
    chrono::DateTime::parse_from_rfc3339(&s).unwrap().timestamp_millis()
}

/// Every row of every Parquet file under `dir`, as JSON.
fn parquet_rows(dir: &Path) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for file in files(dir) {
        assert!(file.extension().is_some_and(|e| e == "parquet"), "a file that is not whole Parquet: {file:?}");
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(std::fs::File::open(&file).unwrap(), 4096)
                .unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer.write_batches(&batches.iter().collect::<Vec<_>>()).unwrap();
        writer.finish().unwrap();
        let text = writer.into_inner();
        if !text.is_empty() {
            let rows: Vec<Map<String, Value>> = serde_json::from_slice(&text).unwrap();
            out.extend(rows);
        }
    }
    out
}

/// `expected` and `actual` rows are the same (every field `expected`
/// names), numbers within a millionth.
fn same(what: &str, expected: &[Value], actual: &[Value]) {
    let close = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(1.0),
        _ => a == b,
    };
    let differs = |e: &Value, a: &Value| {
        let (e, a) = (e.as_object().unwrap(), a.as_object().unwrap());
        !e.iter().all(|(k, v)| a.get(k).is_some_and(|w| close(v, w)))
    };
    assert_eq!(expected.len(), actual.len(), "{what}: rows\nexpected: {expected:?}\nactual: {actual:?}");
    if let Some(i) = (0..expected.len()).find(|&i| differs(&expected[i], &actual[i])) {
        panic!("{what}: row {i} of {} differs\nexpected: {}\nactual:   {}", expected.len(), expected[i], actual[i]);
    }
}

/// `initcap(trim(c))` of a one-word category.
fn normal(c: &str) -> String {
    let c = c.trim().to_lowercase();
    let mut chars = c.chars();
    chars.next().map(|f| f.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

/// The orders' cleaning in top_products.sql and category_revenue.sql.
fn clean_order(r: &Rec) -> bool {
    ["order_id", "product_id", "product_name", "category"].iter().all(|f| r.s(f).is_some())
        && r.f("price").is_some_and(|p| p > 0.0)
        && r.i("quantity").is_some_and(|q| q > 0)
}

#[test]
fn the_order_streams_give_the_rows_computed_from_the_records() {
    let kafka = Kafka::start();
    let redis = Redis::start();
    let cluster = Cluster::start(2);
    let summary = backfill(&cluster, &kafka, "orders", 4000, 30);
    assert_eq!(summary["streams"]["orders"]["records"], 4000, "{summary}");
    assert!(summary["streams"]["orders"]["dirty"].as_u64() > Some(40), "{summary}");
    for name in ["top_products", "category_revenue", "order_quality"] {
        create(&cluster, name, kafka.port, Some(&redis), cluster.dir.path());
    }
    tick(&cluster, &kafka, "orders");
    let (recs, all) = records(&kafka, "orders");
    assert_eq!(all, 4040);
    let end = t0_ms() + 35 * MIN_MS;
    for name in ["top_products", "category_revenue", "order_quality"] {
        wait(&cluster, name, all, end);
    }
    // Broken records are counted, not read.
    let s = status(&cluster, "order_quality");
    assert_eq!(s["rejected_rows"].as_u64(), Some((all - recs.len()) as u64), "{s}");
    assert!(all - recs.len() > 0);

    let backfilled: Vec<&Rec> = recs.iter().filter(|r| r.ts < t0_ms() + TICK_MS).collect();
    let clean: Vec<&Rec> = backfilled.iter().copied().filter(|r| clean_order(r)).collect();
    let (size, slide) = (5 * MIN_MS, MIN_MS);

    // top_products: per window the ten products with the most revenue.
    // Window start → (product id, name, category) → (orders, units, revenue).
    type Products = BTreeMap<(String, String, String), (i64, i64, f64)>;
    let mut per: BTreeMap<i64, Products> = BTreeMap::new();
    for r in &clean {
        for w in windows(r.ts, size, slide) {
            let key = (
                r.s("product_id").unwrap().into(),
                r.s("product_name").unwrap().into(),
                normal(r.s("category").unwrap()),
            );
            let e = per.entry(w).or_default().entry(key).or_default();
            e.0 += 1;
            e.1 += r.i("quantity").unwrap();
            e.2 += r.f("price").unwrap() * r.i("quantity").unwrap() as f64;
        }
    }
    let finals = redis_finals(&redis, "stream:top_products");
    let last: Vec<i64> = per.keys().rev().take(10).rev().copied().collect();
    assert_eq!(finals.keys().copied().collect::<Vec<_>>(), last, "the last 10 final windows");
    for (w, rows) in &finals {
        let mut expected: Vec<(f64, String, Value)> = per[w]
            .iter()
            .map(|((id, name, cat), (orders, units, revenue))| {
                let revenue = round2(*revenue);
                let row = json!({"window_start": time(*w), "window_end": time(w + size), "product_id": id,
                    "product_name": name, "category": cat, "orders": orders, "units": units, "revenue": revenue});
                (revenue, id.clone(), row)
            })
            .collect();
        expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let expected: Vec<Value> = expected.into_iter().take(10).map(|e| e.2).collect();
        same(&format!("top_products at {}", time(*w)), &expected, rows);
    }

    // category_revenue: every category per window.
    let mut per: BTreeMap<i64, BTreeMap<String, (i64, f64, f64)>> = BTreeMap::new();
    for r in &clean {
        for w in windows(r.ts, size, slide) {
            let e = per.entry(w).or_default().entry(normal(r.s("category").unwrap())).or_default();
            e.0 += 1;
            e.1 += r.f("price").unwrap() * r.i("quantity").unwrap() as f64;
            e.2 += r.f("price").unwrap();
        }
    }
    let finals = redis_finals(&redis, "stream:category_revenue");
    assert_eq!(finals.len(), 10);
    for (w, rows) in &finals {
        let mut expected: Vec<(f64, Value)> = per[w]
            .iter()
            .map(|(cat, (orders, revenue, prices))| {
                let revenue = round2(*revenue);
                (revenue, json!({"category": cat, "orders": orders, "revenue": revenue, "avg_price": prices / *orders as f64}))
            })
            .collect();
        expected.sort_by(|a, b| b.0.total_cmp(&a.0));
        let expected: Vec<Value> = expected.into_iter().map(|e| e.1).collect();
        same(&format!("category_revenue at {}", time(*w)), &expected, rows);
    }

    // order_quality: what the cleaning leaves out, per minute.
    let mut per: BTreeMap<i64, [i64; 4]> = BTreeMap::new();
    for r in &backfilled {
        let e = per.entry(r.ts.div_euclid(MIN_MS) * MIN_MS).or_default();
        let missing = ["order_id", "product_id", "product_name", "category"].iter().any(|f| r.s(f).is_none())
            || r.f("price").is_none()
            || r.i("quantity").is_none();
        let not_positive = r.f("price").is_some_and(|p| p <= 0.0) || r.i("quantity").is_some_and(|q| q <= 0);
        e[0] += 1;
        e[1] += i64::from(clean_order(r));
        e[2] += i64::from(missing);
        e[3] += i64::from(not_positive);
    }
    let finals = redis_finals(&redis, "stream:order_quality");
    let last: Vec<i64> = per.keys().rev().take(30).rev().copied().collect();
    assert_eq!(finals.keys().copied().collect::<Vec<_>>(), last);
    let totals = finals.keys().fold([0; 4], |mut t, w| {
        (0..4).for_each(|i| t[i] += per[w][i]);
        t
    });
    assert!(totals[2] > 0 && totals[3] > 0 && totals[1] < totals[0], "the chaos shows: {totals:?}");
    for (w, rows) in &finals {
        let [orders, kept, missing_field, not_positive] = per[w];
        let expected = [json!({"window_start": time(*w), "window_end": time(w + MIN_MS), "orders": orders,
            "kept": kept, "missing_field": missing_field, "not_positive": not_positive})];
        same(&format!("order_quality at {}", time(*w)), &expected, rows);
    }
}

#[test]
fn sales_metrics_and_inventory_alerts_give_the_rows_computed_from_the_records() {
    let kafka = Kafka::start();
    let redis = Redis::start();
    let cluster = Cluster::start(2);
    let out = cluster.dir.path().join("out");
    backfill(&cluster, &kafka, "sales,inventory", 12000, 120);
    create(&cluster, "sales_metrics", kafka.port, None, &out);
    create(&cluster, "inventory_alerts", kafka.port, Some(&redis), &out);
    tick(&cluster, &kafka, "sales,inventory");
    let end = t0_ms() + 125 * MIN_MS;

    // sales_metrics: per store, category and window, with the anomaly rule
    // of the file's comment.
    let (recs, all) = records(&kafka, "sales");
    wait(&cluster, "sales_metrics", all, end);
    // (store, category, window start) → (revenue, transactions, customers).
    type Group = (Option<String>, Option<String>, i64);
    let mut groups: BTreeMap<Group, (f64, i64, HashSet<String>)> = BTreeMap::new();
    for r in recs.iter().filter(|r| r.ts < t0_ms() + TICK_MS) {
        let ok = ["transaction_id", "store_id", "product_id"].iter().all(|f| r.s(f).is_some())
            && r.f("price").is_some_and(|p| p > 0.0)
            && r.i("quantity").is_some_and(|q| q > 0);
        if !ok {
            continue;
        }
        for w in windows(r.ts, 5 * MIN_MS, MIN_MS) {
            let e =
                groups.entry((r.s("store_id").map(String::from), r.s("category").map(String::from), w)).or_default();
            e.0 += r.f("price").unwrap() * r.i("quantity").unwrap() as f64;
            e.1 += 1;
            e.2.extend(r.s("customer_id").map(String::from));
        }
    }
    let mut expected = Vec::new();
    let mut anomalies = 0;
    for ((store, category, w), (revenue, transactions, customers)) in &groups {
        let revenue = round2(*revenue);
        let recent: Vec<f64> = groups
            .range((store.clone(), category.clone(), w - 15 * MIN_MS)..(store.clone(), category.clone(), *w))
            .map(|(_, g)| round2(g.0))
            .collect();
        let avg = (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64);
        let anomaly = recent.len() >= 5 && avg.is_some_and(|a| revenue > 2.0 * a || revenue < 0.5 * a);
        anomalies += usize::from(anomaly);
        expected.push(json!({"window_start": w, "window_end": w + 5 * MIN_MS, "store_id": store, "category": category,
            "revenue": revenue, "transactions": transactions, "customers": customers.len(),
            "recent_windows": recent.len(), "recent_revenue": avg, "anomaly": anomaly}));
    }
    assert!(anomalies > 0 && anomalies < expected.len() / 5, "some windows, not most, are anomalous: {anomalies}");
    let key = |v: &Value| (v["window_start"].as_i64(), v["store_id"].to_string(), v["category"].to_string());
    expected.sort_by_key(key);
    let mut actual: Vec<Value> = parquet_rows(&out.join("sales_metrics"))
        .into_iter()
        .map(|mut r| {
            for f in ["window_start", "window_end"] {
                r[f] = json!(ms(&r[f]));
            }
            for f in ["store_id", "category", "recent_revenue"] {
                r.entry(f).or_insert(Value::Null);
            }
            Value::Object(r)
        })
        .collect();
    actual.sort_by_key(key);
    same("sales_metrics", &expected, &actual);

    // inventory_alerts: products at 20 units or fewer in a window.
    let (recs, all) = records(&kafka, "inventory");
    wait(&cluster, "inventory_alerts", all, end);
    let (size, slide) = (10 * MIN_MS, 2 * MIN_MS);
    // Window start → (store, product) → (lowest level, events, units sold, sum of levels).
    type Stock = BTreeMap<(String, String), (i64, i64, Option<i64>, i64)>;
    let mut per: BTreeMap<i64, Stock> = BTreeMap::new();
    for r in recs.iter().filter(|r| r.ts < t0_ms() + TICK_MS) {
        let (Some(store), Some(product), Some(level)) = (r.s("store_id"), r.s("product_id"), r.i("stock_level")) else {
            continue;
        };
        if level < 0 {
            continue;
        }
        for w in windows(r.ts, size, slide) {
            let e = per.entry(w).or_default().entry((store.into(), product.into())).or_insert((i64::MAX, 0, None, 0));
            e.0 = e.0.min(level);
            e.1 += 1;
            if let Some(sold) = r.i("units_sold") {
                e.2 = Some(e.2.unwrap_or(0) + sold);
            }
            e.3 += level;
        }
    }
    let finals = redis_finals(&redis, "stream:inventory_alerts");
    let last: Vec<i64> = per.keys().rev().take(15).rev().copied().collect();
    assert_eq!(finals.keys().copied().collect::<Vec<_>>(), last);
    let mut alerts = BTreeMap::new();
    for (w, rows) in &finals {
        let mut expected: Vec<((i64, String, String), Value)> = per[w]
            .iter()
            .filter(|(_, g)| g.0 <= 20)
            .map(|((store, product), (lowest, readings, sold, levels))| {
                let avg = *levels as f64 / *readings as f64;
                let (alert, severity) = match lowest {
                    0 => ("out_of_stock", "critical"),
                    1..=5 => ("low_stock", "high"),
                    _ => ("low_stock", "medium"),
                };
                *alerts.entry(severity).or_insert(0) += 1;
                let turnover = sold.filter(|_| avg != 0.0).map(|s| s as f64 / avg);
                let row = json!({"window_start": time(*w), "store_id": store, "product_id": product, "alert": alert,
                    "severity": severity, "lowest_stock": lowest, "readings": readings, "units_sold": sold,
                    "turnover": turnover});
                ((*lowest, store.clone(), product.clone()), row)
            })
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<Value> = expected.into_iter().map(|e| e.1).collect();
        same(&format!("inventory_alerts at {}", time(*w)), &expected, rows);
    }
    assert!(alerts.len() == 3, "every severity shows: {alerts:?}");
}

#[test]
fn the_clickstream_lands_in_bronze_and_silver_as_computed_from_the_records() {
    let mongo = Mongo::start();
    let kafka = Kafka::start();
    let env =
        vec![("STOCKYARD_MONGO_URI".to_string(), mongo.uri()), ("STOCKYARD_MONGO_DB".to_string(), "shop".to_string())];
    let cluster = Cluster::start_with_env(2, env);
    // The products' dimension: the same seed and SKUs as the events.
    let (start, end) = (time(t0_ms()), time(t0_ms() + MIN_MS));
    cluster
        .stockyard(&[
            "generate",
            "--mongo-uri",
            &mongo.uri(),
            "--mongo-db",
            "shop",
            "--seed",
            SEED,
            "--skus",
            SKUS,
            "--docs",
            "1",
            "--start",
            &start,
            "--end",
            &end,
        ])
        .ok();
    let dims: HashMap<String, (String, String, f64)> = mongo.with_client(async |c| {
        use futures::TryStreamExt;
        let docs: Vec<mongodb::bson::Document> = c
            .database("shop")
            .collection("skus_dim")
            .find(mongodb::bson::doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        docs.into_iter()
            .map(|d| {
                let text = |f: &str| d.get_str(f).unwrap().to_string();
                (text("sku_id"), (text("product_name"), text("category"), d.get_f64("unit_price").unwrap()))
            })
            .collect()
    });
    assert_eq!(dims.len(), 300);
    let out = cluster.dir.path().join("lake");
    backfill(&cluster, &kafka, "clickstream", 5000, 30);
    let streams =
        ["clickstream_bronze", "silver_page_views", "silver_purchases", "silver_sessions", "clickstream_quality"];
    for name in streams {
        create(&cluster, name, kafka.port, None, &out);
    }
    tick(&cluster, &kafka, "clickstream");
    let (recs, all) = records(&kafka, "clickstream");
    for name in streams {
        wait(&cluster, name, all, t0_ms() + 31 * MIN_MS);
    }

    // Bronze: every readable record once, under its date and hour.
    let mut expected: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in &recs {
        let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(r.ts).unwrap();
        let dir = (t.format("%Y-%m-%d").to_string(), t.format("%H").to_string());
        expected.entry(dir).or_default().push(r.s("event_id").unwrap_or("null").to_string());
    }
    assert_eq!(expected.len(), 3, "hours 09 (late records), 10 and 16 (the tick): {:?}", expected.keys());
    for ((date, hour), mut ids) in expected {
        let dir = out.join(format!("bronze/clickstream/event_date={date}/event_hour={hour}"));
        let mut got: Vec<String> = parquet_rows(&dir)
            .iter()
            .map(|r| r.get("event_id").and_then(Value::as_str).unwrap_or("null").to_string())
            .collect();
        ids.sort();
        got.sort();
        assert_eq!(got, ids, "bronze under {}", dir.display());
    }

    let ids = |r: &Rec| ["event_id", "session_id", "user_id"].iter().all(|f| r.s(f).is_some());
    // Silver page views: enriched from the dimension.
    let mut expected: Vec<Value> = recs
        .iter()
        .filter(|r| r.s("event_type") == Some("page_view") && ids(r))
        .filter_map(|r| {
            let (name, category, _) = dims.get(r.s("product_id")?)?;
            Some(json!({"event_id": r.s("event_id"), "product_name": name, "category": category}))
        })
        .collect();
    let mut got: Vec<Value> = parquet_rows(&out.join("silver/page_views"))
        .into_iter()
        .map(|r| json!({"event_id": r["event_id"], "product_name": r["product_name"], "category": r["category"]}))
        .collect();
    let by_id = |v: &Value| v["event_id"].as_str().unwrap().to_string();
    expected.sort_by_key(by_id);
    got.sort_by_key(by_id);
    assert!(expected.len() > 2000);
    same("silver page views", &expected, &got);

    // Silver purchases: amounts and the discount off the list price.
    let mut expected: Vec<Value> = recs
        .iter()
        .filter(|r| r.s("event_type") == Some("purchase") && ids(r))
        .filter_map(|r| {
            let (price, quantity) = (r.f("price").filter(|&p| p > 0.0)?, r.i("quantity").filter(|&q| q > 0)?);
            let (name, _, list) = dims.get(r.s("product_id")?)?;
            Some(json!({"event_id": r.s("event_id"), "product_name": name, "amount": price * quantity as f64,
                "discount": list - price}))
        })
        .collect();
    let mut got: Vec<Value> = parquet_rows(&out.join("silver/purchases"))
        .into_iter()
        .map(|r| {
            json!({"event_id": r["event_id"], "product_name": r["product_name"], "amount": r["amount"],
            "discount": r["discount"]})
        })
        .collect();
    expected.sort_by_key(by_id);
    got.sort_by_key(by_id);
    assert!(expected.len() > 100);
    same("silver purchases", &expected, &got);
    // Queried afterwards as the README shows.
    let sql = format!(
        "CREATE EXTERNAL TABLE purchases STORED AS PARQUET PARTITIONED BY (event_date) LOCATION '{}/silver/purchases/';
         SELECT event_date, count(*) AS purchases FROM purchases GROUP BY event_date ORDER BY event_date",
        out.display()
    );
    let answer = cluster.stockyard(&["sql", &sql, "--format", "json"]).ok();
    let per_date: Vec<Value> = answer.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut by_date: BTreeMap<String, usize> = BTreeMap::new();
    for r in &recs {
        if expected.iter().any(|e| e["event_id"].as_str() == r.s("event_id")) {
            let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(r.ts).unwrap();
            *by_date.entry(t.format("%Y-%m-%d").to_string()).or_default() += 1;
        }
    }
    let want: Vec<Value> = by_date.iter().map(|(d, n)| json!({"event_date": d, "purchases": n})).collect();
    assert_eq!(per_date, want, "{}", answer.stdout);

    // Silver sessions: per session and half hour.
    let backfilled: Vec<&Rec> = recs.iter().filter(|r| r.ts < t0_ms() + TICK_MS).collect();
    let mut sessions: BTreeMap<(i64, String), Vec<&Rec>> = BTreeMap::new();
    for r in backfilled.iter().filter(|r| r.s("session_id").is_some() && r.s("event_id").is_some()) {
        sessions
            .entry((r.ts.div_euclid(30 * MIN_MS) * 30 * MIN_MS, r.s("session_id").unwrap().into()))
            .or_default()
            .push(r);
    }
    let count = |rs: &[&Rec], t: &str| rs.iter().filter(|r| r.s("event_type") == Some(t)).count();
    let expected: Vec<Value> = sessions
        .iter()
        .map(|((w, id), rs)| {
            let revenue: f64 = rs
                .iter()
                .filter(|r| r.s("event_type") == Some("purchase"))
                .filter_map(|r| Some(r.f("price")? * r.i("quantity")? as f64))
                .sum();
            json!({"window_start": w, "session_id": id, "events": rs.len(), "page_views": count(rs, "page_view"),
                "carts": count(rs, "add_to_cart"), "purchases": count(rs, "purchase"), "revenue": revenue,
                "first_event": rs.iter().map(|r| r.ts).min(), "last_event": rs.iter().map(|r| r.ts).max(),
                "user_id": rs.iter().filter_map(|r| r.s("user_id")).min()})
        })
        .collect();
    let key = |v: &Value| (v["window_start"].as_i64(), v["session_id"].as_str().map(String::from));
    let mut got: Vec<Value> = parquet_rows(&out.join("silver/sessions"))
        .into_iter()
        .map(|mut r| {
            for f in ["window_start", "first_event", "last_event"] {
                r[f] = json!(ms(&r[f]));
            }
            r.entry("user_id").or_insert(Value::Null);
            Value::Object(r)
        })
        .collect();
    got.sort_by_key(key);
    assert!(sessions.keys().any(|(w, _)| *w < t0_ms()), "late records open a window before T0");
    same("silver sessions", &expected, &got);

    // Quality: per minute, what silver keeps and what the rest lack.
    let known = ["page_view", "add_to_cart", "purchase"];
    let mut per: BTreeMap<i64, [i64; 5]> = BTreeMap::new();
    for r in &backfilled {
        let e = per.entry(r.ts.div_euclid(MIN_MS) * MIN_MS).or_default();
        let purchase_ok = r.f("price").is_some_and(|p| p > 0.0) && r.i("quantity").is_some_and(|q| q > 0);
        let t = r.s("event_type");
        e[0] += 1;
        e[1] += i64::from(ids(r) && t.is_some_and(|t| known.contains(&t)) && (t != Some("purchase") || purchase_ok));
        e[2] += i64::from(!ids(r));
        e[3] += i64::from(!t.is_some_and(|t| known.contains(&t)));
        e[4] += i64::from(t == Some("purchase") && !purchase_ok);
    }
    let expected: Vec<Value> = per
        .iter()
        .map(|(w, [events, valid, missing_id, bad_event_type, bad_purchase])| {
            json!({"window_start": w, "events": events, "valid": valid, "missing_id": missing_id,
                "bad_event_type": bad_event_type, "bad_purchase": bad_purchase})
        })
        .collect();
    let mut got: Vec<Value> = parquet_rows(&out.join("quality/clickstream"))
        .into_iter()
        .map(|mut r| {
            r["window_start"] = json!(ms(&r["window_start"]));
            Value::Object(r)
        })
        .collect();
    got.sort_by_key(|v| v["window_start"].as_i64());
    assert!(per.values().map(|c| c[2]).sum::<i64>() > 0);
    same("clickstream quality", &expected, &got);
}

/// The live dashboard in Chromium: the streams' newest windows as charts,
/// a new window when the stream moves on, a failed stream said so, and the
/// services up or down.
#[test]
fn the_live_dashboard_shows_the_streams_and_moves_with_them() {
    let kafka = Kafka::start();
    let redis = Redis::start();
    let cluster = Cluster::start(2);
    backfill(&cluster, &kafka, "orders", 3000, 30);
    for name in ["top_products", "category_revenue", "order_quality"] {
        create(&cluster, name, kafka.port, Some(&redis), cluster.dir.path());
    }
    // A stream whose broker is not there: created, and failing.
    let absent = stockyard_tests::free_port();
    create(&cluster, "inventory_alerts", absent, Some(&redis), cluster.dir.path());
    tick(&cluster, &kafka, "orders");
    let (_, all) = records(&kafka, "orders");
    wait(&cluster, "top_products", all, t0_ms() + 35 * MIN_MS);
    wait(&cluster, "order_quality", all, t0_ms() + 35 * MIN_MS);

    let (_, body) = http_get(cluster.http_port, "/api/streams/top_products/results");
    let results: Value = serde_json::from_str(&body).unwrap();
    let newest = &results["windows"][0];
    assert_eq!(newest["window_start"], "2026-01-05T16:00:00.000Z", "{results}");
    let leader = newest["rows"][0]["product_name"].as_str().unwrap().to_string();

    let mut b = stockyard_tests::Browser::start(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots").join("live"),
        cluster.dir.path(),
    );
    b.goto(&format!("http://127.0.0.1:{}/live", cluster.http_port));
    let wait_ui = Duration::from_secs(20);
    b.wait_text("[data-card=top_products] [data-window]", "window 16:00–16:05 UTC · open, updating", wait_ui);
    let bars = svg_texts(&b, "[data-card=top_products] svg g text");
    assert_eq!(bars.first().map(String::as_str), Some(crate::pipelines::clip(&leader, 28).as_str()), "{bars:?}");
    assert_eq!(svg_texts(&b, "[data-card=category_revenue] svg g").len(), results_rows(&cluster, "category_revenue"));
    b.wait_text("[data-card=inventory_alerts] [data-health]", "failed", wait_ui);
    assert!(b.text("[data-card=inventory_alerts]").contains(&format!("127.0.0.1:{absent}")));
    assert_eq!(svg_texts(&b, "[data-card=order_quality] svg g").len(), 30, "30 minutes of final windows");
    b.wait_text("[data-card=sales_metrics]", "Not created", wait_ui);
    // The KPIs' Redis (none here) and the streams' sink.
    let redis_state = b.texts("[data-service=redis]");
    assert_eq!(redis_state, ["down", "up"], "{}", b.text("[data-card=services]"));
    let kafkas = b.texts("[data-service=kafka]");
    assert_eq!(kafkas.len(), 2, "{kafkas:?}");
    assert!(kafkas.contains(&"up".to_string()) && kafkas.contains(&"down".to_string()), "{kafkas:?}");
    b.wait_text("[data-service=mongodb]", "down", wait_ui);
    b.screenshot("live-dashboard");

    // Events an hour later: the charts move to the new window.
    clean_minute(&cluster, &kafka, "orders", TICK_MS + 60 * MIN_MS, "9");
    b.wait_text("[data-card=top_products] [data-window]", "window 17:00–17:05 UTC", wait_ui);
    b.screenshot("live-dashboard-moved");
}

/// The text of each SVG element matching `css` (SVG has no innerText).
fn svg_texts(b: &stockyard_tests::Browser, css: &str) -> Vec<String> {
    let v = b.script("return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", json!([css]));
    v.as_array().map(|a| a.iter().map(|t| t.as_str().unwrap_or_default().to_string()).collect()).unwrap_or_default()
}

fn results_rows(cluster: &Cluster, name: &str) -> usize {
    let (_, body) = http_get(cluster.http_port, &format!("/api/streams/{name}/results"));
    let v: Value = serde_json::from_str(&body).unwrap();
    v["windows"][0]["rows"].as_array().map_or(0, Vec::len)
}

/// The UI's `clip`: text cut to `n` characters with an ellipsis.
pub(crate) fn clip(text: &str, n: usize) -> String {
    if text.chars().count() > n { text.chars().take(n - 1).collect::<String>() + "…" } else { text.to_string() }
}
