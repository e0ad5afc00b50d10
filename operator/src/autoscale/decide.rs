//! The decision: the estimate's recommendation → the replica count to apply now, within the
//! policy's stabilization windows, steps, cooldowns, freeze windows and the lag SLO, with the
//! reason and the numbers behind it. Pure: no IO, no clock (the time is an input),
//! table-tested (`tests.rs`).

use super::{
    estimate::{NoEstimate, estimate},
    history::History,
    model::{Decision, Limits, Signals, Step},
};

/// Decides the replica count for one evaluation. `history` holds earlier evaluations of this
/// pipeline (recommendations, changes, capacity at each count).
pub fn decide(s: &Signals, p: &Limits, h: &History) -> Decision {
    let cur = s.replicas.max(0);
    let hold = |reason: &'static str, message: String, available: bool| Decision {
        replicas: cur,
        reason,
        message,
        recommended: cur,
        metrics_available: available,
        ineffective_scale_up: h.ineffective_since.is_some(),
        backlog_seconds: None,
        capacity_per_replica: None,
        capacity_measured: false,
        arrival_rate: None,
    };
    if p.paused {
        return hold("HoldPaused", "the ScalingPolicy is paused".into(), true);
    }
    let e = match estimate(s, p, h) {
        Ok(e) => e,
        Err(NoEstimate::MetricsMissing(missing)) => {
            let mut d = hold(
                "HoldMetricsMissing",
                format!(
                    "{} missing or stale: holding {cur} replicas (never scaling down on missing data)",
                    missing.join(", ")
                ),
                false,
            );
            if let Some(fixed) = p.missing_metrics_replicas.filter(|f| *f > cur) {
                d.replicas = fixed.min(p.max);
                d.reason = "ScaleUpMetricsMissing";
                d.message = format!(
                    "{} missing or stale: going up to the policy's fallback of {fixed}",
                    missing.join(", ")
                );
            }
            return d;
        }
        Err(NoEstimate::NoCapacity {
            processed,
            busy,
            arrival,
        }) => {
            let mut d = hold(
                "HoldNoCapacityEstimate",
                format!(
                    "no processing observed yet (processed {processed:.0}/s, busy {busy:.2}); holding {cur}"
                ),
                true,
            );
            d.arrival_rate = Some(arrival);
            return d;
        }
    };
    let (recommended, over_slo, util, why) = (e.recommended, e.over_slo, e.utilization, &e.why);
    let mut d = Decision {
        replicas: cur,
        reason: "NoChange",
        message: String::new(),
        recommended,
        metrics_available: true,
        ineffective_scale_up: h.ineffective_since.is_some(),
        backlog_seconds: e.backlog_seconds.is_finite().then_some(e.backlog_seconds),
        capacity_per_replica: Some(e.capacity),
        capacity_measured: e.capacity_measured,
        arrival_rate: Some(e.arrival),
    };

    if recommended > cur {
        if d.ineffective_scale_up {
            d.reason = "HoldIneffectiveScaleUp";
            d.message =
                format!("{why}; held: the last scale-up did not add capacity (e.g. a slow sink)");
        } else if h.since_last_up(s.now) < p.up.cooldown_seconds {
            d.reason = "HoldCooldown";
            d.message = format!(
                "{why}; held: scale-up cooldown ({:.0} s)",
                p.up.cooldown_seconds
            );
        } else if !h.held_for(s.now, p.up.stabilization_seconds, |r| r > cur) {
            d.reason = "HoldStabilizing";
            d.message = format!(
                "{why}; held: scale-up stabilization ({:.0} s)",
                p.up.stabilization_seconds
            );
        } else {
            let step = max_step(cur, p.up);
            d.replicas = recommended.min(cur + step);
            d.reason = if over_slo {
                "ScaleUpForBacklog"
            } else {
                "ScaleUp"
            };
            let limited = if d.replicas < recommended {
                format!(" (limited to +{step} per decision)")
            } else {
                String::new()
            };
            d.message = format!("{why}; scaling up {cur} → {}{limited}", d.replicas);
        }
    } else if recommended < cur {
        let highest = h.highest_recommendation(s.now, p.down.stabilization_seconds, recommended);
        if p.frozen {
            d.reason = "HoldFreezeWindow";
            d.message = format!("{why}; held: inside a freeze window");
        } else if over_slo {
            d.reason = "HoldBacklog";
            d.message = format!(
                "{why}; held: no scale-down while the backlog is above the {:.0} s lag SLO",
                p.lag_slo_seconds
            );
        } else if (util - p.target_utilization).abs() <= p.tolerance
            && !over_slo
            && highest >= cur - 1
        {
            d.reason = "HoldWithinTolerance";
            d.message = format!(
                "{why}; held: utilization within ±{:.2} of the target",
                p.tolerance
            );
        } else if !h.held_for(s.now, p.down.stabilization_seconds, |r| r < cur) {
            d.reason = "HoldStabilizing";
            d.message = format!(
                "{why}; held: a lower count must hold for the {:.0} s scale-down window",
                p.down.stabilization_seconds
            );
        } else if h.since_last_change(s.now) < p.down.cooldown_seconds {
            d.reason = "HoldCooldown";
            d.message = format!(
                "{why}; held: scale-down cooldown ({:.0} s)",
                p.down.cooldown_seconds
            );
        } else if highest >= cur {
            d.reason = "HoldStabilizing";
            d.message =
                format!("{why}; held: {highest} was recommended within the scale-down window");
        } else {
            let step = max_step(cur, p.down);
            d.replicas = highest.max(cur - step).max(p.min);
            d.reason = "ScaleDown";
            d.message = format!(
                "{why}; scaling down {cur} → {} (highest recommendation in the {:.0} s window: {highest})",
                d.replicas, p.down.stabilization_seconds
            );
        }
    } else {
        d.message = format!("{why}; no change");
    }
    if s.stale {
        // A stand-in for a failed read: it may justify more replicas, never fewer, and the
        // evaluation is a gap in the scale-down window.
        d.metrics_available = false;
        if d.replicas < cur {
            d.replicas = cur;
            d.reason = "HoldStaleMetrics";
            d.message = format!(
                "{why}; held: a signal is the last good read standing in for a failed one (no scale-down on stale data)"
            );
        }
    }
    d
}

/// The largest step of one decision: the larger of the percent and absolute limits, at least 1.
fn max_step(cur: i32, s: Step) -> i32 {
    let pct = (cur as f64 * s.max_percent / 100.0).floor() as i32;
    pct.max(s.max_replicas).max(1)
}
