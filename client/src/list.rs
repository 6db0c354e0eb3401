//! `stockyard executors`, `jobs` and `schedules`, over the scheduler's job
//! API.

use std::time::Duration;

use comfy_table::Table;
use serde_json::{Value, json};
use stockyard_proto::stockyard_client::StockyardClient;
use stockyard_proto::{
    ChangeScheduleRequest, ExecutorInfo, JobInfo, ListExecutorsRequest, ListJobsRequest, ListRunsRequest,
    ListSchedulesRequest, ScheduleInfo,
};
use tonic::transport::Channel;

use stockyard_api::Run;
use stockyard_api::ScheduleAction as Verb;

use crate::Failure;
use crate::cli::{Format, Remote, ScheduleAction};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the scheduler's job API, or a clear error when it cannot be
/// reached in time.
pub async fn connect(scheduler: &Remote) -> Result<StockyardClient<Channel>, Failure> {
    let unreachable = |e: &dyn std::fmt::Display| {
        let e = e.to_string();
        // Something listens but does not speak plain HTTP/2 with us: most
        // likely a scheduler serving TLS.
        let nobody = ["Connection refused", "no answer", "dns error", "failed to lookup"].iter().any(|m| e.contains(m));
        let hint = if scheduler.access.tls.is_none() && !nobody {
            "is it serving TLS? then give its authority with --tls-ca"
        } else {
            "is `stockyard scheduler` running there?"
        };
        Failure::new(format!("cannot reach the scheduler at {scheduler}: {e} ({hint})"))
    };
    let gateway =
        scheduler.gateway(CONNECT_TIMEOUT).await.map_err(|e| match e.strip_prefix("refused by the scheduler: ") {
            Some(why) => Failure::new(format!("the scheduler refused this client: {why}")),
            None => unreachable(&e),
        })?;
    let endpoint = gateway.endpoint().connect_timeout(CONNECT_TIMEOUT).timeout(Duration::from_secs(30));
    let channel = endpoint.connect().await.map_err(|e| unreachable(&e))?;
    Ok(StockyardClient::new(channel))
}

/// A job-API client, once the scheduler is known to be up with an
/// executor: without one a query would wait forever.
pub async fn require_executors(scheduler: &Remote) -> Result<StockyardClient<Channel>, Failure> {
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

/// Writes a listing to stdout. A reader that stops early (`| head`) ends
/// the output, not the process with a panic: write errors are dropped.
pub(crate) fn print(format: Format, header: &[&str], rows: Vec<Vec<String>>, objects: Vec<Value>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Table => {
            let mut table = Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(header.to_vec());
            let n = rows.len();
            for row in rows {
                table.add_row(row);
            }
            let _ = writeln!(out, "{table}");
            let _ = writeln!(out, "{n} row{}", if n == 1 { "" } else { "s" });
        }
        Format::Csv => {
            let _ = writeln!(out, "{}", header.join(","));
            for row in rows {
                let cells: Vec<String> = row
                    .into_iter()
                    .map(|c| if c.contains([',', '"', '\n']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c })
                    .collect();
                if writeln!(out, "{}", cells.join(",")).is_err() {
                    return;
                }
            }
        }
        Format::Json => {
            for o in objects {
                if writeln!(out, "{o}").is_err() {
                    return;
                }
            }
        }
    }
}

/// `stockyard executors`.
pub async fn executors(scheduler: &Remote, format: Format) -> Result<(), Failure> {
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
pub async fn jobs(scheduler: &Remote, format: Format) -> Result<(), Failure> {
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

fn time_ms(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

pub(crate) fn failed(scheduler: &Remote, e: tonic::Status) -> Failure {
    Failure::new(format!("the scheduler at {scheduler} failed: {}", e.message()))
}

/// `stockyard jobs`: the run history, newest first.
pub async fn runs(scheduler: &Remote, format: Format) -> Result<(), Failure> {
    let mut client = connect(scheduler).await?;
    let runs = client.list_runs(ListRunsRequest {}).await.map_err(|e| failed(scheduler, e))?.into_inner().runs;
    let runs: Vec<Run> =
        runs.into_iter().map(Run::try_from).collect::<Result<_, _>>().map_err(|e| {
            Failure::new(format!("the scheduler at {scheduler} sent a run this client cannot read: {e}"))
        })?;
    let header = ["run", "job", "status", "trigger", "started", "ended", "summary", "error"];
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.job.to_string(),
                r.status.to_string(),
                r.trigger.to_string(),
                time_ms(r.started_at_ms),
                time_ms(r.ended_at_ms.unwrap_or(0)),
                if r.summary.is_null() { String::new() } else { r.summary.to_string() },
                r.error.clone(),
            ]
        })
        .collect();
    let objects = runs
        .iter()
        .map(|r| {
            json!({"run_id": r.run_id, "job": r.job, "status": r.status, "trigger": r.trigger, "params": r.params,
                   "started_at": time_ms(r.started_at_ms), "ended_at": time_ms(r.ended_at_ms.unwrap_or(0)),
                   "summary": r.summary, "error": r.error, "ballista_jobs": r.ballista_jobs,
                   "scheduler": r.scheduler, "rerun_of": r.rerun_of, "rerun_as": r.rerun_as})
        })
        .collect();
    print(format, &header, rows, objects);
    Ok(())
}

fn schedule_json(s: &ScheduleInfo) -> Value {
    json!({"name": s.name, "job": s.job, "params": s.params, "every": s.every, "cron": s.cron, "paused": s.paused,
           "next_run": time_ms(s.next_run_ms), "last_run_id": s.last_run_id, "last_status": s.last_status,
           "last_started": time_ms(s.last_started_ms), "skipped_ticks": s.skipped_ticks,
           "last_skipped": time_ms(s.last_skipped_ms)})
}

/// `stockyard schedules`: every schedule with its next and last run.
pub async fn schedules(scheduler: &Remote, format: Format) -> Result<(), Failure> {
    let mut client = connect(scheduler).await?;
    let list =
        client.list_schedules(ListSchedulesRequest {}).await.map_err(|e| failed(scheduler, e))?.into_inner().schedules;
    let header = ["name", "job", "when", "params", "state", "next run", "last run", "last status", "skipped ticks"];
    let rows = list
        .iter()
        .map(|s| {
            let mut params: Vec<String> = s.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            params.sort();
            vec![
                s.name.clone(),
                s.job.clone(),
                if s.cron.is_empty() { format!("every {}", s.every) } else { format!("cron {}", s.cron) },
                params.join(" "),
                if s.paused { "paused".into() } else { "active".into() },
                time_ms(s.next_run_ms),
                time_ms(s.last_started_ms),
                s.last_status.clone(),
                s.skipped_ticks.to_string(),
            ]
        })
        .collect();
    print(format, &header, rows, list.iter().map(schedule_json).collect());
    Ok(())
}

/// `stockyard schedules add|pause|resume|trigger|remove`: prints the
/// schedule as it is afterwards (one JSON line).
pub async fn change_schedule(scheduler: &Remote, action: ScheduleAction) -> Result<(), Failure> {
    let mut client = connect(scheduler).await?;
    let (name, verb, schedule) = match action {
        ScheduleAction::Add(a) => {
            let mut params: std::collections::HashMap<String, String> = a.params.into_iter().collect();
            if let Some(sql) = a.sql {
                params.insert("sql".into(), sql);
            }
            let info = ScheduleInfo {
                name: a.name.clone(),
                job: a.job.to_string(),
                params,
                every: a.every.map(|d| humantime::format_duration(d).to_string()).unwrap_or_default(),
                cron: a.cron.unwrap_or_default(),
                ..Default::default()
            };
            (a.name, Verb::Add, Some(info))
        }
        ScheduleAction::Pause(n) => (n.name, Verb::Pause, None),
        ScheduleAction::Resume(n) => (n.name, Verb::Resume, None),
        ScheduleAction::Trigger(n) => (n.name, Verb::Trigger, None),
        ScheduleAction::Remove(n) => (n.name, Verb::Remove, None),
    };
    let request = ChangeScheduleRequest { name: name.clone(), action: verb.to_string(), schedule };
    let answer = client
        .change_schedule(request)
        .await
        .map_err(|e| Failure::new(format!("cannot {verb} schedule {name}: {}", e.message())))?
        .into_inner();
    let mut out = answer.schedule.as_ref().map(schedule_json).unwrap_or(Value::Null);
    if !answer.run_id.is_empty() {
        out["run_id"] = json!(answer.run_id);
    }
    if verb == Verb::Remove {
        out["removed"] = json!(true);
    }
    println!("{out}");
    Ok(())
}
