//! `GET /api/services`: whether what the cluster leans on answers now (the
//! scheduler itself, its executors, MongoDB, Redis, the streams' brokers),
//! and the CPU time and memory of this scheduler's process, for the live
//! dashboard's status panel.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::api::{Answer, Api};

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

fn check(name: &str, address: String, result: Result<(), String>) -> Value {
    match result {
        Ok(()) => json!({"name": name, "address": address, "up": true}),
        Err(e) => json!({"name": name, "address": address, "up": false, "error": e}),
    }
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
#[utoipa::path(get, path = "/api/services", responses((status = 200, body = Vec<Object>)))]
pub(crate) async fn services(State(api): State<Api>) -> Answer {
    let mut list = Vec::new();
    let mut scheduler = json!({"name": "scheduler", "address": "this process", "up": true,
        "leading": api.leadership.not_leading().is_none()});
    if let Some((cpu_s, rss)) = usage() {
        scheduler["cpu_seconds"] = json!(cpu_s);
        scheduler["memory_bytes"] = json!(rss);
    }
    list.push(scheduler);
    match crate::executors(&api.scheduler).await {
        Ok(executors) => {
            for e in executors {
                list.push(json!({"name": "executor", "address": format!("{}:{}", e.host, e.grpc_port),
                    "up": e.state == "active", "state": e.state, "last_heartbeat": e.last_heartbeat}));
            }
        }
        Err(e) => list.push(check("executors", String::new(), Err(e))),
    }
    let mongo = api.catalog.source().redacted_uri();
    list.push(check("mongodb", mongo, answers(api.catalog.tables()).await));
    let redis = stockyard_mask::uri(&api.redis_url);
    let ping = answers(stockyard_jobs::kpi::freshness(&api.redis_url)).await;
    list.push(check("redis", format!("{redis} (KPIs)"), ping));
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
        list.push(check("kafka", b, up));
    }
    for r in sinks {
        let up = reachable(&r).await;
        list.push(check("redis", format!("{r} (stream sink)"), up));
    }
    Ok(Json(Value::Array(list)))
}
