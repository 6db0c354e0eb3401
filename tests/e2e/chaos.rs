//! Chaos: KPI and archive runs on schedule for a couple of minutes on two
//! schedulers and two executors, while a driver kills executors, kills the
//! leader (SIGKILL and SIGTERM) and stops MongoDB, Redis and etcd for a
//! while, and a feeder keeps inserting orders. At the end every archived
//! order is in the archive exactly once and nowhere else, no run is left
//! running, the KPIs in Redis are the newest window's, and a report says
//! what was killed when and what each run did.
//!
//! `STOCKYARD_CHAOS_SECS` sets how long the chaos lasts (100 s by
//! default); the report goes to `$CARGO_TARGET_DIR/chaos-report.txt`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongodb::bson::{DateTime, Document, doc};
use serde_json::Value;
use stockyard_mongo::rest_column::ARCHIVE_MARK;
use stockyard_tests::{Etcd, Mongo, Redis};

use crate::archive::{DB, all, archived};
use crate::ha::{Ha, Scheduler};
use crate::schedules::json_lines;

/// Orders older than this are archived.
const OLDER_THAN: &str = "60m";

/// What the feeder inserted: ids it knows landed, and ids of inserts that
/// failed (they may or may not have landed).
#[derive(Default)]
struct Fed {
    certain: Vec<(String, bool)>,
    uncertain: Vec<(String, bool)>,
}

/// Inserts a batch of orders every half second until `stop`: each batch
/// holds old orders (two hours back: archived) and recent ones (stay).
fn feeder(uri: String, stop: Arc<AtomicBool>, fed: Arc<Mutex<Fed>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let options = mongodb::options::ClientOptions::parse(format!(
                "{uri}/?serverSelectionTimeoutMS=2000&connectTimeoutMS=2000"
            ))
            .await
            .unwrap();
            let client = mongodb::Client::with_options(options).unwrap();
            let orders = client.database(DB).collection::<Document>("orders_fact");
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let now = chrono::Utc::now().timestamp_millis();
                let batch: Vec<(String, bool, Document)> = (0..10)
                    .map(|i| {
                        n += 1;
                        let old = i < 6;
                        let at = if old { now - 2 * 3_600_000 } else { now - 60_000 };
                        let id = format!("C{n:06}");
                        let d = doc! {"_id": &id, "order_id": &id, "sku_id": format!("SKU-{}", n % 7), "dc_id": format!("DC-{}", n % 3),
                            "quantity": 1 + (n % 5) as i32, "unit_price": 2.5, "status": "FULFILLED", "order_ts": DateTime::from_millis(at)};
                        (id, old, d)
                    })
                    .collect();
                let landed = orders.insert_many(batch.iter().map(|(_, _, d)| d.clone())).await.is_ok();
                {
                    let mut fed = fed.lock().unwrap();
                    let into = if landed { &mut fed.certain } else { &mut fed.uncertain };
                    into.extend(batch.into_iter().map(|(id, old, _)| (id, old)));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    })
}

/// What the driver did, when (seconds since the chaos began).
struct Report {
    began: Instant,
    events: Vec<(f64, String)>,
}

impl Report {
    fn event(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("[chaos {:6.1}s] {what}", self.began.elapsed().as_secs_f64());
        self.events.push((self.began.elapsed().as_secs_f64(), what));
    }
}

/// The index of the scheduler that leads, waiting up to `timeout`.
fn leader(schedulers: &[Option<Scheduler>; 2], timeout: Duration) -> Option<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(i) = (0..2).find(|&i| schedulers[i].as_ref().is_some_and(Scheduler::leads)) {
            return Some(i);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every order id in the archive's Parquet files under `dest`, with how
/// many times it is there.
fn archived_ids(dest: &std::path::Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for d in archived(dest, "orders_fact").into_values().flatten() {
        let id = d.get_str("order_id").map(str::to_string).unwrap_or_else(|_| format!("{:?}", d.get("_id")));
        *out.entry(id).or_insert(0) += 1;
    }
    out
}

#[test]
fn runs_on_schedule_survive_chaos_and_lose_or_double_nothing() {
    let chaos_for =
        Duration::from_secs(std::env::var("STOCKYARD_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(100));
    let mut etcd = Etcd::start();
    let mut mongo = Mongo::start();
    let mut redis = Redis::start();
    let dest = tempfile::tempdir().unwrap();
    let dest_str = dest.path().to_str().unwrap().to_string();
    let mut ha = Ha::watched(&etcd, &mongo, chaos_for + Duration::from_secs(150));
    ha.env.push(("STOCKYARD_REDIS_URL".into(), redis.url()));
    // A stalled MongoDB fails a round trip in 5 s, not the default 30 s.
    ha.env.push(("STOCKYARD_MONGO_TIMEOUT".into(), "5s".into()));
    let mut schedulers: [Option<Scheduler>; 2] = [Some(ha.scheduler(0, "scheduler-0", &[])), None];
    let first = leader(&schedulers, Duration::from_secs(20)).expect("scheduler-0 leads");
    schedulers[1] = Some(ha.scheduler(1, "scheduler-1", &[]));
    ha.executor();
    ha.executor();
    ha.wait("two executors", Duration::from_secs(60), || {
        schedulers[first].as_ref().unwrap().get("/api/executors").as_array().is_some_and(|e| e.len() == 2)
    });
    ha.stockyard(&["schedules", "add", "kpi-chaos", "--job", "kpi", "--every", "5s"]).ok();
    let archive_params = [
        "--param",
        "threshold_mb=0",
        "--param",
        &format!("older_than={OLDER_THAN}"),
        "--param",
        &format!("dest={dest_str}"),
    ];
    let mut add = vec!["schedules", "add", "archive-chaos", "--job", "archive", "--every", "10s"];
    add.extend(archive_params.iter().map(|s| &**s));
    ha.stockyard(&add).ok();

    let stop = Arc::new(AtomicBool::new(false));
    let fed = Arc::new(Mutex::new(Fed::default()));
    let feeding = feeder(mongo.uri(), stop.clone(), fed.clone());
    let mut report = Report { began: Instant::now(), events: Vec::new() };
    let down = Duration::from_secs(8);
    let mut step = 0usize;
    while report.began.elapsed() < chaos_for {
        std::thread::sleep(Duration::from_secs(6));
        match step % 6 {
            0 => {
                let i = step / 6 % ha.executors.len();
                ha.executors[i].kill();
                report.event(format!("SIGKILL executor {i}; a new executor starts"));
                ha.executor();
                let last = ha.executors.len() - 1;
                ha.executors.swap(i, last);
            }
            1 | 3 => {
                let Some(i) = leader(&schedulers, Duration::from_secs(30)) else {
                    report.event("no leader within 30 s");
                    step += 1;
                    continue;
                };
                let mut old = schedulers[i].take().unwrap();
                if step % 6 == 1 {
                    old.proc.kill();
                    report.event(format!("SIGKILL the leader, scheduler-{i}"));
                } else {
                    old.proc.stop(Duration::from_secs(15));
                    report.event(format!("SIGTERM the leader, scheduler-{i}"));
                }
                std::thread::sleep(Duration::from_secs(2));
                schedulers[i] = Some(ha.scheduler(i, &format!("scheduler-{i}-step{step}"), &[]));
                report.event(format!("scheduler-{i} started again"));
            }
            2 => {
                mongo.proc.stop(Duration::from_secs(20));
                report.event(format!("MongoDB stopped for {down:?}"));
                std::thread::sleep(down);
                mongo.restart(&[]);
                report.event("MongoDB started again");
            }
            4 => {
                report.event(format!("Redis stopped for {down:?} (it keeps nothing)"));
                redis.restart_after(down);
                report.event("Redis started again");
            }
            _ => {
                report.event(format!("etcd stopped for {down:?}"));
                etcd.restart_after(down);
                report.event("etcd started again");
            }
        }
        step += 1;
    }
    stop.store(true, Ordering::SeqCst);
    feeding.join().unwrap();
    report.event("chaos over: the feeder stopped; the schedules are paused");

    // Settle: the schedules paused, the runs going on end, then one last
    // archive and KPI run by hand finish what is left.
    let lead = leader(&schedulers, Duration::from_secs(30)).unwrap_or_else(|| panic!("no leader:\n{}", ha.logs()));
    for name in ["kpi-chaos", "archive-chaos"] {
        ha.stockyard(&["schedules", "pause", name]).ok();
    }
    ha.wait("two executors after the chaos", Duration::from_secs(60), || {
        schedulers[lead]
            .as_ref()
            .unwrap()
            .get("/api/executors")
            .as_array()
            .is_some_and(|e| e.iter().filter(|e| e["state"] == "active").count() == 2)
    });
    let runs = || json_lines(&ha.stockyard(&["jobs", "--format", "json"]).ok().stdout);
    ha.wait("the runs going on to end", Duration::from_secs(90), || runs().iter().all(|r| r["status"] != "running"));
    let last_archive =
        ha.stockyard(&["run", "archive", "--threshold-mb", "0", "--older-than", OLDER_THAN, "--dest", &dest_str]);
    assert_eq!(
        last_archive.code,
        0,
        "the last archive run: {}\n{}\n{}",
        last_archive.stdout,
        last_archive.stderr,
        ha.logs()
    );
    let kpi = ha.stockyard(&["run", "kpi"]);
    assert_eq!(kpi.code, 0, "the last KPI run: {}\n{}", kpi.stderr, ha.logs());

    // The report: what the driver did, and what every run did.
    let history = runs();
    let mut text = String::from("# Chaos report\n\n## What was done\n");
    for (at, what) in &report.events {
        text.push_str(&format!("{at:7.1}s  {what}\n"));
    }
    text.push_str(&format!(
        "\n## Runs (oldest first; the chaos began at {})\n",
        chrono::Utc::now() - report.began.elapsed()
    ));
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for r in history.iter().rev() {
        let status = r["status"].as_str().unwrap_or("?").to_string();
        *by_status.entry(format!("{} {status}", r["job"].as_str().unwrap_or("?"))).or_default() += 1;
        let error: String = r["error"].as_str().unwrap_or("").chars().take(110).collect();
        let rerun =
            r["rerun_as"].as_str().filter(|s| !s.is_empty()).map(|s| format!(" rerun as {s}")).unwrap_or_default();
        // Times of day: `2026-12-03T12:43:02.123Z` → `12:43:02.123`.
        let clock = |k: &str| r[k].as_str().and_then(|t| t.get(11..23)).unwrap_or("-").to_string();
        text.push_str(&format!(
            "{:<34} {:<12} {:<30} {} → {}{rerun} {error}\n",
            r["run_id"].as_str().unwrap_or("?"),
            status,
            r["trigger"].as_str().unwrap_or("?"),
            clock("started_at"),
            clock("ended_at"),
        ));
    }
    text.push_str(&format!("\n## Totals\n{by_status:#?}\n"));
    if let Ok(target) = std::env::var("CARGO_TARGET_DIR") {
        std::fs::write(std::path::Path::new(&target).join("chaos-report.txt"), &text).ok();
    }
    println!("{text}");

    // No run is left running; every interrupted run was rerun.
    assert!(history.iter().all(|r| r["status"] != "running"), "{text}");
    for r in history.iter().filter(|r| r["status"] == "interrupted") {
        assert!(r["rerun_as"].as_str().is_some_and(|s| !s.is_empty()), "an interrupted run was not rerun: {r}\n{text}");
    }

    // Every order the feeder inserted is in exactly one place: the old
    // ones in the archive, the recent ones in MongoDB; an insert that
    // failed is in one place or none.
    let in_archive = archived_ids(dest.path());
    let left = all(&mongo, "orders_fact");
    assert!(left.iter().all(|d| !d.contains_key(ARCHIVE_MARK)), "a document kept its archive mark\n{text}");
    let mut in_mongo: BTreeMap<String, usize> = BTreeMap::new();
    for d in &left {
        *in_mongo.entry(d.get_str("order_id").unwrap_or_default().to_string()).or_default() += 1;
    }
    let fed = fed.lock().unwrap();
    assert!(fed.certain.len() > 100, "the feeder inserted only {} orders", fed.certain.len());
    let place = |id: &str| (in_archive.get(id).copied().unwrap_or(0), in_mongo.get(id).copied().unwrap_or(0));
    for (id, old) in &fed.certain {
        let want = if *old { (1, 0) } else { (0, 1) };
        assert_eq!(place(id), want, "order {id} (old: {old}): (in the archive, in MongoDB)\n{text}");
    }
    for (id, old) in &fed.uncertain {
        let (a, m) = place(id);
        assert!(a + m <= 1 && (a == 0 || *old) && (m == 0 || !*old), "order {id}: ({a}, {m})\n{text}");
    }
    let known: std::collections::BTreeSet<&str> =
        fed.certain.iter().chain(&fed.uncertain).map(|(id, _)| id.as_str()).collect();
    assert!(in_archive.keys().all(|id| known.contains(id.as_str())), "the archive holds an order never inserted");

    // Every archive run the ledger knows ended: done or abandoned.
    let ledger = all(&mongo, stockyard_jobs::archive::LEDGER);
    for entry in &ledger {
        let state = entry.get_str("state").unwrap_or("?");
        assert!(matches!(state, "done" | "abandoned"), "archive run left {state}: {entry}\n{text}");
    }

    // The KPIs in Redis are the newest window's that a run wrote.
    let newest = history
        .iter()
        .filter(|r| r["job"] == "kpi" && r["status"] == "succeeded")
        .filter_map(|r| r["summary"]["window_end"].as_str())
        .max()
        .expect("a KPI run succeeded")
        .to_string();
    let held: Value = serde_json::from_str(
        redis.command("GET kpi:inventory_level").lines().nth(1).unwrap_or_else(|| panic!("no KPIs in Redis\n{text}")),
    )
    .unwrap();
    assert_eq!(held["window_end"], newest.as_str(), "{text}");
}
