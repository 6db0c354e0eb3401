//! Every page of the web UI in headless Chromium, used as a person would.

use std::time::{Duration, Instant};

use serde_json::json;
use stockyard_tests::{Browser, Mongo, Redis};

use super::*;

#[test]
fn every_page_works_in_a_browser() {
    let mongo = Mongo::start();
    let redis = Redis::start();
    let (cluster, kpi, archive, _) = cluster_with_runs(&mongo, &redis);
    let kpi_id = kpi["run_id"].as_str().unwrap();
    let archive_id = archive["run_id"].as_str().unwrap();
    cluster.stockyard(&HOURLY_KPI).ok();
    let mut b = Browser::start(shots("pages"), cluster.dir.path());
    let base = format!("http://127.0.0.1:{}", cluster.http_port);
    let wait = Duration::from_secs(20);

    // Overview: executors, the runs, KPI freshness, the archive.
    b.goto(&format!("{base}/"));
    b.wait_text("#health", "healthy", wait);
    let executors = b.texts("#executors tbody tr");
    assert_eq!(executors.len(), 2, "{executors:?}");
    assert!(executors.iter().all(|e| e.contains("active") && e.contains("127.0.0.1:")), "{executors:?}");
    b.wait_text(&format!("tr[data-run='{kpi_id}']"), "succeeded", wait);
    assert!(b.text("#kpi-freshness").contains(" old"), "{}", b.text("#kpi-freshness"));
    let archived = format!("{} documents archived", thousands(archive["total_records"].as_u64().unwrap()));
    assert!(b.text("#archive-status").contains(&archived), "{}", b.text("#archive-status"));
    b.screenshot("overview");

    // KPIs: the tables hold Redis's rows, in Redis's order.
    b.goto(&format!("{base}/kpis"));
    let window = redis_json(&redis, "kpi:dc_utilization");
    b.wait_text("#kpi-window", window["window_start"].as_str().unwrap(), wait);
    for name in ["dc_utilization", "stockout_alerts", "supplier_performance", "regional_performance"] {
        let rows = redis_json(&redis, &format!("kpi:{name}"))["rows"].as_array().unwrap().clone();
        let shown = b.texts(&format!("#kpi-{name} tbody tr"));
        if rows.is_empty() {
            assert_eq!(shown, ["none"], "{name}");
            continue;
        }
        assert_eq!(shown.len(), rows.len(), "{name}: {shown:?}");
        let key = match name {
            "dc_utilization" => "dc_id",
            "stockout_alerts" => "sku_id",
            "supplier_performance" => "supplier_id",
            _ => "region",
        };
        for (row, text) in rows.iter().zip(&shown) {
            assert!(text.starts_with(row[key].as_str().unwrap()), "{name}: {text} vs {row}");
        }
    }
    // The trends: six figures from the one KPI run's summary, each the
    // same as the KPIs in Redis say.
    assert_eq!(b.texts("#kpi-trends [data-trend]").len(), 6);
    let alerts = redis_json(&redis, "kpi:stockout_alerts")["rows"].as_array().unwrap().len();
    assert_eq!(b.text("[data-trend=stockout_alerts] .big"), alerts.to_string());
    let regions = redis_json(&redis, "kpi:regional_performance")["rows"].as_array().unwrap().clone();
    let revenue: f64 = regions.iter().map(|r| r["revenue"].as_f64().unwrap()).sum();
    assert_eq!(b.text("[data-trend=revenue] .big"), thousands(revenue.round() as u64));
    let points = b.script("return document.querySelector('[data-trend=revenue] svg').dataset.points", json!([]));
    assert_eq!(points, "1");
    b.screenshot("kpis");

    // Job runs: the filter, then a run down to its stages and plan graph.
    b.goto(&format!("{base}/runs"));
    b.wait_text("table.runs", archive_id, wait);
    // Every status a run can end in can be filtered for.
    let statuses = b.texts("select[name=status] option");
    assert_eq!(
        statuses,
        ["any", "running", "succeeded", "failed", "skipped", "cancelled", "interrupted", "superseded"],
        "{statuses:?}"
    );
    b.click("select[name=job] option[value=archive]");
    b.wait_text("table.runs", archive_id, wait);
    let rows = b.texts("table.runs tbody tr");
    assert_eq!(rows.len(), 1, "{rows:?}");
    b.screenshot("runs-filtered");
    b.click(&format!("tr[data-run='{archive_id}'] a"));
    b.wait_text("#run-status", "succeeded", wait);
    b.goto(&format!("{base}/runs/{kpi_id}"));
    b.wait_text("#run-status", "succeeded", wait);
    assert_eq!(b.texts(".job").len(), 11);
    let nodes = b.script("return document.querySelectorAll('svg [data-stage-node]').length", json!([]));
    assert!(nodes.as_u64().unwrap() >= 8, "{nodes}");
    // Open the first stage's plan and tasks, and show the stage graph.
    b.click("details[data-key*='/'] summary");
    b.script("document.querySelector('.job').scrollIntoView()", json!([]));
    assert!(
        b.text("details[data-key*='/'][open]").contains("ShuffleWriterExec"),
        "{}",
        b.text("details[data-key*='/']")
    );
    b.screenshot("kpi-run");
    // A Ballista job's own page, from its link.
    let job = run_job_id(&cluster, kpi_id);
    b.click(&format!(".job[data-job='{job}'] a"));
    b.wait_text("main", &format!("Ballista job {job}"), wait);
    let stages = b.texts("tr[data-stage]");
    assert!(!stages.is_empty() && stages.iter().all(|s| s.contains("succeeded")), "{stages:?}");
    b.screenshot("ballista-job");

    // Archives.
    b.goto(&format!("{base}/archives"));
    let row = b.wait_text(&format!("tr[data-run='{archive_id}']"), "succeeded", wait);
    assert!(row.contains(&thousands(archive["total_records"].as_u64().unwrap())), "{row}");
    for c in archive["collections"].as_array().unwrap() {
        assert!(row.contains(c["collection"].as_str().unwrap()), "{row}");
    }
    b.screenshot("archives");

    // Schedules: trigger and pause from the page.
    b.goto(&format!("{base}/schedules"));
    b.wait_text("tr[data-schedule=hourly]", "every 1h", wait);
    b.click("tr[data-schedule=hourly] button[data-action=trigger]");
    b.wait_text("#schedule-message", "hourly: trigger done", wait);
    let (_, runs) = get(&cluster, "/api/runs?trigger=schedule:hourly");
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    b.click("tr[data-schedule=hourly] button[data-action=pause]");
    b.wait_text("tr[data-schedule=hourly]", "paused", wait);
    assert_eq!(get(&cluster, "/api/schedules").1[0]["paused"], true);
    b.screenshot("schedules");

    // SQL: a slow query cancelled from the page, then a result.
    b.goto(&format!("{base}/sql"));
    b.type_into("#sql", "SELECT count(*) AS n FROM partitioned_range(400000, 8, 300)");
    b.click("#run-sql");
    b.wait_text("#sql-status", "running", wait);
    // Cancel once the Ballista job runs on the executors.
    let deadline = Instant::now() + wait;
    while get(&cluster, "/api/overview").1["executors"].as_array().unwrap().iter().all(|e| e["running_tasks"] == 0) {
        assert!(Instant::now() < deadline, "the slow query's tasks never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    b.screenshot("sql-running");
    b.click("#cancel");
    b.wait_text("#sql-status", "cancelled", wait);
    let (_, cancelled) = get(&cluster, "/api/runs?job=sql&status=cancelled");
    assert_eq!(cancelled.as_array().unwrap().len(), 1, "{cancelled}");
    let run = get(&cluster, &format!("/api/runs/{}", cancelled[0]["run_id"].as_str().unwrap())).1;
    assert_eq!(run["jobs"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(
        (run["jobs"][0]["status"].as_str(), run["jobs"][0]["error"].as_str()),
        (Some("failed"), Some("Cancelled")),
        "{run}"
    );
    let deadline = Instant::now() + wait;
    while get(&cluster, "/api/overview").1["executors"].as_array().unwrap().iter().any(|e| e["running_tasks"] != 0) {
        assert!(Instant::now() < deadline, "tasks still run after the cancel");
        std::thread::sleep(Duration::from_millis(100));
    }
    b.type_into("#sql", "SELECT dc_id, region FROM dcs_dim ORDER BY dc_id LIMIT 3");
    b.click("#run-sql");
    b.wait_text("#sql-result", "3 rows", wait);
    let rows = b.texts("#sql-result tbody tr");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[0].starts_with("DC-01") && rows[2].starts_with("DC-03"), "{rows:?}");
    b.screenshot("sql-result");
    eprintln!("screenshots: {}", b.shots.display());
}
