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
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use kube::Resource;

    fn pipeline() -> ImpressionPipeline {
        let spec = serde_json::from_value(serde_json::json!({
            "source": {"bootstrapServers": "k:9092", "topic": "raw"},
            "sink": {"topic": "out", "deadLetterTopic": "dlq"},
            "enrichment": {"catalog": {"topic": "titles"}}
        }))
        .unwrap();
        let mut p = ImpressionPipeline::new("p", spec);
        p.meta_mut().generation = Some(3);
        p
    }

    fn deployment(replicas: i32, ready: i32) -> Deployment {
        serde_json::from_value(
            serde_json::json!({"status": {"replicas": replicas, "readyReplicas": ready}}),
        )
        .unwrap()
    }

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn applied_then_unchanged_is_equal_so_nothing_is_written() {
        let mut p = pipeline();
        let b = Bounds {
            min: 1,
            max: 4,
            widened: vec![],
        };
        let d = deployment(2, 2);
        let first = next(
            &p,
            &Observed::Applied {
                deployment: &d,
                desired: 2,
                bounds: &b,
                policy: Some("std"),
            },
            None,
            &t(10),
        );
        assert_eq!(first.observed_generation, Some(3));
        assert_eq!(is_true(Some(&first), READY), Some(true));
        p.status = Some(first.clone());
        let second = next(
            &p,
            &Observed::Applied {
                deployment: &d,
                desired: 2,
                bounds: &b,
                policy: Some("std"),
            },
            None,
            &t(99),
        );
        assert_eq!(
            first, second,
            "an idle pipeline produces an identical status"
        );
    }

    #[test]
    fn rates_and_lag_are_rewritten_only_when_they_move() {
        use impressions_crds::status::{LagStatus, ThroughputStatus};
        let t = |input: f64| ThroughputStatus {
            input_per_second: input,
            processed_per_second: input,
            capacity_per_replica: Some(1000.0),
        };
        assert!(!rates_moved(&t(10_000.0), &t(10_600.0)), "6 % jitter");
        assert!(rates_moved(&t(10_000.0), &t(11_500.0)), "15 % move");
        assert!(!rates_moved(&t(0.0), &t(0.4)));
        let l = |total: i64| LagStatus {
            total,
            max_partition: total,
            estimated_seconds: None,
        };
        assert!(
            !lag_moved(&l(1_000), &l(3_000), 5_000.0),
            "under a second of input"
        );
        assert!(lag_moved(&l(1_000), &l(9_000), 5_000.0));
        assert!(lag_moved(&l(0), &l(10), 5_000.0), "a backlog appears");
        assert!(lag_moved(&l(10), &l(0), 5_000.0), "the backlog is gone");
    }

    #[test]
    fn failure_sets_ready_false_with_the_reason() {
        let p = pipeline();
        let e = Error::PolicyMissing("gold".into());
        let s = next(&p, &Observed::Failed(&e), None, &t(1));
        let c = conditions::get(&s.conditions, READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "PolicyMissing")
        );
        assert!(c.message.contains("gold"));
        assert_eq!(is_true(Some(&s), DEGRADED), Some(true));
    }

    #[test]
    fn quality_readings_set_the_data_quality_condition() {
        use crate::quality::assess::{NoData, WindowCounts};
        let spec = impressions_crds::quality::QualitySpec::default();
        let mut s = ImpressionPipelineStatus::default();
        let dq = |s: &ImpressionPipelineStatus| {
            let c = conditions::get(&s.conditions, conditions::DATA_QUALITY).unwrap();
            (c.status.clone(), c.reason.clone(), c.message.clone())
        };
        let no_data = Reading {
            window_seconds: 300,
            outcome: Err(NoData::NoSeries),
        };
        with_quality(&mut s, Some(1), &no_data, &t(1));
        assert_eq!(
            dq(&s),
            (
                "Unknown".into(),
                "NoData".into(),
                "Prometheus has no worker series for the pipeline".into()
            )
        );
        let bad = WindowCounts {
            processed: 100.0,
            rejected: [("oversize".to_owned(), 10.0)].into(),
            ..WindowCounts::default()
        };
        with_quality(&mut s, Some(1), &Reading::of(&spec, Some(&bad)), &t(2));
        let (status, reason, msg) = dq(&s);
        assert_eq!((status.as_str(), reason.as_str()), ("False", "Critical"));
        assert!(
            msg.starts_with("10% of impression events dead-lettered (most often oversize)"),
            "{msg}"
        );
    }

    #[test]
    fn widened_override_is_a_scaling_condition() {
        let p = pipeline();
        let b = Bounds {
            min: 1,
            max: 4,
            widened: vec!["maxReplicas 9 is above the policy's 4".into()],
        };
        let d = deployment(1, 1);
        let s = next(
            &p,
            &Observed::Applied {
                deployment: &d,
                desired: 1,
                bounds: &b,
                policy: Some("std"),
            },
            None,
            &t(1),
        );
        let c = conditions::get(&s.conditions, SCALING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "OverrideWiderThanPolicy")
        );
    }

    #[test]
    fn a_fleet_held_as_stalled_is_degraded_and_the_condition_stays_put() {
        use crate::autoscale::model::{Decision, Evaluation};
        let mut p = pipeline();
        let b = Bounds {
            min: 1,
            max: 4,
            widened: vec![],
        };
        let d = deployment(2, 2);
        let applied = Observed::Applied {
            deployment: &d,
            desired: 2,
            bounds: &b,
            policy: Some("std"),
        };
        let eval = |reason: &'static str, message: &str| Evaluation {
            from: 2,
            decision: Decision {
                replicas: 2,
                reason,
                message: message.into(),
                recommended: 2,
                metrics_available: true,
                ineffective_scale_up: false,
                backlog_seconds: None,
                capacity_per_replica: Some(500.0),
                capacity_measured: false,
                arrival_rate: Some(100.0),
                stalled: reason == "HoldStalled",
            },
            lag: None,
            processed_rate: Some(0.0),
            problem: None,
            forecast: None,
        };
        let first = compute(
            &p,
            &applied,
            Some(&eval("HoldStalled", "processed 0/s for 60 s")),
            None,
            &t(10),
        );
        let c = conditions::get(&first.conditions, DEGRADED).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Stalled"));
        assert!(
            c.message.contains("the 2 workers have processed nothing"),
            "{}",
            c.message
        );
        p.status = Some(first.clone());
        let later = compute(
            &p,
            &applied,
            Some(&eval("HoldStalled", "processed 0/s for 75 s")),
            None,
            &t(25),
        );
        assert_eq!(
            conditions::get(&later.conditions, DEGRADED),
            conditions::get(&first.conditions, DEGRADED),
            "the condition does not change with the numbers"
        );
        p.status = Some(later);
        let moving = compute(&p, &applied, Some(&eval("NoChange", "")), None, &t(40));
        assert_eq!(is_true(Some(&moving), DEGRADED), Some(false));
    }

    #[test]
    fn the_schema_outcome_sets_schema_drift_and_no_window_leaves_it() {
        use crate::schema::judge::{DriftCondition, Judgement};
        let now = Time(Timestamp::from_second(1_000).unwrap());
        let mut s = ImpressionPipelineStatus::default();
        with_schema(&mut s, Some(3), &SchemaOutcome::NoWindow, &now);
        assert!(conditions::get(&s.conditions, conditions::SCHEMA_DRIFT).is_none());
        let judged = |status, reason: &str| {
            SchemaOutcome::Judged(Box::new(Judgement {
                status: Default::default(),
                drifts: Vec::new(),
                taken: None,
                condition: DriftCondition {
                    status,
                    reason: reason.into(),
                    message: "NewField imp: hints".into(),
                },
            }))
        };
        with_schema(&mut s, Some(3), &judged(Some(true), "NewField"), &now);
        let c = conditions::get(&s.conditions, conditions::SCHEMA_DRIFT).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "NewField"));
        assert_eq!(c.message, "NewField imp: hints");
        with_schema(&mut s, Some(3), &SchemaOutcome::NoWindow, &now);
        let kept = conditions::get(&s.conditions, conditions::SCHEMA_DRIFT).unwrap();
        assert_eq!(kept.reason, "NewField", "kept without a window");
        with_schema(
            &mut s,
            Some(3),
            &SchemaOutcome::Failed("forbidden".into()),
            &now,
        );
        let c = conditions::get(&s.conditions, conditions::SCHEMA_DRIFT).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("Unknown", "SchemaUnavailable", "forbidden")
        );
    }
}
