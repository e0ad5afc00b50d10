//! The reconcile sequence against a mock API server (tower-test): the order of the writes,
//! the status written only when it changed, the Events of each transition, and a failure shown
//! as a condition with no child applied. The stack tests prove the same against the real API
//! server; these run in milliseconds.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use impressions_crds::{ImpressionPipeline, ScalingPolicy};
use kube::{
    Client, Resource,
    client::Body,
    runtime::{
        events::{Recorder, Reporter},
        reflector,
    },
};
use serde_json::{Value, json};

use super::{events, reconcile};
use crate::{
    autoscale::{evaluator::Evaluator, signals::kafka_lag::KafkaLag},
    context::{Context, OperatorOptions},
    metrics::Metrics,
    quality::evaluator::QualityEvaluator,
    reconcile::children::BuildOptions,
};

/// A reconcile context on `client`, with `policies` in its cache.
fn context(client: Client, policies: Vec<ScalingPolicy>) -> Context {
    let (store, mut writer) = reflector::store();
    for policy in policies {
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(policy));
    }
    Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "impressions-operator".into(),
                instance: Some("test".into()),
            },
        ),
        client,
        metrics: Arc::new(Metrics::default()),
        policies: store,
        opts: OperatorOptions {
            region: "r".into(),
            field_manager: "impressions-operator".into(),
            build: BuildOptions {
                worker_image: "worker:test".into(),
                archiver_image: "archiver:test".into(),
            },
        },
        scaler: Arc::new(Evaluator::new(Arc::new(KafkaLag::default()), None)),
        archive: Arc::new(crate::autoscale::archive::evaluator::ArchiveEvaluator::new(
            Arc::new(KafkaLag::default()),
            None,
        )),
        quality: Arc::new(QualityEvaluator::new(None)),
        schema: Arc::new(crate::schema::collector::SchemaCollector::new(
            None,
            Default::default(),
            Default::default(),
        )),
        applied: Default::default(),
        failures: Mutex::default(),
        states: Mutex::default(),
    }
}

/// One request the mock API server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: Value,
}

impl Seen {
    fn what(&self) -> String {
        // e.g. "PATCH configmaps", "PATCH impressionpipelines/status", "POST events".
        let parts: Vec<&str> = self.path.split('?').next().unwrap().split('/').collect();
        let kind = parts
            .iter()
            .rev()
            .find(|s| s.ends_with('s') && !s.is_empty() && **s != "status")
            .copied()
            .unwrap_or("?");
        let status = if self.path.split('?').next().unwrap().ends_with("/status") {
            "/status"
        } else {
            ""
        };
        format!("{} {kind}{status}", self.method)
    }
}

fn pipeline(extra: Value) -> ImpressionPipeline {
    let mut spec = json!({
        "region": "r",
        "source": {"bootstrapServers": "k:9092", "topic": "raw"},
        "sink": {"topic": "out", "deadLetterTopic": "dlq"},
        "enrichment": {"catalog": {"topic": "titles"}},
        "scaling": {"mode": "Auto", "minReplicas": 1, "maxReplicas": 4}
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let mut p: ImpressionPipeline = serde_json::from_value(json!({
        "apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "generation": 1},
        "spec": spec
    }))
    .unwrap();
    p.meta_mut().resource_version = Some("1".into());
    p
}

/// Runs one reconcile of `p` against a mock API server that answers every write with the object
/// written (the Deployment with 1 ready replica, the status subresource with the pipeline);
/// returns the requests in order.
async fn run(p: ImpressionPipeline, policies: Vec<ScalingPolicy>) -> (Vec<Seen>, bool) {
    run_refusing(p, policies, None).await
}

/// The requests a mock API server received, in order.
type Log = Arc<Mutex<Vec<Seen>>>;

/// A mock API server that answers every write with the object written (resource version 1; the
/// Deployment with 1 ready replica, the status subresource with `p`), except the writes
/// `refuse` names (what, invalid field), which it refuses with 422 as its validation does.
fn mock_api(
    p: &ImpressionPipeline,
    refuse: Option<(&'static str, &'static str)>,
) -> (Client, Log, tokio::task::JoinHandle<()>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Log = Arc::default();
    let (log, p) = (seen.clone(), p.clone());
    let server = tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let s = Seen {
                method: parts.method.to_string(),
                path: parts.uri.to_string(),
                body: body.clone(),
            };
            let (code, answer) = match (refuse, s.what().as_str()) {
                (Some((what, field)), w) if w == what => (
                    422,
                    json!({
                        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422,
                        "reason": "Invalid",
                        "message": format!("Deployment.apps \"p-worker\" is invalid: {field}: Invalid value: \"two\""),
                        "details": {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value", "field": field}]}
                    }),
                ),
                (_, "PATCH deployments") => {
                    let mut d = body;
                    d["status"] = json!({"replicas": 1, "readyReplicas": 1});
                    d["metadata"]["resourceVersion"] = json!("1");
                    (200, d)
                }
                (_, "PATCH impressionpipelines/status") => {
                    let mut out = serde_json::to_value(&p).unwrap();
                    out["status"] = body["status"].clone();
                    (200, out)
                }
                _ => {
                    let mut out = body;
                    out["metadata"]["resourceVersion"] = json!("1");
                    (200, out)
                }
            };
            log.lock().unwrap().push(s);
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
    (Client::new(service, "default"), seen, server)
}

/// Waits for the mock API server to end (once every client of it was dropped).
async fn finish(server: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("the mock API server ends once the reconcile dropped its clients")
        .unwrap();
}

/// [`run`], with the API server refusing the writes of one kind of child (422, as its
/// validation does) with `cause` as the invalid field.
async fn run_refusing(
    p: ImpressionPipeline,
    policies: Vec<ScalingPolicy>,
    refuse: Option<(&'static str, &'static str)>,
) -> (Vec<Seen>, bool) {
    let (client, seen, server) = mock_api(&p, refuse);
    let ctx = Arc::new(context(client, policies));
    let ok = reconcile(Arc::new(p), ctx).await.is_ok();
    finish(server).await;
    let seen = seen.lock().unwrap().clone();
    (seen, ok)
}

/// Two reconciles of `p` with one context: the second after the children's watches saw the
/// versions the first apply returned. Returns the second reconcile's requests.
async fn run_twice(p: ImpressionPipeline) -> Vec<Seen> {
    let (client, seen, server) = mock_api(&p, None);
    let ctx = Arc::new(context(client, vec![]));
    reconcile(Arc::new(p.clone()), ctx.clone()).await.unwrap();
    let first = seen.lock().unwrap().len();
    // The second reconcile sees the status the first one wrote.
    let status = seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.what() == "PATCH impressionpipelines/status")
        .map(|s| s.body["status"].clone())
        .unwrap();
    let mut p2 = p;
    p2.status = Some(serde_json::from_value(status).unwrap());
    reconcile(Arc::new(p2), ctx.clone()).await.unwrap();
    drop(ctx);
    finish(server).await;
    let all = seen.lock().unwrap().clone();
    all[first..].to_vec()
}

fn whats(seen: &[Seen]) -> Vec<String> {
    seen.iter().map(Seen::what).collect()
}

fn event_reasons(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.what() == "POST events")
        .map(|s| s.body["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_new_pipeline_applies_its_children_in_order_then_status_then_one_event() {
    let (seen, ok) = run(pipeline(json!({})), vec![]).await;
    assert!(ok);
    assert_eq!(
        whats(&seen),
        [
            "PATCH configmaps",
            "PATCH services",
            "PATCH poddisruptionbudgets",
            "PATCH deployments",
            "PATCH impressionpipelines/status",
            "POST events",
        ]
    );
    for s in &seen[..4] {
        assert!(
            s.path.contains("fieldManager=impressions-operator") && s.path.contains("force=true"),
            "server-side apply under the operator's field manager: {}",
            s.path
        );
    }
    assert_eq!(event_reasons(&seen), ["ChildrenCreated"]);
    let status = &seen[4].body["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["readyReplicas"], 1);
}

#[tokio::test]
async fn a_reconcile_that_changes_nothing_sends_nothing() {
    let second = run_twice(pipeline(json!({}))).await;
    assert_eq!(
        whats(&second),
        Vec::<String>::new(),
        "children as desired and untouched since the last apply, status unchanged"
    );
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_and_no_event_is_repeated() {
    let (first, _) = run(pipeline(json!({})), vec![]).await;
    let mut p = pipeline(json!({}));
    p.status = Some(serde_json::from_value(first[4].body["status"].clone()).unwrap());
    let (seen, ok) = run(p, vec![]).await;
    assert!(ok);
    assert_eq!(
        whats(&seen),
        [
            "PATCH configmaps",
            "PATCH services",
            "PATCH poddisruptionbudgets",
            "PATCH deployments",
        ],
        "no status write and no Event when nothing changed"
    );
}

#[tokio::test]
async fn a_missing_policy_is_a_condition_and_an_event_and_nothing_is_applied() {
    let (seen, ok) = run(
        pipeline(json!({"scaling": {"mode": "Auto", "policyRef": "gone"}})),
        vec![],
    )
    .await;
    assert!(!ok, "the reconcile fails (and is retried with backoff)");
    assert_eq!(
        whats(&seen),
        ["PATCH impressionpipelines/status", "POST events"]
    );
    let ready = seen[0].body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "PolicyMissing");
    assert!(ready["message"].as_str().unwrap().contains("gone"));
    assert_eq!(event_reasons(&seen), ["PolicyMissing"]);
}

#[tokio::test]
async fn a_child_the_api_server_refuses_is_a_condition_naming_the_pipeline_field() {
    let (seen, ok) = run_refusing(
        pipeline(json!({})),
        vec![],
        Some((
            "PATCH deployments",
            "spec.template.spec.containers[0].resources.limits.cpu",
        )),
    )
    .await;
    assert!(!ok);
    assert_eq!(
        whats(&seen),
        [
            "PATCH configmaps",
            "PATCH services",
            "PATCH poddisruptionbudgets",
            "PATCH deployments",
            "PATCH impressionpipelines/status",
            "POST events",
        ]
    );
    let conditions = seen[4].body["status"]["conditions"]
        .as_array()
        .unwrap()
        .clone();
    let get = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap().clone();
    let ready = get("Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ChildRejected");
    let msg = ready["message"].as_str().unwrap();
    assert!(
        msg.contains("Deployment") && msg.contains("spec.worker.resources"),
        "{msg}"
    );
    assert_eq!(get("Degraded")["status"], "True");
    assert_eq!(event_reasons(&seen), ["ChildRejected"]);
}

#[test]
fn events_of_each_transition() {
    use impressions_crds::{ImpressionPipelineStatus, conditions, scaling::ScalingMode};
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
    let now = Time(Timestamp::from_second(1).unwrap());
    let status = |ready: bool, degraded: bool, generation: Option<i64>| {
        let mut s = ImpressionPipelineStatus {
            observed_generation: generation,
            ..Default::default()
        };
        conditions::set(
            &mut s.conditions,
            conditions::READY,
            ready,
            "R",
            "m",
            None,
            now.clone(),
        );
        conditions::set(
            &mut s.conditions,
            conditions::DEGRADED,
            degraded,
            "D",
            "none ready",
            None,
            now.clone(),
        );
        s
    };
    let reasons = |before: Option<&ImpressionPipelineStatus>,
                   after: &ImpressionPipelineStatus,
                   base: i32,
                   replicas: i32,
                   mode: ScalingMode| {
        events::on_applied(&events::Applied {
            before,
            after,
            mode,
            base,
            replicas,
            evaluation: None,
            quality: None,
        })
        .into_iter()
        .map(|n| (n.reason, n.warning))
        .collect::<Vec<_>>()
    };
    let steady = status(true, false, Some(1));
    assert_eq!(
        reasons(Some(&steady), &steady, 2, 2, ScalingMode::Auto),
        [],
        "nothing happened"
    );
    assert_eq!(
        reasons(None, &steady, 2, 2, ScalingMode::Auto),
        [("ChildrenCreated".to_owned(), false)]
    );
    assert_eq!(
        reasons(
            Some(&status(false, false, Some(1))),
            &steady,
            2,
            2,
            ScalingMode::Auto
        ),
        [("Recovered".to_owned(), false)]
    );
    assert_eq!(
        reasons(Some(&steady), &steady, 2, 3, ScalingMode::Auto),
        [("Scaled".to_owned(), false)]
    );
    assert_eq!(
        reasons(Some(&steady), &steady, 2, 3, ScalingMode::Recommend),
        [],
        "Recommend mode applies nothing, so announces nothing"
    );
    let degraded = status(true, true, Some(1));
    assert_eq!(
        reasons(Some(&steady), &degraded, 2, 2, ScalingMode::Auto),
        [("Degraded".to_owned(), true)]
    );
    assert_eq!(
        reasons(Some(&degraded), &degraded, 2, 2, ScalingMode::Auto),
        [],
        "Degraded is announced once"
    );
    let missing = crate::error::Error::PolicyMissing("x".into());
    assert!(events::on_failed(Some(&steady), &missing).is_some());
    assert!(
        events::on_failed(Some(&status(false, false, Some(1))), &missing).is_none(),
        "a pipeline already not Ready is not announced again"
    );
}

/// The gauges show an evaluation's own lag and rates, not the status's, which keeps them only
/// when they move by 10 %; without an evaluation (a spec change) they show the status's.
#[test]
fn gauges_show_the_evaluations_numbers_not_the_filtered_status() {
    use impressions_crds::{
        ImpressionPipelineStatus,
        status::{LagStatus, ThroughputStatus},
    };

    use super::Measured;
    use crate::autoscale::model::{Decision, Evaluation, LagSample};
    let status = ImpressionPipelineStatus {
        lag: Some(LagStatus {
            total: 1000,
            max_partition: 500,
            estimated_seconds: None,
        }),
        throughput: Some(ThroughputStatus {
            input_per_second: 4000.0,
            processed_per_second: 3900.0,
            capacity_per_replica: Some(5000.0),
        }),
        ..Default::default()
    };
    let evaluation = Evaluation {
        from: 1,
        decision: Decision {
            replicas: 1,
            reason: "NoChange",
            message: String::new(),
            recommended: 1,
            metrics_available: true,
            ineffective_scale_up: false,
            backlog_seconds: None,
            capacity_per_replica: Some(5200.0),
            capacity_measured: true,
            arrival_rate: Some(4300.0),
            stalled: false,
        },
        lag: Some(LagSample {
            partitions: 8,
            total: 1090,
            max_partition: 510,
            end_offsets: 99_000,
        }),
        processed_rate: Some(4250.0),
        problem: None,
        forecast: None,
    };
    assert_eq!(
        Measured::of(&status, Some(&evaluation)),
        Measured {
            lag: Some(1090),
            input: Some(4300.0),
            processed: Some(4250.0)
        }
    );
    assert_eq!(
        Measured::of(&status, None),
        Measured {
            lag: Some(1000),
            input: Some(4000.0),
            processed: Some(3900.0)
        }
    );
}
