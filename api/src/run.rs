//! A run's vocabulary: which job it runs, what started it and where it
//! stands. The CLI, the REST API, gRPC, the schedules and the run store all
//! parse and print these words here, so they cannot drift apart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// A job the scheduler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    /// The five supply-chain KPIs into Redis.
    Kpi,
    /// Old facts to Parquet, exactly once.
    Archive,
    /// Each archive hour's files merged into one.
    Compact,
    /// A saved SQL statement.
    Sql,
}

impl Job {
    /// Every job, in the order help texts list them.
    pub const ALL: [Job; 4] = [Job::Kpi, Job::Archive, Job::Compact, Job::Sql];

    /// The job's name as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::Kpi => "kpi",
            Job::Archive => "archive",
            Job::Compact => "compact",
            Job::Sql => "sql",
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no job, status or trigger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownWord {
    /// No job has this name.
    #[error("no job named '{0}' (jobs: kpi, archive, compact, sql)")]
    Job(String),
    /// No run status has this name.
    #[error("'{0}' is not a run status (running, succeeded, failed, skipped, cancelled, interrupted)")]
    Status(String),
    /// Not a trigger this scheduler records.
    #[error("'{0}' is not a run trigger (cli, ui, flight-sql, takeover, or schedule:NAME (REASON))")]
    Trigger(String),
}

impl FromStr for Job {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Job::ALL.into_iter().find(|j| j.as_str() == s).ok_or_else(|| UnknownWord::Job(s.to_string()))
    }
}

// By its parser, so a bad name in a request gets the parser's message.
impl<'de> Deserialize<'de> for Job {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Going on.
    Running,
    /// Ended with its work done.
    Succeeded,
    /// Ended with an error, recorded on the run.
    Failed,
    /// Ended at once because there was nothing to do (an archive below its
    /// threshold).
    Skipped,
    /// Stopped by a user.
    Cancelled,
    /// Stopped because its scheduler died or lost the leadership; the next
    /// leader reruns it.
    Interrupted,
    /// Ended without writing: Redis holds the KPIs of a window that ends
    /// later (a late rerun, or a backfill without `force`).
    Superseded,
}

impl RunStatus {
    /// Every status, in the order filters list them.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Skipped,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
        RunStatus::Superseded,
    ];

    /// The status as the API and the CLI print it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Superseded => "superseded",
        }
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        self != RunStatus::Running
    }

    /// Whether the run ended without doing its work (a caller waiting on
    /// it should fail).
    pub fn is_failure(self) -> bool {
        matches!(self, RunStatus::Failed | RunStatus::Cancelled | RunStatus::Interrupted)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL.into_iter().find(|j| j.as_str() == s).ok_or_else(|| UnknownWord::Status(s.to_string()))
    }
}

/// What started a run. Written as `cli`, `ui`, `flight-sql`, `takeover`
/// or `schedule:NAME (REASON)`; filters match the written form's start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `stockyard run`.
    Cli,
    /// The web UI or the REST API.
    Ui,
    /// A query over Arrow Flight SQL.
    FlightSql,
    /// A schedule: its name, and why it fired (`due`, `manual`,
    /// `takeover`).
    Schedule {
        /// The schedule's name.
        name: String,
        /// Why it fired.
        reason: String,
    },
    /// The rerun of a run whose scheduler died, started by no schedule.
    Takeover,
}

impl Trigger {
    /// A schedule's trigger.
    pub fn schedule(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Trigger::Schedule { name: name.into(), reason: reason.into() }
    }

    /// The schedule that started the run, if one did.
    pub fn schedule_name(&self) -> Option<&str> {
        match self {
            Trigger::Schedule { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Cli => f.write_str("cli"),
            Trigger::Ui => f.write_str("ui"),
            Trigger::FlightSql => f.write_str("flight-sql"),
            Trigger::Takeover => f.write_str("takeover"),
            Trigger::Schedule { name, reason } => write!(f, "schedule:{name} ({reason})"),
        }
    }
}

impl FromStr for Trigger {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownWord::Trigger(s.to_string());
        Ok(match s {
            "cli" => Trigger::Cli,
            "ui" => Trigger::Ui,
            "flight-sql" => Trigger::FlightSql,
            "takeover" => Trigger::Takeover,
            _ => {
                let rest = s.strip_prefix("schedule:").ok_or_else(unknown)?;
                let (name, reason) = rest.split_once(" (").ok_or_else(unknown)?;
                let reason = reason.strip_suffix(')').ok_or_else(unknown)?;
                if name.is_empty() || reason.is_empty() {
                    return Err(unknown());
                }
                Trigger::schedule(name, reason)
            }
        })
    }
}

impl Serialize for Trigger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Trigger {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("cli, ui, flight-sql, takeover, or schedule:NAME (REASON)"))
            .examples([serde_json::json!("schedule:kpi (due)")])
            .into()
    }
}

impl ToSchema for Trigger {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_it_prints() {
        for job in Job::ALL {
            assert_eq!(job.as_str().parse::<Job>(), Ok(job));
        }
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::json!(status.as_str()));
        }
        for (text, trigger) in [
            ("cli", Trigger::Cli),
            ("ui", Trigger::Ui),
            ("flight-sql", Trigger::FlightSql),
            ("takeover", Trigger::Takeover),
            ("schedule:kpi (due)", Trigger::schedule("kpi", "due")),
            ("schedule:nightly archive (takeover)", Trigger::schedule("nightly archive", "takeover")),
        ] {
            assert_eq!(text.parse::<Trigger>().as_ref(), Ok(&trigger), "{text}");
            assert_eq!(trigger.to_string(), text);
        }
    }

    #[test]
    fn unknown_words_are_named() {
        assert_eq!(
            "kpis".parse::<Job>().unwrap_err().to_string(),
            "no job named 'kpis' (jobs: kpi, archive, compact, sql)"
        );
        assert!("done".parse::<RunStatus>().unwrap_err().to_string().starts_with("'done' is not a run status"));
        for bad in ["", "schedule:", "schedule:kpi", "schedule: (due)", "schedule:kpi ()", "cron"] {
            assert!(bad.parse::<Trigger>().is_err(), "{bad}");
        }
    }
}
