//! Streams on a real broker (Tansu, SQLite storage) and a real cluster:
//! windows whose rows are written out by hand, late and bad records
//! counted, idle partitions and quiet streams, exactly-once across a
//! killed scheduler, a restarted broker and a stopped stream, and stream
//! files refused with exit status 2.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
use serde_json::{Value, json};
use stockyard_tests::{Cluster, Kafka, Redis, http_get};

use crate::schedules::wait_until;

const MIN: i64 = 60_000_000_000;

/// 2026-11-30T10:00:00Z, in nanoseconds: the test's event times count from it.
fn base_ns() -> i64 {
    chrono::DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z").unwrap().timestamp_nanos_opt().unwrap()
}

pub(crate) fn at(minutes: i64, seconds: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(base_ns() + minutes * MIN + seconds * 1_000_000_000)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn order(product: &str, price: f64, quantity: i64, ts: &str) -> String {
    json!({"order_id": format!("{product}-{ts}"), "product_id": product, "price": price, "quantity": quantity, "ts": ts})
        .to_string()
}

fn status(cluster: &Cluster, name: &str) -> Value {
    let (code, body) = http_get(cluster.http_port, &format!("/api/streams/{name}"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_records(cluster: &Cluster, name: &str, n: u64) {
    let done =
        stockyard_tests::within(Duration::from_secs(60), || status(cluster, name)["records"].as_u64() >= Some(n));
    assert!(done, "stream {name} did not read {n} records: {}\n{}", status(cluster, name), cluster.logs());
}

fn write_sql(dir: &Path, name: &str, sql: &str) -> String {
    let path = dir.join(format!("{name}.sql"));
    std::fs::write(&path, sql).unwrap();
    path.display().to_string()
}

/// Every row of every `*.parquet` file under `dir` (and no other file),
/// as (window start in minutes from the base, product, orders, revenue).
pub(crate) fn sink_rows(dir: &Path) -> Vec<(i64, String, i64, Option<f64>)> {
    let mut out = Vec::new();
    for file in files(dir) {
        assert!(file.extension().is_some_and(|e| e == "parquet"), "a file that is not whole Parquet: {file:?}");
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(std::fs::File::open(&file).unwrap(), 1024)
                .unwrap();
        for batch in reader {
            let batch: RecordBatch = batch.unwrap();
            let start = batch.column_by_name("window_start").unwrap().as_primitive::<TimestampNanosecondType>();
            let product = batch.column_by_name("product_id").unwrap();
            let product = arrow::compute::cast(product, &arrow::datatypes::DataType::Utf8).unwrap();
            let product = product.as_string::<i32>();
            let orders = batch.column_by_name("orders").unwrap().as_primitive::<Int64Type>();
            let revenue = batch.column_by_name("revenue").unwrap().as_primitive::<Float64Type>();
            for i in 0..batch.num_rows() {
                out.push((
                    (start.value(i) - base_ns()) / MIN,
                    product.value(i).to_string(),
                    orders.value(i),
                    revenue.is_valid(i).then(|| revenue.value(i)),
                ));
            }
        }
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

pub(crate) fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

pub(crate) fn source(kafka: &Kafka, topic: &str, extra: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE orders (order_id VARCHAR, product_id VARCHAR, price DOUBLE, quantity INT, ts TIMESTAMP)
           STORED AS KAFKA LOCATION '{}'
           OPTIONS ('format' 'json', 'event_time' 'ts', 'watermark' '2 minutes', 'start' 'earliest'{extra});",
        kafka.location(topic)
    )
}

#[test]
fn hopping_and_tumbling_windows_give_the_rows_written_out_by_hand() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 2);
    let redis = Redis::start();
    let cluster = Cluster::start(2);
    let hops_dir = cluster.dir.path().join("hops");
    let late_dir = cluster.dir.path().join("late");
    let hops = format!(
        "{}
         CREATE EXTERNAL TABLE hops STORED AS PARQUET LOCATION '{}';
         INSERT INTO hops
         SELECT window.start AS window_start, window.end AS window_end, product_id,
                count(*) AS orders, sum(price * quantity) AS revenue
         FROM orders GROUP BY window(ts, '10 minutes', '5 minutes'), product_id",
        source(&kafka, "orders", &format!(", 'keep_late' '{}'", late_dir.display())),
        hops_dir.display()
    );
    let tumble = format!(
        "{}
         CREATE EXTERNAL TABLE tumble STORED AS REDIS LOCATION '{}' OPTIONS ('key' 'stream:tumble', 'keep' '10');
         INSERT INTO tumble
         SELECT product_id, count(*) AS orders, sum(price * quantity) AS revenue
         FROM orders GROUP BY window(ts, INTERVAL '5' MINUTE), product_id ORDER BY product_id",
        source(&kafka, "orders", ""),
        redis.url()
    );
    let created =
        cluster.stockyard(&["streams", "create", "hops", "--file", &write_sql(cluster.dir.path(), "hops", &hops)]).ok();
    let created: Value = serde_json::from_str(created.stdout.trim()).unwrap();
    assert_eq!(created["state"], "running", "{created}");
    cluster.stockyard(&["streams", "create", "tumble", "--sql", &tumble, "--trigger", "200ms"]).ok();

    // Phase 1. Partition 0: on a window start (inclusive), just before the
    // next one, on a hop boundary (in two hops).
    kafka.produce(
        "orders",
        0,
        &[order("a", 1.0, 1, &at(0, 0)), order("a", 2.0, 1, &at(4, 59)), order("b", 5.0, 2, &at(5, 0))],
    );
    // Partition 1: an order, a price of the wrong type (read as null), and
    // three records that cannot be read.
    let bad_price =
        json!({"order_id": "c1", "product_id": "c", "price": "9", "quantity": 1, "ts": at(8, 0)}).to_string();
    let no_time = json!({"order_id": "x", "product_id": "a", "price": 1.0, "quantity": 1}).to_string();
    kafka.produce("orders", 1, &[order("a", 3.0, 1, &at(7, 0)), bad_price, "not json".into(), no_time, "[1]".into()]);
    wait_records(&cluster, "hops", 8);
    wait_records(&cluster, "tumble", 8);
    // The watermark: the slower partition's greatest event time (10:05
    // on partition 0) minus two minutes.
    assert_eq!(status(&cluster, "hops")["watermark"], "2026-11-30T10:03:00.000Z");

    // Phase 2, through kafka-python: out of order but on time (10:03:30),
    // late (10:01, below the watermark), and 10:12.
    kafka.produce_with_kafka_python(
        "orders",
        0,
        &[order("b", 1.0, 1, &at(3, 30)), order("a", 10.0, 1, &at(1, 0)), order("a", 1.0, 1, &at(12, 0))],
    );
    wait_records(&cluster, "hops", 11);
    wait_records(&cluster, "tumble", 11);
    // Phase 3: an hour later on both partitions: every window above is final.
    kafka.produce("orders", 0, &[order("z", 1.0, 1, &at(60, 0))]);
    kafka.produce("orders", 1, &[order("z", 1.0, 1, &at(60, 0))]);
    wait_records(&cluster, "hops", 13);
    wait_records(&cluster, "tumble", 13);

    // By hand: hops of 10 minutes every 5, starting at multiples of 5.
    let s = |x: &str| x.to_string();
    assert_eq!(
        sink_rows(&hops_dir),
        vec![
            (-5, s("a"), 2, Some(3.0)),
            (-5, s("b"), 1, Some(1.0)),
            (0, s("a"), 3, Some(6.0)),
            (0, s("b"), 2, Some(11.0)),
            (0, s("c"), 1, None),
            (5, s("a"), 2, Some(4.0)),
            (5, s("b"), 1, Some(10.0)),
            (5, s("c"), 1, None),
            (10, s("a"), 1, Some(1.0)),
        ]
    );
    let st = status(&cluster, "hops");
    assert_eq!(st["late_rows"], 1, "{st}");
    // The late row is kept, as read.
    let kept: Vec<(String, f64)> = files(&late_dir)
        .iter()
        .flat_map(|f| {
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(std::fs::File::open(f).unwrap(), 64)
                    .unwrap();
            reader
                .flat_map(|b| {
                    let b = b.unwrap();
                    let id =
                        arrow::compute::cast(b.column_by_name("order_id").unwrap(), &arrow::datatypes::DataType::Utf8)
                            .unwrap();
                    let price = b.column_by_name("price").unwrap().as_primitive::<Float64Type>().clone();
                    (0..b.num_rows())
                        .map(|i| (id.as_string::<i32>().value(i).to_string(), price.value(i)))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kept, vec![(format!("a-{}", at(1, 0)), 10.0)]);
    assert_eq!(st["rejected"], json!({"not_json": 1, "not_an_object": 1, "bad_event_time": 1}), "{st}");
    assert_eq!(st["rejected_rows"], 3);
    assert_eq!(st["unreadable_values"], 1);
    assert_eq!(st["rows_in"], 9);
    assert_eq!(st["rows_out"], 9);
    assert_eq!(st["lag"], 0);
    assert_eq!(st["sink"], hops_dir.display().to_string());
    assert_eq!(st["sources"], json!([kafka.location("orders")]));
    assert_eq!(st["watermark"], "2026-11-30T10:58:00.000Z");

    // Redis: the open window (z) and the final ones, newest first.
    let raw = redis.command("GET stream:tumble");
    let value: Value = serde_json::from_str(raw.split_once("\r\n").unwrap().1.trim()).unwrap();
    assert_eq!(value["stream"], "tumble");
    assert_eq!(value["watermark"], "2026-11-30T10:58:00.000Z");
    let row = |p: &str, n: i64, revenue: Value| json!({"product_id": p, "orders": n, "revenue": revenue});
    let window = |from: i64, fin: bool, rows: Vec<Value>| json!({"window_start": format!("{}.000Z", &at(from, 0)[..19]), "window_end": format!("{}.000Z", &at(from + 5, 0)[..19]), "final": fin, "rows": rows});
    assert_eq!(
        value["windows"],
        json!([
            window(60, false, vec![row("z", 2, json!(2.0))]),
            window(10, true, vec![row("a", 1, json!(1.0))]),
            window(5, true, vec![row("a", 1, json!(3.0)), row("b", 1, json!(10.0)), row("c", 1, Value::Null)]),
            window(0, true, vec![row("a", 2, json!(3.0)), row("b", 1, json!(1.0))]),
        ])
    );

    // Listed by the CLI.
    let listed = cluster.stockyard(&["streams", "--format", "json"]).ok().stdout;
    let names: Vec<Value> = crate::schedules::json_lines(&listed).into_iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, vec![json!("hops"), json!("tumble")]);

    // Counted on /metrics.
    let (_, metrics) = http_get(cluster.http_port, "/metrics");
    let line = |name: &str, labels: &[&str]| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(line("stockyard_stream_rows", &["stream=\"hops\"", "kind=\"late\""]), "1");
    assert_eq!(line("stockyard_stream_rows", &["stream=\"hops\"", "kind=\"rejected\""]), "3");
    assert_eq!(line("stockyard_stream_lag_records", &["stream=\"hops\"", "partition=\"1\""]), "0");

    // The web UI's streams page, and its Pause button.
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots").join("streams");
    let mut b = stockyard_tests::Browser::start(shots, cluster.dir.path());
    b.goto(&format!("http://127.0.0.1:{}/streams", cluster.http_port));
    let row = b.wait_text("tr[data-stream='hops']", "running", Duration::from_secs(20));
    assert!(row.contains("kafka://127.0.0.1:") && row.contains("behind"), "{row}");
    b.screenshot("streams");
    b.click("tr[data-stream='tumble'] button[data-action='pause']");
    b.wait_text("tr[data-stream='tumble']", "paused", Duration::from_secs(20));
    assert_eq!(status(&cluster, "tumble")["state"], "paused");
}

#[test]
fn an_idle_partition_does_not_hold_the_watermark_and_a_quiet_stream_closes_its_windows() {
    let kafka = Kafka::start();
    kafka.create_topic("events", 2);
    let cluster = Cluster::start(2);
    let out = cluster.dir.path().join("quiet");
    let sql = format!(
        "CREATE EXTERNAL TABLE events (id VARCHAR, ts TIMESTAMP) STORED AS KAFKA LOCATION '{}'
           OPTIONS ('event_time' 'ts', 'idle_timeout' '2s', 'start' 'earliest');
         CREATE EXTERNAL TABLE quiet STORED AS PARQUET LOCATION '{}';
         INSERT INTO quiet SELECT window.start AS window_start, 'all' AS product_id, count(*) AS orders,
                CAST(NULL AS DOUBLE) AS revenue
         FROM events GROUP BY window(ts, '10 seconds')",
        kafka.location("events"),
        out.display()
    );
    cluster.stockyard(&["streams", "create", "quiet", "--sql", &sql]).ok();
    // One event, now, on partition 0; partition 1 never gets one.
    let now = chrono::Utc::now();
    let event = json!({"id": "e", "ts": now.to_rfc3339()}).to_string();
    kafka.produce("events", 0, &[event]);
    // Its window closes about when the wall clock passes its end.
    let window_ns = now.timestamp_nanos_opt().unwrap().div_euclid(10_000_000_000) * 10_000_000_000;
    let end = window_ns + 10_000_000_000;
    wait_until("the quiet stream's window in Parquet", Duration::from_secs(40), || !files(&out).is_empty());
    let written = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    assert!(written >= end, "a window was written before its end");
    let rows = sink_rows(&out);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows, vec![((window_ns - base_ns()).div_euclid(MIN), "all".to_string(), 1, None)]);
}

#[test]
fn bad_stream_files_are_refused_with_status_2_naming_the_problem() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    let cluster = Cluster::start(1);
    let sink = cluster.dir.path().join("out");
    let good_sink = format!("CREATE EXTERNAL TABLE out STORED AS PARQUET LOCATION '{}';", sink.display());
    let refused = |sql: String, wanted: &str| {
        let run = cluster.stockyard(&["streams", "create", "bad", "--sql", &sql]);
        assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
        assert!(run.stderr.contains(wanted), "wanted '{wanted}' in: {}", run.stderr);
    };
    let src = source(&kafka, "orders", "");
    refused(
        format!(
            "{src} {good_sink} INSERT INTO out SELECT nope, count(*) FROM orders GROUP BY window(ts, '1 minute'), nope"
        ),
        "nope",
    );
    refused(
        source(&kafka, "orders", ", 'colour' 'blue'") + &good_sink + " INSERT INTO out SELECT * FROM orders",
        "unknown option 'colour' for Kafka source 'orders'",
    );
    refused(
        format!(
            "{src} {good_sink} INSERT INTO out SELECT count(*) FROM orders GROUP BY window(product_id, '1 minute')"
        ),
        "window(...) is on 'product_id', but the event time of 'orders' is 'ts'",
    );
    refused(
        format!(
            "{src} CREATE EXTERNAL TABLE out STORED AS PARQUET LOCATION '/proc/stockyard-cannot-write';
             INSERT INTO out SELECT * FROM orders"
        ),
        "the sink cannot be written",
    );
    refused(
        source(&kafka, "no_such_topic", "") + &good_sink + " INSERT INTO out SELECT * FROM orders",
        "topic 'no_such_topic' does not exist",
    );
    // Nothing was created.
    let listed = cluster.stockyard(&["streams", "--format", "json"]).ok().stdout;
    assert!(listed.trim().is_empty(), "{listed}");
}

/// The windows an oracle computes from the produced records: per
/// 5-minute window start (minutes from the base) and product, the count
/// and the revenue.
pub(crate) fn oracle(records: &[(String, f64, i64)]) -> Vec<(i64, String, i64, Option<f64>)> {
    let mut windows: BTreeMap<(i64, String), (i64, f64)> = BTreeMap::new();
    for (product, price, minute) in records {
        let w = windows.entry((minute.div_euclid(5) * 5, product.clone())).or_default();
        w.0 += 1;
        w.1 += price;
    }
    windows.into_iter().map(|((s, p), (n, r))| (s, p, n, Some(r))).collect()
}

#[test]
fn every_record_counts_once_across_a_killed_scheduler_a_restarted_broker_and_a_stopped_stream() {
    let mut kafka = Kafka::start();
    kafka.create_topic("orders", 2);
    let once = tempfile::tempdir().unwrap();
    // The first batch dies after writing its sink, before its commit.
    let env = vec![
        ("STOCKYARD_FAULT".to_string(), "stream-after-sink".to_string()),
        ("STOCKYARD_FAULT_ONCE".to_string(), once.path().join("once").display().to_string()),
    ];
    let mut cluster = Cluster::start_with_env(2, env);
    let out = cluster.dir.path().join("once");
    let sql = format!(
        "{}
         CREATE EXTERNAL TABLE once STORED AS PARQUET LOCATION '{}';
         INSERT INTO once
         SELECT window.start AS window_start, product_id, count(*) AS orders, sum(price) AS revenue
         FROM orders GROUP BY window(ts, '5 minutes'), product_id",
        // No lateness and in-order event times per partition: nothing is late.
        source(&kafka, "orders", "").replace("'2 minutes'", "'0s'"),
        out.display()
    );
    cluster.stockyard(&["streams", "create", "once", "--sql", &sql, "--trigger", "100ms"]).ok();
    let mut produced: Vec<(String, f64, i64)> = Vec::new();
    let mut minute = [0i64; 2];
    let mut chunk_of = |kafka: &Kafka, n: usize, parts: &[usize], produced: &mut Vec<(String, f64, i64)>| {
        for &p in parts {
            let mut values = Vec::new();
            for i in 0..n {
                let product = ["a", "b", "c"][(i + p) % 3].to_string();
                let price = (i % 7) as f64 + 0.5;
                values.push(order(&product, price, 1, &at(minute[p], 0)));
                produced.push((product, price, minute[p]));
                minute[p] += (i % 2) as i64;
            }
            kafka.produce("orders", p as i32, &values);
        }
    };
    // The first batch reads partition 0 alone and dies before its commit;
    // partition 1, empty in that batch, still holds the watermark back
    // when the batch is redone, so its records are on time.
    chunk_of(&kafka, 200, &[0], &mut produced);
    assert!(
        cluster.scheduler.wait_exit(Duration::from_secs(30)).is_some(),
        "the fault point did not stop the scheduler"
    );
    cluster.restart_scheduler();
    wait_records(&cluster, "once", 200);
    chunk_of(&kafka, 200, &[1], &mut produced);
    wait_records(&cluster, "once", 400);
    let mut chunk =
        |kafka: &Kafka, n: usize, produced: &mut Vec<(String, f64, i64)>| chunk_of(kafka, n, &[0, 1], produced);
    assert!(cluster.logs().contains("redoing the batch in flight"), "{}", cluster.logs());
    // Killed while batches run: the batch in flight is redone from its
    // intent by the restarted scheduler.
    chunk(&kafka, 300, &mut produced);
    std::thread::sleep(Duration::from_millis(150));
    cluster.scheduler.kill();
    cluster.restart_scheduler();
    wait_records(&cluster, "once", 1000);
    // The broker goes away and comes back with its data.
    kafka.restart_after(Duration::from_secs(2));
    chunk(&kafka, 100, &mut produced);
    wait_records(&cluster, "once", 1200);
    // Stopped and resumed.
    cluster.stockyard(&["streams", "stop", "once"]).ok();
    chunk(&kafka, 100, &mut produced);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(status(&cluster, "once")["state"], "stopped");
    cluster.stockyard(&["streams", "resume", "once"]).ok();
    wait_records(&cluster, "once", 1400);
    // Close every window: a record far ahead on both partitions.
    for p in 0..2 {
        kafka.produce("orders", p, &[order("zz", 1.0, 1, &at(10_000, 0))]);
    }
    wait_records(&cluster, "once", 1402);
    assert_eq!(sink_rows(&out), oracle(&produced), "{}", cluster.logs());
    let st = status(&cluster, "once");
    assert_eq!(st["late_rows"], 0, "{st}");
    assert_eq!(st["rows_in"], 1402, "{st}");
}

#[test]
fn a_stateless_stream_lands_each_record_once_and_waits_for_a_broker_that_is_not_there_yet() {
    let cluster = Cluster::start(2);
    let port = stockyard_tests::free_port();
    let out = cluster.dir.path().join("landed");
    let sql = format!(
        "CREATE EXTERNAL TABLE raw (id VARCHAR, category VARCHAR, price DOUBLE, ts TIMESTAMP)
           STORED AS KAFKA LOCATION 'kafka://127.0.0.1:{port}/raw' OPTIONS ('start' 'earliest');
         CREATE EXTERNAL TABLE landed STORED AS PARQUET PARTITIONED BY (category) LOCATION '{}';
         INSERT INTO landed SELECT id, upper(category) AS category, price FROM raw WHERE price > 0",
        out.display()
    );
    // No broker yet: the stream is created and says what it waits for.
    cluster.stockyard(&["streams", "create", "land", "--sql", &sql]).ok();
    wait_until("the stream to say the broker is away", Duration::from_secs(40), || {
        let s = status(&cluster, "land");
        s["state"] == "failed" && s["error"].as_str().is_some_and(|e| e.contains(&format!("127.0.0.1:{port}")))
    });
    let kafka = Kafka::start_on(port);
    kafka.create_topic("raw", 1);
    let rec = |id: &str, category: &str, price: f64| {
        json!({"id": id, "category": category, "price": price, "ts": at(0, 0)}).to_string()
    };
    kafka.produce("raw", 0, &[rec("1", "toys", 2.0), rec("2", "books", 3.0), rec("3", "toys", 0.0), "{oops".into()]);
    wait_records(&cluster, "land", 4);
    kafka.produce("raw", 0, &[rec("4", "toys", 5.0)]);
    wait_records(&cluster, "land", 5);
    let st = status(&cluster, "land");
    assert_eq!(
        (st["state"].as_str(), st["rows_out"].as_u64(), st["rejected_rows"].as_u64()),
        (Some("running"), Some(3), Some(1)),
        "{st}"
    );
    // Hive directories, the partition column out of the files.
    let mut landed: Vec<(String, String, f64)> = Vec::new();
    for file in files(&out) {
        let dir = file.parent().unwrap().file_name().unwrap().to_str().unwrap().to_string();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(std::fs::File::open(&file).unwrap(), 64)
                .unwrap();
        for b in reader {
            let b = b.unwrap();
            assert!(b.column_by_name("category").is_none());
            let ids = arrow::compute::cast(b.column_by_name("id").unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
            let prices = b.column_by_name("price").unwrap().as_primitive::<Float64Type>().clone();
            for i in 0..b.num_rows() {
                landed.push((dir.clone(), ids.as_string::<i32>().value(i).to_string(), prices.value(i)));
            }
        }
    }
    landed.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        landed,
        vec![
            ("category=TOYS".to_string(), "1".to_string(), 2.0),
            ("category=BOOKS".to_string(), "2".to_string(), 3.0),
            ("category=TOYS".to_string(), "4".to_string(), 5.0),
        ]
    );
}

#[test]
fn events_are_enriched_with_a_mongodb_collection_and_a_parquet_dimension() {
    let mongo = stockyard_tests::Mongo::start();
    use mongodb::bson::doc;
    mongo.load(
        "shop",
        "products",
        vec![doc! {"product_id": "a", "category": "toys"}, doc! {"product_id": "b", "category": "books"}],
    );
    let kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    let env =
        vec![("STOCKYARD_MONGO_URI".to_string(), mongo.uri()), ("STOCKYARD_MONGO_DB".to_string(), "shop".to_string())];
    let cluster = Cluster::start_with_env(2, env);
    // A Parquet dimension: the department of each category.
    let dims = cluster.dir.path().join("departments");
    std::fs::create_dir_all(&dims).unwrap();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("cat", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("department", arrow::datatypes::DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["toys", "books"])),
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["play", "reading"])),
        ],
    )
    .unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(dims.join("d.parquet")).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let out = cluster.dir.path().join("enriched");
    let sql = format!(
        "{}
         CREATE EXTERNAL TABLE departments STORED AS PARQUET LOCATION '{}';
         CREATE EXTERNAL TABLE enriched STORED AS PARQUET LOCATION '{}';
         INSERT INTO enriched
         SELECT window.start AS window_start, d.department AS product_id, count(*) AS orders, sum(o.price) AS revenue
         FROM orders o JOIN products p ON o.product_id = p.product_id JOIN departments d ON p.category = d.cat
         GROUP BY window(o.ts, '5 minutes'), d.department",
        source(&kafka, "orders", "").replace("'2 minutes'", "'0s'"),
        dims.display(),
        out.display()
    );
    cluster.stockyard(&["streams", "create", "enrich", "--sql", &sql]).ok();
    kafka.produce(
        "orders",
        0,
        &[
            order("a", 1.0, 1, &at(0, 0)),
            order("b", 2.0, 1, &at(1, 0)),
            order("a", 4.0, 1, &at(2, 0)),
            // Not in the collection: the inner join leaves it out.
            order("c", 8.0, 1, &at(3, 0)),
            order("a", 1.0, 1, &at(60, 0)),
        ],
    );
    wait_records(&cluster, "enrich", 5);
    let s = |x: &str| x.to_string();
    assert_eq!(sink_rows(&out), vec![(0, s("play"), 2, Some(5.0)), (0, s("reading"), 1, Some(2.0))]);
}
