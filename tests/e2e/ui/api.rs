//! The REST API's answers after real runs, checked against Redis and the
//! CLI; problems named without secrets; garbage on the port survived.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockyard_tests::{Browser, Cluster, Mongo, Redis, free_port, http};

use super::*;

#[test]
fn the_rest_api_shows_kpi_and_archive_runs_and_schedule_changes() {
    let mongo = Mongo::start();
    let redis = Redis::start();
    let (cluster, kpi, archive, dest) = cluster_with_runs(&mongo, &redis);
    let kpi_id = kpi["run_id"].as_str().unwrap();
    let archive_id = archive["run_id"].as_str().unwrap();

    // Metrics: what the two runs did.
    let metrics = http(cluster.http_port, "GET", "/metrics", None).1;
    let value = |name: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"));
        line[name.len()..].trim().parse().unwrap()
    };
    assert_eq!(value(r#"stockyard_job_runs_total{job="kpi",status="succeeded"}"#), 1.0);
    assert_eq!(value(r#"stockyard_job_runs_total{job="archive",status="succeeded"}"#), 1.0);
    assert_eq!(value(r#"stockyard_job_run_duration_seconds_count{job="kpi"}"#), 1.0);
    assert_eq!(value(r#"stockyard_mongo_documents_total{outcome="read"}"#), kpi["documents_read"].as_f64().unwrap());
    assert_eq!(
        value(r#"stockyard_mongo_documents_total{outcome="rejected"}"#),
        kpi["documents_rejected"].as_f64().unwrap()
    );
    assert_eq!(value("stockyard_redis_write_seconds_count"), 1.0);
    assert_eq!(value("stockyard_archived_documents_total"), archive["total_records"].as_f64().unwrap());
    let parquet_bytes: u64 = walk(&dest)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!((value("stockyard_archived_bytes_total") - parquet_bytes as f64).abs() < 1.0, "{parquet_bytes}\n{metrics}");
    let age = value("stockyard_kpi_age_seconds");
    assert!((0.0..600.0).contains(&age), "{age}");

    // The KPIs: exactly what Redis holds, from one run.
    let (code, kpis) = get(&cluster, "/api/kpis");
    assert_eq!(code, 200, "{kpis}");
    for name in KPIS {
        assert_eq!(kpis["kpis"][name], redis_json(&redis, &format!("kpi:{name}")), "{name}");
        assert_eq!(kpis["kpis"][name]["rows"].as_array().unwrap().len() as u64, kpi["rows"][name], "{name}");
    }
    assert_eq!(kpis["data_quality"], redis_json(&redis, "kpi:data_quality"));
    assert_eq!(kpis["last_update"], redis_json(&redis, "kpi:last_update"));
    let expires = kpis["expires_in_s"].as_i64().unwrap();
    assert!((590..=600).contains(&expires), "{kpis}");
    assert!(kpis["age_s"].as_f64().unwrap() >= 0.0, "{kpis}");

    // The run history, filtered, and a run in full down to its tasks.
    let (_, runs) = get(&cluster, "/api/runs");
    let ids: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [archive_id, kpi_id]);
    let (_, only) = get(&cluster, "/api/runs?job=kpi&status=succeeded");
    assert_eq!(only.as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only[0]["summary"]["rows"], kpi["rows"]);
    assert_eq!(only[0]["summary"]["documents_read"], kpi["documents_read"]);
    assert_eq!(only[0]["trigger"], "cli");
    assert_eq!(get(&cluster, "/api/runs?job=sql").1, json!([]));
    let (_, run) = get(&cluster, &format!("/api/runs/{kpi_id}"));
    assert_eq!(run["status"], "succeeded");
    let jobs = run["jobs"].as_array().unwrap();
    // Three dimension reads, then five KPIs and three data-quality counts:
    // eleven Ballista jobs.
    assert_eq!(jobs.len(), 11, "{run}");
    for job in jobs {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["completed_stages"], job["stage_count"], "{job}");
        for stage in job["stages"].as_array().unwrap() {
            assert_eq!(stage["status"], "succeeded", "{stage}");
            assert_eq!(stage["tasks_succeeded"], stage["partitions"], "{stage}");
            let rows: u64 = stage["tasks"].as_array().unwrap().iter().map(|t| t["rows"].as_u64().unwrap()).sum();
            assert_eq!(stage["output_rows"], rows, "{stage}");
            assert!(stage["plan"]["name"].as_str().unwrap().contains("ShuffleWriter"), "{stage}");
        }
        let alone = get(&cluster, &format!("/api/jobs/{}", job["id"].as_str().unwrap())).1;
        assert_eq!(&alone, job);
    }

    // Archives: the run with what it wrote, as the CLI printed it.
    let (_, archives) = get(&cluster, "/api/archives");
    assert_eq!(archives.as_array().unwrap().len(), 1, "{archives}");
    let a = &archives[0];
    assert_eq!(a["run_id"], archive_id);
    for field in ["total_records", "total_size_mb", "collections", "cutoff", "metadata"] {
        assert_eq!(a["summary"][field], archive[field], "{field}");
    }
    assert!(archive["total_records"].as_u64().unwrap() > 0, "{archive}");

    // A schedule changed through the API is what the CLI lists.
    cluster.stockyard(&HOURLY_KPI).ok();
    let metrics = http(cluster.http_port, "GET", "/metrics", None).1;
    assert!(metrics.contains("stockyard_schedule_lateness_seconds{schedule=\"hourly\"} 0\n"), "{metrics}");
    assert!(metrics.contains("stockyard_schedule_skipped_ticks{schedule=\"hourly\"} 0\n"), "{metrics}");
    let (code, paused) = post(&cluster, "/api/schedules/hourly/pause", None);
    assert_eq!((code, &paused), (200, &json!({"name": "hourly", "paused": true, "run_id": null})));
    let (_, list) = get(&cluster, "/api/schedules");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        (list[0]["name"].clone(), list[0]["paused"].clone(), list[0]["next_run_ms"].clone()),
        (json!("hourly"), json!(true), Value::Null)
    );
    let cli = cluster.stockyard(&["schedules", "--format", "json"]).ok().stdout;
    assert!(cli.contains("\"paused\":true"), "{cli}");
    let (_, resumed) = post(&cluster, "/api/schedules/hourly/resume", None);
    assert_eq!(resumed["paused"], false);
    let next = get(&cluster, "/api/schedules").1[0]["next_run_ms"].as_u64().unwrap();
    let in_an_hour = chrono::Utc::now().timestamp_millis() as u64 + 3_600_000;
    assert!(next <= in_an_hour && next + 60_000 > in_an_hour, "{next}");
    let (code, triggered) = post(&cluster, "/api/schedules/hourly/trigger", None);
    assert_eq!(code, 200, "{triggered}");
    let run = wait_run(&cluster, triggered["run_id"].as_str().unwrap());
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["trigger"].as_str().unwrap().starts_with("schedule:hourly ("), "{run}");
    assert_eq!(get(&cluster, "/api/schedules").1[0]["last_run_id"], run["run_id"]);
    assert_eq!(post(&cluster, "/api/schedules/nope/trigger", None).0, 404);
    let (code, bad) = post(&cluster, "/api/schedules/hourly/explode", None);
    assert_eq!(
        (code, bad["error"].as_str().unwrap()),
        (400, "'explode' is not a schedule action (add, trigger, pause, resume, remove)")
    );

    // A SQL run started through the API, and its result.
    let (code, started) = post(
        &cluster,
        "/api/runs",
        Some(
            json!({"job": "sql", "params": {"sql": "SELECT dc_id, capacity_units FROM dcs_dim WHERE dc_id < 'DC-04' ORDER BY dc_id"}}),
        ),
    );
    assert_eq!(code, 202, "{started}");
    let run = wait_run(&cluster, started["run_id"].as_str().unwrap());
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "ui");
    assert_eq!(
        run["result"]["columns"],
        json!([{"name": "dc_id", "type": "Utf8"}, {"name": "capacity_units", "type": "Int64"}])
    );
    let dcs: Vec<&str> =
        run["result"]["rows"].as_array().unwrap().iter().map(|r| r["dc_id"].as_str().unwrap()).collect();
    assert_eq!(dcs, ["DC-01", "DC-02", "DC-03"]);
    assert_eq!((run["result"]["total_rows"].clone(), run["summary"]["rows"].clone()), (json!(3), json!(3)));
    let (code, bad) = post(&cluster, "/api/runs", Some(json!({"job": "nap"})));
    assert_eq!((code, bad["error"].as_str().unwrap()), (400, "no job named 'nap' (jobs: kpi, archive, compact, sql)"));

    // The overview ties it together.
    let (_, o) = get(&cluster, "/api/overview");
    assert_eq!((o["healthy"].clone(), o["problems"].clone()), (json!(true), json!([])), "{o}");
    assert_eq!(o["leader"]["address"], cluster.scheduler_addr());
    let executors = o["executors"].as_array().unwrap();
    assert_eq!(executors.len(), 2);
    assert!(executors.iter().all(|e| e["state"] == "active" && e["task_slots"] == 2 && e["running_tasks"] == 0), "{o}");
    assert_eq!(o["last_archive_run"]["run_id"], archive_id);
    assert_eq!(o["kpi"]["last_update"], redis_json(&redis, "kpi:last_update"));
    assert_eq!(o["running_runs"], json!([]));
    assert_eq!(get(&cluster, "/api/executors").1.as_array().unwrap().len(), 2);

    // Unknown things are named.
    assert_eq!(get(&cluster, "/api/runs/nope").1, json!({"error": "no run 'nope'"}));
    assert_eq!(get(&cluster, "/api/jobs/nope").0, 404);
    assert_eq!(post(&cluster, &format!("/api/runs/{kpi_id}/cancel"), None).0, 409);
    assert_eq!(http(cluster.http_port, "GET", "/healthz", None), (200, "ok\n".to_string()));
    assert_eq!(http(cluster.http_port, "GET", "/readyz", None), (200, "ready: 2 executors\n".to_string()));
}

#[test]
fn problems_are_named_and_secrets_never_shown() {
    // Nothing listens on these ports; the URIs carry passwords.
    let (mongo_port, redis_port) = (free_port(), free_port());
    // Generated secrets hold URI delimiters: the mask must find the last
    // `@` before the host, not the first `/` or `?`. The URIs carry it
    // percent-encoded, as drivers need it; neither form may show.
    let secret = "s3cr/et?pw#x@y:%";
    let encoded = "s3cr%2Fet%3Fpw%23x%40y%3A%25";
    let mongo_uri = format!("mongodb://admin:{encoded}@127.0.0.1:{mongo_port}/?serverSelectionTimeoutMS=1000");
    let redis_url = format!("redis://:{encoded}@127.0.0.1:{redis_port}");
    let cluster = Cluster::start_with_env(
        0,
        vec![("STOCKYARD_MONGO_URI".into(), mongo_uri), ("STOCKYARD_REDIS_URL".into(), redis_url)],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let overview = loop {
        let (_, o) = get(&cluster, "/api/overview");
        if o["problems"].as_array().unwrap().len() == 3 || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(overview["healthy"], false);
    let problems: Vec<&str> = overview["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(problems[0], "no active executor: queries and jobs wait until one registers");
    assert!(problems[1].starts_with(&format!("MongoDB (mongodb://admin:***@127.0.0.1:{mongo_port}/")), "{problems:?}");
    assert!(
        problems[2].starts_with(&format!("reading the KPIs from Redis failed: redis://:***@127.0.0.1:{redis_port}")),
        "{problems:?}"
    );
    let (code, kpis) = get(&cluster, "/api/kpis");
    assert_eq!(code, 503);
    assert!(kpis["error"].as_str().unwrap().starts_with("reading the KPIs from Redis failed"), "{kpis}");
    assert_eq!(http(cluster.http_port, "GET", "/readyz", None).0, 503);

    // Without an executor a run would wait for ever: REST refuses it, as
    // gRPC does.
    let (code, refused) = post(&cluster, "/api/runs", Some(json!({"job": "archive", "params": {"threshold_mb": "0"}})));
    assert_eq!(code, 503, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .starts_with("the scheduler has no executors; start one with `stockyard executor"),
        "{refused}"
    );
    let mut browser = Browser::start(shots("problems"), cluster.dir.path());
    let base = format!("http://127.0.0.1:{}", cluster.http_port);
    browser.goto(&format!("{base}/"));
    let shown = browser.wait_text("main", "no active executor", Duration::from_secs(10));
    assert!(shown.contains("MongoDB (mongodb://admin:***@") && shown.contains("Redis unavailable"), "{shown}");
    browser.screenshot("overview-with-problems");

    // A run that fails on MongoDB says so, without the password.
    let mut cluster = cluster;
    cluster.add_executor();
    cluster.wait_for_executors(1);
    let (_, started) = post(&cluster, "/api/runs", Some(json!({"job": "archive", "params": {"threshold_mb": "0"}})));
    let run = wait_run(&cluster, started["run_id"].as_str().unwrap());
    assert_eq!(run["status"], "failed", "{run}");
    // SQL whose options hold a key is kept in the history with it masked.
    let key = "wJalrXUtnFEMI-K7MDENG";
    let sql = format!(
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://b/t/' OPTIONS ('aws.secret_access_key' '{key}', 'aws.region' 'r1')"
    );
    let (_, sql_run) = post(&cluster, "/api/runs", Some(json!({"job": "sql", "params": {"sql": sql}})));
    let sql_run = wait_run(&cluster, sql_run["run_id"].as_str().unwrap());
    assert_eq!(
        sql_run["params"]["sql"],
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://b/t/' OPTIONS ('aws.secret_access_key' '***', 'aws.region' 'r1')",
        "{sql_run}"
    );
    browser.goto(&format!("{base}/kpis"));
    browser.wait_text("#page-error", "reading the KPIs from Redis failed", Duration::from_secs(10));
    browser.screenshot("kpis-without-redis");

    // No answer, page or log line shows the password.
    let mut seen = Vec::new();
    for path in [
        "/api/overview",
        "/api/executors",
        "/api/jobs",
        "/api/runs",
        "/api/schedules",
        "/api/kpis",
        "/api/archives",
        "/metrics",
    ] {
        seen.push(http(cluster.http_port, "GET", path, None).1);
    }
    seen.push(http(cluster.http_port, "GET", &format!("/api/runs/{}", run["run_id"].as_str().unwrap()), None).1);
    for page in [
        "/",
        "/runs",
        "/schedules",
        "/kpis",
        "/archives",
        "/sql",
        &format!("/runs/{}", run["run_id"].as_str().unwrap()),
    ] {
        browser.goto(&format!("{base}{page}"));
        seen.push(browser.text("body"));
    }
    seen.push(cluster.logs());
    // The stored history, as etcd or the state files keep it.
    for file in walk(&cluster.dir.path().join("state")) {
        seen.push(String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned());
    }
    for text in &seen {
        assert!(!text.contains(secret) && !text.contains(encoded), "the password shows in: {text}");
        assert!(!text.contains(key), "the key shows in: {text}");
    }
}

/// A small deterministic generator: the same garbage on every run.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Up to `max` bytes, at least one.
    fn some(&mut self, max: u64) -> Vec<u8> {
        let n = 1 + (self.next() % max) as usize;
        self.bytes(n)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Sends `bytes` and reads whatever comes back for a moment: the server may
/// answer, close, or wait for more, but must not fall over.
fn throw(port: u16, bytes: &[u8]) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        panic!("port {port} refused a connection")
    };
    s.set_read_timeout(Some(Duration::from_millis(300))).ok();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    let _ = s.read(&mut sink);
}

#[test]
fn random_and_truncated_requests_leave_the_scheduler_serving() {
    let mut cluster = Cluster::start(1);
    let mut g = Garbage(0x5eed_cafe_f00d_d00d);
    let paths = [
        "/api/runs",
        "/api/runs/x/cancel",
        "/api/schedules/kpi/trigger",
        "/api/schedules/%ff/pause",
        "/api/jobs/..%2f",
        "/api/overview",
        "/sql",
        "/ui/app.js",
        "/metrics",
    ];
    let bodies = [
        r#"{"job":"sql","params":{"sql":"SELECT"#,
        r#"{"job":"kpi","params":{"window":"-1m","ttl":"x"}}"#,
        r#"{"job":"archive","params":{"threshold_mb":"1e999"}}"#,
        r#"{"job":"sql","params":{"sql":""}}"#,
        r#"{"job":7}"#,
        "null",
        "[]",
        "\u{0}\u{1}\u{2}",
    ];
    for i in 0..300 {
        let request = match i % 5 {
            // Raw bytes.
            0 => g.some(2048),
            // A valid start, cut off.
            1 => {
                let full = format!(
                    "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{}",
                    g.pick(&paths),
                    g.pick(&bodies)
                );
                let cut = (g.next() % full.len() as u64) as usize;
                full.as_bytes()[..cut].to_vec()
            }
            // Whole requests with odd bodies.
            2 => {
                let body = g.pick(&bodies);
                format!("POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", g.pick(&paths), body.len()).into_bytes()
            }
            // Odd paths and headers.
            3 => {
                let mut r = format!(
                    "GET {}{} HTTP/1.1\r\nHost: x\r\nX-Long: ",
                    g.pick(&paths),
                    String::from_utf8_lossy(&g.bytes(8))
                )
                .into_bytes();
                r.extend(std::iter::repeat_n(b'a', (g.next() % 20000) as usize));
                r.extend(b"\r\n\r\n");
                r
            }
            // HTTP/2 preface then garbage, to both ports.
            _ => {
                let mut r = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
                r.extend(g.some(512));
                throw(cluster.port, &r);
                r
            }
        };
        throw(cluster.http_port, &request);
        if i % 3 == 0 {
            throw(cluster.port, &g.some(1024));
        }
    }
    assert!(cluster.scheduler.is_running(), "the scheduler died:\n{}", cluster.logs());
    assert_eq!(http(cluster.http_port, "GET", "/healthz", None), (200, "ok\n".to_string()));
    let (code, body) =
        post(&cluster, "/api/runs", Some(json!({"job": "sql", "params": {"sql": "SELECT 40 + 2 AS x"}})));
    assert_eq!(code, 202, "{body}");
    let run = wait_run(&cluster, body["run_id"].as_str().unwrap());
    assert_eq!(run["result"]["rows"], json!([{"x": 42}]), "{run}");
    assert_eq!(cluster.sql_csv("SELECT 40 + 2 AS x"), "x\n42\n");
    // Statements split by the SQL parser, as the CLI splits them: a `;` in
    // a string or a comment ends nothing.
    let sql = "SELECT 1 AS first; -- one; two\nSELECT ';' AS semi, 'x;y' AS both";
    let (code, body) = post(&cluster, "/api/runs", Some(json!({"job": "sql", "params": {"sql": sql}})));
    assert_eq!(code, 202, "{body}");
    let run = wait_run(&cluster, body["run_id"].as_str().unwrap());
    assert_eq!(run["result"]["rows"], json!([{"semi": ";", "both": "x;y"}]), "{run}");
    assert_eq!(cluster.sql_csv(sql), "semi,both\n;,x;y\n");
    // Bad requests get a clear answer.
    let (code, text) = http(cluster.http_port, "POST", "/api/runs", Some("{\"job\":"));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("EOF while parsing"), "{text}");
    let (code, text) = http(cluster.http_port, "POST", "/api/runs", Some(r#"{"job":"kpi","params":{"window":"-1m"}}"#));
    assert_eq!((code, text.as_str()), (400, r#"{"error":"window: '-1m' is not a duration like 90s, 15m or 2h"}"#));
    // A window that parses but reaches before the calendar is refused at
    // the door (it used to panic inside the run and wedge it `running`).
    let (code, text) =
        http(cluster.http_port, "POST", "/api/runs", Some(r#"{"job":"kpi","params":{"window":"300000y"}}"#));
    assert_eq!(
        (code, text.as_str()),
        (400, r#"{"error":"window: '300000y' reaches back before the first date a time can have"}"#)
    );
    // Axum's own refusals answer JSON too, and name the problem.
    let (code, text) = http(cluster.http_port, "GET", "/api/runs?limit=many", None);
    assert_eq!(code, 400, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(error["error"].as_str().unwrap().ends_with("limit: 'many' is not a whole number of runs"), "{text}");
}
