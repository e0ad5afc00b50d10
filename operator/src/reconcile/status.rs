//! The pipeline's status: computed purely from the current status and what the reconcile saw,
//! written (server-side apply on the status subresource) only when a value changed.

use impressions_crds::{
    ImpressionPipeline, ImpressionPipelineStatus,
    conditions::{self, DEGRADED, READY, SCALING},
};
use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::Time};
use kube::ResourceExt;

use crate::{
    autoscale::{bounds::Bounds, model::Evaluation},
    error::Error,
    quality::assess::Reading,
    reconcile::{labels, raw_schema::SchemaOutcome},
};

/// What one reconcile found.
#[derive(Debug)]
pub enum Observed<'a> {
    /// The children were applied.
    Applied {
        deployment: &'a Deployment,
        desired: i32,
        bounds: &'a Bounds,
        policy: Option<&'a str>,
    },
    /// The reconcile failed before or while applying.
    Failed(&'a Error),
}

/// The next status, in one pass: the current one with what the reconcile saw and, once the
/// children were applied, the latest autoscaling evaluation and data-quality reading folded in.
/// Conditions keep their transition time unless their status flips. The reconcile writes it
/// only when it differs from the current one.
pub fn compute(
    p: &ImpressionPipeline,
    observed: &Observed<'_>,
    evaluation: Option<&Evaluation>,
    quality: Option<&Reading>,
    now: &Time,
) -> ImpressionPipelineStatus {
    let stalled = evaluation
        .map(|e| &e.decision)
        .filter(|d| d.reason == "HoldStalled")
        .map(|d| d.replicas);
    let mut s = next(p, observed, stalled, now);
    if let Observed::Applied { .. } = observed {
        if let Some(e) = evaluation {
            with_evaluation(&mut s, p.metadata.generation, e, now);
        }
        if let Some(r) = quality {
            with_quality(&mut s, p.metadata.generation, r, now);
        }
    }
    s
}

/// The current status with what the reconcile saw applied; `stalled` is the replica count of a
/// fleet the decision holds as stalled.
fn next(
    p: &ImpressionPipeline,
    observed: &Observed<'_>,
    stalled: Option<i32>,
    now: &Time,
) -> ImpressionPipelineStatus {
    let mut s = p.status.clone().unwrap_or_default();
    let generation = p.metadata.generation;
    let set = |s: &mut ImpressionPipelineStatus, t: &str, ok: bool, reason: &str, msg: &str| {
        conditions::set(
            &mut s.conditions,
            t,
            ok,
            reason,
            msg,
            generation,
            now.clone(),
        );
    };
    match observed {
        Observed::Failed(e) => {
            let (reason, msg) = (e.reason(), e.to_string());
            set(&mut s, READY, false, reason, &msg);
            if e.is_spec_problem() {
                set(&mut s, DEGRADED, true, reason, &msg);
            }
        }
        Observed::Applied {
            deployment,
            desired,
            bounds,
            policy,
        } => {
            s.observed_generation = generation;
            let st = deployment.status.clone().unwrap_or_default();
            s.replicas = st.replicas.unwrap_or(0);
            s.ready_replicas = st.ready_replicas.unwrap_or(0);
            s.desired_replicas = Some(*desired);
            s.selector = Some(labels::selector_string(&p.name_any()));
            let ready_msg = format!(
                "worker Deployment applied; {}/{} workers ready",
                s.ready_replicas, desired
            );
            set(&mut s, READY, true, "Reconciled", &ready_msg);
            if *desired > 0 && s.ready_replicas == 0 && s.replicas > 0 {
                let msg = format!("none of {} workers is ready", s.replicas);
                set(&mut s, DEGRADED, true, "WorkersUnavailable", &msg);
            } else if let Some(n) = stalled {
                // The numbers are in lastDecision; the condition's message stays put while the
                // stall lasts (no status write per evaluation).
                let msg = format!(
                    "the {n} workers have processed nothing for over {:.0} s while a backlog waits; see lastDecision and the workers' logs",
                    crate::autoscale::decide::STALLED_SECONDS
                );
                set(&mut s, DEGRADED, true, "Stalled", &msg);
            } else {
                set(&mut s, DEGRADED, false, "AsExpected", "workers available");
            }
            let policy = policy
                .map(|n| format!("ScalingPolicy {n}"))
                .unwrap_or_else(|| "built-in defaults (no ScalingPolicy for the region)".into());
            if bounds.widened.is_empty() {
                set(
                    &mut s,
                    SCALING,
                    true,
                    "WithinBounds",
                    &format!(
                        "{desired} replicas within [{}, {}] of {policy}",
                        bounds.min, bounds.max
                    ),
                );
            } else {
                let msg = format!(
                    "{}; {policy} bounds [{}, {}] apply",
                    bounds.widened.join("; "),
                    bounds.min,
                    bounds.max
                );
                set(&mut s, SCALING, false, "OverrideWiderThanPolicy", &msg);
            }
        }
    }
    s
}

/// A condition's status as a bool, if present.
pub fn is_true(s: Option<&ImpressionPipelineStatus>, t: &str) -> Option<bool> {
    s.and_then(|s| conditions::get(&s.conditions, t))
        .map(|c| c.status == "True")
}

/// Rates are rewritten when one moves by more than this share: under steady traffic the status
/// (and the API server's write load) stays still while the numbers jitter.
pub const RATE_TOLERANCE: f64 = 0.1;

/// Whether a rate moved by more than [`RATE_TOLERANCE`] of the larger value and by more than
/// 1/s.
fn rate_moved(old: f64, new: f64) -> bool {
    (new - old).abs() > (RATE_TOLERANCE * old.abs().max(new.abs())).max(1.0)
}

fn rates_moved(
    old: &impressions_crds::status::ThroughputStatus,
    new: &impressions_crds::status::ThroughputStatus,
) -> bool {
    rate_moved(old.input_per_second, new.input_per_second)
        || rate_moved(old.processed_per_second, new.processed_per_second)
        || match (old.capacity_per_replica, new.capacity_per_replica) {
            (Some(a), Some(b)) => rate_moved(a, b),
            (a, b) => a.is_some() != b.is_some(),
        }
}

/// Whether the lag moved by more than [`RATE_TOLERANCE`] and by more than a second of input,
/// or started or stopped being zero.
fn lag_moved(
    old: &impressions_crds::status::LagStatus,
    new: &impressions_crds::status::LagStatus,
    second_of_input: f64,
) -> bool {
    let (a, b) = (old.total as f64, new.total as f64);
    let floor = (RATE_TOLERANCE * a.max(b)).max(second_of_input);
    (a == 0.0) != (b == 0.0) || (b - a).abs() > floor
}

/// Folds an autoscaling evaluation into the status: lag and throughput when they moved (see
/// [`RATE_TOLERANCE`]), partitions, the MetricsAvailable condition, and the last decision when
/// its outcome changed (a repeated decision with fresh numbers does not rewrite it).
fn with_evaluation(
    s: &mut ImpressionPipelineStatus,
    generation: Option<i64>,
    e: &Evaluation,
    now: &Time,
) {
    let from = e.from;
    use impressions_crds::status::{LagStatus, ScalingDecisionStatus, ThroughputStatus};
    let d = &e.decision;
    if let Some(l) = &e.lag {
        s.partitions = Some(l.partitions);
        let next = LagStatus {
            total: l.total,
            max_partition: l.max_partition,
            estimated_seconds: d.backlog_seconds.map(|b| (b * 10.0).round() / 10.0),
        };
        let second_of_input = d.arrival_rate.unwrap_or(0.0);
        if s.lag
            .as_ref()
            .is_none_or(|old| lag_moved(old, &next, second_of_input))
        {
            s.lag = Some(next);
        }
    }
    if let (Some(arrival), Some(processed)) = (d.arrival_rate, e.processed_rate) {
        let next = ThroughputStatus {
            input_per_second: arrival.round(),
            processed_per_second: processed.round(),
            capacity_per_replica: d.capacity_per_replica.map(f64::round),
        };
        if s.throughput
            .as_ref()
            .is_none_or(|old| rates_moved(old, &next))
        {
            s.throughput = Some(next);
        }
    }
    let (ok, reason, msg) = match &e.problem {
        None => (
            true,
            "MetricsFresh",
            "Kafka lag and Prometheus throughput are fresh".to_owned(),
        ),
        Some(p) => (false, "MetricsMissing", format!("{p}; replicas held")),
    };
    conditions::set(
        &mut s.conditions,
        conditions::METRICS_AVAILABLE,
        ok,
        reason,
        &msg,
        generation,
        now.clone(),
    );
    if d.ineffective_scale_up {
        conditions::set(
            &mut s.conditions,
            SCALING,
            false,
            "IneffectiveScaleUp",
            &d.message,
            generation,
            now.clone(),
        );
    }
    s.forecast = e.forecast.as_ref().map(|f| {
        let next = forecast_status(f);
        match s.forecast.take() {
            Some(old) if !forecast_moved(&old, &next) => old,
            _ => next,
        }
    });
    let changed = s
        .last_decision
        .as_ref()
        .is_none_or(|l| (l.from, l.to, l.reason.as_str()) != (from, d.replicas, d.reason));
    if changed {
        s.last_decision = Some(ScalingDecisionStatus {
            from,
            to: d.replicas,
            reason: d.reason.to_owned(),
            message: d.message.clone(),
            time: now.clone(),
        });
    }
}

/// The forecast as the status shows it (rates rounded to events/s, the error to hundredths).
fn forecast_status(
    f: &crate::autoscale::model::ForecastReport,
) -> impressions_crds::status::ForecastStatus {
    impressions_crds::status::ForecastStatus {
        state: f.state.to_owned(),
        input_per_second: f.arrival.map(f64::round),
        lead_seconds: f.lead_seconds.round() as i32,
        replicas: f.replicas,
        recent_error: f.recent_error.map(|e| (e * 100.0).round() / 100.0),
        history_hours: Some((f.history_seconds / 360.0).round() / 10.0),
        message: f.message.clone(),
    }
}

/// Whether the forecast moved enough to rewrite the status: its state or replicas changed, its
/// rate by more than [`RATE_TOLERANCE`], its error by more than 0.05, or an hour more history.
fn forecast_moved(
    old: &impressions_crds::status::ForecastStatus,
    next: &impressions_crds::status::ForecastStatus,
) -> bool {
    let rate = |r: Option<f64>| r.unwrap_or(0.0);
    let (a, b) = (rate(old.input_per_second), rate(next.input_per_second));
    old.state != next.state
        || old.replicas != next.replicas
        || old.input_per_second.is_some() != next.input_per_second.is_some()
        || (a - b).abs() > RATE_TOLERANCE * a.max(b).max(1.0)
        || (old.recent_error.unwrap_or(0.0) - next.recent_error.unwrap_or(0.0)).abs() > 0.05
        || (old.history_hours.unwrap_or(0.0) - next.history_hours.unwrap_or(0.0)).abs() >= 1.0
}

/// Folds a data-quality reading into the DataQuality condition: True/OK, False/Warning or
/// Critical, Unknown/NoData.
fn with_quality(
    s: &mut ImpressionPipelineStatus,
    generation: Option<i64>,
    r: &Reading,
    now: &Time,
) {
    let c = r.condition();
    let t = conditions::DATA_QUALITY;
    match c.status {
        Some(ok) => conditions::set(
            &mut s.conditions,
            t,
            ok,
            c.reason,
            &c.message,
            generation,
            now.clone(),
        ),
        None => conditions::set_unknown(
            &mut s.conditions,
            t,
            c.reason,
            &c.message,
            generation,
            now.clone(),
        ),
    };
}

/// Folds the schema step's outcome into the SchemaDrift condition. Without a window (a new
/// pipeline, or the operator just started) the condition stays as it is.
pub fn with_schema(
    s: &mut ImpressionPipelineStatus,
    generation: Option<i64>,
    outcome: &SchemaOutcome,
    now: &Time,
) {
    if *outcome == SchemaOutcome::NoWindow {
        return;
    }
    let c = outcome.condition();
    let t = conditions::SCHEMA_DRIFT;
    match c.status {
        Some(drift) => conditions::set(
            &mut s.conditions,
            t,
            drift,
            &c.reason,
            &c.message,
            generation,
            now.clone(),
        ),
        None => conditions::set_unknown(
            &mut s.conditions,
            t,
            &c.reason,
            &c.message,
            generation,
            now.clone(),
        ),
    };
}

#[cfg(test)]
mod tests;
