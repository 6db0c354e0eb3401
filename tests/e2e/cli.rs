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
