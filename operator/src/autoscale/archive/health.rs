//! Whether the archivers' commits progress (pure): the newest commit mark changes at least
//! every `stall_after` seconds while records wait. Pod readiness says an archiver runs; this
//! says it archives (a catalog that refuses every commit, a stuck writer, an archiver that
//! rewinds forever all leave it ready).

use super::mark::CommitMark;

/// When the newest commit last changed, and the group's lag then.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// The snapshot of the newest commit seen (`None`: none yet).
    pub snapshot: Option<i64>,
    /// Seconds (the evaluator's clock) when it was first seen; `None` before any evaluation.
    pub since: Option<f64>,
    pub lag_then: i64,
}

/// The judgement.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Commits follow each other (or nothing waits).
    Progressing,
    /// No new commit for `quiet_seconds` while the lag grew from `lag_then` to `lag_now`.
    Stalled {
        quiet_seconds: f64,
        lag_then: i64,
        lag_now: i64,
    },
    /// The lag cannot be read.
    Unknown,
}

impl Progress {
    /// Notes the newest commit at `now` with the group's lag.
    pub fn observe(&mut self, now: f64, newest: Option<&CommitMark>, lag: i64) {
        let snapshot = newest.map(|m| m.snapshot);
        if self.since.is_none() || snapshot != self.snapshot {
            *self = Progress {
                snapshot,
                since: Some(now),
                lag_then: lag,
            };
        }
    }
}

/// Seconds without a new commit after which a growing lag means the commits stopped: two
/// commit intervals and a minute (the catalog's deadline, a rebalance).
pub fn stall_after(commit_interval_seconds: f64) -> f64 {
    2.0 * commit_interval_seconds + 60.0
}

/// Judges the progress at `now` with the group's lag now (`None`: unknown).
pub fn judge(p: &Progress, now: f64, lag: Option<i64>, stall_after: f64) -> Health {
    let (Some(lag_now), Some(since)) = (lag, p.since) else {
        return Health::Unknown;
    };
    let quiet = now - since;
    if quiet > stall_after && lag_now > p.lag_then && lag_now > 0 {
        Health::Stalled {
            quiet_seconds: quiet,
            lag_then: p.lag_then,
            lag_now,
        }
    } else {
        Health::Progressing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(snapshot: i64) -> CommitMark {
        CommitMark {
            v: 1,
            snapshot,
            at_ms: snapshot,
            records: 1,
            files: 1,
            bytes: 1,
            commit_ms: 1,
        }
    }

    #[test]
    fn commits_that_stop_while_the_lag_grows_are_a_stall() {
        let after = stall_after(10.0);
        assert_eq!(after, 80.0);
        let mut p = Progress::default();
        assert_eq!(judge(&p, 0.0, Some(10), after), Health::Unknown);
        p.observe(0.0, Some(&mark(1)), 100);
        // commits every 10 s: progressing however long it runs
        for t in 1..30 {
            let now = f64::from(t) * 10.0;
            p.observe(now, Some(&mark(i64::from(t) + 1)), 100 + i64::from(t));
            assert_eq!(judge(&p, now, Some(100), after), Health::Progressing);
        }
        // the commits stop at 290 s; the lag grows
        assert_eq!(judge(&p, 360.0, Some(900), after), Health::Progressing);
        p.observe(371.0, Some(&mark(30)), 1000);
        assert_eq!(
            judge(&p, 371.0, Some(1000), after),
            Health::Stalled {
                quiet_seconds: 81.0,
                lag_then: 129,
                lag_now: 1000
            }
        );
        // a commit again
        p.observe(380.0, Some(&mark(31)), 50);
        assert_eq!(judge(&p, 380.0, Some(50), after), Health::Progressing);
    }

    #[test]
    fn an_idle_topic_is_not_a_stall() {
        let mut p = Progress::default();
        p.observe(0.0, None, 0);
        assert_eq!(judge(&p, 1000.0, Some(0), 80.0), Health::Progressing);
        // records written, none committed yet, for longer than the stall time
        assert!(matches!(
            judge(&p, 1000.0, Some(40), 80.0),
            Health::Stalled { .. }
        ));
        // the lag of the last commit's own wait does not grow: no stall
        p.observe(0.0, Some(&mark(1)), 40);
        assert_eq!(judge(&p, 0.0, Some(40), 80.0), Health::Progressing);
        let mut q = Progress::default();
        q.observe(0.0, Some(&mark(1)), 40);
        assert_eq!(judge(&q, 1000.0, Some(40), 80.0), Health::Progressing);
    }
}
