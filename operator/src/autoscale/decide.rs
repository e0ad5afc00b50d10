//! The decision: the estimate's recommendation → the replica count to apply now, within the
//! policy's stabilization windows, steps, cooldowns, freeze windows and the lag SLO, with the
//! reason and the numbers behind it. Pure: no IO, no clock (the time is an input),
//! table-tested (`tests.rs`).

use super::{
    estimate::{NoEstimate, estimate, partition_aware},
    history::History,
    model::{Decision, Limits, Signals, Step},
};

/// While the fleet keeps up within its headroom, a higher recommendation must hold this long
/// before a scale-up (a burst shorter than a pod's start is over before the pod helps).
const BURST_SECONDS: f64 = 90.0;
/// The busiest replica's busy fraction up to which the fleet keeps up with a burst (its
/// capacity, less a margin for the measure's error).
const KEEPS_UP: f64 = 0.95;
/// An input below this share of its recent peak has (nearly) stopped.
const NEAR_ZERO: f64 = 0.1;
/// How long after the input nearly stopped no scale-down happens (the producers' outage is
/// expected to end, and their buffers to be flushed).
const INPUT_STOP_HOLD_SECONDS: f64 = 1800.0;
/// A fleet that processes less than this share of one replica's capacity while more than a
/// second of that capacity waits is stalled ...
const STALLED_SHARE: f64 = 0.01;
/// ... and after this long stalled, the decision holds and says so: more replicas do not move
/// a fleet that stopped (a sink that refuses, a worker stuck in a call: its liveness probe
/// restarts it), and fewer would leave less to work off the backlog when it moves again.
pub const STALLED_SECONDS: f64 = 60.0;

/// Seconds a scale-down and the scale-up that undoes it take at least: both stabilization
/// windows, the rate window and rebalance until the capacity is measured again, a pod's start.
pub fn round_trip_seconds(p: &Limits) -> f64 {
    p.down.stabilization_seconds
        + p.up.stabilization_seconds
        + p.capacity_settle_seconds
        + p.pod_start_seconds
}

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
        stalled: false,
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
    let (mut recommended, over_slo, util) = (e.recommended, e.over_slo, e.utilization);
    let mut why = e.why.clone();
    // Load that cycles faster than a scaling round trip: following it costs actions and lag
    // and saves little; hold at the peak of the recent cycles (at the hard ceiling: the peak is
    // known, the headroom under the target is for load not seen yet).
    let round_trip = round_trip_seconds(p);
    if let Some(c) = h.cycle().filter(|c| c.trough < 2.0 * round_trip) {
        let max = p.max.min(s.partitions.max(1)).max(p.min);
        let hold = partition_aware(
            c.peak,
            e.capacity * p.busiest_ceiling,
            e.capacity * p.busiest_ceiling,
            s.partitions,
        )
        .clamp(p.min, max);
        let catch_up = partition_aware(
            e.arrival + s.lag.unwrap_or(0.0) / p.catch_up_seconds,
            e.capacity,
            e.capacity,
            s.partitions,
        )
        .clamp(p.min, max);
        recommended = hold.max(catch_up);
        why = format!(
            "{why}; load cycles (every ~{:.0} s, low for at most {:.0} s, shorter than twice a scaling round trip of ~{round_trip:.0} s): holding at the peak of the last hour, {:.0}/s → {recommended} replicas",
            c.period, c.trough, c.peak
        );
    }
    let why = &why;
    let mut d = Decision {
        replicas: cur,
        reason: "NoChange",
        message: String::new(),
        recommended,
        metrics_available: true,
        ineffective_scale_up: h.ineffective_since.is_some(),
        backlog_seconds: e.backlog_seconds.is_finite().then_some(e.backlog_seconds),
        capacity_per_replica: Some(e.measured_capacity.unwrap_or(e.capacity)),
        capacity_measured: e.capacity_measured,
        arrival_rate: Some(e.arrival),
        stalled: false,
    };
    let lag = s.lag.unwrap_or(0.0);
    let processed = s.processed_rate.unwrap_or(0.0);
    if cur > 0 && lag > e.capacity && processed < STALLED_SHARE * e.capacity {
        d.stalled = true;
        let stalled_for = h.stalled_for(s.now);
        if stalled_for >= STALLED_SECONDS {
            d.reason = "HoldStalled";
            d.recommended = cur;
            d.metrics_available = !s.stale();
            d.message = format!(
                "{why}; held: the {cur} workers processed {processed:.0}/s for {stalled_for:.0} s while {lag:.0} events waited — the fleet is stalled, not short of replicas (a sink that refuses, a worker stuck in a call: its liveness probe restarts it); scaling resumes when it moves"
            );
            return d;
        }
    }

    // The busiest replica's busy fraction at the current count.
    let busiest_now = if cur > 0 && s.partitions > 0 {
        f64::from((s.partitions + cur - 1) / cur) / f64::from(s.partitions) * e.arrival / e.capacity
    } else {
        f64::INFINITY
    };
    if recommended > cur {
        if util <= p.target_utilization + p.tolerance
            && busiest_now <= p.busiest_ceiling
            && !over_slo
        {
            d.reason = "HoldWithinTolerance";
            d.message = format!(
                "{why}; held: utilization within +{:.2} of the target, the busiest replica at {busiest_now:.2} under the {:.2} ceiling and no backlog over the SLO",
                p.tolerance, p.busiest_ceiling
            );
        } else if busiest_now <= KEEPS_UP
            && !over_slo
            && !h.held_for(s.now, BURST_SECONDS, |r| r > cur)
        {
            d.reason = "HoldBurst";
            d.message = format!(
                "{why}; held: the fleet keeps up within its headroom (the busiest replica at {busiest_now:.2} of its capacity, no backlog over the SLO) — a scale-up waits until the need held for {BURST_SECONDS:.0} s, so a burst uses the headroom instead of a replica that starts when it is over"
            );
        } else if d.ineffective_scale_up {
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
        let recent_peak = h.highest_arrival(s.now, INPUT_STOP_HOLD_SECONDS);
        if p.frozen {
            d.reason = "HoldFreezeWindow";
            d.message = format!("{why}; held: inside a freeze window");
        } else if e.arrival < NEAR_ZERO * recent_peak {
            d.reason = "HoldInputStopped";
            d.message = format!(
                "{why}; held: the input fell to {:.0} % of its {recent_peak:.0}/s peak of the last {:.0} min — producers that stop usually come back and flush their buffers, so a sudden drop to near zero is no reason to scale down (for {:.0} min)",
                100.0 * e.arrival / recent_peak,
                INPUT_STOP_HOLD_SECONDS / 60.0,
                INPUT_STOP_HOLD_SECONDS / 60.0
            );
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
        } else if let Some(settled) = unsettled(h, s.now, p, recommended, highest) {
            d.reason = "HoldSettling";
            d.message = format!(
                "{why}; held: the window's highest recommendation ({highest}) is from before the load settled (the last {:.0} s recommend at most {settled}); scaling down once, when it has left the window",
                p.capacity_settle_seconds
            );
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
    if s.stale() {
        // A stand-in for a failed read: it may justify more replicas, never fewer, and the
        // evaluation is a gap in the scale-down window.
        d.metrics_available = false;
        if d.replicas < cur {
            d.replicas = cur;
            d.reason = "HoldStaleMetrics";
            d.message = format!(
                "{why}; held: a signal is the last good read standing in for a failed one (no scale-down on stale data)"
            );
        } else if d.replicas > cur && s.lag_stale {
            // The source cluster did not answer the operator: it is likely not answering the
            // workers either (their processed rate falls, which reads as less capacity), and
            // more of them would only add a rebalance to its recovery.
            d.replicas = cur;
            d.reason = "HoldStaleMetrics";
            d.message = format!(
                "{why}; held: the lag is the last good read standing in for a failed one (the source cluster did not answer: no scaling up on it)"
            );
        }
    }
    d
}

/// A scale-down goes in one step to where the load settled: while the highest recommendation
/// of the down window is well above those of the last `capacity_settle_seconds` (rates still
/// moving when the load fell), it waits for it to leave the window. Returns the settled
/// recommendation while waiting.
fn unsettled(h: &History, now: f64, p: &Limits, recommended: i32, highest: i32) -> Option<i32> {
    let recent = h.highest_recommendation(now, p.capacity_settle_seconds.max(1.0), recommended);
    (highest > recent + (recent / 10).max(2)).then_some(recent)
}

/// The largest step of one decision: the larger of the percent and absolute limits, at least 1.
pub fn max_step(cur: i32, s: Step) -> i32 {
    let pct = (cur as f64 * s.max_percent / 100.0).floor() as i32;
    pct.max(s.max_replicas).max(1)
}
