//! The watermark of a source: the least, over its partitions that are not
//! idle, of the greatest event time read from the partition minus the
//! allowed lateness; with every partition idle, the wall clock minus the
//! lateness, so a quiet stream's windows still close. It never moves back.
//! Idleness is decided when a batch is planned and recorded with it, so a
//! redone batch computes the same watermark.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// What the watermark knows of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionClock {
    /// The greatest event time read, in nanoseconds.
    pub max_event_ns: Option<i64>,
    /// Wall-clock milliseconds when the partition last gave a record (or
    /// when the stream started reading it).
    pub last_record_ms: i64,
}

/// The partitions idle at `now_ms`: no record in this batch and none for
/// `idle_timeout_ms`.
pub fn idle(
    clocks: &BTreeMap<i32, PartitionClock>,
    has_records: &BTreeSet<i32>,
    now_ms: i64,
    idle_timeout_ms: i64,
) -> BTreeSet<i32> {
    clocks
        .iter()
        .filter(|(p, c)| !has_records.contains(p) && now_ms - c.last_record_ms >= idle_timeout_ms)
        .map(|(p, _)| *p)
        .collect()
}

/// The watermark after a batch, from the one before it.
pub fn advance(
    previous: Option<i64>,
    clocks: &BTreeMap<i32, PartitionClock>,
    idle: &BTreeSet<i32>,
    now_ms: i64,
    lateness_ns: i64,
) -> Option<i64> {
    let active: Vec<&PartitionClock> = clocks.iter().filter(|(p, _)| !idle.contains(p)).map(|(_, c)| c).collect();
    let candidate = if active.is_empty() {
        Some(now_ms.saturating_mul(1_000_000).saturating_sub(lateness_ns))
    } else {
        // A partition that is active but has given nothing yet holds the
        // watermark back until it gives a record or goes idle.
        active
            .iter()
            .map(|c| c.max_event_ns)
            .collect::<Option<Vec<i64>>>()
            .and_then(|maxes| maxes.into_iter().min().map(|m| m.saturating_sub(lateness_ns)))
    };
    match (previous, candidate) {
        (Some(p), Some(c)) => Some(p.max(c)),
        (p, c) => p.or(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn clocks(parts: &[(i32, Option<i64>, i64)]) -> BTreeMap<i32, PartitionClock> {
        parts.iter().map(|&(p, m, l)| (p, PartitionClock { max_event_ns: m, last_record_ms: l })).collect()
    }

    #[test]
    fn the_slowest_active_partition_holds_the_watermark() {
        let c = clocks(&[(0, Some(100 * S), 0), (1, Some(40 * S), 0)]);
        assert_eq!(advance(None, &c, &BTreeSet::new(), 0, 10 * S), Some(30 * S));
        // It never moves back.
        assert_eq!(advance(Some(35 * S), &c, &BTreeSet::new(), 0, 10 * S), Some(35 * S));
        // A partition that gave nothing yet holds it back, until idle.
        let c = clocks(&[(0, Some(100 * S), 0), (1, None, 0)]);
        assert_eq!(advance(None, &c, &BTreeSet::new(), 0, 0), None);
        assert_eq!(advance(None, &c, &BTreeSet::from([1]), 0, 0), Some(100 * S));
    }

    #[test]
    fn idle_partitions_are_left_out_and_an_idle_stream_follows_the_clock() {
        let c = clocks(&[(0, Some(100 * S), 50_000), (1, Some(40 * S), 10_000)]);
        // At 45 s of wall time, partition 1 has been quiet for 35 s.
        let idle_now = idle(&c, &BTreeSet::new(), 45_000, 30_000);
        assert_eq!(idle_now, BTreeSet::from([1]));
        assert_eq!(advance(None, &c, &idle_now, 45_000, 10 * S), Some(90 * S));
        // A partition with records in the batch is never idle.
        assert!(idle(&c, &BTreeSet::from([1]), 45_000, 30_000).is_empty());
        // Both quiet: the wall clock minus the lateness.
        let both = idle(&c, &BTreeSet::new(), 200_000, 30_000);
        assert_eq!(both.len(), 2);
        assert_eq!(advance(Some(90 * S), &c, &both, 200_000, 10 * S), Some(190 * S));
    }
}
