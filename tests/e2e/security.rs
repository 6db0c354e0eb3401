//! The attacks of an outsider on the cluster network, each on real
//! processes: a cluster started with a token must give nothing without it
//! and never hand the token to an address it did not choose.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballista_core::serde::protobuf::executor_grpc_client::ExecutorGrpcClient;
use ballista_core::serde::protobuf::{
    CancelTasksParams, LaunchMultiTaskParams, MultiTaskDefinition, RemoveJobDataParams, RunningTaskInfo, TaskId,
};
use prost::Message;
use stockyard_tests::cluster::Cluster;

const TOKEN: &str = "s3cret-for-the-security-tests";

/// An executor's advertised host and ports, as the scheduler lists them.
struct Ports {
    flight: u16,
    grpc: u16,
}

fn executor_ports(cluster: &Cluster) -> Vec<Ports> {
    let run = cluster.stockyard(&["executors", "--format", "json"]).ok();
    run.stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json row");
            let port = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {l}")) as u16;
            Ports { flight: port("flight_port"), grpc: port("grpc_port") }
        })
        .collect()
}

fn token_cluster(executors: usize) -> Cluster {
    Cluster::start_with_env(executors, vec![("STOCKYARD_TOKEN".into(), TOKEN.into())])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A stranger's gRPC server: answers nothing useful, records the headers
/// of every request it gets.
async fn stranger() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let record = record.clone();
        async move {
            let headers: Vec<String> =
                request.headers().iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?"))).collect();
            record.lock().unwrap().push(format!("{} {}", request.uri(), headers.join("; ")));
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(t) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    request
}

/// A plan the executor decodes and runs: no rows, so the task ends at once
/// and its status goes to whoever the launch names.
fn empty_plan() -> Vec<u8> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion_proto::physical_plan::{AsExecutionPlan, DefaultPhysicalExtensionCodec};
    use datafusion_proto::protobuf::PhysicalPlanNode;
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
    let plan: Arc<dyn datafusion::physical_plan::ExecutionPlan> = Arc::new(EmptyExec::new(schema));
    PhysicalPlanNode::try_from_physical_plan(plan, &DefaultPhysicalExtensionCodec {}).unwrap().encode_to_vec()
}

fn launch_naming(scheduler_id: &str) -> LaunchMultiTaskParams {
    LaunchMultiTaskParams {
        multi_tasks: vec![MultiTaskDefinition {
            task_ids: vec![TaskId { task_id: 1, task_attempt_num: 0, partition_id: 0 }],
            job_id: "stolen".into(),
            stage_id: 1,
            plan: empty_plan(),
            session_id: "s".into(),
            ..Default::default()
        }],
        scheduler_id: scheduler_id.into(),
    }
}

#[test]
fn with_a_token_two_executors_shuffle_and_answer_exactly() {
    let cluster = token_cluster(2);
    // A grouping over 4 partitions shuffles between the executors: each
    // fetch goes through a gateway that sends the token.
    let csv = cluster.sql_csv(
        "SELECT value % 3 AS k, count(*) AS n, sum(value) AS s FROM partitioned_range(3000, 4) GROUP BY value % 3 ORDER BY k",
    );
    // Values 0..2999: 1000 in each class; sums 0+3+…+2997, 1+4+…+2998, 2+5+…+2999.
    assert_eq!(csv, "k,n,s\n0,1000,1498500\n1,1000,1499500\n2,1000,1500500\n", "{}", cluster.logs());
}

/// Sends `launch_naming(stranger)` to the cluster's first executor with
/// `token`, waits for the status report Ballista would send the named
/// scheduler, and gives the call's error and what the stranger heard.
fn launch_to_a_stranger(cluster: &Cluster, token: Option<&str>) -> (Option<tonic::Status>, Vec<String>) {
    let ports = executor_ports(cluster);
    runtime().block_on(async {
        let (stranger, seen) = stranger().await;
        let mut client = ExecutorGrpcClient::connect(format!("http://127.0.0.1:{}", ports[0].grpc)).await.unwrap();
        let error = client.launch_multi_task(with_token(launch_naming(&stranger), token)).await.err();
        // Ballista reports a task's status within a second or two.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let heard = seen.lock().unwrap().clone();
        (error, heard)
    })
}

#[test]
fn an_unauthenticated_launch_naming_a_stranger_is_refused_and_the_stranger_hears_nothing() {
    let cluster = token_cluster(1);
    let (error, heard) = launch_to_a_stranger(&cluster, None);
    assert_eq!(error.map(|e| e.code()), Some(tonic::Code::Unauthenticated));
    assert_eq!(heard, Vec::<String>::new());
    let (error, heard) = launch_to_a_stranger(&cluster, Some("a-guess"));
    assert_eq!(
        error.map(|e| (e.code(), e.message().to_string())),
        Some((tonic::Code::Unauthenticated, "the token is wrong".into()))
    );
    assert_eq!(heard, Vec::<String>::new());
}

#[test]
fn with_the_token_a_task_naming_a_stranger_still_sends_the_stranger_nothing() {
    // Someone who has the token (a compromised client) still cannot have an
    // executor carry it elsewhere: the gateway forwards only to members.
    let cluster = token_cluster(1);
    let (_, heard) = launch_to_a_stranger(&cluster, Some(TOKEN));
    assert_eq!(heard, Vec::<String>::new());
    let log = cluster.executors[0].output();
    assert!(log.contains("refused to forward a call to an address that is not a member of the cluster"), "{log}");
}

#[test]
fn executor_calls_and_flight_fetches_without_the_token_are_refused() {
    let cluster = token_cluster(1);
    let ports = executor_ports(&cluster);
    let victim = cluster.dir.path().join("executor-0").join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let mut client = ExecutorGrpcClient::connect(format!("http://127.0.0.1:{}", ports[0].grpc)).await.unwrap();
        let cancel = CancelTasksParams {
            task_infos: vec![RunningTaskInfo { task_id: 1, job_id: "j".into(), stage_id: 1, partition_id: 0 }],
        };
        let e = client.cancel_tasks(with_token(cancel, None)).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (tonic::Code::Unauthenticated, "this executor requires the cluster's token")
        );
        let remove = RemoveJobDataParams { job_id: "victim".into(), remove_stage_ids: vec![] };
        let e = client.remove_job_data(with_token(remove, None)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        // With the token, a job id that leaves the work directory is refused.
        let escape = RemoveJobDataParams { job_id: "../executor-0/victim".into(), remove_stage_ids: vec![] };
        let e = client.remove_job_data(with_token(escape, Some(TOKEN))).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("job id '../executor-0/victim' is not a plain name"), "{e:?}");

        use arrow_flight::flight_service_client::FlightServiceClient;
        use ballista_core::serde::protobuf::{Action, FetchPartition, action::ActionType};
        let fetch = |job: &str| {
            let action = Action {
                action_type: Some(ActionType::FetchPartition(FetchPartition {
                    job_id: job.into(),
                    stage_id: 1,
                    partition_id: 0,
                    host: "127.0.0.1".into(),
                    port: ports[0].flight.into(),
                    file_id: None,
                    is_sort_shuffle: false,
                })),
                settings: vec![],
            };
            arrow_flight::Ticket { ticket: action.encode_to_vec().into() }
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", ports[0].flight)).unwrap();
        let mut flight = FlightServiceClient::new(channel.connect().await.unwrap());
        let e = flight.do_get(with_token(fetch("some-job"), None)).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (tonic::Code::Unauthenticated, "this executor requires the cluster's token")
        );
        let e = flight.do_get(with_token(fetch("../../etc"), Some(TOKEN))).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    });
    assert!(victim.is_dir(), "the victim directory was removed");
}

#[test]
fn the_gateway_is_no_token_proxy_for_other_local_processes() {
    let cluster = token_cluster(1);
    let log = cluster.executors[0].output();
    let gateway: u16 = log
        .lines()
        .find(|l| l.contains("scheduler gateway listening"))
        .and_then(|l| l.split("127.0.0.1:").nth(1))
        .and_then(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok())
        .unwrap_or_else(|| panic!("no gateway address in the executor log:\n{log}"));
    // The REST API through the gateway, as `curl` on the executor host
    // would send it: refused, never forwarded with the token.
    let direct = stockyard_tests::process::http_get(cluster.http_port, "/api/executors");
    assert_eq!(direct.0, 401);
    let through = stockyard_tests::process::http_with(
        gateway,
        "GET",
        "/api/executors",
        &[("Host", &format!("127.0.0.1:{}", cluster.http_port))],
        None,
    );
    assert_eq!(through.header("grpc-status").as_deref(), Some("16"), "{through:?}");
    assert!(!through.body.contains("flight_port"), "{through:?}");
    // A gRPC call to the leader through it, without the process's secret.
    let rt = runtime();
    rt.block_on(async {
        let mut client = ExecutorGrpcClient::connect(format!("http://127.0.0.1:{gateway}")).await.unwrap();
        let remove = RemoveJobDataParams { job_id: "x".into(), remove_stage_ids: vec![] };
        let e = client.remove_job_data(remove).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (tonic::Code::Unauthenticated, "this gateway serves only the process that started it")
        );
    });
}

#[test]
fn other_sites_cannot_drive_the_web_ui_frame_it_or_rebind_to_it() {
    use stockyard_tests::http_with;
    let cluster = Cluster::start(0);
    let port = cluster.http_port;
    let pause = "/api/schedules/nightly/pause";
    // A cross-site form POST, as a browser sends it: refused before it acts.
    for headers in [[("Origin", "http://evil.example")], [("Sec-Fetch-Site", "cross-site")]] {
        let answer = http_with(port, "POST", pause, &headers, None);
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (403, r#"{"error":"refused: this request comes from another site"}"#),
            "{headers:?}"
        );
    }
    // The same request from the UI's own page reaches the API (which has
    // no such schedule).
    let own = format!("http://127.0.0.1:{port}");
    let answer = http_with(port, "POST", pause, &[("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")], None);
    assert_eq!(answer.status, 404, "{answer:?}");
    // A name that is not ours: DNS rebinding.
    let answer = http_with(port, "GET", "/api/overview", &[("Host", "rebind.evil.example")], None);
    assert_eq!(answer.status, 421, "{answer:?}");
    assert!(answer.body.contains("does not answer to the host 'rebind.evil.example'"), "{answer:?}");
    // No page may be framed.
    let answer = http_with(port, "GET", "/", &[], None);
    assert_eq!(answer.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(answer.header("content-security-policy").as_deref(), Some("frame-ancestors 'none'"));
}

#[test]
fn the_session_cookie_is_not_the_token_and_login_sends_nobody_off_site() {
    use stockyard_tests::http_with;
    let cluster = token_cluster(0);
    let port = cluster.http_port;
    let form = |next: &str| format!("token={TOKEN}&next={next}");
    let login = |body: String| stockyard_tests::process::http_form(port, "/login", &body);
    let answer = login(form("%2F%5Cevil.example"));
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(answer.header("location").as_deref(), Some("/"));
    let cookie = answer.header("set-cookie").expect("a session cookie");
    assert!(!cookie.contains(TOKEN), "{cookie}");
    assert!(
        cookie.starts_with("stockyard_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let with_cookie = http_with(port, "GET", "/api/overview", &[("Cookie", session.as_str())], None);
    assert_eq!(with_cookie.status, 200, "{with_cookie:?}");
    // The cookie is no token: the gRPC port refuses it as one.
    let value = session.split_once('=').unwrap().1;
    let bearer = format!("Bearer {value}");
    let as_bearer = http_with(port, "GET", "/api/overview", &[("Authorization", bearer.as_str())], None);
    assert_eq!(as_bearer.status, 401);
    // Guessing is throttled: after 10 wrong tokens, even the right one waits.
    for _ in 0..10 {
        assert_eq!(login("token=guess&next=/".into()).status, 401);
    }
    assert_eq!(login(form("/")).status, 429);
}
