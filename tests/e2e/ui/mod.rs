//! The REST API and the web UI on a real cluster (a scheduler and two
//! executors) with SecantusDB and Redis, by concern: the API's answers
//! (`api`), every page in headless Chromium (`pages`), and the token and
//! TLS on the HTTP port (`access`). What they share is here.

mod access;
mod api;
mod pages;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockyard_tests::{Cluster, Mongo, Redis, archive_all, http};

pub(crate) const DB: &str = "supply_chain";
pub(crate) const NOW: &str = "2026-01-05T12:00:00Z";
/// A KPI schedule every hour, with the seed data's `now`.
pub(crate) const HOURLY_KPI: [&str; 9] =
    ["schedules", "add", "hourly", "--job", "kpi", "--every", "1h", "--param", "now=2026-01-05T12:00:00Z"];
pub(crate) const KPIS: [&str; 5] =
    ["inventory_level", "stockout_alerts", "supplier_performance", "dc_utilization", "regional_performance"];

pub(crate) fn get(cluster: &Cluster, path: &str) -> (u16, Value) {
    let (code, body) = http(cluster.http_port, "GET", path, None);
    (code, serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}")))
}

pub(crate) fn post(cluster: &Cluster, path: &str, body: Option<Value>) -> (u16, Value) {
    let (code, text) = http(cluster.http_port, "POST", path, body.map(|b| b.to_string()).as_deref());
    (code, serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}")))
}

pub(crate) fn redis_json(redis: &Redis, key: &str) -> Value {
    let reply = redis.command(&format!("GET {key}"));
    let body = reply.split_once("\r\n").map(|(_, b)| b.trim_end()).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| json!(body))
}

/// Waits for a run to end; its API view.
pub(crate) fn wait_run(cluster: &Cluster, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, run) = get(cluster, &format!("/api/runs/{run_id}"));
        if code == 200 && run["status"] != "running" {
            return run;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not end: {run}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// SecantusDB with two hours of generated facts, Redis, and a cluster on
/// them; then a KPI run over [11:45, 12:00) and an archive of what is older
/// than 11:00. Returns the two CLI summaries.
pub(crate) fn cluster_with_runs(mongo: &Mongo, redis: &Redis) -> (Cluster, Value, Value, PathBuf) {
    let cluster = Cluster::start_with_env(
        2,
        vec![
            ("STOCKYARD_MONGO_URI".into(), mongo.uri()),
            ("STOCKYARD_MONGO_DB".into(), DB.into()),
            ("STOCKYARD_REDIS_URL".into(), redis.url()),
        ],
    );
    cluster
        .stockyard(&["generate", "--seed", "5", "--docs", "600", "--start", "2026-01-05T10:00:00Z", "--end", NOW])
        .ok();
    let last = |out: &str| -> Value { serde_json::from_str(out.lines().last().unwrap()).unwrap() };
    let kpi = last(&cluster.stockyard(&["run", "kpi", "--now", NOW, "--ttl", "600s"]).ok().stdout);
    let dest = cluster.dir.path().join("archive");
    let archive = last(&cluster.stockyard(&archive_all(NOW, "60m", dest.to_str().unwrap())).ok().stdout);
    assert_eq!(kpi["status"], "succeeded", "{kpi}");
    assert_eq!(archive["status"], "succeeded", "{archive}");
    (cluster, kpi, archive, dest)
}

/// Every file below `dir`.
pub(crate) fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The first Ballista job of a run.
pub(crate) fn run_job_id(cluster: &Cluster, run_id: &str) -> String {
    get(cluster, &format!("/api/runs/{run_id}")).1["ballista_jobs"][0].as_str().unwrap().to_string()
}

/// `n` as the page writes it: 12,345.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where a test's screenshots go: kept after the run for a person to see.
pub(crate) fn shots(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots").join(test)
}
