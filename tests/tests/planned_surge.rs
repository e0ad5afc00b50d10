//! A planned surge on the real stack: `kubectl impressions prescale` declares a surge ×3
//! starting ~40 s ahead on a pipeline without traffic; the real operator raises the worker
//! Deployment's replicas a pod's start and a rebalance (35 s) before the surge starts, and its
//! decision says the planned surge drove it. No traffic is needed: the floor is a multiple of
//! the replicas the pre-scale began from.

use std::{process::Command, time::Duration};

use impressions_crds::ImpressionPipeline;
use impressions_tests::{
    Stack, cluster, kafka,
    operator::{OperatorProcess, eventually},
    unique,
    worker::binary,
};
use k8s_openapi::{api::apps::v1::Deployment, jiff::Timestamp};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_planned_surge_raises_the_replicas_before_it_starts() {
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("surge")).await.unwrap();
    let id = unique("srg");
    for (t, p, compact) in [
        (format!("{id}-raw"), 8, false),
        (format!("{id}-out"), 1, false),
        (format!("{id}-dlq"), 1, false),
        (format!("{id}-titles"), 1, true),
    ] {
        kafka::create_topic(stack, &t, p, compact).await;
    }
    let policy = format!("{id}-policy");
    let body = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": policy},
        "spec": {"minReplicas": 1, "maxReplicas": 8, "lagSloSeconds": 10, "catchUpSeconds": 30,
                 "evaluationIntervalSeconds": 5, "rebalanceCostSeconds": 5}});
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(&policy, &PatchParams::apply("tests"), &Patch::Apply(&body))
        .await
        .unwrap();
    let _op = OperatorProcess::start(stack, "local", &ns, &[]);
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": "eu"},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": format!("{id}-raw")},
                 "sink": {"topic": format!("{id}-out"), "deadLetterTopic": format!("{id}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{id}-titles")}},
                 "scaling": {"mode": "Auto", "policyRef": policy, "minReplicas": 1, "maxReplicas": 8}}});
    api.patch("eu", &PatchParams::apply("tests"), &Patch::Apply(&pipeline))
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let replicas = || async { deployments.get_opt("eu-worker").await.ok()??.spec?.replicas };
    eventually(
        Duration::from_secs(20),
        "the worker Deployment at 1",
        || async { (replicas().await == Some(1)).then_some(()) },
    )
    .await;

    // The SRE declares the surge with the plugin: ×3 from 40 s ahead, for 10 minutes.
    let out = Command::new(binary("kubectl-impressions"))
        .args([
            "prescale", "eu", "--factor", "3", "--from", "40s", "--for", "10m", "-n", &ns,
        ])
        .env("KUBECONFIG", &stack.kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let surge = api.get("eu").await.unwrap().spec.scaling.planned_surges[0].clone();
    let start = surge.start.0.as_millisecond() as f64 / 1000.0;
    let now = || Timestamp::now().as_millisecond() as f64 / 1000.0;
    println!(
        "{}surge starts in {:.1} s",
        String::from_utf8_lossy(&out.stdout),
        start - now()
    );

    // The replicas rise to 3 before the surge starts, a pod's start and a rebalance ahead.
    eventually(Duration::from_secs(45), "the replicas at 3", || async {
        (replicas().await == Some(3)).then_some(())
    })
    .await;
    let risen = now();
    println!("replicas at 3 {:.1} s before the surge", start - risen);
    assert!(
        risen < start,
        "the pre-scale came {:.1} s late",
        risen - start
    );
    // Not earlier than the lead (30 s pod start + 5 s rebalance) and one evaluation.
    assert!(
        risen >= start - 35.0 - 5.0 - 2.0,
        "the pre-scale came {:.1} s early",
        start - risen
    );
    let d = api
        .get("eu")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_decision
        .unwrap();
    assert_eq!(
        (d.from, d.to, d.reason.as_str()),
        (1, 3, "ScaleUpPlannedSurge"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("planned surge ×3 from")
            && d.message
                .contains("at least 3 replicas (3 × the 1 before it)"),
        "{}",
        d.message
    );
}
