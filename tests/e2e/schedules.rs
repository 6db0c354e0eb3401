//! Schedules and the run history on a real cluster: firing on time,
//! skipped overlaps, pause, resume, trigger and remove through the CLI;
//! state that survives a scheduler restart on the file store and on etcd;
//! an unreachable etcd.

use std::time::Duration;

use serde_json::Value;
use stockyard_tests::{Cluster, Etcd, free_port};

pub(crate) fn json_lines(s: &str) -> Vec<Value> {
    s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn schedules(cluster: &Cluster) -> Vec<Value> {
    json_lines(&cluster.stockyard(&["schedules", "--format", "json"]).ok().stdout)
}

fn schedule(cluster: &Cluster, name: &str) -> Value {
    schedules(cluster).into_iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no schedule {name}"))
}

/// Runs started by schedule `name`, oldest first.
fn runs_of(cluster: &Cluster, name: &str) -> Vec<Value> {
    let mut runs: Vec<Value> = json_lines(&cluster.stockyard(&["jobs", "--format", "json"]).ok().stdout)
        .into_iter()
        .filter(|r| r["trigger"].as_str().is_some_and(|t| t.starts_with(&format!("schedule:{name} "))))
        .collect();
    runs.reverse();
    runs
}

pub(crate) fn wait_until(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    assert!(stockyard_tests::within(timeout, done), "timed out waiting for {what}");
}

#[test]
fn schedules_fire_on_time_skip_overlaps_and_obey_pause_resume_trigger_remove() {
    let cluster = Cluster::start(2);
    // A quick statement every second.
    cluster.stockyard(&["schedules", "add", "quick", "--job", "sql", "--every", "1s", "--sql", "SELECT 1"]).ok();
    // A 3-second statement every second: ticks come while it runs.
    let slow = "SELECT count(*) FROM partitioned_range(24576, 1, 1000)";
    cluster.stockyard(&["schedules", "add", "slow", "--job", "sql", "--every", "1s", "--sql", slow]).ok();
    std::thread::sleep(Duration::from_millis(4500));

    let quick = runs_of(&cluster, "quick");
    assert!((3..=6).contains(&quick.len()), "about one run a second: {quick:?}");
    assert!(quick.iter().filter(|r| r["status"] != "running").all(|r| r["status"] == "succeeded"), "{quick:?}");
    // Started on the one-second grid: gaps between starts near 1 s.
    let started: Vec<i64> = quick
        .iter()
        .map(|r| chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap().timestamp_millis())
        .collect();
    for pair in started.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((700..=1600).contains(&gap), "runs a second apart: {started:?}");
    }

    // Never two slow runs at once, and the overlapping ticks are counted.
    wait_until("a finished slow run", Duration::from_secs(20), || {
        runs_of(&cluster, "slow").iter().any(|r| r["status"] == "succeeded")
    });
    let slow_runs = runs_of(&cluster, "slow");
    for pair in slow_runs.windows(2) {
        let ended = pair[0]["ended_at"].as_str().unwrap_or_default();
        let next = pair[1]["started_at"].as_str().unwrap();
        assert!(!ended.is_empty() && ended <= next, "slow runs overlap: {slow_runs:?}");
    }
    let info = schedule(&cluster, "slow");
    assert!(info["skipped_ticks"].as_u64().unwrap() >= 2, "{info}");
    assert!(!info["last_skipped"].as_str().unwrap().is_empty(), "{info}");
    // Triggering it while it runs is refused, plainly.
    wait_until("a slow run in flight", Duration::from_secs(10), || {
        schedule(&cluster, "slow")["last_status"] == "running"
    });
    let busy = cluster.stockyard(&["schedules", "trigger", "slow"]);
    assert_eq!(busy.code, 1);
    assert!(busy.stderr.contains("is still running its last run"), "{}", busy.stderr);
    cluster.stockyard(&["schedules", "remove", "slow"]).ok();

    // Paused: no new runs; resumed: runs again.
    cluster.stockyard(&["schedules", "pause", "quick"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    let paused_at = runs_of(&cluster, "quick").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(runs_of(&cluster, "quick").len(), paused_at, "a paused schedule fired");
    let listed = schedule(&cluster, "quick");
    assert_eq!(listed["paused"], true);
    assert_eq!(listed["next_run"], "");
    cluster.stockyard(&["schedules", "resume", "quick"]).ok();
    wait_until("runs after resume", Duration::from_secs(10), || runs_of(&cluster, "quick").len() >= paused_at + 2);

    // A manual trigger is a run like the others, recorded as manual.
    cluster.stockyard(&["schedules", "pause", "quick"]).ok();
    wait_until("quick idle", Duration::from_secs(10), || schedule(&cluster, "quick")["last_status"] != "running");
    let trigger = cluster.stockyard(&["schedules", "trigger", "quick"]).ok();
    let run_id = json_lines(&trigger.stdout)[0]["run_id"].as_str().unwrap().to_string();
    wait_until("the triggered run", Duration::from_secs(10), || {
        runs_of(&cluster, "quick").iter().any(|r| r["run_id"] == run_id.as_str() && r["status"] == "succeeded")
    });
    let run = runs_of(&cluster, "quick").into_iter().find(|r| r["run_id"] == run_id.as_str()).unwrap();
    assert_eq!(run["trigger"], "schedule:quick (manual)");
    assert!(!run["ballista_jobs"].as_array().unwrap().is_empty(), "the run names its Ballista jobs: {run}");

    cluster.stockyard(&["schedules", "remove", "quick"]).ok();
    assert!(schedules(&cluster).is_empty());

    // Bad input is refused with the reason: a bad flag value by the CLI
    // (a usage error, 2), the rest by the scheduler (1).
    let run = cluster.stockyard(&["schedules", "add", "x", "--job", "nope", "--every", "1m"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no job named 'nope' (jobs: kpi, archive, compact, sql)"), "{}", run.stderr);
    for (args, says) in [
        (vec!["schedules", "add", "x", "--job", "kpi", "--cron", "61 * * * *"], "is not a cron expression"),
        (vec!["schedules", "add", "x y", "--job", "kpi", "--every", "1m"], "is not a schedule name"),
        (vec!["schedules", "pause", "ghost"], "no schedule named 'ghost'"),
    ] {
        let run = cluster.stockyard(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    let run = cluster.stockyard(&["schedules", "add", "x", "--job", "kpi"]);
    assert_eq!(run.code, 2, "neither --every nor --cron: {}", run.stderr);
}

/// Adds a paused schedule and triggers it once; restarts the scheduler;
/// both are still there.
fn survives_restart(mut cluster: Cluster) {
    // The defaults are written by the leader once it has won its election,
    // which on etcd can come a moment after the port answers.
    let names = || schedules(&cluster).iter().map(|s| s["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    wait_until("the default schedules", Duration::from_secs(10), || names().len() >= 3);
    let listed = names();
    assert_eq!(listed, vec!["archive", "compact", "kpi"], "the default schedules on a new store");
    let kpi = schedule(&cluster, "kpi");
    assert_eq!((kpi["job"].as_str(), kpi["every"].as_str()), (Some("kpi"), Some("1m")));
    assert_eq!(schedule(&cluster, "archive")["every"], "5m");
    assert_eq!(schedule(&cluster, "compact")["every"], "1h");
    cluster.stockyard(&["schedules", "remove", "kpi"]).ok();
    cluster.stockyard(&["schedules", "pause", "archive"]).ok();
    cluster
        .stockyard(&["schedules", "add", "nightly", "--job", "sql", "--cron", "0 2 * * *", "--sql", "SELECT 42"])
        .ok();
    cluster.stockyard(&["schedules", "pause", "nightly"]).ok();
    let trigger = cluster.stockyard(&["schedules", "trigger", "nightly"]).ok();
    let run_id = json_lines(&trigger.stdout)[0]["run_id"].as_str().unwrap().to_string();
    wait_until("the triggered run", Duration::from_secs(15), || {
        runs_of(&cluster, "nightly").iter().any(|r| r["status"] == "succeeded")
    });

    cluster.restart_scheduler();
    let after = schedules(&cluster);
    let names: Vec<&str> = after.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["archive", "compact", "nightly"], "a removed default stays removed");
    let nightly = schedule(&cluster, "nightly");
    assert_eq!((nightly["cron"].as_str(), nightly["paused"].as_bool()), (Some("0 2 * * *"), Some(true)));
    assert_eq!(nightly["last_run_id"], run_id.as_str());
    assert_eq!(nightly["last_status"], "succeeded");
    let runs = runs_of(&cluster, "nightly");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["summary"]["rows"], 1);
}

#[test]
fn state_survives_a_scheduler_restart_on_the_file_store() {
    survives_restart(Cluster::start_with_env(2, vec![("STOCKYARD_DEFAULT_SCHEDULES".into(), "true".into())]));
}

#[test]
fn state_survives_a_scheduler_restart_on_etcd() {
    let etcd = Etcd::start();
    let cluster = Cluster::start_with_env(
        2,
        vec![
            ("STOCKYARD_STATE".into(), format!("etcd://{}", etcd.endpoint())),
            ("STOCKYARD_DEFAULT_SCHEDULES".into(), "true".into()),
        ],
    );
    survives_restart(cluster);
    // It is etcd that holds it.
    let keys = std::process::Command::new("etcdctl")
        .args(["--endpoints", &etcd.endpoint(), "get", "--prefix", "--keys-only", "stockyard/schedules/"])
        .output()
        .expect("etcdctl");
    let keys = String::from_utf8_lossy(&keys.stdout);
    assert!(keys.contains("stockyard/schedules/nightly"), "{keys}");
}

#[test]
fn an_unreachable_etcd_gives_clear_errors_and_queries_go_on() {
    let port = free_port();
    let cluster = Cluster::start_with_env(
        2,
        vec![
            ("STOCKYARD_STATE".into(), format!("etcd://127.0.0.1:{port}")),
            ("STOCKYARD_DEFAULT_SCHEDULES".into(), "true".into()),
        ],
    );
    // Queries do not need the state store.
    let out = cluster.sql_csv("SELECT count(*) AS n FROM partitioned_range(10, 2)");
    assert_eq!(out.trim(), "n\n10");
    let list = cluster.stockyard(&["schedules"]);
    assert_eq!(list.code, 1);
    assert!(list.stderr.contains(&format!("etcd at 127.0.0.1:{port}")), "{}", list.stderr);
    // etcd comes up: the store answers and the defaults appear, once.
    let _etcd = Etcd::start_on(port);
    wait_until("schedules from etcd", Duration::from_secs(30), || {
        let run = cluster.stockyard(&["schedules", "--format", "json"]);
        run.code == 0 && json_lines(&run.stdout).len() == 3
    });
}
