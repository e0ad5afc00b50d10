//! The decision's view of a ScalingPolicy: bounds already narrowed by the pipeline, overrides
//! applied only where they narrow, freeze windows evaluated at a given UTC minute.

use impressions_crds::{
    ImpressionPipelineSpec, ScalingPolicySpec,
    policy::{FreezeWindow, MissingMetricsAction, ScaleBehavior},
};

use super::model::{Limits, Step};
use crate::autoscale::bounds::Bounds;

/// Seconds from asking for a pod until it consumes, when nothing better is known: image pulled,
/// container started, the group joined.
pub const POD_START_SECONDS: f64 = 30.0;

/// The decision policy of a ScalingPolicy alone (no pipeline overrides), at a UTC minute.
pub fn from_policy(policy: &ScalingPolicySpec, b: &Bounds, minute_of_day: u32) -> Limits {
    let spec: ImpressionPipelineSpec = serde_json::from_value(serde_json::json!({
        "source": {"bootstrapServers": "k:9092", "topic": "raw"},
        "sink": {"topic": "out", "deadLetterTopic": "dlq"},
        "enrichment": {"catalog": {"topic": "titles"}}
    }))
    .expect("a minimal pipeline spec");
    effective(&spec, policy, b, minute_of_day)
}

/// Builds the decision policy. `minute_of_day` is the current UTC minute (0..1440).
pub fn effective(
    spec: &ImpressionPipelineSpec,
    policy: &ScalingPolicySpec,
    b: &Bounds,
    minute_of_day: u32,
) -> Limits {
    let o = spec.scaling.overrides.clone().unwrap_or_default();
    let narrower = |over: Option<f64>, base: f64, lower_is_narrower: bool| match over {
        Some(v) if (lower_is_narrower && v < base) || (!lower_is_narrower && v > base) => v,
        _ => base,
    };
    let mut down = step(&policy.scale_down);
    down.stabilization_seconds = narrower(
        o.scale_down_stabilization_seconds.map(f64::from),
        down.stabilization_seconds,
        false,
    );
    Limits {
        min: b.min,
        max: b.max,
        target_utilization: narrower(o.target_utilization, policy.target_utilization, true),
        tolerance: policy.utilization_tolerance,
        // Never stricter than the soft limit on the busiest replica (target + tolerance).
        busiest_ceiling: policy
            .busiest_replica_ceiling
            .max((policy.target_utilization + policy.utilization_tolerance).min(1.0)),
        lag_slo_seconds: narrower(
            o.lag_slo_seconds.map(f64::from),
            f64::from(policy.lag_slo_seconds),
            true,
        ),
        catch_up_seconds: narrower(
            o.catch_up_seconds.map(f64::from),
            f64::from(policy.catch_up_seconds),
            true,
        ),
        rebalance_cost_seconds: f64::from(policy.rebalance_cost_seconds),
        capacity_settle_seconds: duration_seconds(&policy.queries.rate_window)
            + f64::from(policy.rebalance_cost_seconds),
        pod_start_seconds: POD_START_SECONDS,
        up: step(&policy.scale_up),
        down,
        missing_metrics_replicas: match policy.on_missing_metrics.action {
            MissingMetricsAction::Hold => None,
            MissingMetricsAction::Fixed => policy.on_missing_metrics.replicas,
        },
        stale_after_seconds: f64::from(policy.on_missing_metrics.stale_after_seconds),
        paused: policy.paused,
        frozen: policy
            .freeze_windows
            .iter()
            .any(|w| in_window(w, minute_of_day)),
    }
}

/// A Prometheus duration of the form the CRD allows (`30s`, `1m`, `1h`) in seconds.
pub fn duration_seconds(d: &str) -> f64 {
    let (n, unit) = d.split_at(d.len().saturating_sub(1));
    let n: f64 = n.parse().unwrap_or(60.0);
    match unit {
        "h" => n * 3600.0,
        "m" => n * 60.0,
        _ => n,
    }
}

fn step(b: &ScaleBehavior) -> Step {
    Step {
        stabilization_seconds: f64::from(b.stabilization_window_seconds),
        max_percent: f64::from(b.max_step_percent),
        max_replicas: b.max_step_replicas as i32,
        cooldown_seconds: f64::from(b.cooldown_seconds),
    }
}

/// Whether `minute` (UTC minute of the day) lies in the window (which may wrap past midnight).
pub fn in_window(w: &FreezeWindow, minute: u32) -> bool {
    let parse = |s: &str| -> Option<u32> {
        let (h, m) = s.split_once(':')?;
        Some(h.parse::<u32>().ok()? * 60 + m.parse::<u32>().ok()?)
    };
    let (Some(start), Some(end)) = (parse(&w.start), parse(&w.end)) else {
        return false;
    };
    if start <= end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    }
}
