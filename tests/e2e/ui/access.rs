//! Who may use the HTTP port: the token on the API, the metrics and the
//! UI, and TLS on both ports with a certificate.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockyard_tests::{Browser, Cluster, free_port, http, http_with};

use super::*;

#[test]
fn a_token_guards_the_api_the_metrics_and_the_ui() {
    let token = "t0k3n-for-the-test";
    let cluster = Cluster::start_with_env(1, vec![("STOCKYARD_TOKEN".into(), token.into())]);
    let port = cluster.http_port;
    let bearer = format!("Bearer {token}");
    let none = http_with(port, "GET", "/api/overview", &[], None);
    assert_eq!(
        (none.status, none.body.as_str()),
        (401, r#"{"error":"this scheduler requires a token: send Authorization: Bearer <token>"}"#)
    );
    let wrong = http_with(port, "GET", "/api/runs", &[("Authorization", "Bearer nope")], None);
    assert_eq!(
        (wrong.status, wrong.body.as_str()),
        (401, r#"{"error":"the token is wrong: send Authorization: Bearer <token>"}"#)
    );
    let right = http_with(port, "GET", "/api/overview", &[("Authorization", &bearer)], None);
    assert_eq!(right.status, 200, "{}", right.body);
    assert!(right.body.contains("\"state\":\"active\""), "{}", right.body);
    assert_eq!(http_with(port, "GET", "/metrics", &[], None).status, 401);
    let metrics = http_with(port, "GET", "/metrics", &[("Authorization", &bearer)], None);
    assert!(metrics.body.contains("stockyard_executors{state=\"active\"} 1"), "{}", metrics.body);
    let posted = http_with(port, "POST", "/api/runs", &[], Some(r#"{"job":"sql","params":{"sql":"SELECT 1"}}"#));
    assert_eq!(posted.status, 401);
    // Probes stay open; pages send a person to the login page.
    assert_eq!(http(port, "GET", "/healthz", None), (200, "ok\n".to_string()));
    assert_eq!(http(port, "GET", "/readyz", None).0, 200);
    let page = http_with(port, "GET", "/runs?job=kpi", &[], None);
    assert_eq!((page.status, page.header("location").as_deref()), (303, Some("/login?next=/runs%3Fjob%3Dkpi")));
    assert_eq!(http(port, "GET", "/ui/app.js", None).0, 303);

    // The login page, as a person uses it.
    let mut b = Browser::start(shots("token"), cluster.dir.path());
    let base = format!("http://127.0.0.1:{port}");
    b.open(&format!("{base}/schedules"));
    b.wait_text("main", "asks for its access token", Duration::from_secs(10));
    b.type_into("#token", "guess");
    b.click("#login");
    b.wait_text(".problem", "That token is wrong.", Duration::from_secs(10));
    b.screenshot("login-refused");
    b.type_into("#token", token);
    b.click("#login");
    b.wait_text("h1", "Schedules", Duration::from_secs(10));
    b.wait_text("#live", "live ·", Duration::from_secs(10));
    assert_eq!(b.script("return location.pathname", json!([])), json!("/schedules"));
    b.screenshot("logged-in");
    assert!(!b.text("body").contains(token));
    // The gRPC port wants it too. The cluster's processes have it: the
    // executor registered, and the CLI runs queries and jobs.
    assert_eq!(cluster.sql_csv("SELECT 1 AS x"), "x\n1\n");
    let listed = cluster.stockyard(&["executors", "--format", "json"]).ok();
    assert_eq!(listed.stdout.matches(r#""state":"active""#).count(), 1, "{}", listed.stdout);
    // A client without it, or with a wrong one, is refused and told why.
    for (given, why) in [(None, "this scheduler requires a token"), (Some("nope"), "the token is wrong")] {
        let mut cmd = cluster.command(&["sql", "SELECT 1"]);
        cmd.env_remove("STOCKYARD_TOKEN");
        if let Some(t) = given {
            cmd.env("STOCKYARD_TOKEN", t);
        }
        let refused = stockyard_tests::cluster::run(cmd);
        assert_eq!(refused.code, 1, "{}", refused.stdout);
        assert!(
            refused.stderr.contains(&format!("the scheduler refused this client: {}: {why}", cluster.scheduler_addr())),
            "{}",
            refused.stderr
        );
    }
    // An executor with a wrong token cannot register: it stops and says why.
    let mut cluster = cluster;
    cluster.add_executor_with_env(&[("STOCKYARD_TOKEN", "nope")]);
    let outsider = cluster.executors.last_mut().unwrap();
    assert!(outsider.wait_exit(Duration::from_secs(20)).is_some_and(|s| s.code() == Some(1)), "{}", outsider.output());
    assert!(outsider.output().contains("refused by the scheduler"), "{}", outsider.output());
    assert!(outsider.output().contains("the token is wrong"), "{}", outsider.output());
    let executors = http_with(port, "GET", "/api/executors", &[("Authorization", &bearer)], None);
    assert_eq!(executors.body.matches("\"state\":\"active\"").count(), 1, "{}", executors.body);
    // Raw gRPC calls without it get UNAUTHENTICATED (16), not a crash.
    let raw = http_with(
        cluster.port,
        "POST",
        "/stockyard.Stockyard/ListRuns",
        &[("content-type", "application/grpc")],
        Some(""),
    );
    assert_eq!(raw.header("grpc-status").as_deref(), Some("16"), "{} {:?}", raw.status, raw.body);
}

/// A test authority and a certificate it signed for `localhost` and
/// 127.0.0.1, made with the openssl command line: `(ca, cert, key)`.
fn certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &["-days", "2", "-subj", "/CN=stockyard test CA", "-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(&[&["req"], &ec[..], &["-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "cert.csr"]].concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

fn curl(args: &[&str]) -> (i32, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "--max-time", "10"]);
    if let Some(token) = stockyard_tests::token::test_token() {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.args(args).output().expect("curl");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn with_a_certificate_both_ports_speak_only_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let path = |p: &PathBuf| p.display().to_string();
    // Every process gets the authority: executors and the CLI check the
    // scheduler with it, the scheduler's own jobs too.
    let cluster = Cluster::start_with_env(
        2,
        vec![
            ("STOCKYARD_TLS_CERT".into(), path(&cert)),
            ("STOCKYARD_TLS_KEY".into(), path(&key)),
            ("STOCKYARD_TLS_CA".into(), path(&ca)),
        ],
    );
    // Queries (Ballista's client and executors through TLS) and a job the
    // scheduler runs itself.
    assert_eq!(cluster.sql_csv("SELECT count(*) AS n FROM partitioned_range(10, 2)"), "n\n10\n");
    cluster.stockyard(&["schedules", "add", "once", "--job", "sql", "--every", "1h", "--sql", "SELECT 1"]).ok();
    let trigger = cluster.stockyard(&["schedules", "trigger", "once"]).ok();
    let run_id = trigger.stdout.split("\"run_id\":\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = cluster.stockyard(&["jobs", "--format", "json"]).ok().stdout;
        let run: Value = jobs
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["run_id"] == run_id.as_str())
            .unwrap();
        if run["status"] == "succeeded" {
            break;
        }
        assert!(run["status"] == "running" && Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // HTTPS on the HTTP port, checked against the authority; plain HTTP
    // gets nothing.
    let base = format!("127.0.0.1:{}", cluster.http_port);
    let (code, body) = curl(&["--cacert", &path(&ca), &format!("https://{base}/api/overview")]);
    assert_eq!(code, 0, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["executors"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(
        curl(&["--cacert", &path(&ca), &format!("https://localhost:{}/healthz", cluster.http_port)]),
        (0, "ok\n".into())
    );
    assert_ne!(curl(&[&format!("http://{base}/healthz")]).0, 0);
    // A client that does not know the authority, or expects another name,
    // is refused by its own check, and says so.
    let not_for = r#"invalid peer certificate: certificate not valid for name "other.example""#;
    for (drop_ca, domain, why) in [
        (true, None, "is it serving TLS? then give its authority with --tls-ca"),
        (false, Some("other.example"), not_for),
    ] {
        let mut cmd = cluster.command(&["executors"]);
        if drop_ca {
            cmd.env_remove("STOCKYARD_TLS_CA");
        }
        if let Some(d) = domain {
            cmd.env("STOCKYARD_TLS_DOMAIN", d);
        }
        let refused = stockyard_tests::cluster::run(cmd);
        assert_eq!(refused.code, 1, "{}", refused.stdout);
        assert!(refused.stderr.contains(why), "{why}: {}", refused.stderr);
    }
    // A certificate that does not go with the key stops the scheduler at
    // once, naming both files.
    let mut cmd = stockyard_tests::cluster::base_command(&[]);
    cmd.args(["scheduler", "--port", &free_port().to_string(), "--http-port", &free_port().to_string()]).args([
        "--state",
        "memory",
        "--tls-cert",
        &path(&ca),
        "--tls-key",
        &path(&key),
    ]);
    let bad = stockyard_tests::cluster::run(cmd);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr.contains(&format!("{} and {} do not make a certificate and its key", path(&ca), path(&key))),
        "{}",
        bad.stderr
    );
}
