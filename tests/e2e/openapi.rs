//! The REST API against its own OpenAPI document, checked by schemathesis
//! (PyPI), a client no one here wrote: on a real cluster with a token and a
//! history, it sends generated requests to every operation and checks that
//! none is a server error, every answer's status, content type and body
//! match the document, and no operation answers without the token.

use std::process::Command;

use serde_json::Value;
use stockyard_tests::{Cluster, Mongo, Redis, http_with, venv_bin};

const TOKEN: &str = "openapi-check-token-5d1c";
const NOW: &str = "2026-01-05T12:00:00Z";

#[test]
fn rest_api_matches_its_openapi_document() {
    let mongo = Mongo::start();
    let redis = Redis::start();
    let cluster = Cluster::start_with_env(
        2,
        vec![
            ("STOCKYARD_TOKEN".into(), TOKEN.into()),
            ("STOCKYARD_MONGO_URI".into(), mongo.uri()),
            ("STOCKYARD_MONGO_DB".into(), "supply_chain".into()),
            ("STOCKYARD_REDIS_URL".into(), redis.url()),
        ],
    );
    cluster
        .stockyard(&["generate", "--seed", "3", "--docs", "200", "--start", "2026-01-05T11:00:00Z", "--end", NOW])
        .ok();
    // A history with an ended run and a summary, for the list answers.
    cluster.stockyard(&["run", "kpi", "--now", NOW]).ok();

    let refused = http_with(cluster.http_port, "GET", "/api/openapi.json", &[], None);
    assert_eq!(refused.status, 401, "the document without the token: {}", refused.body);
    let bearer = format!("Bearer {TOKEN}");
    let answer = http_with(cluster.http_port, "GET", "/api/openapi.json", &[("Authorization", &bearer)], None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(!answer.body.contains(TOKEN), "the document holds the token");
    let doc: Value = serde_json::from_str(&answer.body).expect("the document is JSON");

    // The paths the README documents, and the run vocabulary of the spec.
    let mut paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/archives",
            "/api/executors",
            "/api/jobs",
            "/api/jobs/{id}",
            "/api/kpis",
            "/api/overview",
            "/api/runs",
            "/api/runs/{id}",
            "/api/runs/{id}/cancel",
            "/api/schedules",
            "/api/schedules/{name}/{action}",
            "/api/services",
            "/api/streams",
            "/api/streams/{name}",
            "/api/streams/{name}/results",
            "/api/streams/{name}/{action}",
        ]
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["RunStatus"]["enum"],
        serde_json::json!(["running", "succeeded", "failed", "skipped", "cancelled", "interrupted", "superseded"])
    );
    assert_eq!(schemas["Job"]["enum"], serde_json::json!(["kpi", "archive", "compact", "sql"]));

    let file = cluster.dir.path().join("openapi.json");
    std::fs::write(&file, &answer.body).unwrap();
    let out = Command::new(venv_bin("schemathesis"))
        .arg("run")
        .arg(&file)
        .args(["--url", &format!("http://127.0.0.1:{}", cluster.http_port)])
        .args(["--header", &format!("Authorization: {bearer}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth",
        ])
        // Enough to reach every operation's parameters and bodies, few
        // enough that the runs it starts stay small.
        .args(["--max-examples", "15", "--workers", "1", "--request-timeout", "60", "--seed", "7"])
        .env("NO_COLOR", "1")
        // Its cache of findings stays in the test's directory.
        .current_dir(cluster.dir.path())
        .output()
        .expect("run schemathesis (scripts/setup installs it into .venv)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found answers that break the document:\n{stdout}\n{}\nscheduler log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    // It tested every operation, not none.
    assert!(stdout.contains("18 selected") || stdout.contains("18 total"), "{stdout}");
}
