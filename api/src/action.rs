//! What a person can do to a schedule, parsed once for REST and gRPC.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use utoipa::ToSchema;

/// A change to a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleAction {
    /// Create it (gRPC only: the schedule travels in the request).
    Add,
    /// Start a run of it now.
    Trigger,
    /// Stop its ticks until resumed.
    Pause,
    /// Start its ticks again.
    Resume,
    /// Delete it.
    Remove,
}

impl ScheduleAction {
    /// Every action, in the order messages list them.
    pub const ALL: [ScheduleAction; 5] = [Self::Add, Self::Trigger, Self::Pause, Self::Resume, Self::Remove];

    /// The action as requests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Trigger => "trigger",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Remove => "remove",
        }
    }
}

impl fmt::Display for ScheduleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action no schedule has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownAction {
    /// Not a schedule action.
    #[error("'{0}' is not a schedule action (add, trigger, pause, resume, remove)")]
    Schedule(String),
}

impl FromStr for ScheduleAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| UnknownAction::Schedule(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_as_written_and_name_the_bad_one() {
        for a in ScheduleAction::ALL {
            assert_eq!(a.as_str().parse::<ScheduleAction>(), Ok(a));
        }
        assert_eq!(
            "run".parse::<ScheduleAction>().unwrap_err().to_string(),
            "'run' is not a schedule action (add, trigger, pause, resume, remove)"
        );
    }
}
