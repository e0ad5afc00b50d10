//! The worker's fixed CPU: what the process uses while it processes nothing (librdkafka's fetch,
//! heartbeat and metadata requests, the producer's poll, the HTTP server). At part load it is
//! paid all the same, so the CPU a worker uses is this plus a cost per event; a capacity
//! estimate that divides the processed rate by the whole CPU fraction counts the fixed part as if
//! it grew with the load, and reads a worker at part load weaker than it is (under a 50m limit an
//! idle worker used ~9 % of it: the estimate at half load read 8-22 % low). The operator's
//! default `cpuFraction` query divides (CPU − idle) by the whole limit: a saturated 100m worker
//! drained at the rate that leaves no room for the fixed part (likely: throttled, its threads
//! wake once per CFS period rather than at each timer), and an estimate that kept the fixed part
//! at saturation, (CPU − idle) / (limit − idle), read 10 % low on average (docs/autoscaling.md).
//!
//! Measured from the samples the scrapes take (pure: [`IdleCpu::observe`] is given the time, the
//! CPU seconds and the events processed): a stretch of samples over which no event was processed,
//! once it spans [`MIN_STRETCH_SECONDS`], gives the process's CPU per second over it; the newest
//! such stretch counts. A worker that was never idle that long has no value, and the query then
//! falls back to the whole CPU fraction.

use std::sync::Mutex;

/// The shortest idle stretch that counts: long enough that the tail of the last batch (its
/// produce, its offset commit) is a small part of it.
pub const MIN_STRETCH_SECONDS: f64 = 5.0;

/// The idle CPU, at most this share of the CPU limit: a worker that uses more of its limit doing
/// nothing is misconfigured or starved, and a larger value would make (CPU − idle) small and
/// the capacity estimate large.
pub const MAX_SHARE_OF_LIMIT: f64 = 0.5;

#[derive(Debug, Default)]
pub struct IdleCpu(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    /// The stretch's first sample: time, CPU seconds, events processed.
    start: Option<(f64, f64, f64)>,
    /// Cores used over the newest stretch that spanned [`MIN_STRETCH_SECONDS`].
    cores: Option<f64>,
}

impl IdleCpu {
    /// A sample at `t` seconds (any monotonic origin): the process's CPU seconds and the events
    /// it has processed so far.
    pub fn observe(&self, t: f64, cpu_seconds: f64, processed: f64) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match s.start {
            Some((t0, cpu0, n0)) if processed == n0 && t >= t0 => {
                if t - t0 >= MIN_STRETCH_SECONDS {
                    s.cores = Some(((cpu_seconds - cpu0) / (t - t0)).max(0.0));
                }
            }
            _ => s.start = Some((t, cpu_seconds, processed)),
        }
    }

    /// The idle CPU in cores, at most [`MAX_SHARE_OF_LIMIT`] of `limit_cores`; `None` before
    /// an idle stretch was measured.
    pub fn cores(&self, limit_cores: f64) -> Option<f64> {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.cores.map(|c| c.min(MAX_SHARE_OF_LIMIT * limit_cores))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stretch_without_events_gives_the_cpu_per_second_over_it() {
        let idle = IdleCpu::default();
        idle.observe(0.0, 1.0, 100.0);
        idle.observe(3.0, 1.012, 100.0);
        assert_eq!(idle.cores(0.05), None, "3 s is too short");
        idle.observe(6.0, 1.024, 100.0);
        let c = idle.cores(0.05).unwrap();
        assert!((c - 0.004).abs() < 1e-9, "{c}");
    }

    #[test]
    fn events_start_a_new_stretch_and_the_last_measured_one_stays() {
        let idle = IdleCpu::default();
        idle.observe(0.0, 0.0, 0.0);
        idle.observe(10.0, 0.05, 0.0); // 5 ms/s
        idle.observe(11.0, 0.08, 4_000.0); // busy: a new stretch begins
        idle.observe(12.0, 0.11, 8_000.0);
        assert_eq!(
            idle.cores(1.0),
            Some(0.005),
            "busy seconds keep the last idle value"
        );
        idle.observe(20.0, 0.134, 8_000.0); // idle again: 3 ms/s over 8 s
        let c = idle.cores(1.0).unwrap();
        assert!((c - 0.003).abs() < 1e-9, "{c}");
    }

    #[test]
    fn a_busy_sample_never_counts_as_idle() {
        let idle = IdleCpu::default();
        for i in 0..20 {
            idle.observe(f64::from(i), f64::from(i) * 0.04, f64::from(i) * 1_000.0);
        }
        assert_eq!(idle.cores(0.05), None);
    }

    #[test]
    fn the_idle_cpu_is_capped_at_half_the_limit() {
        let idle = IdleCpu::default();
        idle.observe(0.0, 0.0, 7.0);
        idle.observe(10.0, 0.4, 7.0); // 40 ms/s under a 50m limit
        assert_eq!(idle.cores(0.05), Some(0.025));
    }
}
