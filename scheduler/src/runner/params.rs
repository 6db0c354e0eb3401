//! A run's parameters, from their CLI spelling to each job's typed
//! parameters, checked before the run starts; and where archive
//! destinations may lie.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use stockyard_api::Job;
use stockyard_api::params::{self, ParamError};
use stockyard_jobs::archive::ArchiveParams;
use stockyard_jobs::compact::CompactParams;
use stockyard_jobs::kpi::KpiParams;

/// Parameters a run is refused for, before it starts.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// The job takes no parameter of this name.
    #[error("the {job} job has no parameter '{name}' (it takes {takes})")]
    Unknown {
        /// The job.
        job: Job,
        /// The parameter given.
        name: String,
        /// The parameters it takes.
        takes: &'static str,
    },
    /// A value that does not parse.
    #[error("{name}: {source}")]
    Value {
        /// The parameter.
        name: &'static str,
        /// What is wrong with its value.
        #[source]
        source: ParamError,
    },
    /// `abandon` with no run id.
    #[error("abandon: name the archive run to abandon (its id, as `stockyard jobs` lists its archive_id)")]
    Abandon,
    /// A `sql` run with no statement.
    #[error("the sql job needs its statement in the sql parameter")]
    NoStatement,
    /// An archive destination that cannot be used.
    #[error("{0}")]
    Dest(String),
    /// A run id that is not plain, or is taken.
    #[error("{0}")]
    RunId(String),
    /// No job of this name.
    #[error(transparent)]
    Job(#[from] stockyard_api::UnknownWord),
}

/// The parameters a job takes, as its refusal lists them.
fn takes(job: Job) -> &'static str {
    match job {
        Job::Kpi => "now, window, ttl, force, timeout",
        Job::Archive => "now, threshold_mb, older_than, dest, abandon, timeout",
        Job::Compact => "dest, min_files, timeout",
        Job::Sql => "sql, timeout",
    }
}

fn only_known(job: Job, given: &BTreeMap<String, String>) -> Result<(), BadRequest> {
    let known: Vec<&str> = takes(job).split(", ").collect();
    match given.keys().find(|k| !known.contains(&k.as_str())) {
        Some(name) => Err(BadRequest::Unknown { job, name: name.clone(), takes: takes(job) }),
        None => Ok(()),
    }
}

fn value<T>(
    given: &BTreeMap<String, String>,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, ParamError>,
) -> Result<Option<T>, BadRequest> {
    given.get(name).map(|v| parse(v)).transpose().map_err(|source| BadRequest::Value { name, source })
}

fn duration(given: &BTreeMap<String, String>, name: &'static str, default: Duration) -> Result<Duration, BadRequest> {
    Ok(value(given, name, params::duration)?.unwrap_or(default))
}

fn now(given: &BTreeMap<String, String>) -> Result<DateTime<Utc>, BadRequest> {
    // MongoDB dates have millisecond precision; so do the job's times.
    Ok(value(given, "now", params::time)?.unwrap_or_else(|| Utc::now().trunc_subsecs(3)))
}

/// The KPI job's parameters.
pub fn kpi(given: &BTreeMap<String, String>) -> Result<KpiParams, BadRequest> {
    only_known(Job::Kpi, given)?;
    let params = KpiParams {
        now: now(given)?,
        window: duration(given, "window", Duration::from_secs(15 * 60))?,
        ttl: duration(given, "ttl", Duration::from_secs(120))?,
        force: value(given, "force", params::flag)?.unwrap_or(false),
    };
    // A window reaching before the calendar's start has no bounds.
    let reachable = chrono::Duration::from_std(params.window).ok().and_then(|w| params.now.checked_sub_signed(w));
    if reachable.is_none() {
        return Err(BadRequest::Value {
            name: "window",
            source: ParamError::TooLong(given.get("window").cloned().unwrap_or_default()),
        });
    }
    Ok(params)
}

/// The archive job's parameters, its destination under `allowed`.
pub fn archive(
    given: &BTreeMap<String, String>,
    default_dest: &str,
    allowed: &[String],
) -> Result<ArchiveParams, BadRequest> {
    only_known(Job::Archive, given)?;
    let threshold_mb = value(given, "threshold_mb", params::megabytes)?.unwrap_or(300.0);
    let dest = dest(given, default_dest, allowed)?;
    let older_than = duration(given, "older_than", Duration::from_secs(120 * 60))?;
    let abandon = given.get("abandon").cloned();
    if abandon.as_deref().is_some_and(|id| id.trim().is_empty()) {
        return Err(BadRequest::Abandon);
    }
    let params = ArchiveParams { now: now(given)?, threshold_mb, older_than, dest, abandon, leader: None };
    if chrono::Duration::from_std(older_than).ok().and_then(|o| params.now.checked_sub_signed(o)).is_none() {
        return Err(BadRequest::Value {
            name: "older_than",
            source: ParamError::TooLong(given.get("older_than").cloned().unwrap_or_default()),
        });
    }
    Ok(params)
}

/// The compaction job's parameters, its destination under `allowed`.
pub fn compact(
    given: &BTreeMap<String, String>,
    default_dest: &str,
    allowed: &[String],
) -> Result<CompactParams, BadRequest> {
    only_known(Job::Compact, given)?;
    let min_files = value(given, "min_files", params::files)?.unwrap_or(2);
    Ok(CompactParams { dest: dest(given, default_dest, allowed)?, min_files })
}

/// The archive destination a run names (`dest`), or the scheduler's;
/// refused unless under one the scheduler was given.
fn dest(given: &BTreeMap<String, String>, default_dest: &str, allowed: &[String]) -> Result<String, BadRequest> {
    let dest = absolute_dest(given.get("dest").map(String::as_str).unwrap_or(default_dest));
    stockyard_plan::store::open_check(&dest).map_err(|e| BadRequest::Dest(e.to_string()))?;
    if !dest_allowed(&dest, allowed) {
        return Err(BadRequest::Dest(format!(
            "the archive destination '{}' is not under the scheduler's destinations ({}): \
             start the scheduler with --archive-dests to allow it",
            stockyard_mask::uri(&dest),
            allowed.iter().map(|a| stockyard_mask::uri(a)).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(dest)
}

/// How long a run of `job` may take by default: a KPI run that takes
/// longer than minutes is stuck (the schedule skips while it runs), an
/// archive of a large backlog takes hours.
pub fn default_timeout(job: Job) -> Duration {
    match job {
        Job::Kpi => Duration::from_secs(10 * 60),
        Job::Archive => Duration::from_secs(6 * 3600),
        Job::Compact => Duration::from_secs(6 * 3600),
        Job::Sql => Duration::from_secs(3600),
    }
}

/// How long the run may take (`timeout`): it is stopped, and its Ballista
/// jobs cancelled, after that.
pub fn timeout(job: Job, given: &BTreeMap<String, String>) -> Result<Duration, BadRequest> {
    duration(given, "timeout", default_timeout(job))
}

/// The `sql` job's statement.
pub fn sql(given: &BTreeMap<String, String>) -> Result<String, BadRequest> {
    only_known(Job::Sql, given)?;
    match given.get("sql").map(|s| s.trim()) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(BadRequest::NoStatement),
    }
}

/// `params` as the run history keeps them: `sql` with its secret options
/// masked, every value with the process's secrets and URI passwords masked.
pub fn masked(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|(k, v)| (k.clone(), if k == "sql" { stockyard_mask::sql(v) } else { stockyard_mask::text(v) }))
        .collect()
}

/// `dest` with `.` and `..` resolved, without touching the disk.
fn lexical(dest: &str) -> String {
    let (prefix, path) = match dest.find("://") {
        Some(i) => dest.split_at(i + 3),
        None => ("", dest),
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "." | "" if !parts.is_empty() => {}
            ".." => {
                if parts.len() > 1 {
                    parts.pop();
                }
            }
            p => parts.push(p),
        }
    }
    format!("{prefix}{}", parts.join("/"))
}

/// Whether `dest` lies under one of `allowed` (both absolute).
pub fn dest_allowed(dest: &str, allowed: &[String]) -> bool {
    let dest = lexical(dest);
    allowed.iter().map(|a| lexical(a)).any(|a| dest == a || dest.starts_with(&format!("{}/", a.trim_end_matches('/'))))
}

/// `dest` with a relative local path made absolute: executors have other
/// working directories.
pub fn absolute_dest(dest: &str) -> String {
    if dest.contains("://") {
        return dest.to_string();
    }
    std::path::absolute(dest).map(|p| p.display().to_string()).unwrap_or_else(|_| dest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn destinations_must_lie_under_an_allowed_one() {
        let allowed = vec!["/data/archive".to_string(), "s3://lake/archive".to_string()];
        for ok in ["/data/archive", "/data/archive/2026", "/data/archive/./x", "s3://lake/archive/orders"] {
            assert!(dest_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "/data/archive-other",
            "/data/archive/../secrets",
            "/proc/x",
            "/",
            "s3://lake/archived",
            "s3://other/archive",
            "file:///data/archive/../x",
        ] {
            assert!(!dest_allowed(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn kpi_parameters_parse_as_the_cli_writes_them() {
        let p = kpi(&given(&[("now", "2026-01-05 12:00:00"), ("window", "5m"), ("ttl", "1h")])).unwrap();
        assert_eq!(p.now.to_rfc3339(), "2026-01-05T12:00:00+00:00");
        assert_eq!((p.window, p.ttl), (Duration::from_secs(300), Duration::from_secs(3600)));
        let defaults = kpi(&BTreeMap::new()).unwrap();
        assert_eq!((defaults.window, defaults.ttl), (Duration::from_secs(900), Duration::from_secs(120)));
    }

    #[test]
    fn bad_parameters_are_named() {
        let refused = |job: Job, pairs: &[(&str, &str)]| {
            let g = given(pairs);
            match job {
                Job::Kpi => kpi(&g).map(|_| ()),
                Job::Archive => archive(&g, "/data/archive", &["/data/archive".into()]).map(|_| ()),
                Job::Compact => compact(&g, "/data/archive", &["/data/archive".into()]).map(|_| ()),
                Job::Sql => sql(&g).map(|_| ()),
            }
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            refused(Job::Kpi, &[("windw", "5m")]),
            "the kpi job has no parameter 'windw' (it takes now, window, ttl, force, timeout)"
        );
        assert_eq!(refused(Job::Kpi, &[("window", "-1m")]), "window: '-1m' is not a duration like 90s, 15m or 2h");
        // Parses, but reaches before the calendar: refused, not a panic.
        assert_eq!(
            refused(Job::Kpi, &[("window", "300000y")]),
            "window: '300000y' reaches back before the first date a time can have"
        );
        assert_eq!(
            refused(Job::Kpi, &[("now", "noon")]),
            "now: 'noon' is not an RFC 3339 time like 2026-01-05T12:00:00Z"
        );
        assert_eq!(
            refused(Job::Archive, &[("threshold_mb", "-1")]),
            "threshold_mb: '-1' is not a size in MiB (a number, 0 or more)"
        );
        assert!(
            refused(Job::Archive, &[("dest", "/proc/x")]).starts_with("the archive destination '/proc/x' is not under")
        );
        assert_eq!(refused(Job::Sql, &[("sql", "  ")]), "the sql job needs its statement in the sql parameter");
        assert_eq!(
            refused(Job::Sql, &[("query", "select 1")]),
            "the sql job has no parameter 'query' (it takes sql, timeout)"
        );
    }
}
