//! Arrow Flight SQL on the scheduler's gRPC port, through a client no one
//! here wrote: `adbc-driver-flightsql` from PyPI (tests/python/flight_sql_client.py).

use std::process::Command;

use mongodb::bson::doc;
use serde_json::{Value, json};
use stockyard_tests::{Cluster, Mongo, http_with, repo_root, venv_bin};

/// The prepared statement the client binds twice.
const PREPARED: &str = "SELECT dc_id FROM dcs_dim WHERE capacity_units > $1 ORDER BY dc_id";

#[test]
fn adbc_queries_the_cluster_with_the_token_and_is_refused_without() {
    let mongo = Mongo::start();
    mongo.load(
        "supply_chain",
        "dcs_dim",
        vec![
            doc! {"dc_id": "DC-2", "dc_name": "Beta", "region": "South", "capacity_units": 500i64},
            doc! {"dc_id": "DC-1", "dc_name": "Alpha", "region": "North", "capacity_units": 1000i64},
        ],
    );
    let token = "flight-sql-test-token-0123456789";
    let env = vec![
        ("STOCKYARD_MONGO_URI".to_string(), mongo.uri()),
        ("STOCKYARD_MONGO_DB".to_string(), "supply_chain".to_string()),
        ("STOCKYARD_TOKEN".to_string(), token.to_string()),
    ];
    let cluster = Cluster::start_with_env(2, env);
    let out = Command::new(venv_bin("python"))
        .arg(repo_root().join("tests/python/flight_sql_client.py"))
        .arg(format!("grpc://127.0.0.1:{}", cluster.port))
        .arg(token)
        .output()
        .expect("run python (scripts/setup installs adbc-driver-flightsql into .venv)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}\n{}", String::from_utf8_lossy(&out.stderr), cluster.logs());
    let got: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert_eq!(
        got["dcs"],
        json!({"rows": [{"dc_id": "DC-1", "capacity_units": 1000}, {"dc_id": "DC-2", "capacity_units": 500}],
               "types": {"dc_id": "string", "capacity_units": "int64"}})
    );
    assert_eq!(got["prepared"], json!([[{"dc_id": "DC-1"}], [{"dc_id": "DC-1"}, {"dc_id": "DC-2"}]]), "{got}");
    // 0 + 1 + … + 99,999 over four partitions.
    assert_eq!(got["range"]["rows"], json!([{"n": 100000, "total": 4_999_950_000i64}]));
    assert!(got["bad_sql"].as_str().is_some_and(|e| e.contains("nope")), "{got}");
    assert_eq!(got["catalogs"], json!(["datafusion"]));
    assert_eq!(got["tables"], json!(["dcs_dim"]));
    assert_eq!(got["dcs_schema"]["capacity_units"], "int64", "{got}");
    assert_eq!(got["dcs_schema"]["dc_id"], "string", "{got}");
    for (case, why) in [("no_token", "this scheduler requires a token"), ("wrong_token", "the token is wrong")] {
        assert!(got[case].as_str().is_some_and(|e| e.contains(why)), "{case}: {got}");
    }

    // Each query is a run in the history, with its row count.
    let bearer = format!("Bearer {token}");
    let answer =
        http_with(cluster.http_port, "GET", "/api/runs?trigger=flight-sql", &[("authorization", &bearer)], None);
    let runs: Vec<Value> = serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body));
    let mut queries: Vec<(String, String, u64)> = runs
        .iter()
        .map(|r| {
            (
                r["params"]["sql"].as_str().unwrap_or_default().to_string(),
                r["status"].to_string(),
                r["summary"]["rows"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    queries.sort();
    assert_eq!(
        queries,
        [
            (
                "SELECT count(*) AS n, sum(value) AS total FROM partitioned_range(100000, 4)".to_string(),
                "\"succeeded\"".to_string(),
                1
            ),
            (PREPARED.to_string(), "\"succeeded\"".to_string(), 1),
            (PREPARED.to_string(), "\"succeeded\"".to_string(), 2),
            ("SELECT dc_id, capacity_units FROM dcs_dim ORDER BY dc_id".to_string(), "\"succeeded\"".to_string(), 2),
        ],
        "{runs:?}"
    );
}

/// `CancelFlightInfo` (arrow-flight's own client) stops a query's run:
/// before its rows are asked for (they are then refused), and while they
/// flow (the stream ends with the run's cancellation); an ended run is not
/// cancellable.
#[test]
fn cancel_flight_info_stops_the_run_before_and_while_it_streams() {
    use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
    use arrow_flight::{CancelFlightInfoRequest, CancelStatus, FlightClient, FlightDescriptor};
    use futures::StreamExt;
    use prost::Message;

    let token = "flight-sql-cancel-token-0123456789";
    let cluster = Cluster::start_with_env(2, vec![("STOCKYARD_TOKEN".to_string(), token.to_string())]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", cluster.port))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = FlightClient::new(channel);
        client.add_header("authorization", &format!("Bearer {token}")).unwrap();
        // 40 batches a partition, 300 ms each: 12 s of rows.
        let sql = "SELECT * FROM partitioned_range(1310720, 4, 300)";
        let command = CommandStatementQuery { query: sql.into(), transaction_id: None };
        let descriptor = || FlightDescriptor::new_cmd(command.as_any().encode_to_vec());

        // Cancelled before its rows are asked for: they never come.
        let early = client.get_flight_info(descriptor()).await.unwrap();
        let status = client.cancel_flight_info(CancelFlightInfoRequest::new(early.clone())).await.unwrap();
        assert_eq!(status.status(), CancelStatus::Cancelled);
        let ticket = early.endpoint[0].ticket.clone().unwrap();
        let refused = match client.do_get(ticket).await {
            Ok(mut rows) => rows.next().await.and_then(Result::err).map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        assert!(refused.as_deref().is_some_and(|e| e.contains("was cancelled before it started")), "{refused:?}");

        // Cancelled while its rows flow: the stream ends with the run's end.
        let info = client.get_flight_info(descriptor()).await.unwrap();
        let mut rows = client.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap();
        let first = rows.next().await.expect("a first batch").expect("rows flow");
        assert!(first.num_rows() > 0);
        let status = client.cancel_flight_info(CancelFlightInfoRequest::new(info.clone())).await.unwrap();
        assert_eq!(status.status(), CancelStatus::Cancelling);
        let mut ended = None;
        while let Some(next) = rows.next().await {
            if let Err(e) = next {
                ended = Some(e.to_string());
                break;
            }
        }
        let ended = ended.expect("the stream ends with an error, not as if whole");
        assert!(ended.contains("cancelled") && ended.contains("cancelled by a user"), "{ended}");
        // Ended: nothing to cancel.
        let status = client.cancel_flight_info(CancelFlightInfoRequest::new(info)).await.unwrap();
        assert_eq!(status.status(), CancelStatus::NotCancellable);
    });
    // The history has it as a cancelled Flight SQL run.
    let bearer = format!("Bearer {token}");
    let answer = http_with(cluster.http_port, "GET", "/api/runs?status=cancelled", &[("authorization", &bearer)], None);
    let runs: Vec<Value> = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["trigger"], "flight-sql");
    assert_eq!(runs[0]["error"], "cancelled by a user");
}
