//! `stockyard run JOB`: asks the scheduler to run a job, shows its progress
//! and prints a one-line JSON summary last.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use stockyard_api::{Job, Run, RunStatus};
use stockyard_proto::{ListRunsRequest, RunJobRequest, job_event};

use crate::Failure;
use crate::cli::Remote;

/// Runs `job` with `params` on the scheduler and waits for it to end.
pub async fn run(scheduler: &Remote, job: Job, params: HashMap<String, String>) -> Result<(), Failure> {
    let mut client = crate::list::connect(scheduler).await?;
    let run_id = stockyard_scheduler::runner::new_run_id(job);
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner.set_message(format!("starting the {job} job"));
    let events = client
        .run_job(RunJobRequest {
            job: job.to_string(),
            params,
            trigger: stockyard_api::Trigger::Cli.to_string(),
            run_id: run_id.clone(),
        })
        .await;
    // With one scheduler there is no other to finish the run: a lost
    // connection ends the command. With several, the next leader reruns it.
    let standby = scheduler.schedulers.0.len() > 1;
    let lost = match events {
        Ok(events) => match watch(events.into_inner(), &spinner).await {
            Ok(Some(run)) => return report(job, spinner, run),
            Ok(None) => return Err(Failure::new(format!("the scheduler ended the {job} job without a result"))),
            Err(e) => {
                let lost = format!("lost the scheduler while the {job} job ran: {}", e.message());
                if !standby {
                    return Err(Failure::new(lost));
                }
                lost
            }
        },
        // Lost before the answer came: the run may have started all the same.
        Err(e) if standby && lost_in_transit(&e) => {
            format!("lost the scheduler while starting the {job} job: {}", e.message())
        }
        Err(e) => return Err(Failure::new(format!("the scheduler refused the {job} job: {}", e.message()))),
    };
    spinner.set_message(format!("lost the scheduler; following run {run_id}"));
    let run = follow(scheduler, run_id, &spinner).await.map_err(|why| Failure::new(format!("{lost}; {why}")))?;
    report(job, spinner, run)
}

/// Shows a run's progress until its result, or until the stream breaks.
async fn watch(
    mut events: tonic::Streaming<stockyard_proto::JobEvent>,
    spinner: &ProgressBar,
) -> Result<Option<Run>, tonic::Status> {
    let mut result = None;
    while let Some(event) = events.message().await? {
        match event.event {
            Some(job_event::Event::Progress(message)) => spinner.set_message(message),
            Some(job_event::Event::Result(run)) => result = Some(typed(run).map_err(tonic::Status::internal)?),
            Some(job_event::Event::RunId(_)) | None => {}
        }
    }
    Ok(result)
}

/// Prints `run`'s summary line; an error when it did not succeed.
fn report(job: Job, spinner: ProgressBar, run: Run) -> Result<(), Failure> {
    spinner.finish_and_clear();
    let mut summary = json!({"job": run.job, "run_id": run.run_id, "status": run.status});
    if let Value::Object(fields) = &run.summary {
        for (k, v) in fields {
            summary[k] = v.clone();
        }
    }
    if !run.error.is_empty() {
        summary["error"] = json!(run.error);
    }
    println!("{summary}");
    match run.status {
        RunStatus::Failed | RunStatus::Interrupted => {
            Err(Failure::new(format!("the {job} job {}: {}", run.status, run.error)))
        }
        _ => Ok(()),
    }
}

/// A run from the job API in Stockyard's words.
fn typed(run: stockyard_proto::RunInfo) -> Result<Run, String> {
    let id = run.run_id.clone();
    Run::try_from(run).map_err(|e| format!("the scheduler sent run {id} in words this client does not know: {e}"))
}

/// Whether `e` says the connection broke rather than that the scheduler
/// refused: its own refusals are invalid-argument, failed-precondition,
/// unauthenticated or a standby's unavailable.
fn lost_in_transit(e: &tonic::Status) -> bool {
    use tonic::Code;
    match e.code() {
        Code::Unknown | Code::Internal | Code::Cancelled => true,
        Code::Unavailable => e.metadata().get(stockyard_api::NOT_LEADING).is_none(),
        _ => false,
    }
}

/// How long the schedulers may stay out of reach while a run is followed.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(60);

/// Waits for run `id` to end, through the run history of whichever
/// scheduler leads: when its scheduler died and the next leader reran it,
/// the rerun is followed instead.
async fn follow(scheduler: &Remote, mut id: String, spinner: &ProgressBar) -> Result<Run, String> {
    let mut last_contact = Instant::now();
    let mut interrupted: Option<Instant> = None;
    let mut unseen: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let runs = match crate::list::connect(scheduler).await {
            Ok(mut client) => client.list_runs(ListRunsRequest {}).await.map_err(|e| e.message().to_string()),
            Err(e) => Err(e.0),
        };
        let runs = match runs {
            Ok(r) => r.into_inner().runs,
            Err(why) if last_contact.elapsed() > FOLLOW_PATIENCE => return Err(why),
            Err(_) => continue,
        };
        last_contact = Instant::now();
        let run = runs.into_iter().find(|r| r.run_id == id).map(typed).transpose()?;
        match run {
            Some(r) if r.status == RunStatus::Interrupted && !r.rerun_as.is_empty() => {
                spinner.set_message(format!("run {id} was interrupted; following its rerun {}", r.rerun_as));
                id = r.rerun_as;
            }
            // The new leader has not taken it over yet.
            Some(r) if r.status == RunStatus::Running => {}
            // A scheduler on its own store does not rerun (the next run of
            // the job picks up after it): give the leader a while first.
            Some(r)
                if r.status == RunStatus::Interrupted
                    && interrupted.get_or_insert_with(Instant::now).elapsed() < FOLLOW_PATIENCE / 2 => {}
            Some(r) => return Ok(r),
            // Its scheduler died before recording it: it never started.
            None if unseen.get_or_insert_with(Instant::now).elapsed() > FOLLOW_PATIENCE / 2 => {
                return Err(format!("run {id} never started; start it again"));
            }
            None => {}
        }
    }
}
