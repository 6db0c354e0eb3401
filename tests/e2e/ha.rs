//! Scheduler high availability on a real etcd: two schedulers elect a
//! leader; executors and the CLI, given both addresses, follow it. The
//! leader dies in the middle of an archive run: the standby takes over,
//! reruns the run (still exactly once), the executors re-register and the
//! schedules go on. etcd going away stops every schedule until it is back,
//! and nothing fires twice.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use stockyard_tests::cluster::{base_command, run};
use stockyard_tests::process::{Watchdog, log_tails, wait_for_port, watchdog};
use stockyard_tests::{Etcd, Mongo, Proc, Run, archive_all, free_port, http, http_get, within};
use tempfile::TempDir;

use crate::archive::{DB, FACTS, NOW, all, assert_exactly_once, load, selected};
use crate::schedules::json_lines;

/// A scheduler process with its ports.
pub(crate) struct Scheduler {
    pub(crate) proc: Proc,
    port: u16,
    pub(crate) http: u16,
}

impl Scheduler {
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn get(&self, path: &str) -> Value {
        let (status, body) = http_get(self.http, path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub(crate) fn leads(&self) -> bool {
        let (status, body) = http_get(self.http, "/api/overview");
        status == 200 && serde_json::from_str::<Value>(&body).is_ok_and(|o| o["leader"]["this_scheduler"] == true)
    }
}

/// Two schedulers on one etcd and the executors serving them.
pub(crate) struct Ha {
    pub(crate) dir: TempDir,
    pub(crate) env: Vec<(String, String)>,
    /// Both schedulers' `(gRPC, HTTP)` ports, fixed before either starts.
    ports: [(u16, u16); 2],
    pub(crate) executors: Vec<Proc>,
    /// `--executor-timeout` of both schedulers.
    executor_timeout: &'static str,
    _watchdog: Watchdog,
}

impl Ha {
    fn new(etcd: &Etcd, mongo: &Mongo) -> Ha {
        Self::watched(etcd, mongo, Duration::from_secs(150))
    }

    /// Two schedulers' setting, with the processes' logs printed if the
    /// test still runs after `limit`.
    pub(crate) fn watched(etcd: &Etcd, mongo: &Mongo, limit: Duration) -> Ha {
        let env = vec![
            ("STOCKYARD_STATE".to_string(), format!("etcd://{}", etcd.endpoint())),
            ("STOCKYARD_DEFAULT_SCHEDULES".to_string(), "false".to_string()),
            ("STOCKYARD_ALLOW_LOCAL_FILES".to_string(), "true".to_string()),
            ("STOCKYARD_MONGO_URI".to_string(), mongo.uri()),
            ("STOCKYARD_MONGO_DB".to_string(), DB.to_string()),
        ];
        let ports = [(free_port(), free_port()), (free_port(), free_port())];
        let dir = tempfile::tempdir().unwrap();
        let _watchdog = watchdog(limit, dir.path());
        Ha { dir, env, ports, executors: Vec::new(), executor_timeout: "6s", _watchdog }
    }

    /// `127.0.0.1:A,127.0.0.1:B`: what executors and the CLI are given.
    fn addresses(&self) -> String {
        self.ports.map(|(p, _)| format!("127.0.0.1:{p}")).join(",")
    }

    pub(crate) fn scheduler(&self, i: usize, log: &str, extra: &[(&str, &str)]) -> Scheduler {
        let (port, http) = self.ports[i];
        let mut cmd = base_command(&self.env);
        cmd.envs(extra.iter().copied())
            .args(["scheduler", "--port", &port.to_string(), "--http-port", &http.to_string()])
            .args(["--executor-timeout", self.executor_timeout]);
        let proc = Proc::spawn(log, cmd, self.dir.path().join(format!("{log}.log")));
        assert!(wait_for_port(port, Duration::from_secs(30)), "{log} did not listen:\n{}", proc.output());
        Scheduler { proc, port, http }
    }

    pub(crate) fn executor(&mut self) {
        let i = self.executors.len();
        let mut cmd = base_command(&self.env);
        cmd.args(["executor", "--scheduler", &self.addresses()])
            .args(["--port", &free_port().to_string(), "--grpc-port", &free_port().to_string()])
            .args(["--concurrent-tasks", "2", "--heartbeat-interval", "1s"]);
        self.executors.push(Proc::spawn(
            &format!("executor-{i}"),
            cmd,
            self.dir.path().join(format!("executor-{i}.log")),
        ));
    }

    /// `stockyard ARGS` given both schedulers.
    pub(crate) fn stockyard(&self, args: &[&str]) -> Run {
        let mut cmd = base_command(&self.env);
        cmd.env("STOCKYARD_SCHEDULER", self.addresses()).args(args);
        let done = run(cmd);
        assert_ne!(done.code, -2, "stockyard {args:?} hung:\n{}\n{}", done.stderr, self.logs());
        done
    }

    pub(crate) fn logs(&self) -> String {
        log_tails(self.dir.path())
    }

    /// Waits up to `timeout` for `done`, failing with every process's log.
    pub(crate) fn wait(&self, what: &str, timeout: Duration, done: impl FnMut() -> bool) {
        assert!(within(timeout, done), "timed out waiting for {what}:\n{}", self.logs());
    }
}

/// Runs of schedule `name` in `runs` (newest first in), oldest first.
fn runs_of<'a>(runs: &'a [Value], name: &str) -> Vec<&'a Value> {
    let prefix = format!("schedule:{name} ");
    let mut out: Vec<&Value> =
        runs.iter().filter(|r| r["trigger"].as_str().is_some_and(|t| t.starts_with(&prefix))).collect();
    out.reverse();
    out
}

fn millis(t: &Value) -> i64 {
    t.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or(i64::MAX)
}

/// No two runs of a schedule ever overlapped, on whichever scheduler.
fn never_twice_at_once(runs: &[&Value]) {
    for pair in runs.windows(2) {
        let ended = millis(&pair[0]["ended_at"]);
        let started = millis(&pair[1]["started_at"]);
        assert!(ended <= started, "two runs of one schedule overlapped: {} and {}", pair[0], pair[1]);
    }
}

#[test]
fn the_standby_takes_over_a_dead_leaders_run_its_executors_and_its_schedules() {
    let etcd = Etcd::start();
    let mongo = Mongo::start();
    load(&mongo);
    let before = selected(&mongo);
    let everything: BTreeMap<_, _> = FACTS.iter().map(|c| (*c, all(&mongo, c))).collect();
    let dest = tempfile::tempdir().unwrap();
    let mut ha = Ha::new(&etcd, &mongo);

    // A leads; it will die right after its archive run marks the documents.
    let mut a = ha.scheduler(0, "scheduler-a", &[("STOCKYARD_FAULT", "archive-after-mark")]);
    ha.wait("a to lead", Duration::from_secs(20), || a.leads());
    let b = ha.scheduler(1, "scheduler-b", &[]);
    ha.wait("b to know the leader", Duration::from_secs(20), || {
        b.get("/api/overview")["leader"]["address"] == a.addr()
    });
    let overview = b.get("/api/overview");
    assert_eq!(overview["leader"]["this_scheduler"], false);
    assert!(
        overview["problems"]
            .to_string()
            .contains(&format!("this scheduler is a standby; the leader is at {}", a.addr())),
        "{overview}"
    );
    // A standby is ready (it answers where the leader is) and refuses runs.
    assert_eq!(http_get(b.http, "/readyz"), (200, format!("ready: standby, the leader is at {}\n", a.addr())));
    let (status, body) = http(b.http, "POST", "/api/runs", Some(r#"{"job":"sql","params":{"sql":"SELECT 1"}}"#));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(&format!("the leader is at {}", a.addr())), "{body}");

    // Executors given both addresses register with the leader only.
    ha.executor();
    ha.executor();
    ha.wait("two executors on a", Duration::from_secs(60), || {
        a.get("/api/executors").as_array().is_some_and(|e| e.iter().filter(|e| e["state"] == "active").count() == 2)
    });
    assert_eq!(b.get("/api/executors"), serde_json::json!([]));

    // A schedule that fires every second, on whichever scheduler leads.
    ha.stockyard(&["schedules", "add", "tick", "--job", "sql", "--every", "1s", "--sql", "SELECT 1"]).ok();
    ha.wait("tick to run on a", Duration::from_secs(20), || {
        runs_of(&json_lines(&ha.stockyard(&["jobs", "--format", "json"]).stdout), "tick")
            .iter()
            .any(|r| r["status"] == "succeeded")
    });

    // The archive run: a marks, then dies. The CLI follows the run to the
    // new leader and prints the rerun's summary.
    let archive = ha.stockyard(&archive_all(NOW, "120m", dest.path().to_str().unwrap()));
    assert!(a.proc.wait_exit(Duration::from_secs(10)).is_some(), "a died at the fault point");
    assert_eq!(archive.code, 0, "{}\n{}\n{}", archive.stdout, archive.stderr, ha.logs());
    let summary: Value = serde_json::from_str(archive.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert!(b.leads(), "b leads now");

    // The history tells the story: the interrupted run, its rerun on b,
    // which finished what a had marked.
    let runs = json_lines(&ha.stockyard(&["jobs", "--format", "json"]).ok().stdout);
    let b_id = b.get("/api/overview")["leader"]["id"].as_str().unwrap().to_string();
    let rerun = runs.iter().find(|r| r["run_id"] == summary["run_id"]).unwrap();
    let first =
        runs.iter().find(|r| r["run_id"] == rerun["rerun_of"]).unwrap_or_else(|| panic!("no rerun_of in {rerun}"));
    assert_eq!(first["status"], "interrupted", "{first}");
    assert_eq!(first["rerun_as"], rerun["run_id"]);
    assert_ne!(first["scheduler"], b_id.as_str());
    assert_eq!(rerun["scheduler"], b_id.as_str());
    assert_eq!(rerun["trigger"], "takeover");
    // The rerun finished the archive a had started (by its archive id).
    let resumed = summary["resumed_runs"].as_array().unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(resumed.len(), 1, "{summary}");
    assert_ne!(resumed[0], summary["archive_id"]);
    assert_exactly_once(&mongo, dest.path(), &before, &everything);

    // The executors re-registered with b, and the schedule goes on there.
    ha.wait("two executors on b", Duration::from_secs(30), || {
        b.get("/api/executors").as_array().is_some_and(|e| e.iter().filter(|e| e["state"] == "active").count() == 2)
    });
    ha.wait("tick to run on b", Duration::from_secs(20), || {
        let runs = json_lines(&ha.stockyard(&["jobs", "--format", "json"]).stdout);
        runs_of(&runs, "tick").iter().any(|r| r["scheduler"] == b_id.as_str() && r["status"] == "succeeded")
    });
    assert_eq!(
        ha.stockyard(&["sql", "--format", "csv", "SELECT count(*) AS n FROM orders_fact"]).ok().stdout,
        "n\n3\n"
    );

    // a comes back and stands by.
    let a_again = ha.scheduler(0, "scheduler-a-again", &[]);
    ha.wait("a to stand by", Duration::from_secs(20), || a_again.get("/api/overview")["leader"]["id"] == b_id.as_str());
    assert!(!a_again.leads());
    let runs = json_lines(&ha.stockyard(&["jobs", "--format", "json"]).ok().stdout);
    never_twice_at_once(&runs_of(&runs, "tick"));
}

#[test]
fn without_etcd_no_schedule_fires_and_when_it_returns_none_fires_twice() {
    let mut etcd = Etcd::start();
    let mongo = Mongo::start();
    let mut ha = Ha::new(&etcd, &mongo);
    let a = ha.scheduler(0, "scheduler-a", &[]);
    let b = ha.scheduler(1, "scheduler-b", &[]);
    ha.executor();
    ha.executor();
    ha.wait("a leader", Duration::from_secs(20), || a.leads() || b.leads());
    ha.stockyard(&["schedules", "add", "tick", "--job", "sql", "--every", "1s", "--sql", "SELECT 1"]).ok();
    // Executors started while the election ran find the leader.
    ha.wait("the executors to reach the leader", Duration::from_secs(60), || {
        let leader = if a.leads() { &a } else { &b };
        leader
            .get("/api/executors")
            .as_array()
            .is_some_and(|e| e.iter().filter(|e| e["state"] == "active").count() == 2)
    });

    // etcd goes away for 8 s: both step down within a lease, and neither
    // fires a schedule meanwhile.
    etcd.proc.stop(Duration::from_secs(10));
    ha.wait("both to step down", Duration::from_secs(10), || !a.leads() && !b.leads());
    let stepped_down = chrono::Utc::now().timestamp_millis();
    // Queries go on meanwhile; job runs are refused with the reason.
    assert_eq!(ha.stockyard(&["sql", "--format", "csv", "SELECT 1 AS one"]).ok().stdout, "one\n1\n");
    let refused = ha.stockyard(&["run", "kpi"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(refused.stderr.contains("no leader is elected yet (is etcd reachable?)"), "{}", refused.stderr);
    std::thread::sleep(Duration::from_secs(6));
    let back_at = chrono::Utc::now().timestamp_millis();
    etcd.restart_after(Duration::ZERO);
    ha.wait("a leader again", Duration::from_secs(30), || a.leads() || b.leads());
    ha.wait("tick to run again", Duration::from_secs(20), || {
        let runs = json_lines(&ha.stockyard(&["jobs", "--format", "json"]).stdout);
        runs_of(&runs, "tick").iter().any(|r| millis(&r["started_at"]) > back_at)
    });
    std::thread::sleep(Duration::from_secs(2));
    let runs = json_lines(&ha.stockyard(&["jobs", "--format", "json"]).ok().stdout);
    let ticks = runs_of(&runs, "tick");
    // None started while nobody led.
    let quiet: Vec<_> = ticks.iter().filter(|r| (stepped_down..back_at).contains(&millis(&r["started_at"]))).collect();
    assert!(quiet.is_empty(), "runs fired while etcd was down: {quiet:?}");
    // The ticks missed meanwhile are not made up in a burst: after one
    // late run, the next is at least half an interval later.
    let after: Vec<i64> = ticks.iter().map(|r| millis(&r["started_at"])).filter(|t| *t > back_at).collect();
    for pair in after.windows(2) {
        assert!(pair[1] - pair[0] >= 500, "ticks fired in a burst after etcd came back: {after:?}");
    }
    never_twice_at_once(&ticks);
}

#[test]
fn a_leader_that_lost_its_lease_but_lives_lets_its_executors_go_unharmed() {
    let etcd = Etcd::start();
    let mongo = Mongo::start();
    load(&mongo);
    let mut ha = Ha::new(&etcd, &mongo);
    ha.executor_timeout = "12s";
    let a = ha.scheduler(0, "scheduler-a", &[]);
    ha.wait("a to lead", Duration::from_secs(20), || a.leads());
    let b = ha.scheduler(1, "scheduler-b", &[]);
    ha.executor();
    ha.executor();
    let active = |s: &Scheduler| {
        s.get("/api/executors").as_array().map_or(0, |e| e.iter().filter(|e| e["state"] == "active").count())
    };
    ha.wait("two executors on a", Duration::from_secs(60), || active(&a) == 2);

    // a freezes past its lease: b leads, the executors follow it. a wakes
    // as a leader no more, its executors silent for 7 s of its 12 s timeout.
    a.proc.signal(libc::SIGSTOP);
    ha.wait("b to lead", Duration::from_secs(20), || b.leads());
    std::thread::sleep(Duration::from_secs(1));
    a.proc.signal(libc::SIGCONT);
    ha.wait("two executors on b", Duration::from_secs(30), || active(&b) == 2);
    ha.wait("a to stand by", Duration::from_secs(10), || !a.leads());

    // Well past a's executor timeout, both executors still run and serve
    // b: a let them go rather than stop them.
    std::thread::sleep(Duration::from_secs(16));
    for e in &mut ha.executors {
        assert!(e.is_running(), "{} was stopped:\n{}", e.name, e.output());
    }
    assert_eq!(active(&a), 0, "{}", a.get("/api/executors"));
    assert_eq!(active(&b), 2, "{}", b.get("/api/executors"));
    assert!(a.proc.output().contains("releasing it"), "{}", a.proc.output());
    let n = ha.stockyard(&["sql", "--format", "csv", "SELECT count(*) AS n FROM orders_fact"]).ok().stdout;
    assert_eq!(n, format!("n\n{}\n", all(&mongo, "orders_fact").len()));
}

/// A stream on the leader goes on at the standby when the leader is
/// killed: every record counts once in the sink.
#[test]
fn the_standby_takes_over_a_dead_leaders_stream_exactly_once() {
    use crate::streams::{at, oracle, order, sink_rows, source};
    let etcd = Etcd::start();
    let mongo = Mongo::start();
    let kafka = stockyard_tests::Kafka::start();
    kafka.create_topic("orders", 1);
    let mut ha = Ha::new(&etcd, &mongo);
    let mut a = ha.scheduler(0, "scheduler-a", &[]);
    ha.wait("a to lead", Duration::from_secs(20), || a.leads());
    let b = ha.scheduler(1, "scheduler-b", &[]);
    ha.executor();
    ha.executor();
    let out = ha.dir.path().join("sink");
    let sql = format!(
        "{}
         CREATE EXTERNAL TABLE sink STORED AS PARQUET LOCATION '{}';
         INSERT INTO sink SELECT window.start AS window_start, product_id, count(*) AS orders, sum(price) AS revenue
         FROM orders GROUP BY window(ts, '5 minutes'), product_id",
        source(&kafka, "orders", "").replace("'2 minutes'", "'0s'"),
        out.display()
    );
    ha.stockyard(&["streams", "create", "ha", "--sql", &sql, "--trigger", "100ms"]).ok();
    let records = |s: &Scheduler| -> u64 {
        let (code, body) = http_get(s.http, "/api/streams/ha");
        if code != 200 {
            return 0;
        }
        serde_json::from_str::<Value>(&body).map(|v| v["records"].as_u64().unwrap_or(0)).unwrap_or(0)
    };
    let mut produced = Vec::new();
    let batch = |from: i64, n: i64, produced: &mut Vec<(String, f64, i64)>| {
        let values: Vec<String> = (from..from + n)
            .map(|m| {
                let product = ["a", "b"][(m % 2) as usize];
                produced.push((product.to_string(), 1.5, m));
                order(product, 1.5, 1, &at(m, 0))
            })
            .collect();
        kafka.produce("orders", 0, &values);
    };
    batch(0, 40, &mut produced);
    ha.wait("a to read 40 records", Duration::from_secs(30), || records(&a) >= 40);
    a.proc.kill();
    batch(40, 40, &mut produced);
    ha.wait("b to lead", Duration::from_secs(40), || b.leads());
    // The standby lists the stream as stored, and reads on from a's commit.
    ha.wait("b to read 80 records", Duration::from_secs(30), || records(&b) >= 80);
    kafka.produce("orders", 0, &[order("zz", 1.0, 1, &at(10_000, 0))]);
    ha.wait("b to read the last record", Duration::from_secs(30), || records(&b) >= 81);
    assert_eq!(sink_rows(&out), oracle(&produced), "{}", ha.logs());
}
