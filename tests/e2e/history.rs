//! The run history on etcd once it outgrows one etcd answer: about three
//! days of the default schedules' runs.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use stockyard_tests::{Cluster, Etcd, http};

/// Runs stored: about 7.5 MiB with their padding, over the 4 MiB a client
/// takes in one answer.
const RUNS: u64 = 6000;

fn runs(cluster: &Cluster, query: &str) -> Vec<Value> {
    let (code, body) = http(cluster.http_port, "GET", &format!("/api/runs?limit=100000{query}"), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_history_larger_than_one_etcd_answer_is_read_whole_and_taken_over() {
    let etcd = Etcd::start();
    let spec = format!("etcd://{}", etcd.endpoint());
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Run i started i seconds ago: the oldest is an archive run, the
    // newest a KPI run whose scheduler died while it ran.
    let record = |i: u64| {
        let started = now - i * 1000;
        let (job, id) = if i == RUNS - 1 { ("archive", "archive-old") } else { ("kpi", "") };
        let id = if i == 0 {
            "kpi-orphan".to_string()
        } else if id.is_empty() {
            format!("kpi-{i:05}")
        } else {
            id.into()
        };
        let mut run = json!({
            "run_id": id, "job": job, "status": "succeeded", "trigger": "schedule:kpi (due)",
            "started_at_ms": started, "ended_at_ms": started + 500, "scheduler": "gone",
            "summary": {"padding": "x".repeat(1200)},
        });
        if i == 0 {
            run["status"] = json!("running");
            run["ended_at_ms"] = json!(0);
        }
        (format!("runs/{started:013}-{id}"), serde_json::to_vec(&run).unwrap())
    };
    rt.block_on(async {
        let store = stockyard_state::open(&spec).await.unwrap();
        let puts = futures::stream::iter(0..RUNS).map(|i| {
            let store = store.clone();
            async move {
                let (key, value) = record(i);
                store.put(&key, value).await.unwrap();
            }
        });
        puts.buffer_unordered(64).collect::<Vec<()>>().await;
    });

    let env = vec![("STOCKYARD_STATE".to_string(), spec)];
    let cluster = Cluster::start_with_env(2, env);
    // The leader takes over the orphan: interrupted, with a rerun named.
    let deadline = Instant::now() + Duration::from_secs(60);
    let orphan = loop {
        let (_, body) = http(cluster.http_port, "GET", "/api/runs/kpi-orphan", None);
        let run: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if run["status"] == "interrupted" {
            break run;
        }
        assert!(Instant::now() < deadline, "the orphan was not taken over: {body}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(orphan["rerun_as"].as_str().is_some_and(|r| r.starts_with("kpi-")), "{orphan}");
    assert_eq!(orphan["error"], "its scheduler (gone) stopped during the run");

    // Every stored run is listed: 5,998 KPI runs and the archive run
    // succeeded, the orphan interrupted, and its rerun (which fails: no
    // MongoDB here) on top.
    let succeeded = runs(&cluster, "&status=succeeded");
    assert_eq!(succeeded.len() as u64, RUNS - 1);
    assert_eq!(succeeded.last().unwrap()["run_id"], "archive-old", "oldest last");
    let all = runs(&cluster, "");
    assert_eq!(all.len() as u64, RUNS + 1, "{:?}", all.first());
    let (code, archives) = http(cluster.http_port, "GET", "/api/archives", None);
    assert_eq!(code, 200);
    let archives: Vec<Value> = serde_json::from_str(&archives).unwrap();
    assert_eq!(archives.iter().map(|r| r["run_id"].clone()).collect::<Vec<_>>(), [json!("archive-old")]);
}

/// On etcd, a compare-and-swap changes a key only from the value it holds
/// (a transaction), and creates one only where none is.
#[test]
fn etcd_swaps_a_key_only_from_the_value_it_holds() {
    let etcd = Etcd::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = stockyard_state::open(&format!("etcd://{}", etcd.endpoint())).await.unwrap();
        assert!(store.put_if("schedules/kpi", None, Some(b"one".to_vec())).await.unwrap());
        assert!(!store.put_if("schedules/kpi", None, Some(b"two".to_vec())).await.unwrap(), "it exists");
        assert!(!store.put_if("schedules/kpi", Some(b"zero"), Some(b"two".to_vec())).await.unwrap());
        assert!(store.put_if("schedules/kpi", Some(b"one"), Some(b"two".to_vec())).await.unwrap());
        assert_eq!(store.get("schedules/kpi").await.unwrap(), Some(b"two".to_vec()));
        assert!(!store.put_if("schedules/kpi", Some(b"one"), None).await.unwrap());
        assert!(store.put_if("schedules/kpi", Some(b"two"), None).await.unwrap());
        assert_eq!(store.get("schedules/kpi").await.unwrap(), None);
        // Deleted, it can be created again.
        assert!(store.put_if("schedules/kpi", None, Some(b"three".to_vec())).await.unwrap());
        assert_eq!(store.keys("schedules/").await.unwrap(), ["schedules/kpi"]);
    });
}

/// On etcd, a scheduler's writes carry its claim on the leadership: once
/// another holds the leader key, even before its own campaign has noticed,
/// every write it makes is refused, and its reads go on.
#[test]
fn on_etcd_a_scheduler_that_lost_its_claim_writes_nothing() {
    use std::sync::Arc;
    use stockyard_state::{Role, StateError};
    let etcd = Etcd::start();
    let spec = format!("etcd://{}", etcd.endpoint());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (leader, other) =
            (stockyard_state::open(&spec).await.unwrap(), stockyard_state::open(&spec).await.unwrap());
        // Before it campaigns nothing fences a store.
        leader.put("schedules/kpi", b"before".to_vec()).await.unwrap();
        let role = Arc::new(tokio::sync::watch::channel(Role::Follower(None)).0);
        leader.campaign("a".into(), role.clone());
        let mut rx = role.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|r| *r == Role::Leader)).await.unwrap().unwrap();
        let term = leader.term().expect("a leader has a term");
        leader.put("schedules/kpi", b"leading".to_vec()).await.unwrap();
        // A failed comparison is an answer, not a fence.
        assert!(!leader.put_if("schedules/kpi", Some(b"before"), None).await.unwrap());
        assert!(leader.put_if("schedules/kpi", Some(b"leading"), Some(b"swapped".to_vec())).await.unwrap());

        // Another claim replaces its own (as after its lease lapsed while
        // it was frozen): a newer key, a larger revision.
        other.delete("leader").await.unwrap();
        other.put("leader", b"someone else".to_vec()).await.unwrap();
        for attempt in [leader.put("schedules/kpi", b"zombie".to_vec()).await, leader.delete("schedules/kpi").await] {
            assert!(matches!(attempt, Err(StateError::Fenced { .. })), "{attempt:?}");
        }
        let swap = leader.put_if("schedules/kpi", Some(b"swapped"), None).await;
        assert!(matches!(swap, Err(StateError::Fenced { .. })), "{swap:?}");
        assert_eq!(leader.get("schedules/kpi").await.unwrap(), Some(b"swapped".to_vec()), "reads go on");
        // Its campaign notices within a second and follows.
        tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|r| *r == Role::Follower(Some("someone else".into()))),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(leader.term(), None, "it was leading in term {term}");
        let late = leader.put("schedules/kpi", b"late".to_vec()).await.unwrap_err();
        assert!(
            late.to_string().ends_with("the write was refused: this scheduler no longer leads (another took over)"),
            "{late}"
        );
    });
}
