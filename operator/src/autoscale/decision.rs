//! The scaling decision: signals + policy + recent history → a replica count and why. Pure: no
//! IO, no clock (the time is an input), table-tested.
//!
//! The model (after DS2 and the Flink autoscaler, for stateless consumers):
//! - arrival rate = input rate from the topic's watermarks (else processed rate + d(lag)/dt);
//! - capacity per replica = processed rate / busy fraction / replicas (true capacity, not the
//!   observed rate of a half-idle worker);
//! - two demands: the steady rate, arrival × (1 + rebalance cost / catch-up), kept under the
//!   target utilization, and the catch-up rate, arrival + backlog / catch-up, which may use the
//!   headroom (full capacity), so a backlog left by a rebalance does not read as lasting demand;
//! - replicas are partition-aware: a replica holding m of P partitions carries m/P of the load,
//!   so the count keeps the average under the target utilization and the busiest replica under
//!   target + tolerance, choosing the smallest count for a given busiest share.

use super::history::History;

/// What the signals said at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signals {
    /// Seconds since an arbitrary epoch (monotonic within a pipeline's history).
    pub now: f64,
    /// Replicas running now (the operator's current count).
    pub replicas: i32,
    /// Partitions of the source topic.
    pub partitions: i32,
    /// Total consumer lag (events), if Kafka answered.
    pub lag: Option<f64>,
    /// Events/s arriving on the topic (watermark deltas), if known.
    pub input_rate: Option<f64>,
    /// Events/s processed by all workers (Prometheus), if fresh.
    pub processed_rate: Option<f64>,
    /// Average busy fraction of the workers (0..1), if fresh.
    pub busy_fraction: Option<f64>,
}

/// The policy as the decision reads it (the pipeline's narrowing already applied).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub min: i32,
    pub max: i32,
    pub target_utilization: f64,
    pub tolerance: f64,
    pub lag_slo_seconds: f64,
    pub catch_up_seconds: f64,
    pub rebalance_cost_seconds: f64,
    /// Seconds after a replica change during which a measured capacity mixes the fleets before
    /// and after it (the rate window plus the rebalance); the last settled figure stands in.
    pub capacity_settle_seconds: f64,
    pub up: Step,
    pub down: Step,
    /// Replica count to go up to when metrics are missing (never down); hold when `None`.
    pub missing_metrics_replicas: Option<i32>,
    pub paused: bool,
    /// No scale-down now (inside a freeze window).
    pub frozen: bool,
}

/// Limits of one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub stabilization_seconds: f64,
    pub max_percent: f64,
    pub max_replicas: i32,
    pub cooldown_seconds: f64,
}

/// A decision and its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub replicas: i32,
    /// CamelCase: ScaleUp, ScaleUpForBacklog, ScaleDown, Hold…, NoChange.
    pub reason: &'static str,
    pub message: String,
    /// What the model recommends before stabilization, steps and cooldowns.
    pub recommended: i32,
    pub metrics_available: bool,
    /// Scale-up is blocked because more replicas did not add capacity.
    pub ineffective_scale_up: bool,
    /// Estimated seconds to drain the backlog at the current processing rate.
    pub backlog_seconds: Option<f64>,
    pub capacity_per_replica: Option<f64>,
    /// The capacity was measured now (not carried over while the fleet settles).
    pub capacity_measured: bool,
    pub arrival_rate: Option<f64>,
}

/// Decides the replica count for one evaluation. `history` holds earlier evaluations of this
/// pipeline (recommendations, changes, capacity at each count).
pub fn decide(s: &Signals, p: &Policy, h: &History) -> Decision {
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
    let (Some(lag), Some(processed), Some(busy)) = (s.lag, s.processed_rate, s.busy_fraction)
    else {
        let missing: Vec<&str> = [
            ("lag", s.lag.is_none()),
            ("processed rate", s.processed_rate.is_none()),
            ("busy fraction", s.busy_fraction.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(n, _)| *n)
        .collect();
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
    };

    // Rates. A worker that processed nothing has no measurable capacity yet.
    let lag_growth = h.lag_growth(s.now, lag);
    let arrival = s.input_rate.unwrap_or(processed + lag_growth).max(0.0);
    let running = cur.max(1) as f64;
    let settling =
        h.since_last_change(s.now) < p.capacity_settle_seconds && h.last_capacity.is_some();
    let capacity = if processed > 0.0 && busy > 0.01 && !settling {
        Some(processed / busy.min(1.0) / running)
    } else {
        None
    };
    // Time to drain the backlog at the rate it is being worked off (infinite if nothing moves).
    let drain_rate = processed.max(arrival);
    let backlog_s = if lag <= 0.0 {
        0.0
    } else if drain_rate > 0.0 {
        lag / drain_rate
    } else {
        f64::INFINITY
    };
    let Some(cap) = capacity.or(h.last_capacity) else {
        let mut d = hold(
            "HoldNoCapacityEstimate",
            format!(
                "no processing observed yet (processed {processed:.0}/s, busy {busy:.2}); holding {cur}"
            ),
            true,
        );
        d.arrival_rate = Some(arrival);
        return d;
    };

    // Two demands. The steady one (arrival, plus the rebalance a change costs) is served at the
    // target utilization: that headroom absorbs bursts. Working off the backlog within the
    // catch-up time may use the headroom, so it is served at full capacity; otherwise the backlog
    // a scale-down's own rebalance leaves would read as demand and scale back up (flapping).
    let steady = arrival * (1.0 + p.rebalance_cost_seconds / p.catch_up_seconds);
    let catch_up = arrival + lag / p.catch_up_seconds;
    let target = steady.max(catch_up);
    let recommended = partition_aware(
        steady,
        cap * p.target_utilization,
        cap * (p.target_utilization + p.tolerance).min(1.0),
        s.partitions,
    )
    .max(partition_aware(catch_up, cap, cap, s.partitions))
    .clamp(p.min, p.max.min(s.partitions.max(1)).max(p.min));
    let util = arrival / (running * cap);
    let over_slo = backlog_s > p.lag_slo_seconds;
    let why = format!(
        "arrival {arrival:.0}/s, backlog {lag:.0} events ({}), capacity {cap:.0}/s per replica, utilization {util:.2} (target {:.2}); target rate {target:.0}/s → {recommended} replicas for {} partitions",
        if backlog_s.is_finite() {
            format!("{backlog_s:.0} s to drain")
        } else {
            "not draining".into()
        },
        p.target_utilization,
        s.partitions
    );
    let mut d = Decision {
        replicas: cur,
        reason: "NoChange",
        message: String::new(),
        recommended,
        metrics_available: true,
        ineffective_scale_up: h.ineffective_since.is_some(),
        backlog_seconds: backlog_s.is_finite().then_some(backlog_s),
        capacity_per_replica: Some(cap),
        capacity_measured: capacity.is_some(),
        arrival_rate: Some(arrival),
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
    d
}

/// The fewest replicas that carry `target` events/s at `average` per replica on average, with
/// the busiest one (holding ceil(P/n) of P equally loaded partitions) at most at `peak`. Among
/// counts that give the busiest replica the same number of partitions, the smallest is chosen,
/// so the count never jumps to a much larger divisor of P.
pub fn partition_aware(target: f64, average: f64, peak: f64, partitions: i32) -> i32 {
    let p = partitions.max(1);
    if target <= 0.0 {
        return 1;
    }
    if average <= 0.0 || peak <= 0.0 {
        return p;
    }
    let by_rate = (target / average).ceil().min(p as f64) as i32;
    // Most partitions one replica may hold.
    let m = ((peak.max(average) * p as f64) / target).floor() as i32;
    let by_partitions = if m <= 0 {
        p
    } else {
        (p + m.min(p) - 1) / m.min(p)
    };
    by_rate.max(by_partitions).clamp(1, p)
}

/// The largest step of one decision: the larger of the percent and absolute limits, at least 1.
fn max_step(cur: i32, s: Step) -> i32 {
    let pct = (cur as f64 * s.max_percent / 100.0).floor() as i32;
    pct.max(s.max_replicas).max(1)
}
