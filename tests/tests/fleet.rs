//! The evaluation loop under partial failure, on the real stack: a pipeline whose Kafka hangs
//! (a black-holed bootstrap) and a Prometheus that hangs for it do not delay the evaluation of a
//! healthy pipeline next to it; a deleted pipeline's per-pipeline series leave /metrics.

use std::time::Duration;

use impressions_crds::ImpressionPipeline;
use impressions_tests::{
    Stack,
    blackhole::BlackHole,
    cluster,
    operator::{OperatorProcess, eventually},
    unique,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;

async fn setup(prefix: &str) -> (Client, String) {
    let client = Stack::get().client().await;
    cluster::install_crds(&client).await.expect("install CRDs");
    let ns = cluster::namespace(&client, &unique(prefix)).await.unwrap();
    (client, ns)
}

fn pipeline(name: &str, bootstrap: &str, topic: &str, policy: &str) -> serde_json::Value {
    json!({
        "apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
        "metadata": {"name": name},
        "spec": {
            "region": "fleet",
            "source": {"bootstrapServers": bootstrap, "topic": topic, "offsetReset": "Earliest"},
            "sink": {"topic": "out", "deadLetterTopic": "dlq"},
            "enrichment": {"catalog": {"topic": "titles"}},
            "scaling": {"mode": "Recommend", "policyRef": policy, "minReplicas": 1, "maxReplicas": 4}
        }
    })
}

/// The time of the pipeline's last decision, if any.
async fn decided_at(api: &Api<ImpressionPipeline>, name: &str) -> Option<String> {
    let p = api.get_opt(name).await.ok()??;
    let s = p.status?;
    // MetricsAvailable's message changes with the sample; the lag total is written on every
    // evaluation that read Kafka.
    Some(format!("{:?}", s.lag.map(|l| l.total)))
}

#[tokio::test]
async fn a_hung_pipeline_does_not_delay_the_others_and_a_deleted_one_is_forgotten() {
    let stack = Stack::get();
    let (client, ns) = setup("fleet").await;
    let topic = unique("fleet-raw");
    impressions_tests::kafka::create_topic(stack, &topic, 2, false).await;
    let policy = unique("fleet-policy");
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(
            &policy,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(json!({
                "apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy",
                "metadata": {"name": policy},
                "spec": {"minReplicas": 1, "maxReplicas": 4, "evaluationIntervalSeconds": 5,
                         "lagSloSeconds": 10, "catchUpSeconds": 30}
            })),
        )
        .await
        .unwrap();
    let kafka_hole = BlackHole::start();
    let prometheus_hole = BlackHole::start();
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    for (name, body) in [
        (
            "hung",
            pipeline("hung", &kafka_hole.address(), "raw", &policy),
        ),
        (
            "healthy",
            pipeline("healthy", &stack.kafka_bootstrap, &topic, &policy),
        ),
    ] {
        api.patch(
            name,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
    }
    let prometheus_url = format!("http://{}", prometheus_hole.address());
    let op = OperatorProcess::start(stack, "fleet", &ns, &["--prometheus-url", &prometheus_url]);
    // The healthy pipeline's lag is read although Prometheus hangs for every pipeline and Kafka
    // hangs for the other one.
    eventually(
        Duration::from_secs(60),
        "the healthy pipeline's lag in status",
        || {
            let api = api.clone();
            async move { decided_at(&api, "healthy").await.filter(|l| l != "None") }
        },
    )
    .await;
    kafka_hole.wait_accepted(1, Duration::from_secs(10), "the hung pipeline's lag client");
    prometheus_hole.wait_accepted(1, Duration::from_secs(10), "the Prometheus client");
    // Evaluations of the healthy pipeline go on while the hung one's calls never return:
    // produce 500 events and see its lag follow within a few intervals.
    let producer = impressions_tests::kafka::producer(stack);
    for i in 0..500 {
        let key = format!("k{i}");
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&topic)
                    .key(&key)
                    .payload("{}"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    let t0 = std::time::Instant::now();
    eventually(
        Duration::from_secs(30),
        "the healthy pipeline's lag to reach 500",
        || {
            let api = api.clone();
            async move {
                let p = api.get_opt("healthy").await.ok()??;
                (p.status?.lag?.total >= 500).then_some(())
            }
        },
    )
    .await;
    let took = t0.elapsed();
    eprintln!("healthy pipeline evaluated {took:.1?} after its lag changed, next to a hung one");
    assert!(
        took < Duration::from_secs(20),
        "the healthy pipeline waited {took:?}: the hung one held the loop\n{}",
        op.log_tail()
    );
    let hung = api.get("hung").await.unwrap();
    let metrics_available = hung
        .status
        .and_then(|s| impressions_crds::conditions::get(&s.conditions, "MetricsAvailable").cloned())
        .expect("the hung pipeline says why it holds");
    assert_eq!(metrics_available.status, "False", "{metrics_available:?}");

    // Deleted: its series leave /metrics.
    let series = |name: &str| format!("pipeline=\"{name}\"");
    eventually(
        Duration::from_secs(30),
        "the healthy pipeline's series",
        || {
            let m = op.metrics();
            async move { m.contains(&series("healthy")).then_some(()) }
        },
    )
    .await;
    api.delete("healthy", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the deleted pipeline's series to go",
        || {
            let m = op.metrics();
            async move { (!m.contains(&series("healthy"))).then_some(()) }
        },
    )
    .await;
    assert!(
        op.log_tail().contains("pipeline deleted"),
        "{}",
        op.log_tail()
    );
}
