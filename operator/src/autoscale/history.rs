//! A pipeline's recent evaluations, in memory: recommendations for stabilization windows, lag
//! for its growth rate, the last changes for cooldowns, and capacity before and after a
//! scale-up to detect one that did not help.

use std::collections::VecDeque;

use super::model::Decision;

/// How far back capacity measures are smoothed (only those since the last change count).
const CAPACITY_SMOOTHING_SECONDS: f64 = 300.0;
/// How long samples are kept (the longest window any policy may use is bounded by this).
const KEEP_SECONDS: f64 = 3600.0;
/// After a scale-up, how long to wait before judging whether it added capacity.
const SETTLE_SECONDS: f64 = 60.0;
/// A scale-up that added less than this share of the expected capacity was ineffective.
const EFFECTIVE_SHARE: f64 = 0.1;
/// How long further scale-ups stay blocked after an ineffective one.
const INEFFECTIVE_BLOCK_SECONDS: f64 = 600.0;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    t: f64,
    lag: f64,
    recommended: i32,
    /// The arrival rate estimated then (events/s).
    arrival: Option<f64>,
}

/// Load that goes up and down repeatedly, as the kept history shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cycle {
    /// Mean seconds between the starts of successive high phases.
    pub period: f64,
    /// The longest low phase (seconds from falling below the middle band to rising above it).
    pub trough: f64,
    /// The highest arrival rate in the history (events/s).
    pub peak: f64,
    /// Complete low phases seen.
    pub cycles: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct PendingCheck {
    at: f64,
    from: i32,
    to: i32,
    capacity_before: f64,
}

/// One pipeline's history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    samples: VecDeque<Sample>,
    last_up: Option<f64>,
    last_change: Option<f64>,
    /// When the metrics were last blind: the last evaluation without them (or on stand-ins),
    /// then, once they are back, the first evaluation that saw again. A window that reaches back
    /// before it has not held: what happened between the last blind evaluation and the first
    /// fresh one was not seen either.
    last_missing: Option<f64>,
    /// The last evaluation was without metrics.
    blind: bool,
    /// Capacity per replica last measured (used while a fresh measure is unavailable).
    pub last_capacity: Option<f64>,
    /// Capacity measures since the last change, for their median.
    capacities: VecDeque<(f64, f64)>,
    /// Set when a scale-up did not add capacity; scale-ups are blocked for a while.
    pub ineffective_since: Option<f64>,
    pending: Option<PendingCheck>,
    /// The first evaluation of the current run of stalled ones (processed nothing while a
    /// backlog waited).
    stalled_since: Option<f64>,
}

impl History {
    /// Events/s by which the lag grew over the last minute (negative when shrinking).
    pub fn lag_growth(&self, now: f64, lag: f64) -> f64 {
        match self
            .samples
            .iter()
            .find(|s| now - s.t <= 60.0 && now - s.t > 0.0)
        {
            Some(s) => (lag - s.lag) / (now - s.t),
            None => 0.0,
        }
    }

    pub fn since_last_up(&self, now: f64) -> f64 {
        self.last_up.map_or(f64::INFINITY, |t| now - t)
    }

    /// Seconds the fleet has been stalled up to the last evaluation (0 when it was not).
    pub fn stalled_for(&self, now: f64) -> f64 {
        self.stalled_since.map_or(0.0, |t| now - t)
    }

    /// Seconds since the last change, when it was a scale-down (infinite otherwise).
    pub fn since_last_down(&self, now: f64) -> f64 {
        match (self.last_change, self.last_up) {
            (Some(c), up) if up.is_none_or(|u| c > u) => now - c,
            _ => f64::INFINITY,
        }
    }

    pub fn since_last_change(&self, now: f64) -> f64 {
        self.last_change.map_or(f64::INFINITY, |t| now - t)
    }

    /// Whether every recommendation of the last `window` seconds satisfied `pred`, with the
    /// history covering the whole window without a gap in the metrics. A zero window always
    /// holds.
    pub fn held_for(&self, now: f64, window: f64, pred: impl Fn(i32) -> bool) -> bool {
        if window <= 0.0 {
            return true;
        }
        let covered = self.samples.front().is_some_and(|s| now - s.t >= window)
            && self.last_missing.is_none_or(|t| now - t >= window);
        covered
            && self
                .samples
                .iter()
                .filter(|s| now - s.t <= window)
                .all(|s| pred(s.recommended))
    }

    /// The highest recommendation within the last `window` seconds, counting `current`.
    pub fn highest_recommendation(&self, now: f64, window: f64, current: i32) -> i32 {
        self.samples
            .iter()
            .filter(|s| now - s.t <= window)
            .map(|s| s.recommended)
            .fold(current, i32::max)
    }

    /// The median of `measured` and the capacity measures since the last change within the
    /// smoothing window.
    pub fn capacity_median(&self, now: f64, measured: f64) -> f64 {
        let mut v: Vec<f64> = self
            .capacities
            .iter()
            .filter(|(t, _)| now - t <= CAPACITY_SMOOTHING_SECONDS)
            .map(|(_, c)| *c)
            .collect();
        v.push(measured);
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    /// The highest arrival rate estimated within the last `window` seconds (0 without one).
    pub fn highest_arrival(&self, now: f64, window: f64) -> f64 {
        self.samples
            .iter()
            .filter(|s| now - s.t <= window)
            .filter_map(|s| s.arrival)
            .fold(0.0, f64::max)
    }

    /// Whether the arrival rate in the kept history cycles: it swings by at least half of its
    /// low (highest ≥ 1.5 × lowest) and went below and back above the middle of its range (with
    /// a band of ±10 % of the range against noise) at least twice. Returns the cycle's shape.
    pub fn cycle(&self) -> Option<Cycle> {
        let points: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter_map(|s| s.arrival.map(|a| (s.t, a)))
            .collect();
        if points.len() < 8 {
            return None;
        }
        let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = points.iter().map(|p| p.1).fold(0.0, f64::max);
        if hi <= 0.0 || hi < 1.5 * lo {
            return None;
        }
        let (mid, band) = ((lo + hi) / 2.0, (hi - lo) * 0.1);
        let mut below_since: Option<f64> = None;
        let mut above = points[0].1 >= mid;
        let (mut rises, mut troughs) = (Vec::new(), Vec::new());
        for &(t, a) in &points {
            if above && a < mid - band {
                above = false;
                below_since = Some(t);
            } else if !above && a > mid + band {
                above = true;
                rises.push(t);
                if let Some(since) = below_since.take() {
                    troughs.push(t - since);
                }
            }
        }
        if troughs.len() < 2 {
            return None;
        }
        let period = if rises.len() >= 2 {
            (rises[rises.len() - 1] - rises[0]) / (rises.len() - 1) as f64
        } else {
            2.0 * troughs[0]
        };
        Some(Cycle {
            period,
            trough: troughs.iter().copied().fold(0.0, f64::max),
            peak: hi,
            cycles: troughs.len(),
        })
    }

    /// Records an evaluation: `from` replicas were running, `d` was decided (and applied when
    /// `applied`).
    pub fn record(&mut self, now: f64, lag: Option<f64>, from: i32, d: &Decision, applied: bool) {
        if !d.metrics_available || self.blind {
            self.last_missing = Some(now);
        }
        self.blind = !d.metrics_available;
        if d.metrics_available {
            self.stalled_since = if d.stalled {
                Some(self.stalled_since.unwrap_or(now))
            } else {
                None
            };
        } else {
            // A scale-up whose settling a failed read interrupted is not judged: what the
            // fleet processes then is the outage's (workers blocked on an unanswering broker
            // read as replicas that add nothing), not the new replicas'.
            self.pending = None;
        }
        if let Some(lag) = lag
            && d.metrics_available
        {
            self.samples.push_back(Sample {
                t: now,
                lag,
                recommended: d.recommended,
                arrival: d.arrival_rate,
            });
        }
        while self
            .samples
            .front()
            .is_some_and(|s| now - s.t > KEEP_SECONDS)
        {
            self.samples.pop_front();
        }
        if let Some(c) = d.capacity_per_replica {
            if d.capacity_measured {
                self.judge_scale_up(now, from, c);
                // What stands in while the fleet settles after a change: the smoothed figure.
                self.last_capacity = Some(self.capacity_median(now, c));
                self.capacities.push_back((now, c));
                while self
                    .capacities
                    .front()
                    .is_some_and(|(t, _)| now - t > CAPACITY_SMOOTHING_SECONDS)
                {
                    self.capacities.pop_front();
                }
            } else {
                self.last_capacity = Some(c);
            }
        }
        if self
            .ineffective_since
            .is_some_and(|t| now - t > INEFFECTIVE_BLOCK_SECONDS)
        {
            self.ineffective_since = None;
        }
        if applied && d.replicas != from {
            self.last_change = Some(now);
            self.capacities.clear();
            if d.replicas > from {
                self.last_up = Some(now);
                if let Some(c) = d.capacity_per_replica {
                    self.pending = Some(PendingCheck {
                        at: now,
                        from,
                        to: d.replicas,
                        capacity_before: c * from as f64,
                    });
                }
            } else {
                self.pending = None;
                self.ineffective_since = None;
            }
        }
    }

    /// Notes a replica change seen from outside the decisions (a rebuilt history).
    pub fn note_change(&mut self, at: f64, up: bool) {
        self.last_change = Some(at);
        self.capacities.clear();
        if up {
            self.last_up = Some(at);
        }
    }

    fn judge_scale_up(&mut self, now: f64, running: i32, capacity: f64) {
        let Some(p) = self.pending else { return };
        if now - p.at < SETTLE_SECONDS || running != p.to {
            return;
        }
        self.pending = None;
        let expected = p.capacity_before * (p.to - p.from) as f64 / p.from.max(1) as f64;
        let gained = capacity * p.to as f64 - p.capacity_before;
        if expected > 0.0 && gained < EFFECTIVE_SHARE * expected {
            self.ineffective_since = Some(now);
        }
    }
}
