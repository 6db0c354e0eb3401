//! The KPI job end to end: hand-built documents in SecantusDB, the job on a
//! scheduler and two executors, exact JSON read back from Redis. Expected
//! rows are written out here by hand from the spec.

use mongodb::bson::{Bson, DateTime, doc};
use serde_json::{Value, json};
use stockyard_tests::{Cluster, Mongo, Redis};

const DB: &str = "supply_chain";

fn at(t: &str) -> DateTime {
    DateTime::parse_rfc3339_str(t).unwrap()
}

fn load(mongo: &Mongo) {
    mongo.load(DB, "skus_dim", vec![
        doc! {"sku_id": "SKU-1", "product_name": "Phone", "category": "Electronics", "unit_price": 10.0, "supplier_id": "SUP-1"},
        doc! {"sku_id": "SKU-2", "product_name": "Novel", "category": "Books", "unit_price": 5.0, "supplier_id": "SUP-2"},
    ]);
    mongo.load(
        DB,
        "dcs_dim",
        vec![
            doc! {"dc_id": "DC-1", "dc_name": "Alpha", "region": "North", "capacity_units": 1000i64},
            doc! {"dc_id": "DC-2", "dc_name": "Beta", "region": "South", "capacity_units": 500i64},
            doc! {"dc_id": "DC-3", "dc_name": "Gamma", "region": "North", "capacity_units": 200i64},
        ],
    );
    mongo.load(
        DB,
        "suppliers_dim",
        vec![
            doc! {"supplier_id": "SUP-1", "supplier_name": "Acme", "promised_lead_time_days": 2.0},
            doc! {"supplier_id": "SUP-2", "supplier_name": "Bolt", "promised_lead_time_days": 3.0},
        ],
    );
    let reading = |sku: &str, dc: &str, on_hand: Bson, reserved: Bson, t: &str| {
        doc! {"sku_id": sku, "dc_id": dc, "on_hand_qty": on_hand, "reserved_qty": reserved, "inventory_ts": at(t)}
    };
    mongo.load(
        DB,
        "inventory_fact",
        vec![
            // Window: [11:45, 12:00).
            reading("SKU-1", "DC-1", Bson::Int32(999), Bson::Int32(0), "2026-01-05T11:44:59.999Z"), // before
            reading("SKU-1", "DC-1", Bson::Int32(100), Bson::Int32(10), "2026-01-05T11:45:00Z"),    // first instant: in
            reading("SKU-1", "DC-1", Bson::Int32(80), Bson::Int32(5), "2026-01-05T11:50:00Z"),
            reading("SKU-1", "DC-1", Bson::Int32(90), Bson::Int32(0), "2026-01-05T11:50:00Z"), // tie: greater wins
            reading("SKU-2", "DC-1", Bson::Int32(20), Bson::Int32(2), "2026-01-05T11:59:59.999Z"),
            reading("SKU-2", "DC-1", Bson::Int32(500), Bson::Int32(0), "2026-01-05T12:00:00Z"), // now: out
            reading("SKU-1", "DC-2", Bson::Int32(50), Bson::Null, "2026-01-05T11:55:00Z"),
            reading("SKU-9", "DC-1", Bson::Int32(5), Bson::Int32(0), "2026-01-05T11:50:00Z"), // unknown SKU
            reading("SKU-2", "DC-2", Bson::String("7".into()), Bson::Int32(0), "2026-01-05T11:50:00Z"), // unreadable
            reading("SKU-2", "DC-2", Bson::Double(7.0), Bson::Int32(1), "2026-01-05T11:52:00Z"), // whole double: 7
        ],
    );
    let order = |id: &str, sku: &str, dc: &str, qty: Bson, status: Bson, t: &str| {
        doc! {"order_id": id, "sku_id": sku, "dc_id": dc, "quantity": qty, "unit_price": 10.0, "status": status, "order_ts": at(t)}
    };
    let s = |v: &str| Bson::String(v.into());
    mongo.load(
        DB,
        "orders_fact",
        vec![
            order("O1", "SKU-1", "DC-1", Bson::Int32(30), s("FULFILLED"), "2026-01-05T11:46:00Z"),
            order("O2", "SKU-1", "DC-1", Bson::Int32(15), s("CANCELLED"), "2026-01-05T11:47:00Z"),
            order("O3", "SKU-1", "DC-1", Bson::Int32(5), s("PENDING"), "2026-01-05T11:48:00Z"),
            order("O4", "SKU-2", "DC-1", Bson::Int32(4), Bson::Null, "2026-01-05T11:49:00Z"),
            order("O5", "SKU-1", "DC-2", Bson::Int32(2), s("FULFILLED"), "2026-01-05T11:45:00Z"),
            order("O6", "SKU-1", "DC-2", Bson::Int32(100), s("FULFILLED"), "2026-01-05T12:00:00Z"), // out
            order("O7", "SKU-2", "DC-9", Bson::Int32(3), s("FULFILLED"), "2026-01-05T11:50:00Z"),   // unknown DC
            order("O8", "SKU-2", "DC-2", s("x"), s("FULFILLED"), "2026-01-05T11:51:00Z"),           // unreadable
        ],
    );
    let shipment = |id: &str, sup: &str, qty: i32, shipped: &str, expected: &str, arrived: &str| {
        doc! {"shipment_id": id, "supplier_id": sup, "sku_id": "SKU-1", "dc_id": "DC-1", "quantity": qty,
        "shipped_ts": at(shipped), "expected_arrival_ts": at(expected), "arrival_ts": at(arrived)}
    };
    mongo.load(
        DB,
        "shipments_fact",
        vec![
            shipment("S1", "SUP-1", 10, "2026-01-03T11:50:00Z", "2026-01-05T11:50:00Z", "2026-01-05T11:50:00Z"), // on time, 2 days
            shipment("S2", "SUP-1", 20, "2026-01-04T11:55:00Z", "2026-01-05T11:00:00Z", "2026-01-05T11:55:00Z"), // late, 1 day
            shipment("S3", "SUP-2", 5, "2026-01-02T11:46:00Z", "2026-01-06T00:00:00Z", "2026-01-05T11:46:00Z"), // on time, 3 days
            shipment("S4", "SUP-2", 7, "2026-01-02T11:00:00Z", "2026-01-05T00:00:00Z", "2026-01-05T11:40:00Z"), // before the window
            shipment("S5", "SUP-9", 1, "2026-01-02T11:00:00Z", "2026-01-05T00:00:00Z", "2026-01-05T11:50:00Z"), // unknown supplier
        ],
    );
}

fn redis_json(redis: &Redis, key: &str) -> Value {
    let reply = redis.command(&format!("GET {key}"));
    let body = reply.split_once("\r\n").map(|(_, b)| b.trim_end()).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{key}: {e}: {reply}"))
}

/// Every key a KPI run writes.
const ALL_KEYS: [&str; 7] = [
    "kpi:inventory_level",
    "kpi:stockout_alerts",
    "kpi:supplier_performance",
    "kpi:dc_utilization",
    "kpi:regional_performance",
    "kpi:data_quality",
    "kpi:last_update",
];

/// A cluster reading `mongo` and writing the KPIs to `redis`, with `extra`
/// environment.
fn kpi_cluster(mongo: &Mongo, redis: &Redis, extra: &[(&str, &str)]) -> Cluster {
    let mut env = vec![
        ("STOCKYARD_MONGO_URI".to_string(), mongo.uri()),
        ("STOCKYARD_MONGO_DB".to_string(), DB.to_string()),
        ("STOCKYARD_REDIS_URL".to_string(), redis.url()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Cluster::start_with_env(2, env)
}

#[test]
fn the_kpi_job_writes_exact_kpis_to_redis_in_one_run() {
    let mongo = Mongo::start();
    let redis = Redis::start();
    load(&mongo);
    let cluster = kpi_cluster(&mongo, &redis, &[]);
    let run =
        cluster.stockyard(&["run", "kpi", "--now", "2026-01-05T12:00:00Z", "--window", "15m", "--ttl", "300s"]).ok();
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(
        summary["rows"],
        json!({"inventory_level": 4, "stockout_alerts": 3, "supplier_performance": 2, "dc_utilization": 3, "regional_performance": 2}),
        "{summary}"
    );

    // Keys in the spec's order, as a reader of the raw value sees them.
    let raw = redis.command("GET kpi:inventory_level");
    assert!(
        raw.contains(r#"{"window_start":"2026-01-05T11:45:00Z","window_end":"2026-01-05T12:00:00Z","generated_at":"#),
        "{raw}"
    );
    assert!(
        raw.contains(r#""rows":[{"sku_id":"SKU-1","product_name":"Phone","category":"Electronics","dc_id":"DC-1","#),
        "{raw}"
    );
    let window = |v: &Value| (v["window_start"].clone(), v["window_end"].clone());
    let inventory = redis_json(&redis, "kpi:inventory_level");
    assert_eq!(window(&inventory), (json!("2026-01-05T11:45:00Z"), json!("2026-01-05T12:00:00Z")));
    assert_eq!(
        inventory["rows"],
        json!([
            {"sku_id": "SKU-1", "product_name": "Phone", "category": "Electronics", "dc_id": "DC-1", "dc_name": "Alpha", "region": "North",
             "on_hand_qty": 90, "reserved_qty": 0, "available_qty": 90, "as_of": "2026-01-05T11:50:00Z"},
            {"sku_id": "SKU-1", "product_name": "Phone", "category": "Electronics", "dc_id": "DC-2", "dc_name": "Beta", "region": "South",
             "on_hand_qty": 50, "reserved_qty": null, "available_qty": null, "as_of": "2026-01-05T11:55:00Z"},
            {"sku_id": "SKU-2", "product_name": "Novel", "category": "Books", "dc_id": "DC-1", "dc_name": "Alpha", "region": "North",
             "on_hand_qty": 20, "reserved_qty": 2, "available_qty": 18, "as_of": "2026-01-05T11:59:59.999Z"},
            {"sku_id": "SKU-2", "product_name": "Novel", "category": "Books", "dc_id": "DC-2", "dc_name": "Beta", "region": "South",
             "on_hand_qty": 7, "reserved_qty": 1, "available_qty": 6, "as_of": "2026-01-05T11:52:00Z"},
        ])
    );

    // units_per_day = units_sold / 15 * 1440; days = current_stock / units_per_day.
    let per_day = |units: f64| units / 15.0 * 1440.0;
    let stockout = redis_json(&redis, "kpi:stockout_alerts");
    assert_eq!(
        stockout["rows"],
        json!([
            {"sku_id": "SKU-1", "product_name": "Phone", "dc_id": "DC-1", "dc_name": "Alpha", "current_stock": 90.0,
             "units_sold": 35, "units_per_day": per_day(35.0), "days_to_stockout": 90.0 / per_day(35.0)},
            {"sku_id": "SKU-2", "product_name": "Novel", "dc_id": "DC-1", "dc_name": "Alpha", "current_stock": 20.0,
             "units_sold": 4, "units_per_day": per_day(4.0), "days_to_stockout": 20.0 / per_day(4.0)},
            {"sku_id": "SKU-1", "product_name": "Phone", "dc_id": "DC-2", "dc_name": "Beta", "current_stock": 50.0,
             "units_sold": 2, "units_per_day": per_day(2.0), "days_to_stockout": 50.0 / per_day(2.0)},
        ]),
        "SKU-2 at DC-2 sold nothing readable: 9999 days, no alert"
    );

    let suppliers = redis_json(&redis, "kpi:supplier_performance");
    assert_eq!(
        suppliers["rows"],
        json!([
            {"supplier_id": "SUP-1", "supplier_name": "Acme", "shipments": 2, "units": 30, "avg_lead_time_days": 1.5,
             "promised_lead_time_days": 2.0, "on_time_rate": 0.5, "late_shipments": 1},
            {"supplier_id": "SUP-2", "supplier_name": "Bolt", "shipments": 1, "units": 5, "avg_lead_time_days": 3.0,
             "promised_lead_time_days": 3.0, "on_time_rate": 1.0, "late_shipments": 0},
        ])
    );

    let dcs = redis_json(&redis, "kpi:dc_utilization");
    assert_eq!(
        dcs["rows"],
        json!([
            {"dc_id": "DC-2", "dc_name": "Beta", "region": "South", "capacity_units": 500, "used_units": 57, "utilization_pct": 11.4},
            {"dc_id": "DC-1", "dc_name": "Alpha", "region": "North", "capacity_units": 1000, "used_units": 110, "utilization_pct": 11.0},
            {"dc_id": "DC-3", "dc_name": "Gamma", "region": "North", "capacity_units": 200, "used_units": 0, "utilization_pct": 0.0},
        ])
    );

    let regions = redis_json(&redis, "kpi:regional_performance");
    assert_eq!(
        regions["rows"],
        json!([
            {"region": "North", "total_orders": 4, "fulfilled_orders": 1, "fulfillment_rate": 0.25, "units": 39, "revenue": 300.0},
            {"region": "South", "total_orders": 1, "fulfilled_orders": 1, "fulfillment_rate": 1.0, "units": 2, "revenue": 20.0},
        ])
    );

    let quality = redis_json(&redis, "kpi:data_quality");
    assert_eq!(
        quality["collections"]["inventory_fact"],
        json!({"read": 8, "rejected": 2,
        "reasons": {"unreadable_on_hand_qty": 1, "unknown_sku_id": 1}})
    );
    assert_eq!(
        quality["collections"]["orders_fact"],
        json!({"read": 7, "rejected": 2,
        "reasons": {"unreadable_quantity": 1, "unknown_dc_id": 1}})
    );
    assert_eq!(
        quality["collections"]["shipments_fact"],
        json!({"read": 4, "rejected": 1,
        "reasons": {"unknown_supplier_id": 1}})
    );

    // Every key from this one run, with the TTL.
    let generated: Vec<Value> = ALL_KEYS[..6].iter().map(|k| redis_json(&redis, k)["generated_at"].clone()).collect();
    assert!(generated.iter().all(|g| g == &generated[0] && g.is_string()), "{generated:?}");
    for key in ["kpi:inventory_level", "kpi:last_update", "kpi:data_quality"] {
        let ttl: i64 = redis.command(&format!("TTL {key}")).trim_start_matches(':').trim().parse().unwrap();
        assert!((290..=300).contains(&ttl), "{key} TTL {ttl}");
    }

    // The run read each dimension from MongoDB in one scan, and every scan
    // of a fact collection sent MongoDB the same filter, so that the
    // queries share one read of the window.
    let (status, body) =
        stockyard_tests::http_get(cluster.http_port, &format!("/api/runs/{}", summary["run_id"].as_str().unwrap()));
    assert_eq!(status, 200, "{body}");
    let record: Value = serde_json::from_str(&body).unwrap();
    let mut scans: Vec<String> = Vec::new();
    collect_scans(&record["jobs"], &mut scans);
    for dimension in ["skus_dim", "dcs_dim", "suppliers_dim"] {
        let n = scans.iter().filter(|s| s.contains(&format!("collection={dimension},"))).count();
        assert_eq!(n, 1, "{dimension} scanned {n} times: {scans:#?}");
    }
    for fact in ["orders_fact", "shipments_fact", "inventory_fact"] {
        let filters: std::collections::BTreeSet<&str> = scans
            .iter()
            .filter(|s| s.contains(&format!("collection={fact},")))
            .filter_map(|s| s.split(" filter=").nth(1))
            .collect();
        assert_eq!(filters.len(), 1, "{fact}: {filters:#?}");
    }
}

/// Every `MongoScanExec` line in the stage plans under `v`.
fn collect_scans(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if map.get("name").is_some_and(|n| n == "MongoScanExec") {
                out.extend(map.get("detail").and_then(Value::as_str).map(str::to_string));
            }
            map.values().for_each(|v| collect_scans(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_scans(v, out)),
        _ => {}
    }
}

#[test]
fn a_failed_run_writes_nothing_and_says_why() {
    let mut mongo = Mongo::start();
    let redis = Redis::start();
    load(&mongo);
    let dead_redis = format!("redis://127.0.0.1:{}", stockyard_tests::free_port());
    let env = |redis_url: &str| {
        vec![
            ("STOCKYARD_MONGO_URI".to_string(), format!("{}/?serverSelectionTimeoutMS=2000", mongo.uri())),
            ("STOCKYARD_MONGO_DB".to_string(), DB.to_string()),
            ("STOCKYARD_REDIS_URL".to_string(), redis_url.to_string()),
        ]
    };

    // Redis down: the run fails, naming Redis, and says so in its summary.
    let cluster = Cluster::start_with_env(2, env(&dead_redis));
    let r = cluster.stockyard(&["run", "kpi", "--now", "2026-01-05T12:00:00Z"]);
    assert_eq!(r.code, 1, "{r:?}");
    let summary: Value = serde_json::from_str(r.stdout.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(summary["status"], "failed", "{summary}");
    assert!(summary["error"].as_str().unwrap().contains("writing to Redis failed (nothing written)"), "{summary}");
    assert!(r.stderr.contains("error: the kpi job failed"), "{}", r.stderr);
    drop(cluster);

    // A good run, then MongoDB down: the second run fails and the first
    // run's keys stand untouched.
    let cluster = Cluster::start_with_env(2, env(&redis.url()));
    cluster.stockyard(&["run", "kpi", "--now", "2026-01-05T12:00:00Z", "--ttl", "600s"]).ok();
    let keys = ALL_KEYS;
    let before: Vec<String> = keys.iter().map(|k| redis.command(&format!("GET {k}"))).collect();
    mongo.proc.kill();
    let r = cluster.stockyard(&["run", "kpi", "--now", "2026-01-05T12:05:00Z", "--ttl", "600s"]);
    assert_eq!(r.code, 1, "{r:?}");
    let summary: Value = serde_json::from_str(r.stdout.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(summary["status"], "failed");
    assert!(summary["error"].as_str().unwrap().contains("MongoDB"), "{summary}");
    let after: Vec<String> = keys.iter().map(|k| redis.command(&format!("GET {k}"))).collect();
    assert_eq!(before, after, "a failed run changed the KPIs");
    assert!(before.iter().all(|v| v.starts_with('$') && !v.starts_with("$-1")), "{before:?}");

    // Bad parameters never start a run.
    let r = cluster.stockyard(&["run", "kpi", "--now", "yesterday"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'yesterday'"), "{}", r.stderr);
    let r = cluster.stockyard(&["run", "kpi", "--window", "0s"]);
    assert_eq!(r.code, 2, "{r:?}");
}

/// A late rerun or a backfill of an older window leaves newer KPIs in
/// Redis as they are and ends `superseded`; `--force` writes anyway.
#[test]
fn an_older_window_never_replaces_newer_kpis() {
    let mongo = Mongo::start();
    let redis = Redis::start();
    load(&mongo);
    let cluster = kpi_cluster(&mongo, &redis, &[]);
    let keys = ALL_KEYS;
    let held = || keys.iter().map(|k| redis.command(&format!("GET {k}"))).collect::<Vec<String>>();
    let run = |args: &[&str]| {
        let r = cluster.stockyard(&[&["run", "kpi", "--ttl", "600s"], args].concat()).ok();
        serde_json::from_str::<Value>(r.stdout.lines().last().unwrap()).unwrap()
    };
    let window_end = || redis_json(&redis, "kpi:inventory_level")["window_end"].clone();

    assert_eq!(run(&["--now", "2026-01-05T12:00:00Z"])["status"], "succeeded");
    let newer = held();
    // 11:59:59.5 ends half a second before 12:00: older, whatever the digits.
    for now in ["2026-01-05T11:30:00Z", "2026-01-05T11:59:59.500Z"] {
        let summary = run(&["--now", now]);
        assert_eq!(summary["status"], "superseded", "{summary}");
        assert_eq!(summary["newer_window_end"], "2026-01-05T12:00:00Z", "{summary}");
        assert_eq!(held(), newer, "a superseded run changed Redis");
    }
    // The same window again is written: a rerun refreshes it.
    assert_eq!(run(&["--now", "2026-01-05T12:00:00Z"])["status"], "succeeded");
    // A deliberate backfill.
    assert_eq!(run(&["--now", "2026-01-05T11:30:00Z", "--force"])["status"], "succeeded");
    assert_eq!(window_end(), "2026-01-05T11:30:00Z");
    // And a newer window replaces it as always.
    assert_eq!(run(&["--now", "2026-01-05T11:45:00Z"])["status"], "succeeded");
    assert_eq!(window_end(), "2026-01-05T11:45:00Z");
    let (_, runs) = stockyard_tests::http(cluster.http_port, "GET", "/api/runs?status=superseded", None);
    let runs: Vec<Value> = serde_json::from_str(&runs).unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
}

#[test]
fn the_kpi_job_runs_standalone_in_one_process() {
    let mongo = Mongo::start();
    let redis = Redis::start();
    load(&mongo);
    let mut cmd = stockyard_tests::cluster::base_command(&[]);
    cmd.args(["run", "kpi", "--standalone", "--now", "2026-01-05T12:00:00Z"])
        .env("STOCKYARD_MONGO_URI", mongo.uri())
        .env("STOCKYARD_MONGO_DB", DB)
        .env("STOCKYARD_REDIS_URL", redis.url());
    let run = stockyard_tests::cluster::run(cmd).ok();
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "succeeded", "{summary}");
    // 8 readings, 7 orders and 4 shipments in the window; 5 of them rejected.
    assert_eq!(
        (summary["documents_read"].clone(), summary["documents_rejected"].clone()),
        (json!(19), json!(5)),
        "{summary}"
    );
    let regions = redis_json(&redis, "kpi:regional_performance");
    assert_eq!(regions["rows"][0]["revenue"], json!(300.0));
}

/// A MongoDB that accepts connections and then stalls (stopped with
/// SIGSTOP) fails a run after `--mongo-timeout` instead of hanging it until
/// the run's timeout; once it answers again, runs succeed.
#[test]
fn a_stalled_mongodb_fails_the_run_instead_of_hanging_it() {
    let mongo = Mongo::start();
    let redis = Redis::start();
    load(&mongo);
    let cluster = kpi_cluster(&mongo, &redis, &[("STOCKYARD_MONGO_TIMEOUT", "2s")]);
    // Connected and answering first, so the stall meets open connections.
    cluster.stockyard(&["run", "kpi", "--now", "2026-01-05T12:00:00Z"]).ok();
    mongo.proc.signal(libc::SIGSTOP);
    let cmd = cluster.command(&["run", "kpi", "--now", "2026-01-05T12:05:00Z"]);
    // The run's own timeout is 10 minutes: this bound tells a stall
    // noticed from one waited out.
    let r = stockyard_tests::cluster::run_within(cmd, std::time::Duration::from_secs(90));
    mongo.proc.signal(libc::SIGCONT);
    assert_eq!(r.code, 1, "the run must fail, not hang: {r:?}");
    let summary: Value = serde_json::from_str(r.stdout.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(summary["status"], "failed", "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(error.contains("MongoDB (mongodb://") && error.contains("failed: no answer within 2 s"), "{summary}");
    let again = cluster.stockyard(&["run", "kpi", "--now", "2026-01-05T12:05:00Z"]).ok();
    let summary: Value = serde_json::from_str(again.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "succeeded", "{summary}");
}
