//! Rebuilding a fleet's history after an operator restart: the points Prometheus recorded
//! (processed rate, busy fraction, lag, replicas) are replayed through the same decision, so that
//! stabilization windows and cooldowns continue instead of starting over. The workers' loop and
//! the archivers' loop both rebuild through here, each from its own series. Pure.

use std::time::Duration;

use super::{
    decide::decide,
    history::History,
    model::HistoryPoint,
    model::{Limits, Signals},
};

/// How far back a rebuild reads: the longer stabilization window (at least five minutes, the
/// cooldowns' reach) and a minute.
pub fn span_seconds(policy: &Limits) -> i64 {
    (policy
        .down
        .stabilization_seconds
        .max(policy.up.stabilization_seconds)
        .max(300.0)
        + 60.0) as i64
}

/// The resolution a rebuild reads at: the evaluation interval, at least five seconds.
pub fn step_seconds(interval: Duration) -> f64 {
    interval.as_secs_f64().max(5.0)
}

/// The history from what a read of Prometheus returned, and the points it replayed: `None`
/// when the read has no points (the history starts empty, as before); the read's error as it
/// is. `now` is the history's clock.
pub fn from_read(
    read: Result<Vec<HistoryPoint>, String>,
    partitions: i32,
    policy: &Limits,
    now: f64,
) -> Result<Option<(History, usize)>, String> {
    let points = read?;
    if points.is_empty() {
        return Ok(None);
    }
    let now_unix = k8s_openapi::jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    Ok(Some((
        rebuild(&points, partitions, policy, now, now_unix),
        points.len(),
    )))
}

/// Replays `points` (oldest first). `now` and `now_unix` are the same instant on the history's
/// clock and in Unix seconds.
pub fn rebuild(
    points: &[HistoryPoint],
    partitions: i32,
    policy: &Limits,
    now: f64,
    now_unix: f64,
) -> History {
    let mut h = History::default();
    let mut previous: Option<i32> = None;
    for p in points {
        let t = now - (now_unix - p.at);
        let s = Signals {
            now: t,
            replicas: p.replicas,
            partitions,
            lag: Some(p.lag),
            input_rate: None,
            processed_rate: Some(p.processed_rate),
            busy_fraction: Some(p.busy_fraction),
            workers: None,
            lag_stale: false,
            throughput_stale: false,
        };
        let d = decide(&s, policy, &h);
        h.record(t, s.lag, p.replicas, &d, false);
        if let Some(prev) = previous.filter(|prev| *prev != p.replicas) {
            h.note_change(t, p.replicas > prev);
        }
        previous = Some(p.replicas);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::autoscale::tests::policy;

    fn point(at: f64, replicas: i32, processed: f64) -> HistoryPoint {
        HistoryPoint {
            at,
            processed_rate: processed,
            busy_fraction: processed / (1000.0 * replicas as f64),
            lag: 0.0,
            replicas,
        }
    }

    #[test]
    fn a_restart_keeps_the_scale_down_window_and_the_last_change() {
        // Eight replicas for the last 3 minutes while the load was low: the window is covered.
        let points: Vec<HistoryPoint> = (0..12)
            .map(|i| point(1_000_000.0 + i as f64 * 15.0, 8, 1400.0))
            .collect();
        let h = rebuild(&points, 24, &policy(), 500.0, 1_000_180.0);
        let s = Signals {
            now: 500.0,
            replicas: 8,
            partitions: 24,
            lag: Some(0.0),
            input_rate: Some(1400.0),
            processed_rate: Some(1400.0),
            busy_fraction: Some(0.175),
            workers: None,
            lag_stale: false,
            throughput_stale: false,
        };
        let d = decide(&s, &policy(), &h);
        assert_eq!((d.reason, d.replicas), ("ScaleDown", 4), "{}", d.message);
        // Without the rebuilt history the same evaluation must wait a full window.
        let d = decide(&s, &policy(), &History::default());
        assert_eq!(d.reason, "HoldStabilizing");
    }

    #[test]
    fn a_recent_change_restarts_its_cooldown() {
        let mut points: Vec<HistoryPoint> = (0..8)
            .map(|i| point(1_000_000.0 + i as f64 * 15.0, 2, 1400.0))
            .collect();
        points.push(point(1_000_120.0, 6, 1400.0));
        let h = rebuild(&points, 24, &policy(), 500.0, 1_000_125.0);
        assert!(
            h.since_last_change(500.0) < 10.0,
            "{}",
            h.since_last_change(500.0)
        );
        assert!(h.since_last_up(500.0) < 10.0);
    }
}
