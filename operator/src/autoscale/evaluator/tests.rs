//! The evaluation loop's tests: stand-ins for failed reads, forgetting, modes, problems told.

use super::*;
use crate::autoscale::model::{Decision, LagSample};

fn eval(replicas: i32) -> Evaluation {
    Evaluation {
        from: 1,
        decision: Decision {
            replicas,
            reason: "ScaleUp",
            message: String::new(),
            recommended: replicas,
            metrics_available: true,
            ineffective_scale_up: false,
            backlog_seconds: None,
            capacity_per_replica: None,
            capacity_measured: false,
            arrival_rate: None,
            stalled: false,
        },
        lag: None,
        processed_rate: None,
        problem: None,
        forecast: None,
    }
}

#[test]
fn a_failed_read_uses_the_last_good_one_until_it_is_stale() {
    let mut last = None;
    let mut problems = Vec::new();
    assert_eq!(
        fresh_or_last(Ok(7), &mut last, 100.0, 60.0, &mut problems),
        Some(7)
    );
    let failed = || Err::<i32, _>("Kafka did not answer".to_owned());
    assert_eq!(
        fresh_or_last(failed(), &mut last, 160.0, 60.0, &mut problems),
        Some(7),
        "60 s old: still fresh"
    );
    assert!(problems.is_empty());
    assert_eq!(
        fresh_or_last(failed(), &mut last, 160.5, 60.0, &mut problems),
        None,
        "older than staleAfterSeconds: missing"
    );
    assert_eq!(problems, ["Kafka did not answer"]);
}

/// A lag source that answers once, then fails.
struct OnceThenFail(std::sync::atomic::AtomicBool);
impl LagSource for OnceThenFail {
    fn sample(&self, _: &LagTarget) -> Result<LagSample, String> {
        if self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Err("broker down".into())
        } else {
            Ok(LagSample {
                partitions: 4,
                total: 10,
                max_partition: 5,
                end_offsets: 100,
            })
        }
    }
}

#[tokio::test]
async fn stale_after_seconds_decides_how_long_a_lag_sample_stands_in() {
    let key = ObjectRef::<ImpressionPipeline>::new("p").within("ns");
    let reg = |stale: f64| Registration {
        namespace: "ns".into(),
        name: "p".into(),
        mode: ScalingMode::Auto,
        lag: LagTarget {
            bootstrap: "k:9092".into(),
            topic: "raw".into(),
            group: "g".into(),
            reset: impressions_crds::pipeline::OffsetReset::Latest,
            kafka: Default::default(),
        },
        queries: impressions_crds::ScalingPolicySpec::builtin().queries,
        policy: Limits {
            stale_after_seconds: stale,
            ..crate::autoscale::tests::policy()
        },
        interval: Duration::from_secs(1),
        replicas: 2,
        predictive: Settings::off(),
        surges: vec![],
    };
    for (stale, lag_present) in [(3600.0, true), (0.0, false)] {
        let e = Evaluator::new(
            Arc::new(OnceThenFail(std::sync::atomic::AtomicBool::new(false))),
            None,
        );
        e.register(key.clone(), Some(reg(stale)));
        e.evaluate(&key, &reg(stale)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        e.evaluate(&key, &reg(stale)).await;
        let latest = e.latest(&key).unwrap();
        assert_eq!(
            latest.lag.is_some(),
            lag_present,
            "staleAfterSeconds {stale}: {latest:?}"
        );
        assert_eq!(
            latest
                .problem
                .as_deref()
                .unwrap_or_default()
                .contains("broker down"),
            !lag_present
        );
    }
}

#[test]
fn deleted_pipelines_are_forgotten() {
    let e = Evaluator::new(Arc::new(OnceThenFail(Default::default())), None);
    let (a, b) = (
        ObjectRef::<ImpressionPipeline>::new("a").within("ns"),
        ObjectRef::<ImpressionPipeline>::new("b").within("ns"),
    );
    e.states.lock().unwrap().insert(a.clone(), State::default());
    e.states.lock().unwrap().insert(b.clone(), State::default());
    let gone = e.retain(&[a.clone()].into_iter().collect());
    assert_eq!(gone, [b]);
    assert_eq!(e.tracked(), 1);
}

#[test]
fn recommend_mode_reports_but_does_not_apply() {
    assert_eq!(
        applied_replicas(ScalingMode::Auto, Some(&eval(6)), 2, 1, 10),
        6
    );
    assert_eq!(
        applied_replicas(ScalingMode::Recommend, Some(&eval(6)), 2, 1, 10),
        2
    );
    assert_eq!(
        applied_replicas(ScalingMode::Manual, Some(&eval(6)), 3, 1, 10),
        3
    );
    assert_eq!(
        applied_replicas(ScalingMode::Auto, Some(&eval(60)), 2, 1, 10),
        10
    );
    assert_eq!(applied_replicas(ScalingMode::Auto, None, 2, 1, 10), 2);
}

/// A source cluster that refuses the operator's credentials.
struct Refused;

impl LagSource for Refused {
    fn sample(&self, _: &LagTarget) -> Result<LagSample, String> {
        Err("Kafka authentication failed: SASL authentication error".into())
    }
}

#[tokio::test]
async fn a_kafka_failure_is_told_next_to_a_missing_prometheus() {
    let s = Evaluator::new(Arc::new(Refused), None);
    let key = ObjectRef::new("p").within("ns");
    let reg = Registration {
        namespace: "ns".into(),
        name: "p".into(),
        mode: ScalingMode::Recommend,
        lag: LagTarget {
            bootstrap: "k:9093".into(),
            topic: "raw".into(),
            group: "ns.p".into(),
            reset: impressions_crds::pipeline::OffsetReset::Latest,
            kafka: Default::default(),
        },
        queries: PrometheusQueries::default(),
        policy: crate::autoscale::tests::policy(),
        interval: Duration::from_secs(5),
        replicas: 1,
        predictive: Settings::off(),
        surges: vec![],
    };
    s.evaluate(&key, &reg).await;
    let p = s.latest(&key).unwrap().problem.unwrap();
    assert!(
        p.starts_with("Kafka authentication failed") && p.contains("no Prometheus URL"),
        "{p}"
    );
}
