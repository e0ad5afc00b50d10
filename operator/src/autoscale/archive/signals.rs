//! The archivers' readings as the decision's [`Signals`]. Pure.
//!
//! The archivers' group commits its offsets after each commit to the table, so its lag counts
//! the records that wait for the commit interval too: work already done, which more archivers
//! would not make faster. The backlog the estimate reads is that lag minus the records the
//! archivers hold uncommitted (`impressions_archiver_pending_records`), i.e. what is not yet
//! read at all.

use crate::autoscale::{model::Signals, signals::kafka_lag::GroupSample};

/// The archivers' throughput from Prometheus, each `None` when it has no (fresh) series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArchiveThroughput {
    /// Records/s read by all archivers.
    pub processed: Option<f64>,
    /// Average busy fraction (0..1).
    pub busy: Option<f64>,
    /// Archivers reporting metrics.
    pub archivers: Option<f64>,
    /// Records taken and not yet committed, over all archivers.
    pub pending: Option<f64>,
    /// Commits that failed (outcome `failed`: not `stale`, the fencing after a rebalance) over
    /// the rate window.
    pub failed_commits: Option<f64>,
}

/// The backlog the estimate reads: the group's lag minus what waits for a commit.
pub fn backlog(group_lag: i64, pending: Option<f64>) -> f64 {
    (group_lag as f64 - pending.unwrap_or(0.0)).max(0.0)
}

/// One evaluation's signals. `partitions` stands in when Kafka did not answer (the policy's
/// maximum: the decision holds on missing lag anyway).
pub fn signals(
    now: f64,
    replicas: i32,
    group: Option<&GroupSample>,
    input_rate: Option<f64>,
    tp: Option<&ArchiveThroughput>,
    partitions: i32,
) -> Signals {
    Signals {
        now,
        replicas,
        partitions: group.map_or(partitions, |g| g.lag.partitions),
        lag: group.map(|g| backlog(g.lag.total, tp.and_then(|t| t.pending))),
        input_rate,
        processed_rate: tp.and_then(|t| t.processed),
        busy_fraction: tp.and_then(|t| t.busy),
        workers: tp.and_then(|t| t.archivers).filter(|a| *a >= 1.0),
        lag_stale: false,
        throughput_stale: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_waiting_for_the_commit_are_no_backlog() {
        assert_eq!(backlog(5000, Some(4200.0)), 800.0);
        assert_eq!(
            backlog(5000, None),
            5000.0,
            "no archiver reports: all of it"
        );
        assert_eq!(backlog(100, Some(150.0)), 0.0, "a commit racing the read");
    }
}
