//! The spelling of job parameters and flags, parsed once for the CLI and
//! the scheduler: durations (`90s`, `15m`, `2h`), times (RFC 3339) and
//! sizes in MiB. A value either side accepts, the other accepts too.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// A value that does not parse; the message names it and shows the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// Not a duration, or zero.
    #[error("'{0}' is not a duration like 90s, 15m or 2h")]
    Duration(String),
    /// Not a time.
    #[error("'{0}' is not an RFC 3339 time like 2026-01-05T12:00:00Z")]
    Time(String),
    /// Not a size.
    #[error("'{0}' is not a size in MiB (a number, 0 or more)")]
    Megabytes(String),
    /// A switch that is neither `true` nor `false`.
    #[error("'{0}' is not true or false")]
    Flag(String),
    /// Not a whole number of files, at least two.
    #[error("'{0}' is not a number of files (2 or more)")]
    Files(String),
    /// A duration that reaches back before the calendar's first date.
    #[error("'{0}' reaches back before the first date a time can have")]
    TooLong(String),
}

/// A duration longer than zero, as the spec writes them.
pub fn duration(text: &str) -> Result<Duration, ParamError> {
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ParamError::Duration(text.to_string()))
}

/// A time: RFC 3339 with any offset, or without one (then UTC, and a space
/// may stand for the `T`), to the millisecond, since MongoDB dates are.
pub fn time(text: &str) -> Result<DateTime<Utc>, ParamError> {
    let t = text.trim();
    let parsed = DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| humantime::parse_rfc3339_weak(t).ok().map(DateTime::<Utc>::from));
    let t = parsed.ok_or_else(|| ParamError::Time(text.to_string()))?;
    Ok(DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t))
}

/// `t` as [`time`] reads it back and the run history shows it.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A switch: `true` or `false`.
pub fn flag(text: &str) -> Result<bool, ParamError> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ParamError::Flag(text.to_string())),
    }
}

/// A size in MiB: a finite number, 0 or more.
pub fn megabytes(text: &str) -> Result<f64, ParamError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| *n >= 0.0 && n.is_finite())
        .ok_or_else(|| ParamError::Megabytes(text.to_string()))
}

/// A number of files to merge: a whole number, 2 or more (one file is
/// already merged).
pub fn files(text: &str) -> Result<usize, ParamError> {
    text.trim().parse::<usize>().ok().filter(|n| *n >= 2).ok_or_else(|| ParamError::Files(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_counts() {
        assert_eq!(files("2"), Ok(2));
        assert_eq!(files(" 10 "), Ok(10));
        for bad in ["1", "0", "-3", "two", "2.5"] {
            assert_eq!(files(bad), Err(ParamError::Files(bad.into())), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "0s", "15", "soon", "-5m"] {
            assert_eq!(duration(bad), Err(ParamError::Duration(bad.into())), "{bad}");
        }
    }

    #[test]
    fn times_in_every_accepted_spelling_are_the_same_instant() {
        let noon = DateTime::parse_from_rfc3339("2026-01-05T12:00:00Z").unwrap().with_timezone(&Utc);
        for text in ["2026-01-05T12:00:00Z", "2026-01-05T14:00:00+02:00", "2026-01-05 12:00:00", "2026-01-05T12:00:00"]
        {
            assert_eq!(time(text), Ok(noon), "{text}");
        }
        assert_eq!(time_text(time("2026-01-05T12:00:00.123456Z").unwrap()), "2026-01-05T12:00:00.123Z");
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "12:00"] {
            assert_eq!(time(bad), Err(ParamError::Time(bad.into())), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(megabytes("0"), Ok(0.0));
        assert_eq!(megabytes("2.5"), Ok(2.5));
        for bad in ["-1", "NaN", "inf", "300MB", ""] {
            assert_eq!(megabytes(bad), Err(ParamError::Megabytes(bad.into())), "{bad}");
        }
    }
}
