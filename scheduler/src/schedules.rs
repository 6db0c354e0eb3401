//! Schedules: named jobs that the scheduler starts every interval or on a
//! cron expression (the part Airflow did). They live in the state store,
//! so they survive a restart; a tick that comes while the schedule's last
//! run still runs is skipped and counted, never run twice at once.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stockyard_api::views::ScheduleView;
use stockyard_api::{Job, Run, RunStatus, ScheduleAction, Trigger};
use stockyard_proto::ScheduleInfo;
use stockyard_state::StateStore;
use tokio::sync::mpsc;

use crate::leader::Leadership;
use crate::runner::{BadRequest, JobRunner};

/// How often due schedules are looked for.
pub const TICK: Duration = Duration::from_millis(250);

/// Key prefix of schedules in the state store.
const PREFIX: &str = "schedules/";
/// Set once the default schedules were created, so removing them sticks.
const SEEDED: &str = "meta/default-schedules";

/// Tries a change of a schedule gets against changes made beside it.
const CHANGE_TRIES: usize = 16;

/// One schedule as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Unique name: letters, digits, `-` and `_`; also its key in the store.
    pub name: String,
    /// Job each run starts.
    pub job: Job,
    /// Parameters each run gets, checked when the schedule is added.
    pub params: BTreeMap<String, String>,
    /// Interval in milliseconds, or 0 with a cron expression.
    pub every_ms: u64,
    /// Cron expression, or empty with an interval.
    pub cron: String,
    /// A paused schedule does not fire; resuming plans its next run from now.
    pub paused: bool,
    /// When it fires next, in ms since the epoch.
    pub next_run_ms: u64,
    /// Id of the last run started, empty before the first.
    #[serde(default)]
    pub last_run_id: String,
    /// Until its first run, none (older stores wrote "").
    #[serde(default, deserialize_with = "status_or_blank")]
    pub last_status: Option<RunStatus>,
    /// When the last run started, in ms since the epoch; 0 before the first.
    #[serde(default)]
    pub last_started_ms: u64,
    /// Ticks skipped because the last run was still running.
    #[serde(default)]
    pub skipped_ticks: u64,
    /// When a tick was last skipped, in ms since the epoch; 0 if none was.
    #[serde(default)]
    pub last_skipped_ms: u64,
}

impl Schedule {
    /// When it fires next after `now`.
    fn next_after(&self, now: DateTime<Utc>) -> u64 {
        let now_ms = now.timestamp_millis().max(0) as u64;
        if let Some(every_ms) = std::num::NonZeroU64::new(self.every_ms).map(u64::from) {
            // On the interval's grid from the last planned time, so runs do
            // not drift; ticks missed while nobody ran schedules are not
            // made up, and a late run is not followed by another at once:
            // the next is at least half an interval away.
            let base = self.next_run_ms.min(now_ms);
            let behind = (now_ms - base) / every_ms + 1;
            let next = base + behind * every_ms;
            return if next - now_ms < every_ms / 2 { next + every_ms } else { next };
        }
        croner::Cron::from_str(&self.cron)
            .ok()
            .and_then(|c| c.find_next_occurrence(&now, false).ok())
            .map(|t| t.timestamp_millis().max(0) as u64)
            .unwrap_or(u64::MAX)
    }

    /// As the job API shows it.
    pub fn info(&self) -> ScheduleInfo {
        ScheduleInfo {
            name: self.name.clone(),
            job: self.job.to_string(),
            params: self.params.clone().into_iter().collect(),
            every: if self.every_ms > 0 {
                humantime::format_duration(Duration::from_millis(self.every_ms)).to_string()
            } else {
                String::new()
            },
            cron: self.cron.clone(),
            paused: self.paused,
            next_run_ms: if self.paused { 0 } else { self.next_run_ms },
            last_run_id: self.last_run_id.clone(),
            last_status: self.last_status.map(|s| s.to_string()).unwrap_or_default(),
            last_started_ms: self.last_started_ms,
            skipped_ticks: self.skipped_ticks,
            last_skipped_ms: self.last_skipped_ms,
        }
    }

    /// Its REST form.
    pub fn view(&self) -> ScheduleView {
        let info = self.info();
        ScheduleView {
            name: info.name,
            job: self.job,
            params: self.params.clone(),
            every: info.every,
            cron: info.cron,
            paused: info.paused,
            next_run_ms: (info.next_run_ms > 0).then_some(info.next_run_ms),
            last_run_id: info.last_run_id,
            last_status: self.last_status,
            last_started_ms: (info.last_started_ms > 0).then_some(info.last_started_ms),
            skipped_ticks: info.skipped_ticks,
        }
    }
}

/// A stored last status, with the empty text older stores wrote as none.
fn status_or_blank<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RunStatus>, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Why a schedule change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule itself is malformed (name, interval, cron).
    #[error("{0}")]
    Bad(String),
    /// Its job or parameters are refused.
    #[error(transparent)]
    Params(#[from] BadRequest),
    /// No schedule has this name.
    #[error("no schedule named '{0}'")]
    Unknown(String),
    /// A schedule of this name already exists.
    #[error("schedule '{0}' already exists")]
    Exists(String),
    /// The schedule's last run still runs: its name, then that run's id.
    #[error("schedule '{0}' is still running its last run ({1})")]
    Running(String, String),
    /// The state store failed.
    #[error("the scheduler's state store failed: {0}")]
    State(#[from] stockyard_state::StateError),
}

/// The schedules and the loop that fires them.
#[derive(Debug)]
pub struct Schedules {
    store: Arc<dyn StateStore>,
    runner: Arc<JobRunner>,
    /// Schedule name → its run in flight.
    running: Mutex<HashMap<String, String>>,
    /// Set while the state store is away, so the outage is logged once.
    store_away: std::sync::atomic::AtomicBool,
}

fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

impl Schedules {
    /// Schedules kept in `store`, run by `runner`.
    pub fn new(store: Arc<dyn StateStore>, runner: Arc<JobRunner>) -> Arc<Self> {
        Arc::new(Self { store, runner, running: Mutex::default(), store_away: Default::default() })
    }

    /// Every schedule, by name.
    pub async fn list(&self) -> Result<Vec<Schedule>, ScheduleError> {
        let mut out = Vec::new();
        for (key, value) in self.store.list(PREFIX).await? {
            match serde_json::from_slice::<Schedule>(&value) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!("ignoring unreadable schedule {key}: {e}"),
            }
        }
        Ok(out)
    }

    async fn get(&self, name: &str) -> Result<Schedule, ScheduleError> {
        Ok(self.stored(name).await?.0)
    }

    /// `name` as stored: the schedule and the bytes it was read from.
    async fn stored(&self, name: &str) -> Result<(Schedule, Vec<u8>), ScheduleError> {
        let value =
            self.store.get(&format!("{PREFIX}{name}")).await?.ok_or_else(|| ScheduleError::Unknown(name.into()))?;
        let s = serde_json::from_slice(&value)
            .map_err(|e| ScheduleError::Bad(format!("schedule {name} is unreadable: {e}")))?;
        Ok((s, value))
    }

    /// Changes `name` with `change`, as a compare-and-swap on the store
    /// retried from the value stored now: a pause and a run's record
    /// written at once both stand. `change` answers `None` to leave the
    /// schedule as it is; the changed schedule and its answer otherwise.
    async fn change<R>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut Schedule) -> Option<R>,
    ) -> Result<Option<(Schedule, R)>, ScheduleError> {
        for _ in 0..CHANGE_TRIES {
            let (mut s, was) = self.stored(name).await?;
            let Some(answer) = change(&mut s) else { return Ok(None) };
            let value = serde_json::to_vec(&s).map_err(|e| ScheduleError::Bad(e.to_string()))?;
            if self.store.put_if(&format!("{PREFIX}{name}"), Some(&was), Some(value)).await? {
                return Ok(Some((s, answer)));
            }
        }
        Err(ScheduleError::Bad(format!("schedule {name} changed {CHANGE_TRIES} times while it was being changed")))
    }

    /// Adds a schedule from its API form, checking every part of it.
    pub async fn add(&self, info: &ScheduleInfo) -> Result<Schedule, ScheduleError> {
        let name = info.name.as_str();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ScheduleError::Bad(format!("'{name}' is not a schedule name (letters, digits, - and _)")));
        }
        let job: Job = info.job.parse().map_err(BadRequest::from)?;
        let params: BTreeMap<String, String> = info.params.clone().into_iter().collect();
        self.runner.validate(job, &params)?;
        let every_ms = match (info.every.is_empty(), info.cron.is_empty()) {
            (false, true) => humantime::parse_duration(&info.every)
                .ok()
                .filter(|d| !d.is_zero())
                .map(|d| d.as_millis() as u64)
                .ok_or_else(|| ScheduleError::Bad(format!("'{}' is not an interval like 30s, 1m or 5m", info.every)))?,
            (true, false) => {
                croner::Cron::from_str(&info.cron)
                    .map_err(|e| ScheduleError::Bad(format!("'{}' is not a cron expression: {e}", info.cron)))?;
                0
            }
            _ => {
                return Err(ScheduleError::Bad(
                    "a schedule needs either an interval (--every) or a cron expression (--cron)".into(),
                ));
            }
        };
        let mut s = Schedule {
            name: name.into(),
            job,
            params,
            every_ms,
            cron: info.cron.clone(),
            paused: false,
            next_run_ms: now_ms(),
            last_run_id: String::new(),
            last_status: None,
            last_started_ms: 0,
            skipped_ticks: 0,
            last_skipped_ms: 0,
        };
        s.next_run_ms = s.next_after(Utc::now());
        let value = serde_json::to_vec(&s).map_err(|e| ScheduleError::Bad(e.to_string()))?;
        // Created only where none is: two adds of one name, one wins.
        if !self.store.put_if(&format!("{PREFIX}{name}"), None, Some(value)).await? {
            return Err(ScheduleError::Exists(name.into()));
        }
        Ok(s)
    }

    /// Pauses or resumes `name`.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<Schedule, ScheduleError> {
        let changed = self
            .change(name, |s| {
                s.paused = paused;
                if !paused {
                    s.next_run_ms = s.next_after(Utc::now());
                }
                Some(())
            })
            .await?;
        changed.map(|(s, ())| s).ok_or_else(|| ScheduleError::Unknown(name.into()))
    }

    /// Removes `name` (a run in flight goes on), as it is stored now: a
    /// run's record written meanwhile does not bring it back.
    pub async fn remove(&self, name: &str) -> Result<Schedule, ScheduleError> {
        for _ in 0..CHANGE_TRIES {
            let (s, was) = self.stored(name).await?;
            if self.store.put_if(&format!("{PREFIX}{name}"), Some(&was), None).await? {
                return Ok(s);
            }
        }
        Err(ScheduleError::Bad(format!("schedule {name} changed {CHANGE_TRIES} times while it was being removed")))
    }

    /// Starts `name`'s job now, unless its last run still runs.
    pub async fn trigger(self: &Arc<Self>, name: &str) -> Result<(Schedule, String), ScheduleError> {
        let s = self.get(name).await?;
        let run_id = self.start(s.clone(), "manual")?;
        Ok((self.get(name).await.unwrap_or(s), run_id))
    }

    /// Does `action` to `name`, the one dispatch of REST and gRPC; `add`
    /// creates it from `new`. The schedule as it now is, and the run a
    /// trigger started.
    pub async fn apply(
        self: &Arc<Self>,
        name: &str,
        action: ScheduleAction,
        new: Option<ScheduleInfo>,
    ) -> Result<(Schedule, Option<String>), ScheduleError> {
        match action {
            ScheduleAction::Add => {
                let mut info = new.unwrap_or_default();
                info.name = name.to_string();
                Ok((self.add(&info).await?, None))
            }
            ScheduleAction::Pause => Ok((self.set_paused(name, true).await?, None)),
            ScheduleAction::Resume => Ok((self.set_paused(name, false).await?, None)),
            ScheduleAction::Remove => Ok((self.remove(name).await?, None)),
            ScheduleAction::Trigger => self.trigger(name).await.map(|(s, run)| (s, Some(run))),
        }
    }

    /// Creates `kpi` every minute, `archive` every 5 minutes and `compact`
    /// every hour, once.
    pub async fn seed_defaults(&self) -> Result<(), ScheduleError> {
        if self.store.get(SEEDED).await?.is_some() {
            return Ok(());
        }
        for (name, every) in [("kpi", "1m"), ("archive", "5m"), ("compact", "1h")] {
            let info = ScheduleInfo { name: name.into(), job: name.into(), every: every.into(), ..Default::default() };
            match self.add(&info).await {
                Ok(_) | Err(ScheduleError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.store.put(SEEDED, b"1".to_vec()).await?;
        Ok(())
    }

    /// Starts a run of `s` in the background and records it on `s`.
    fn start(self: &Arc<Self>, s: Schedule, why: &str) -> Result<String, ScheduleError> {
        let run = Run::new(crate::runner::new_run_id(s.job), s.job, Trigger::schedule(&s.name, why), s.params.clone());
        self.launch(s.name, run)
    }

    /// Starts `run` in the background as schedule `name`'s run, unless
    /// that schedule's last run still runs.
    fn launch(self: &Arc<Self>, name: String, run: Run) -> Result<String, ScheduleError> {
        let mut running = self.running.lock().expect("running lock");
        if let Some(other) = running.get(&name) {
            return Err(ScheduleError::Running(name, other.clone()));
        }
        let run_id = run.run_id.clone();
        running.insert(name.clone(), run_id.clone());
        drop(running);
        let this = self.clone();
        tokio::spawn(async move {
            let id = run.run_id.clone();
            this.update(&name, |t| {
                t.last_run_id = id.clone();
                t.last_status = Some(RunStatus::Running);
                t.last_started_ms = now_ms();
            })
            .await;
            let (progress, _) = mpsc::channel(1);
            let run = this.runner.clone().execute(run, progress).await;
            this.running.lock().expect("running lock").remove(&name);
            this.update(&name, |t| {
                if t.last_run_id == run.run_id {
                    t.last_status = Some(run.status);
                }
            })
            .await;
        });
        Ok(run_id)
    }

    /// Deals with the runs a scheduler that died or stepped down left
    /// unfinished: recorded as interrupted and, when schedulers share the
    /// store, rerun here. A rerun of a schedule's run counts as that
    /// schedule's run, so the schedule does not start another beside it.
    pub async fn take_over(self: &Arc<Self>, rerun: bool) -> Result<(), ScheduleError> {
        for orphan in self.runner.orphans(rerun).await? {
            if !rerun {
                tracing::warn!(run = %orphan.run_id, "a run was interrupted by the scheduler's stop; the next run of its job picks up after it");
                continue;
            }
            let schedule = orphan.trigger.schedule_name().map(str::to_string);
            let trigger = match &schedule {
                Some(name) => Trigger::schedule(name, "takeover"),
                None => Trigger::Takeover,
            };
            let mut run = Run::new(orphan.rerun_as.clone(), orphan.job, trigger, orphan.params.clone());
            run.rerun_of = orphan.run_id.clone();
            tracing::info!(run = %orphan.run_id, rerun = %run.run_id, "rerunning a run its scheduler left unfinished");
            // Not a schedule's: keyed by the run, which no schedule is named.
            let key = schedule.unwrap_or_else(|| format!("run {}", orphan.run_id));
            if let Err(e) = self.launch(key, run) {
                tracing::warn!(run = %orphan.run_id, "cannot rerun: {e}");
            }
        }
        Ok(())
    }

    /// Changes schedule `name` in the store, if it still exists.
    async fn update(&self, name: &str, mut change: impl FnMut(&mut Schedule)) {
        let result = self
            .change(name, |s| {
                change(s);
                Some(())
            })
            .await;
        match result {
            Ok(_) | Err(ScheduleError::Unknown(_)) => {}
            Err(e) => tracing::warn!(schedule = name, "cannot record the schedule's run: {e}"),
        }
    }

    /// Fires due schedules; once per [`TICK`], on the scheduler that leads.
    pub async fn tick(self: &Arc<Self>) {
        let schedules = match self.list().await {
            Ok(s) => {
                self.store_away.store(false, std::sync::atomic::Ordering::Relaxed);
                s
            }
            Err(e) => {
                // Logged once per outage; nothing fires while the store is away,
                // and nothing is made up when it is back.
                if !self.store_away.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!("schedules paused: {e} (retrying)");
                }
                return;
            }
        };
        let now = Utc::now();
        let now_ms = now.timestamp_millis().max(0) as u64;
        for listed in schedules {
            if listed.paused || listed.next_run_ms > now_ms {
                continue;
            }
            let busy = self.running.lock().expect("running lock").get(&listed.name).cloned();
            // Checked again on the schedule as stored now: one paused or
            // removed since the listing does not fire.
            let fire = self
                .change(&listed.name, |s| {
                    if s.paused || s.next_run_ms > now_ms {
                        return None;
                    }
                    s.next_run_ms = s.next_after(now);
                    if busy.is_some() {
                        s.skipped_ticks += 1;
                        s.last_skipped_ms = now_ms;
                    }
                    Some(busy.is_none())
                })
                .await;
            match fire {
                Ok(Some((s, false))) => {
                    let run = busy.unwrap_or_default();
                    tracing::info!(schedule = %s.name, run = %run, "tick skipped: the last run still runs");
                }
                // Saved before the run starts: a crash now skips this tick
                // rather than firing it twice.
                Ok(Some((s, true))) => {
                    if let Err(e) = self.start(s.clone(), "due") {
                        tracing::warn!(schedule = %s.name, "not firing: {e}");
                    }
                }
                Ok(None) | Err(ScheduleError::Unknown(_)) => {}
                Err(e) => tracing::warn!(schedule = %listed.name, "not firing: {e}"),
            }
        }
    }

    /// Runs [`Self::tick`] forever while this scheduler leads; with
    /// `seed`, first creates the default schedules (retried until the
    /// store answers). On becoming the leader it takes over the runs left
    /// unfinished; on losing the leadership it interrupts its own.
    pub async fn run(self: Arc<Self>, mut seed: bool, leadership: Arc<Leadership>) {
        let mut leading = false;
        let mut taken_over = false;
        // Background failures are logged at warn, once per new reason.
        let mut last_failure = String::new();
        let mut warn_once = |what: &str, e: &dyn std::fmt::Display| {
            let text = format!("{what}: {e}");
            if text != last_failure {
                tracing::warn!("{text} (retrying)");
                last_failure = text;
            }
        };
        loop {
            match (leading, leadership.is_leader()) {
                (false, true) => {
                    tracing::info!("this scheduler leads: it runs the schedules");
                    leading = true;
                    taken_over = false;
                }
                (true, false) => {
                    tracing::warn!("this scheduler no longer leads: its runs stop and the new leader reruns them");
                    self.runner.interrupt_all();
                    leading = false;
                }
                _ => {}
            }
            if leading {
                if !taken_over {
                    match self.take_over(leadership.shared).await {
                        Ok(()) => taken_over = true,
                        Err(e) => warn_once("the unfinished runs cannot be taken over yet", &e),
                    }
                }
                if seed {
                    match self.seed_defaults().await {
                        Ok(()) => seed = false,
                        Err(e) => warn_once("the default schedules cannot be created yet", &e),
                    }
                }
                self.tick().await;
            }
            tokio::time::sleep(TICK).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(every_ms: u64, cron: &str, next: u64) -> Schedule {
        Schedule {
            name: "s".into(),
            job: Job::Kpi,
            params: BTreeMap::new(),
            every_ms,
            cron: cron.into(),
            paused: false,
            next_run_ms: next,
            last_run_id: String::new(),
            last_status: None,
            last_started_ms: 0,
            skipped_ticks: 0,
            last_skipped_ms: 0,
        }
    }

    #[test]
    fn intervals_stay_on_their_grid_and_cron_finds_the_next_minute() {
        let now = DateTime::parse_from_rfc3339("2026-01-05T12:00:10Z").unwrap().with_timezone(&Utc);
        let ms = now.timestamp_millis() as u64;
        // Due 10 s ago with a 60 s interval: next at +50 s, not +60 s.
        assert_eq!(schedule(60_000, "", ms - 10_000).next_after(now), ms + 50_000);
        // Long overdue: the next grid point after now, no burst.
        assert_eq!(schedule(60_000, "", ms - 3_600_000 - 10_000).next_after(now), ms + 50_000);
        // Fired 50 s late: the grid point 10 s on is skipped, not run right
        // after this one.
        assert_eq!(schedule(60_000, "", ms - 50_000).next_after(now), ms + 70_000);
        let next = schedule(0, "*/5 * * * *", 0).next_after(now);
        assert_eq!(next, DateTime::parse_from_rfc3339("2026-01-05T12:05:00Z").unwrap().timestamp_millis() as u64);
    }

    /// Schedules over a memory store, with a runner whose MongoDB is never
    /// reached: adding a schedule only checks it.
    fn schedules() -> Arc<Schedules> {
        schedules_on(Arc::new(stockyard_state::MemoryStore::default()))
    }

    fn schedules_on(store: Arc<dyn StateStore>) -> Arc<Schedules> {
        let mongo = Arc::new(stockyard_mongo::MongoSource::new("mongodb://127.0.0.1:9", "db"));
        let targets = crate::runner::JobTargets {
            scheduler: stockyard_plan::session::Route { scheduler: "127.0.0.1:9".into(), dialer: None },
            catalog: Arc::new(stockyard_mongo::MongoCatalog::new(mongo.clone(), 10, Duration::from_secs(60))),
            mongo,
            allow_local_files: false,
            max_result_bytes: crate::runner::result::MAX_RESULT_BYTES,
            redis_url: "redis://127.0.0.1:9".into(),
            archive_dest: "/data/archive".into(),
            allowed_dests: vec!["/data/archive".into()],
        };
        let runner = Arc::new(JobRunner::new(targets, store.clone(), Duration::from_secs(3600), "test".into()));
        Schedules::new(store, runner)
    }

    /// What another writer makes of a value (`None`: it deletes it).
    type OtherWriter = fn(&[u8]) -> Option<Vec<u8>>;

    /// A store where another writer changes a key right after it is
    /// next read: the race a read-modify-write must not lose.
    #[derive(Debug, Default)]
    struct RacingStore {
        inner: stockyard_state::MemoryStore,
        /// The key, and what the other writer makes of its value (`None`:
        /// it deletes it).
        next: std::sync::Mutex<Option<(String, OtherWriter)>>,
    }

    #[async_trait::async_trait]
    impl StateStore for RacingStore {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, stockyard_state::StateError> {
            let value = self.inner.get(key).await?;
            let race = self.next.lock().unwrap().take_if(|(k, _)| k == key);
            if let (Some((_, other)), Some(v)) = (race, &value) {
                match other(v) {
                    Some(changed) => self.inner.put(key, changed).await?,
                    None => self.inner.delete(key).await?,
                }
            }
            Ok(value)
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), stockyard_state::StateError> {
            self.inner.put(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<(), stockyard_state::StateError> {
            self.inner.delete(key).await
        }
        async fn put_if(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            value: Option<Vec<u8>>,
        ) -> Result<bool, stockyard_state::StateError> {
            self.inner.put_if(key, expected, value).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, stockyard_state::StateError> {
            self.inner.list(prefix).await
        }
        fn describe(&self) -> String {
            "racing".into()
        }
    }

    #[tokio::test]
    async fn changes_made_at_once_both_stand_and_a_removed_schedule_stays_removed() {
        let store = Arc::new(RacingStore::default());
        let s = schedules_on(store.clone());
        s.add(&info("hourly", "kpi", "1h", "", &[])).await.unwrap();
        // A pause lands between a run's record reading the schedule and
        // writing it back: both stand.
        let pause = |v: &[u8]| {
            let mut s: Schedule = serde_json::from_slice(v).unwrap();
            s.paused = true;
            Some(serde_json::to_vec(&s).unwrap())
        };
        *store.next.lock().unwrap() = Some(("schedules/hourly".into(), pause));
        s.update("hourly", |t| t.last_run_id = "kpi-1".into()).await;
        let now = s.get("hourly").await.unwrap();
        assert!(now.paused, "the pause was lost");
        assert_eq!(now.last_run_id, "kpi-1", "the run's record was lost");
        // A removal lands the same way: the record does not bring it back.
        *store.next.lock().unwrap() = Some(("schedules/hourly".into(), |_| None));
        s.update("hourly", |t| t.last_run_id = "kpi-2".into()).await;
        assert!(matches!(s.get("hourly").await, Err(ScheduleError::Unknown(_))), "the removed schedule came back");
        // And a tick of a schedule paused after the listing does not fire.
        s.add(&info("often", "kpi", "1s", "", &[])).await.unwrap();
        store
            .inner
            .put("schedules/often", {
                let mut t = s.get("often").await.unwrap();
                t.next_run_ms = 0;
                serde_json::to_vec(&t).unwrap()
            })
            .await
            .unwrap();
        *store.next.lock().unwrap() = Some(("schedules/often".into(), pause));
        s.tick().await;
        let t = s.get("often").await.unwrap();
        assert!(t.paused && t.last_run_id.is_empty() && t.next_run_ms == 0, "a paused schedule fired: {t:?}");
    }

    fn info(name: &str, job: &str, every: &str, cron: &str, params: &[(&str, &str)]) -> ScheduleInfo {
        ScheduleInfo {
            name: name.into(),
            job: job.into(),
            every: every.into(),
            cron: cron.into(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_schedule_is_checked_whole_before_it_is_stored() {
        let s = schedules();
        let refused = async |i: ScheduleInfo| s.add(&i).await.unwrap_err().to_string();
        assert_eq!(
            refused(info("a b", "kpi", "1m", "", &[])).await,
            "'a b' is not a schedule name (letters, digits, - and _)"
        );
        assert_eq!(
            refused(info("x", "nap", "1m", "", &[])).await,
            "no job named 'nap' (jobs: kpi, archive, compact, sql)"
        );
        assert_eq!(refused(info("x", "kpi", "soon", "", &[])).await, "'soon' is not an interval like 30s, 1m or 5m");
        assert!(
            refused(info("x", "kpi", "", "61 * * * *", &[])).await.starts_with("'61 * * * *' is not a cron expression")
        );
        assert_eq!(
            refused(info("x", "kpi", "", "", &[])).await,
            "a schedule needs either an interval (--every) or a cron expression (--cron)"
        );
        assert_eq!(
            refused(info("x", "kpi", "1m", "", &[("window", "-1m")])).await,
            "window: '-1m' is not a duration like 90s, 15m or 2h"
        );
        assert!(
            refused(info("x", "archive", "5m", "", &[("dest", "/etc")]))
                .await
                .starts_with("the archive destination '/etc'")
        );
        assert!(s.list().await.unwrap().is_empty(), "a refused schedule was stored");

        let added = s.add(&info("kpi-1", "kpi", "90s", "", &[("ttl", "120s")])).await.unwrap();
        assert_eq!((added.job, added.every_ms, added.paused), (Job::Kpi, 90_000, false));
        assert_eq!(refused(info("kpi-1", "kpi", "1m", "", &[])).await, "schedule 'kpi-1' already exists");
        let paused = s.apply("kpi-1", ScheduleAction::Pause, None).await.unwrap();
        assert_eq!((paused.0.paused, paused.1), (true, None));
        let names: Vec<String> = s.list().await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["kpi-1"]);
        s.apply("kpi-1", ScheduleAction::Remove, None).await.unwrap();
        assert_eq!(
            s.apply("kpi-1", ScheduleAction::Resume, None).await.unwrap_err().to_string(),
            "no schedule named 'kpi-1'"
        );
    }
}
