//! The status computation's tests.

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
