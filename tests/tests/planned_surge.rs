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
    // The operator applies the Deployment before it writes the status: the decision that
    // raised it shows there a moment later, before the next evaluation (5 s) replaces it.
    let d = eventually(
        Duration::from_secs(4),
        "the decision 1 -> 3 in status.lastDecision",
        || async {
            let d = api.get("eu").await.ok()?.status?.last_decision?;
            (d.to == 3).then_some(d)
        },
    )
    .await;
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

/// ForecastOnly on the stack: the operator reads the pipeline's history with the forecast's
/// range query (which Prometheus accepts) and writes the forecast's state to the status —
/// `Learning` until `minHistoryHours` of history are there — without acting on it.
#[tokio::test(flavor = "multi_thread")]
async fn forecast_only_writes_the_forecast_s_state_to_the_status() {
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("forecast"))
        .await
        .unwrap();
    let id = unique("fct");
    for (t, p, compact) in [
        (format!("{id}-raw"), 4, false),
        (format!("{id}-out"), 1, false),
        (format!("{id}-dlq"), 1, false),
        (format!("{id}-titles"), 1, true),
    ] {
        kafka::create_topic(stack, &t, p, compact).await;
    }
    // The query the operator runs, straight to Prometheus: it parses and answers.
    let policy_spec = impressions_crds::ScalingPolicySpec::builtin();
    let query = impressions_operator::autoscale::forecast::source::arrival_query(
        &policy_spec.queries,
        &ns,
        "eu",
        300.0,
    );
    let prom = prometheus_http_query::Client::try_from(stack.prometheus_url.as_str()).unwrap();
    let end = Timestamp::now().as_second();
    prom.query_range(query.as_str(), end - 3600, end, 300.0)
        .get()
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));

    let policy = format!("{id}-policy");
    let body = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": policy},
        "spec": {"minReplicas": 1, "maxReplicas": 4, "lagSloSeconds": 10, "catchUpSeconds": 30,
                 "evaluationIntervalSeconds": 5, "rebalanceCostSeconds": 5,
                 "predictive": {"mode": "ForecastOnly", "minHistoryHours": 1, "seasonSeconds": 600}}});
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(&policy, &PatchParams::apply("tests"), &Patch::Apply(&body))
        .await
        .unwrap();
    let _op = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &["--prometheus-url", &stack.prometheus_url],
    );
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": "eu"},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": format!("{id}-raw")},
                 "sink": {"topic": format!("{id}-out"), "deadLetterTopic": format!("{id}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{id}-titles")}},
                 "scaling": {"mode": "Auto", "policyRef": policy}}});
    api.patch("eu", &PatchParams::apply("tests"), &Patch::Apply(&pipeline))
        .await
        .unwrap();
    let f = eventually(Duration::from_secs(40), "status.forecast", || async {
        api.get("eu").await.ok()?.status?.forecast
    })
    .await;
    println!("status.forecast: {f:?}");
    assert_eq!(f.state, "Learning");
    assert_eq!(
        f.lead_seconds,
        30 + 5 + 5,
        "a pod's start (30 s) + the policy's rebalance cost + one evaluation"
    );
    assert!(
        f.message
            .starts_with("learning: 0.0 h of history of the 1.0 h needed"),
        "{}",
        f.message
    );
    assert_eq!(f.input_per_second, None);
}
