//! `stockyard run JOB`: asks the scheduler to run a job, shows its progress
//! and prints a one-line JSON summary last.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use stockyard_proto::{RunJobRequest, job_event};

use crate::Failure;
use crate::cli::HostPort;

/// Runs `job` with `params` on the scheduler and waits for it to end.
pub async fn run(scheduler: &HostPort, job: &str, params: HashMap<String, String>) -> Result<(), Failure> {
    let mut client = crate::list::require_executors(scheduler).await?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner.set_message(format!("starting the {job} job"));
    let mut events = client
        .run_job(RunJobRequest { job: job.to_string(), params, trigger: "cli".into() })
        .await
        .map_err(|e| Failure::new(format!("the scheduler refused the {job} job: {}", e.message())))?
        .into_inner();
    let mut result = None;
    while let Some(event) = events
        .message()
        .await
        .map_err(|e| Failure::new(format!("lost the scheduler while the {job} job ran: {}", e.message())))?
    {
        match event.event {
            Some(job_event::Event::Progress(message)) => spinner.set_message(message),
            Some(job_event::Event::Result(run)) => result = Some(run),
            None => {}
        }
    }
    spinner.finish_and_clear();
    let run = result.ok_or_else(|| Failure::new(format!("the scheduler ended the {job} job without a result")))?;
    let mut summary = json!({"job": run.job, "run_id": run.run_id, "status": run.status});
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&run.summary_json) {
        for (k, v) in fields {
            summary[k] = v;
        }
    }
    if !run.error.is_empty() {
        summary["error"] = json!(run.error);
    }
    println!("{summary}");
    match run.status.as_str() {
        "failed" => Err(Failure::new(format!("the {job} job failed: {}", run.error))),
        _ => Ok(()),
    }
}
