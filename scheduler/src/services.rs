//! `GET /api/services`: whether what the cluster leans on answers now (the
//! scheduler itself, its executors, MongoDB, Redis, the streams' brokers),
//! and the CPU time and memory of this scheduler's process, for the live
//! dashboard's status panel.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use stockyard_api::cluster::Service;

use crate::api::{Api, Typed};

/// How long a check waits for an answer.
const CHECK: Duration = Duration::from_secs(2);

/// CPU seconds (user + system) and resident bytes of this process, from
/// `/proc/self` (Linux); `None` elsewhere.
fn usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Linux reports in clock ticks of 1/100 s and pages of 4 KiB here.
    Some((ticks / 100.0, pages * 4096))
}

/// `check`'s outcome, or a timeout after [`CHECK`].
async fn answers<T, E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<T, E>>,
) -> Result<(), String> {
    match tokio::time::timeout(CHECK, check).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer in {} s", CHECK.as_secs())),
    }
}

/// Whether something listens at `host:port`.
async fn reachable(address: &str) -> Result<(), String> {
    answers(tokio::net::TcpStream::connect(address)).await
}

/// Each service the cluster uses, up or down, with what it reports.
#[utoipa::path(get, path = "/api/services", responses((status = 200, body = Vec<Service>)))]
pub(crate) async fn services(State(api): State<Api>) -> Typed<Vec<Service>> {
    let mut list = Vec::new();
    let usage = usage();
    list.push(Service {
        leading: Some(api.leadership.not_leading().is_none()),
        cpu_seconds: usage.map(|(cpu_s, _)| cpu_s),
        memory_bytes: usage.map(|(_, rss)| rss),
        ..Service::checked("scheduler", "this process".into(), Ok(()))
    });
    match crate::executors(&api.scheduler).await {
        Ok(executors) => {
            for e in executors {
                list.push(Service {
                    up: e.state == "active",
                    last_heartbeat: Some(e.last_heartbeat),
                    state: Some(e.state),
                    ..Service::checked("executor", format!("{}:{}", e.host, e.grpc_port), Ok(()))
                });
            }
        }
        Err(e) => list.push(Service::checked("executors", String::new(), Err(e.to_string()))),
    }
    let mongo = api.catalog.source().redacted_uri();
    list.push(Service::checked("mongodb", mongo, answers(api.catalog.tables()).await));
    let redis = stockyard_mask::uri(&api.redis_url);
    let ping = answers(stockyard_jobs::kpi::freshness(&api.redis_url)).await;
    list.push(Service::checked("redis", format!("{redis} (KPIs)"), ping));
    // Every broker a stream reads from, and every Redis it writes to.
    let mut brokers = std::collections::BTreeSet::new();
    let mut sinks = std::collections::BTreeSet::new();
    for s in api.streams.list().await.unwrap_or_default() {
        for source in &s.sources {
            if let Ok(location) = source.parse::<stockyard_stream_source::KafkaLocation>() {
                brokers.extend(location.brokers);
            }
        }
        // A Redis sink is described as `redis://HOST:PORT[/DB] key KEY`.
        if let Some(rest) = s.sink.strip_prefix("redis://").or_else(|| s.sink.strip_prefix("rediss://")) {
            let authority = rest.split(['/', ' ']).next().unwrap_or_default();
            let address = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
            sinks.insert(address.to_string());
        }
    }
    for b in brokers {
        let up = reachable(&b).await;
        list.push(Service::checked("kafka", b, up));
    }
    for r in sinks {
        let up = reachable(&r).await;
        list.push(Service::checked("redis", format!("{r} (stream sink)"), up));
    }
    Ok(Json(list))
}
