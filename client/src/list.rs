//! `stockyard executors` and `stockyard jobs`, over the scheduler's job API.

use std::time::Duration;

use comfy_table::Table;
use serde_json::{Value, json};
use stockyard_proto::stockyard_client::StockyardClient;
use stockyard_proto::{ExecutorInfo, JobInfo, ListExecutorsRequest, ListJobsRequest};
use tonic::transport::Channel;

use crate::Failure;
use crate::cli::{Format, HostPort};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the scheduler's job API, or a clear error when it cannot be
/// reached in time.
pub async fn connect(scheduler: &HostPort) -> Result<StockyardClient<Channel>, Failure> {
    let unreachable = |e: &dyn std::fmt::Display| {
        Failure::new(format!("cannot reach the scheduler at {scheduler}: {e} (is `stockyard scheduler` running there?)"))
    };
    let endpoint = Channel::from_shared(format!("http://{scheduler}"))
        .map_err(|e| unreachable(&e))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(Duration::from_secs(30));
    let channel = endpoint.connect().await.map_err(|e| unreachable(&e))?;
    Ok(StockyardClient::new(channel))
}

/// A job-API client, once the scheduler is known to be up with an
/// executor: without one a query would wait forever.
pub async fn require_executors(scheduler: &HostPort) -> Result<StockyardClient<Channel>, Failure> {
    let mut client = connect(scheduler).await?;
    let executors = client
        .list_executors(ListExecutorsRequest {})
        .await
        .map_err(|e| Failure::new(format!("the scheduler at {scheduler} failed: {}", e.message())))?
        .into_inner()
        .executors;
    if executors.is_empty() {
        return Err(Failure::new(format!(
            "the scheduler at {scheduler} has no executors; start one with `stockyard executor --scheduler {scheduler}`"
        )));
    }
    Ok(client)
}

fn time(secs: u64) -> String {
    // Ballista reports some times in ms and some in s; both are epoch-based.
    if secs == 0 {
        return String::new();
    }
    let secs = if secs > 100_000_000_000 { secs / 1000 } else { secs };
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn print(format: Format, header: &[&str], rows: Vec<Vec<String>>, objects: Vec<Value>) {
    match format {
        Format::Table => {
            let mut table = Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(header.to_vec());
            let n = rows.len();
            for row in rows {
                table.add_row(row);
            }
            println!("{table}");
            println!("{n} row{}", if n == 1 { "" } else { "s" });
        }
        Format::Csv => {
            println!("{}", header.join(","));
            for row in rows {
                let cells: Vec<String> = row
                    .into_iter()
                    .map(|c| if c.contains([',', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c })
                    .collect();
                println!("{}", cells.join(","));
            }
        }
        Format::Json => {
            for o in objects {
                println!("{o}");
            }
        }
    }
}

/// `stockyard executors`.
pub async fn executors(scheduler: &HostPort, format: Format) -> Result<(), Failure> {
    let mut client = connect(scheduler).await?;
    let list: Vec<ExecutorInfo> = client
        .list_executors(ListExecutorsRequest {})
        .await
        .map_err(|e| Failure::new(format!("the scheduler at {scheduler} failed: {}", e.message())))?
        .into_inner()
        .executors;
    let header = ["id", "host", "flight_port", "grpc_port", "task_slots", "last_heartbeat", "state"];
    let rows = list
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.host.clone(),
                e.flight_port.to_string(),
                e.grpc_port.to_string(),
                e.task_slots.to_string(),
                time(e.last_heartbeat),
                e.state.clone(),
            ]
        })
        .collect();
    let objects = list
        .iter()
        .map(|e| {
            json!({"id": e.id, "host": e.host, "flight_port": e.flight_port, "grpc_port": e.grpc_port,
                   "task_slots": e.task_slots, "last_heartbeat": time(e.last_heartbeat), "state": e.state})
        })
        .collect();
    print(format, &header, rows, objects);
    Ok(())
}

/// `stockyard jobs`.
pub async fn jobs(scheduler: &HostPort, format: Format) -> Result<(), Failure> {
    let mut client = connect(scheduler).await?;
    let list: Vec<JobInfo> = client
        .list_jobs(ListJobsRequest {})
        .await
        .map_err(|e| Failure::new(format!("the scheduler at {scheduler} failed: {}", e.message())))?
        .into_inner()
        .jobs;
    let header = ["id", "name", "status", "stages", "started", "ended", "error"];
    let rows = list
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                j.name.clone(),
                j.status.clone(),
                format!("{}/{}", j.completed_stages, j.total_stages),
                time(j.started_at),
                time(j.ended_at),
                j.error.clone(),
            ]
        })
        .collect();
    let objects = list
        .iter()
        .map(|j| {
            json!({"id": j.id, "name": j.name, "status": j.status, "completed_stages": j.completed_stages,
                   "total_stages": j.total_stages, "started_at": time(j.started_at),
                   "ended_at": time(j.ended_at), "error": j.error})
        })
        .collect();
    print(format, &header, rows, objects);
    Ok(())
}
