//! The command line's contract: bad flags and settings exit 2 naming the
//! value; unreachable services exit 1 with a clear message.

use stockyard_tests::cluster::{base_command, run};

fn stockyard(args: &[&str], env: &[(&str, &str)]) -> stockyard_tests::Run {
    let mut c = base_command(&[]);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c)
}

#[test]
fn bad_flags_and_variables_exit_2_naming_the_value() {
    let r = stockyard(&["executor", "--scheduler", "nohost"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'nohost'") && r.stderr.contains("--scheduler"), "{}", r.stderr);

    let r = stockyard(&["executors"], &[("STOCKYARD_SCHEDULER", "127.0.0.1:notaport")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'notaport'"), "{}", r.stderr);

    let r = stockyard(&["scheduler", "--port", "70000"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'70000'"), "{}", r.stderr);

    let r = stockyard(&["scheduler", "--executor-timeout", "soon"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'soon'"), "{}", r.stderr);

    let r = stockyard(&["sql", "--format", "xml", "SELECT 1"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'xml'"), "{}", r.stderr);

    let r = stockyard(&["standalone", "--executors", "0"], &[]);
    assert_eq!(r.code, 2, "{r:?}");

    let r = stockyard(&["frobnicate"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn an_unreachable_scheduler_is_named_and_exits_1() {
    let port = stockyard_tests::free_port();
    let addr = format!("127.0.0.1:{port}");
    for args in [vec!["sql", "SELECT 1"], vec!["executors"], vec!["jobs"]] {
        let r = stockyard(&args, &[("STOCKYARD_SCHEDULER", &addr)]);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(&format!("cannot reach the scheduler at {addr}")), "{}", r.stderr);
    }
}

#[test]
fn a_taken_port_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let http = stockyard_tests::free_port().to_string();
    let r = stockyard(&["scheduler", "--port", &port, "--http-port", &http], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("cannot listen on 127.0.0.1:{port} for gRPC")), "{}", r.stderr);
}

#[test]
fn json_logs_are_one_object_per_line_with_the_run_id() {
    let cluster = stockyard_tests::Cluster::start_with_env(1, vec![("STOCKYARD_LOG_FORMAT".into(), "json".into())]);
    cluster.stockyard(&["schedules", "add", "once", "--job", "sql", "--every", "1h", "--sql", "SELECT 1"]).ok();
    let trigger = cluster.stockyard(&["schedules", "trigger", "once"]).ok();
    let run_id = trigger.stdout.split("\"run_id\":\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let log = cluster.scheduler.output();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{log}");
        let ended = lines.iter().find(|l| {
            l["fields"]["message"] == "job run ended"
                && l["fields"]["run"] == run_id.as_str()
                && l["fields"]["status"] == "succeeded"
        });
        // In the run's span, and naming the Ballista job the run submitted.
        if let Some(l) = ended {
            assert_eq!(
                (&l["span"]["name"], &l["span"]["run"], &l["span"]["job"]),
                (&"run".into(), &run_id.as_str().into(), &"sql".into()),
                "{l}"
            );
            let jobs = l["fields"]["ballista_jobs"].as_str().unwrap_or_default();
            assert!(jobs.len() >= 7 && !jobs.contains(','), "one Ballista job: {l}");
        }
        if ended.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no 'job run ended' line for {run_id}:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let bad = stockyard(&["executors", "--log-format", "xml"], &[]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("'xml'"), "{}", bad.stderr);
}
