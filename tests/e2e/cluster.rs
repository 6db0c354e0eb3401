//! Queries on a real cluster: one scheduler and two executor processes.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use stockyard_tests::cluster::sql_path;
use stockyard_tests::process::http_get;
use stockyard_tests::{Cluster, Mongo, Proc, free_port};

/// Orders spread over several Parquet files (so several scan partitions)
/// and a SKU dimension; returns the expected `category,orders,units` rows.
fn write_parquet(dir: &std::path::Path) -> Vec<String> {
    std::fs::create_dir_all(dir.join("orders")).unwrap();
    std::fs::create_dir_all(dir.join("skus")).unwrap();
    let categories = ["Books", "Electronics", "Home", "Toys"];
    let sku_schema = Arc::new(Schema::new(vec![
        Field::new("sku_id", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
    ]));
    let skus: Vec<String> = (0..50).map(|i| format!("SKU-{i:05}")).collect();
    let cats: Vec<&str> = (0..50).map(|i| categories[i % 4]).collect();
    let batch = RecordBatch::try_new(
        sku_schema.clone(),
        vec![Arc::new(StringArray::from(skus.clone())), Arc::new(StringArray::from(cats.clone()))],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(File::create(dir.join("skus/skus.parquet")).unwrap(), sku_schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let order_schema = Arc::new(Schema::new(vec![
        Field::new("sku_id", DataType::Utf8, false),
        Field::new("quantity", DataType::Int32, false),
    ]));
    // Per category: (orders, units). SKUs 50..59 have no dimension row and
    // drop out of the inner join.
    let mut expected: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for file in 0..5 {
        let ids: Vec<usize> = (0..2000).map(|i| (i * 7 + file * 13) % 60).collect();
        let qty: Vec<i32> = (0..2000).map(|i| ((i * 31 + file) % 17 + 1) as i32).collect();
        for (id, q) in ids.iter().zip(&qty) {
            if *id < 50 {
                let e = expected.entry(cats[*id]).or_default();
                e.0 += 1;
                e.1 += i64::from(*q);
            }
        }
        let batch = RecordBatch::try_new(
            order_schema.clone(),
            vec![
                Arc::new(StringArray::from(ids.iter().map(|i| format!("SKU-{i:05}")).collect::<Vec<_>>())),
                Arc::new(Int32Array::from(qty)),
            ],
        )
        .unwrap();
        let path = dir.join(format!("orders/part-{file}.parquet"));
        let mut w = ArrowWriter::try_new(File::create(path).unwrap(), order_schema.clone(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    expected.into_iter().map(|(c, (n, u))| format!("{c},{n},{u}")).collect()
}

#[test]
fn parquet_join_and_aggregate_return_exact_rows_on_two_executors() {
    let cluster = Cluster::start(2);
    let data = cluster.dir.path().join("data");
    let expected = write_parquet(&data);
    let sql = format!(
        "CREATE EXTERNAL TABLE orders STORED AS PARQUET LOCATION {};
         CREATE EXTERNAL TABLE skus STORED AS PARQUET LOCATION {};
         SELECT s.category, count(*) AS orders, sum(o.quantity) AS units
         FROM orders o JOIN skus s ON o.sku_id = s.sku_id
         GROUP BY s.category ORDER BY s.category",
        sql_path(&data.join("orders/")),
        sql_path(&data.join("skus/")),
    );
    let out = cluster.sql_csv(&sql);
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.remove(0), "category,orders,units");
    assert_eq!(lines, expected, "{}", cluster.logs());
}

#[test]
fn local_files_are_refused_unless_an_operator_allows_them() {
    let cluster = Cluster::start_with_env(2, vec![("STOCKYARD_ALLOW_LOCAL_FILES".into(), "false".into())]);
    let data = cluster.dir.path().join("data");
    write_parquet(&data);
    let orders = data.join("orders/");
    // A client's query would read the executors' disk.
    let read = cluster.stockyard(&[
        "sql",
        &format!(
            "CREATE EXTERNAL TABLE o STORED AS PARQUET LOCATION {}; SELECT sum(quantity) FROM o",
            sql_path(&orders)
        ),
    ]);
    assert_eq!(read.code, 1, "{}", read.stdout);
    assert!(read.stderr.contains(&format!("this query reads '{}", orders.display())), "{}", read.stderr);
    assert!(
        read.stderr
            .contains("executors may not use their local files (start them with --allow-local-files to allow it)"),
        "{}",
        read.stderr
    );
    let target = cluster.dir.path().join("out.parquet");
    let write = cluster.stockyard(&[
        "sql",
        &format!("COPY (SELECT value FROM partitioned_range(10, 2)) TO {} STORED AS PARQUET", sql_path(&target)),
    ]);
    assert_eq!(write.code, 1, "{}", write.stdout);
    assert!(write.stderr.contains("this query writes '"), "{}", write.stderr);
    assert!(!target.exists());
    // A sql job on the scheduler may not name its files either.
    let (code, body) = stockyard_tests::http(
        cluster.http_port,
        "POST",
        "/api/runs",
        Some(&serde_json::json!({"job": "sql", "params": {"sql": "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'; SELECT * FROM p"}}).to_string()),
    );
    assert_eq!(code, 202, "{body}");
    let run_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["run_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let (_, body) = http_get(cluster.http_port, &format!("/api/runs/{run_id}"));
        let run: serde_json::Value = serde_json::from_str(&body).unwrap();
        if run["status"] != "running" {
            break run;
        }
        assert!(Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(run["status"], "failed");
    assert_eq!(
        run["error"],
        "'/etc/passwd' is a file on the scheduler: sql jobs may not read or write local files (start the scheduler with --allow-local-files to allow it)"
    );
    // Everything else still runs.
    assert_eq!(cluster.sql_csv("SELECT sum(value) AS s FROM partitioned_range(10, 3)"), "s\n45\n");
}

/// Ballista 54 restricts each file scan of a task to the file group of the
/// task's partition number, which is wrong below a `UNION ALL`: every branch
/// after the first was read once per partition.
#[test]
fn union_all_of_multi_file_scans_counts_each_row_once() {
    let cluster = Cluster::start(2);
    let data = cluster.dir.path().join("data");
    write_parquet(&data);
    // Straight from the fixture's formula: 5 files of 2,000 orders, and of
    // those, the orders of SKUs 50..59 (no dimension row).
    let (mut units, mut unknown, mut unknown_units) = (0i64, 0i64, 0i64);
    for file in 0..5usize {
        for i in 0..2000usize {
            let q = ((i * 31 + file) % 17 + 1) as i64;
            units += q;
            if (i * 7 + file * 13) % 60 >= 50 {
                unknown += 1;
                unknown_units += q;
            }
        }
    }
    let sql = format!(
        "CREATE EXTERNAL TABLE orders STORED AS PARQUET LOCATION {};
         SELECT c, count(*) AS n, sum(q) AS units FROM (
           SELECT 'a' AS c, quantity AS q FROM orders
           UNION ALL SELECT 'b', quantity FROM orders WHERE sku_id >= 'SKU-00050'
           UNION ALL SELECT 'c', CAST(value AS INT) FROM partitioned_range(1000, 3)
           UNION ALL SELECT 'd', quantity FROM orders
         ) t GROUP BY c ORDER BY c",
        sql_path(&data.join("orders/")),
    );
    assert_eq!(
        cluster.sql_csv(&sql),
        format!("c,n,units\na,10000,{units}\nb,{unknown},{unknown_units}\nc,1000,499500\nd,10000,{units}\n"),
        "{}",
        cluster.logs()
    );
}

/// The Ballista 55 failure mode: a custom leaf with N partitions read N times.
#[test]
fn custom_multi_partition_scan_returns_each_row_once() {
    let cluster = Cluster::start(2);
    for parts in [1u64, 2, 7] {
        let n: u64 = 100_000;
        let out = cluster.sql_csv(&format!(
            "SELECT count(*) AS n, count(DISTINCT value) AS d, sum(value) AS s, min(value) AS lo, max(value) AS hi
             FROM partitioned_range({n}, {parts})"
        ));
        assert_eq!(
            out,
            format!("n,d,s,lo,hi\n{n},{n},{},0,{}\n", n * (n - 1) / 2, n - 1),
            "{parts} partitions\n{}",
            cluster.logs()
        );
        let out = cluster.sql_csv(&format!(
            "SELECT \"partition\", count(*) AS c FROM partitioned_range({n}, {parts})
             GROUP BY \"partition\" ORDER BY \"partition\""
        ));
        let expected: String = (0..parts).map(|p| format!("{p},{}\n", n * (p + 1) / parts - n * p / parts)).collect();
        assert_eq!(out, format!("partition,c\n{expected}"), "{parts} partitions");
    }
}

#[test]
fn a_job_survives_a_killed_executor() {
    let mut cluster = Cluster::start(2);
    // 8 partitions of 10 batches (8192 rows each), 300 ms per batch: 3 s per
    // task, two waves on four slots, so both executors hold tasks when one
    // is killed.
    const ROWS: u64 = 8 * 10 * 8192;
    let sql = format!(
        "SELECT \"partition\", count(*) AS c, sum(value) AS s FROM partitioned_range({ROWS}, 8, 300)
         GROUP BY \"partition\" ORDER BY \"partition\""
    );
    let mut cmd = cluster.command(&["sql", "--format", "csv", &sql]);
    let log = cluster.dir.path().join("query.log");
    cmd.env("STOCKYARD_LOG", "off");
    let out_path = cluster.dir.path().join("query.out");
    let mut query = Proc::spawn("query", cmd, log);
    // Wait until the job is running, then kill the second executor.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = cluster.stockyard(&["jobs", "--ballista", "--format", "json"]).ok().stdout;
        if jobs.contains("\"status\":\"running\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the job never ran: {jobs}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    cluster.executors[1].kill();
    assert!(query.is_running(), "the job ended before the executor was killed:\n{}", query.output());
    let status = query.wait_exit(Duration::from_secs(120)).expect("the query finishes");
    let output = query.output();
    std::fs::write(out_path, &output).ok();
    assert!(status.success(), "query failed after losing an executor:\n{output}\n{}", cluster.logs());
    let per = ROWS / 8;
    let expected: String = (0..8u64)
        .map(|p| {
            let (lo, hi) = (p * per, (p + 1) * per);
            format!("{p},{per},{}\n", (lo..hi).sum::<u64>())
        })
        .collect();
    assert_eq!(output, format!("partition,c,s\n{expected}"), "{}", cluster.logs());
    // The job is recorded as succeeded, and the scheduler still serves.
    let jobs = cluster.stockyard(&["jobs", "--ballista", "--format", "json"]).ok().stdout;
    assert!(
        jobs.lines().any(|l| l.contains(&format!("partitioned_range({ROWS}")) && l.contains("\"succeeded\"")),
        "{jobs}"
    );
    assert_eq!(cluster.sql_csv("SELECT 40 + 2 AS x"), "x\n42\n");
    // The dead executor is removed once silent for the executor timeout
    // (6 s here); the live one stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_tasks(&cluster).len() != 1 {
        assert!(Instant::now() < deadline, "the dead executor was never removed:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(running_tasks(&cluster).len(), 1, "the live executor stays");
}

/// Tasks running on each executor id, from the scheduler's API.
fn running_tasks(cluster: &Cluster) -> BTreeMap<String, u64> {
    let (_, body) = http_get(cluster.http_port, "/api/executors");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), e["running_tasks"].as_u64().unwrap()))
        .collect()
}

/// Scaling out and in under load: an executor started mid-job takes tasks,
/// and an executor told to stop (SIGTERM, as Kubernetes does) finishes
/// what it runs, leaves, and exits cleanly, with no task failed or lost.
#[test]
fn executors_join_and_leave_mid_job_without_losing_a_task() {
    let mut cluster = Cluster::start(2);
    // 24 partitions of 5 batches, 200 ms a batch: 1 s a task, six waves on
    // four slots.
    const ROWS: u64 = 24 * 5 * 8192;
    let sql = format!("SELECT count(*) AS n, sum(value) AS s FROM partitioned_range({ROWS}, 24, 200)");
    let mut cmd = cluster.command(&["sql", "--format", "csv", &sql]);
    cmd.env("STOCKYARD_LOG", "off");
    let mut query = Proc::spawn("query", cmd, cluster.dir.path().join("query.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_tasks(&cluster).values().all(|n| *n == 0) {
        assert!(Instant::now() < deadline, "the job never ran:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    let before: Vec<String> = running_tasks(&cluster).into_keys().collect();

    // Scale out: a third executor registers while the job runs.
    cluster.add_executor();
    cluster.wait_for_executors(3);
    let third = running_tasks(&cluster).into_keys().find(|id| !before.contains(id)).expect("the third executor's id");

    // Scale in: SIGTERM the first executor while it holds tasks.
    let leaving = &cluster.executors[0];
    let leaving_log = leaving.output();
    let first_id = before
        .iter()
        .find(|id| leaving_log.contains(id.as_str()))
        .cloned()
        .expect("the first executor's id in its log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while running_tasks(&cluster).get(&first_id).copied().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the first executor got no task");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.executors[0].signal(libc::SIGTERM);
    assert!(query.is_running(), "the job ended before the scale-in:\n{}", query.output());
    let status = cluster.executors[0]
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the stopped executor did not exit within 30 s:\n{}", cluster.executors[0].output()));
    assert!(status.success(), "the stopped executor exited with {status}:\n{}", cluster.executors[0].output());

    let status = query.wait_exit(Duration::from_secs(120)).expect("the query finishes");
    let output = query.output();
    assert!(status.success(), "the query failed:\n{output}\n{}", cluster.logs());
    assert_eq!(output, format!("n,s\n{ROWS},{}\n", ROWS * (ROWS - 1) / 2), "{}", cluster.logs());

    // Every task succeeded on its first try, some on the new executor.
    let (_, jobs) = http_get(cluster.http_port, "/api/jobs");
    let jobs: serde_json::Value = serde_json::from_str(&jobs).unwrap();
    let job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"].as_str().unwrap().contains(&format!("partitioned_range({ROWS}")))
        .expect("the job");
    let (_, detail) = http_get(cluster.http_port, &format!("/api/jobs/{}", job["id"].as_str().unwrap()));
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["status"], "succeeded", "{detail}");
    let tasks: Vec<&serde_json::Value> =
        detail["stages"].as_array().unwrap().iter().flat_map(|s| s["tasks"].as_array().unwrap()).collect();
    assert!(tasks.iter().all(|t| t["status"] == "succeeded"), "{detail}");
    assert!(detail["stages"].as_array().unwrap().iter().all(|s| s["tasks_failed"] == 0), "{detail}");
    let on_third = tasks.iter().filter(|t| t["executor"] == third.as_str()).count();
    assert!(on_third > 0, "the third executor took no task: {detail}");
    // The stopped executor is gone or marked as stopping, not active.
    let left = cluster.stockyard(&["executors", "--format", "json"]).ok().stdout;
    assert!(!left.lines().any(|l| l.contains(&first_id) && l.contains("\"active\"")), "{left}");
}

#[test]
fn bad_sql_gets_a_clear_error_and_the_cluster_keeps_serving() {
    let cluster = Cluster::start(2);
    let r = cluster.stockyard(&["sql", "SELEC 1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("error: SQL error") && r.stderr.contains("SELEC"), "{}", r.stderr);

    let r = cluster.stockyard(&["sql", "SELECT * FROM no_such_table"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no_such_table"), "{}", r.stderr);

    // Fails at run time, on an executor.
    let r = cluster.stockyard(&["sql", "SELECT CAST('x' AS INT) FROM partitioned_range(10, 2)"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("error: query failed") && r.stderr.contains("'x'"), "{}", r.stderr);

    let r = cluster.stockyard(&["sql", "   "]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no SQL statement"), "{}", r.stderr);

    assert_eq!(cluster.sql_csv("SELECT sum(value) AS s FROM partitioned_range(10, 3)"), "s\n45\n");
}

#[test]
fn output_formats_and_cluster_listings() {
    let cluster = Cluster::start(2);
    let sql = "SELECT value, value * 2 AS twice FROM partitioned_range(3, 2) ORDER BY value";
    let table = cluster.stockyard(&["sql", sql]).ok().stdout;
    assert!(
        table.contains("| value | twice |") && table.contains("| 2     | 4     |") && table.ends_with("3 rows\n"),
        "{table}"
    );
    let json = cluster.stockyard(&["sql", "--format", "json", sql]).ok().stdout;
    assert_eq!(json, "{\"value\":0,\"twice\":0}\n{\"value\":1,\"twice\":2}\n{\"value\":2,\"twice\":4}\n");
    let empty = cluster
        .stockyard(&["sql", "--format", "csv", "SELECT value FROM partitioned_range(3, 2) WHERE value > 5"])
        .ok();
    assert_eq!(empty.stdout, "value\n");

    let executors = cluster.stockyard(&["executors", "--format", "json"]).ok().stdout;
    assert_eq!(executors.lines().count(), 2, "{executors}");
    for line in executors.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["state"], "active");
        assert_eq!(v["task_slots"], 2);
        assert_eq!(v["host"], "127.0.0.1");
    }
    let jobs = cluster.stockyard(&["jobs", "--ballista", "--format", "json"]).ok().stdout;
    let ours: Vec<serde_json::Value> = jobs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| {
            v["name"].as_str().is_some_and(|n| n.starts_with("sql: SELECT value, value * 2"))
        })
        .collect();
    assert_eq!(ours.len(), 2, "{jobs}");
    assert!(ours.iter().all(|v| v["status"] == "succeeded"), "{jobs}");
    let table = cluster.stockyard(&["executors"]).ok().stdout;
    assert!(table.contains("active") && table.ends_with("2 rows\n"), "{table}");

    // The HTTP side agrees.
    assert_eq!(http_get(cluster.http_port, "/readyz"), (200, "ready: 2 executors\n".to_string()));
    assert_eq!(http_get(cluster.http_port, "/healthz"), (200, "ok\n".to_string()));
}

#[test]
fn standalone_sql_runs_in_one_process() {
    let r = stockyard_tests::cluster::run({
        let mut c = stockyard_tests::cluster::base_command(&[]);
        c.args([
            "sql",
            "--standalone",
            "--format",
            "csv",
            "SELECT count(*) AS n, sum(value) AS s FROM partitioned_range(1000, 4)",
        ]);
        c
    })
    .ok();
    assert_eq!(r.stdout, "n,s\n1000,499500\n");
}

fn metric(cluster: &Cluster, line_start: &str) -> Option<i64> {
    let (status, body) = stockyard_tests::http_get(cluster.http_port, "/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[test]
fn metrics_show_executors_pending_tasks_under_load_and_job_runs() {
    let cluster = Cluster::start(2);
    assert_eq!(metric(&cluster, "stockyard_executors{state=\"active\"}"), Some(2));
    assert_eq!(metric(&cluster, "stockyard_pending_tasks"), Some(0));
    // 16 tasks of about a second on 4 slots: most wait at first.
    let cmd =
        cluster.command(&["sql", "--format", "csv", "SELECT count(*) AS n FROM partitioned_range(400000, 16, 300)"]);
    let load = std::thread::spawn(move || stockyard_tests::cluster::run(cmd));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut peak = 0;
    while !load.is_finished() && std::time::Instant::now() < deadline {
        peak = peak.max(metric(&cluster, "stockyard_pending_tasks").unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = load.join().unwrap();
    assert_eq!(out.stdout.trim(), "n\n400000", "{}", out.stderr);
    assert!(peak >= 4, "pending tasks rose under load: peak {peak}");
    assert_eq!(metric(&cluster, "stockyard_pending_tasks"), Some(0), "and fell to zero after");
    assert_eq!(metric(&cluster, "stockyard_running_jobs"), Some(0));
    // Job runs by job and status.
    cluster.stockyard(&["schedules", "add", "m", "--job", "sql", "--every", "1h", "--sql", "SELECT 1"]).ok();
    cluster.stockyard(&["schedules", "trigger", "m"]).ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while metric(&cluster, "stockyard_job_runs{job=\"sql\",status=\"succeeded\"}") != Some(1) {
        assert!(std::time::Instant::now() < deadline, "no succeeded sql run in /metrics");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// One metric's value from a Prometheus text page; 0 when absent.
fn scrape(page: &str, name: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .map(|l| l[name.len()..].trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[test]
fn executors_count_their_tasks_and_mongodb_reads_in_their_metrics() {
    let mongo = Mongo::start();
    mongo.load("supply_chain", "things", (0..1000i32).map(|n| mongodb::bson::doc! {"n": n}).collect());
    let mut cluster = Cluster::start_with_env(0, vec![("STOCKYARD_MONGO_URI".into(), mongo.uri())]);
    let ports = [free_port(), free_port()];
    for port in ports {
        cluster.add_executor_with_env(&[("STOCKYARD_METRICS_PORT", &port.to_string())]);
    }
    cluster.wait_for_executors(2);
    let out = cluster
        .stockyard(&[
            "sql",
            "--format",
            "csv",
            "--mongo-partitions",
            "3",
            "SELECT count(*) AS c, sum(n) AS s FROM things",
        ])
        .ok()
        .stdout;
    assert_eq!(out, "c,s\n1000,499500\n");

    // The job as the scheduler saw it: its tasks and the rows they wrote.
    let (_, jobs) = http_get(cluster.http_port, "/api/jobs");
    let jobs: serde_json::Value = serde_json::from_str(&jobs).unwrap();
    let (_, job) = http_get(cluster.http_port, &format!("/api/jobs/{}", jobs[0]["id"].as_str().unwrap()));
    let job: serde_json::Value = serde_json::from_str(&job).unwrap();
    let stages = job["stages"].as_array().unwrap();
    let tasks: u64 = stages.iter().map(|s| s["partitions"].as_u64().unwrap()).sum();
    let rows: u64 = stages.iter().map(|s| s["output_rows"].as_u64().unwrap()).sum();
    let bytes: u64 = stages.iter().map(|s| s["output_bytes"].as_u64().unwrap()).sum();

    let pages: Vec<String> = ports.iter().map(|p| http_get(*p, "/metrics").1).collect();
    let total = |name: &str| pages.iter().map(|p| scrape(p, name)).sum::<f64>();
    assert_eq!(total(r#"stockyard_executor_mongo_read_total{unit="documents"}"#), 1000.0, "{pages:?}");
    assert!(total(r#"stockyard_executor_mongo_read_total{unit="bytes"}"#) > 1000.0 * 10.0, "{pages:?}");
    assert_eq!(total(r#"stockyard_executor_tasks_total{status="succeeded"}"#), tasks as f64, "{pages:?}");
    assert_eq!(total(r#"stockyard_executor_tasks_total{status="failed"}"#), 0.0);
    assert_eq!(total("stockyard_executor_task_duration_seconds_count"), tasks as f64);
    assert_eq!(total("stockyard_executor_output_rows_total"), rows as f64);
    assert_eq!(total("stockyard_executor_output_bytes_total"), bytes as f64);
    assert_eq!(total("stockyard_executor_running_tasks"), 0.0);
    assert!(
        pages.iter().all(|p| scrape(p, r#"stockyard_executor_tasks_total{status="succeeded"}"#) > 0.0),
        "both executors ran tasks: {pages:?}"
    );
    assert_eq!(http_get(ports[0], "/healthz"), (200, "ok\n".to_string()));
}

/// A scheduler told to stop while a client waits on a long query and a
/// connection hangs half-open stops within its grace, rather than wait
/// for every connection to close.
#[test]
fn a_stopped_scheduler_exits_even_with_a_query_in_flight() {
    let mut cluster = Cluster::start(2);
    // About a minute of batches, one a second.
    let long = cluster.command(&["sql", "SELECT count(*) FROM partitioned_range(491520, 1, 1000)"]);
    let client = std::thread::spawn(move || stockyard_tests::cluster::run(long));
    // And a browser that sent half a request and went quiet.
    let mut quiet = std::net::TcpStream::connect(("127.0.0.1", cluster.http_port)).unwrap();
    std::io::Write::write_all(&mut quiet, b"GET /api/overview HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let stopped = std::time::Instant::now();
    cluster.scheduler.signal(libc::SIGTERM);
    let exit = cluster.scheduler.wait_exit(std::time::Duration::from_secs(30));
    assert!(exit.is_some(), "the scheduler still runs 30 s after SIGTERM:\n{}", cluster.logs());
    assert!(stopped.elapsed() < std::time::Duration::from_secs(25), "{:?}", stopped.elapsed());
    assert!(
        cluster.scheduler.output().contains("connections still open 10s after the stop signal: stopping anyway"),
        "{}",
        cluster.logs()
    );
    drop(quiet);
    // The client is told, not left waiting.
    let r = client.join().unwrap();
    assert_ne!(r.code, 0, "{r:?}");
    assert_ne!(r.code, -2, "the client hung: {r:?}");
}

/// A `sql` run's result streams through the scheduler: it keeps the 1,000
/// rows the UI shows and counts the rest, and rows to show that are larger
/// than `--max-result-bytes` fail the run with the limit named.
#[test]
fn a_sql_run_keeps_the_rows_it_shows_and_counts_the_rest() {
    use crate::ui::{post, wait_run};
    use serde_json::json;
    let env = vec![("STOCKYARD_MAX_RESULT_BYTES".to_string(), "20000".to_string())];
    let cluster = Cluster::start_with_env(2, env);
    let run = |sql: &str| {
        let (code, body) = post(&cluster, "/api/runs", Some(json!({"job": "sql", "params": {"sql": sql}})));
        assert_eq!(code, 202, "{body}");
        wait_run(&cluster, body["run_id"].as_str().unwrap())
    };
    // 300,000 rows over 4 partitions: each `{"value":N}` row takes at most
    // 16 bytes of JSON, so 1,000 of them fit the 20,000 bytes.
    let big = run("SELECT value FROM partitioned_range(300000, 4) ORDER BY value");
    assert_eq!(big["status"], "succeeded", "{big}");
    assert_eq!(big["summary"]["rows"], 300000, "{big}");
    assert_eq!(big["result"]["total_rows"], 300000);
    assert_eq!(big["result"]["truncated"], true);
    let rows = big["result"]["rows"].as_array().unwrap();
    let expected: Vec<_> = (0..1000).map(|v| json!({"value": v})).collect();
    assert_eq!(rows, &expected);
    // 1,000 rows of 100 characters each: about 110,000 bytes.
    let wide = run("SELECT value, repeat('x', 100) AS pad FROM partitioned_range(5000, 2)");
    assert_eq!(wide["status"], "failed", "{wide}");
    let error = wide["error"].as_str().unwrap();
    assert!(error.starts_with("the result's first "), "{error}");
    assert!(
        error.contains("take over 20000 bytes as JSON, more than a sql run may keep (--max-result-bytes)"),
        "{error}"
    );
    // The scheduler serves on.
    let small = run("SELECT 1 AS one");
    assert_eq!(small["result"]["rows"], json!([{"one": 1}]), "{small}");
    // A table a run creates is no collection either: no MongoDB here.
    let csv = cluster.dir.path().join("n.csv");
    std::fs::write(&csv, "n\n1\n2\n3\n").unwrap();
    let sql = format!(
        "CREATE EXTERNAL TABLE Nums STORED AS CSV LOCATION {} OPTIONS ('format.has_header' 'true'); \
         SELECT sum(n) AS s FROM nums",
        sql_path(&csv)
    );
    let created = run(&sql);
    assert_eq!(created["result"]["rows"], json!([{"s": 6}]), "{created}");
}

/// A run past its `timeout` is stopped and recorded as failed with the
/// limit named, and its Ballista job is cancelled, not left running.
#[test]
fn a_run_past_its_timeout_fails_and_its_ballista_job_is_cancelled() {
    use crate::ui::{get, post, wait_run};
    use serde_json::json;
    let cluster = Cluster::start(2);
    // Eight partitions of 50,000 rows, 300 ms a batch: several seconds.
    let sql = "SELECT count(*) AS n FROM partitioned_range(400000, 8, 300)";
    let (code, body) =
        post(&cluster, "/api/runs", Some(json!({"job": "sql", "params": {"sql": sql, "timeout": "1s"}})));
    assert_eq!(code, 202, "{body}");
    let run = wait_run(&cluster, body["run_id"].as_str().unwrap());
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        run["error"],
        "the run took longer than its timeout of 1s: it was stopped and its Ballista jobs cancelled \
         (the timeout parameter sets it)"
    );
    let job = run["ballista_jobs"][0].as_str().unwrap_or_else(|| panic!("the run names no Ballista job: {run}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, detail) = get(&cluster, &format!("/api/jobs/{job}"));
        if detail["status"] != "running" && detail["status"] != "queued" {
            assert_eq!(detail["status"], "failed", "{detail}");
            break;
        }
        assert!(Instant::now() < deadline, "the Ballista job runs on: {detail}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A timeout that is no duration is refused before anything runs.
    let (code, body) =
        post(&cluster, "/api/runs", Some(json!({"job": "sql", "params": {"sql": sql, "timeout": "soon"}})));
    assert_eq!((code, body), (400, json!({"error": "timeout: 'soon' is not a duration like 90s, 15m or 2h"})));
}
