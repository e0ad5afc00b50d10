//! The archivers in the closed loop, every part real: the operator runs a pipeline with an
//! archive in Auto mode, the node agent runs its worker and archiver pods as processes,
//! Prometheus scrapes them, loadgen produces into Kafka; a step of traffic scales the archivers
//! up (from their own group's lag and busy time, with the workers' decision code) and they come
//! back down after it. Each archiver's capacity is capped (`archive.maxRecordsPerSecond`), as the
//! workers' is in `closed_loop.rs`, so a step this machine can produce needs several archivers.
//!
//! Its own target (`make test-archive-scaling`, about two minutes; docs/benchmarks.md), not part
//! of `make test`. The figures go to `$ARCHIVE_SCALING_OUT` (default
//! `target/e2e/archive-scaling.json`) and the timeline next to it as CSV.

use std::time::Duration;

use impressions_crds::ImpressionPipeline;
use impressions_tests::{
    Stack, cluster, kafka,
    observe::Sampler,
    operator::{OperatorProcess, eventually},
    processes::{LoadgenRun, NodeAgentProcess},
    unique,
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

/// Records per second one archiver may archive (its emulated CPU).
const ARCHIVER_CAP: u64 = 150;
/// Before and after the step, and the step itself (events/s; about 90 % become records).
const STEADY: f64 = 60.0;
const STEP: f64 = 450.0;
const STEP_SECONDS: f64 = 40.0;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "closed loop of about two minutes: make test-archive-scaling (docs/benchmarks.md)"]
async fn a_step_of_traffic_scales_the_archivers_up_and_back_down() {
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("arch-loop"))
        .await
        .unwrap();
    let raw = kafka::pipeline_topics(stack, &ns).await;
    let catalog = impressions_tests::archive::Catalog::new("arch-loop");
    let policy = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": ns},
        "spec": {"minReplicas": 1, "maxReplicas": 8, "targetUtilization": 0.7, "utilizationTolerance": 0.1,
                 "lagSloSeconds": 10, "catchUpSeconds": 30, "evaluationIntervalSeconds": 5,
                 "scaleUp": {"stabilizationWindowSeconds": 0, "maxStepPercent": 300, "maxStepReplicas": 4, "cooldownSeconds": 10},
                 "scaleDown": {"stabilizationWindowSeconds": 15, "maxStepPercent": 100, "maxStepReplicas": 0, "cooldownSeconds": 5},
                 "queries": {"rateWindow": "15s"}}});
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&policy),
        )
        .await
        .unwrap();
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": "al"},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": raw, "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{ns}-out"), "deadLetterTopic": format!("{ns}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{ns}-titles")}},
                 "worker": {"threads": 1, "drainTimeoutSeconds": 5},
                 "scaling": {"mode": "Auto", "policyRef": ns},
                 "archive": {"catalog": {"sql": {"uri": catalog.uri()}}, "warehouse": catalog.warehouse(),
                             "namespace": catalog.namespace, "table": catalog.table,
                             "commitIntervalSeconds": 2, "maxRecordsPerSecond": ARCHIVER_CAP}}});
    let api = Api::<ImpressionPipeline>::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(pipeline).unwrap(),
    )
    .await
    .unwrap();
    let agent = NodeAgentProcess::start(stack, &ns);
    let op = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &["--prometheus-url", stack.prometheus_url.as_str()],
    );
    let out = format!("{ns}-out");
    let sampler = Sampler::start(
        client.clone(),
        &ns,
        "al-archiver",
        &out,
        &format!("{ns}.al.archiver"),
    );
    let diag = || format!("{}\n{}", op.log_tail(), agent.log_tail());
    let started = std::time::Instant::now();

    // Steady: one archiver at well under its capacity.
    sampler.set_input(STEADY);
    let mut steady = LoadgenRun::start(stack, &raw, &format!("constant:{STEADY}"), 150.0, 1);
    eventually(
        Duration::from_secs(60),
        "an archiver archives the steady traffic",
        || {
            let api = api.clone();
            async move {
                let a = api.get("al").await.ok()?.status?.archive?;
                (a.ready_replicas >= 1 && a.last_commit.is_some()).then_some(())
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before: Vec<_> = sampler.since(sampler.now() - 10.0);
    assert!(
        before.iter().all(|s| s.replicas == 1),
        "steady traffic needs one archiver: {before:?}\n{}",
        diag()
    );

    // The step: about 400 records/s need three archivers or more (at 0.7 of 150/s each).
    let step_at = sampler.now();
    sampler.set_input(STEADY + STEP);
    let mut step = LoadgenRun::start(stack, &raw, &format!("constant:{STEP}"), STEP_SECONDS, 2);
    step.wait();
    let step_end = sampler.now();
    sampler.set_input(STEADY);
    let under_step = sampler.since(step_at);
    let peak = under_step.iter().map(|s| s.replicas).max().unwrap_or(0);
    let first_up = under_step
        .iter()
        .find(|s| s.replicas > 1)
        .map(|s| s.t - step_at);
    assert!(
        (2..=4).contains(&peak),
        "the step scales the archivers up, at most one per sink partition (4): peak {peak}\n{}",
        diag()
    );

    // After it: back down to one.
    let down = eventually(
        Duration::from_secs(60),
        "the archivers back to one after the step",
        || {
            let last = sampler.since(sampler.now() - 3.0);
            std::future::ready(
                (!last.is_empty() && last.iter().all(|s| s.replicas == 1))
                    .then(|| sampler.now() - step_end),
            )
        },
    )
    .await;
    steady.stop().unwrap();
    let events = eventually(Duration::from_secs(15), "ArchiversScaled Events", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let evs = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client, &ns)
                .list(&Default::default())
                .await
                .ok()?;
            // the recorder folds repeats of a reason into one Event's series
            let scaled: Vec<_> = evs
                .items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("ArchiversScaled"))
                .collect();
            let count: i32 = scaled
                .iter()
                .map(|e| e.series.as_ref().map_or(1, |s| s.count))
                .sum();
            let first = scaled.first().and_then(|e| e.note.clone());
            (count >= 2).then_some(json!({"count": count, "first": first}))
        }
    })
    .await;
    let status = api.get("al").await.unwrap().status.unwrap();
    let decision = status
        .archive
        .as_ref()
        .and_then(|a| a.last_decision.clone());
    let report = json!({
        "command": "make test-archive-scaling",
        "archiver_cap_records_per_s": ARCHIVER_CAP,
        "steady_events_per_s": STEADY, "step_events_per_s": STEADY + STEP, "step_seconds": STEP_SECONDS,
        "peak_archivers": peak,
        "first_scale_up_after_step_s": first_up,
        "back_to_one_after_step_end_s": down,
        "scaling_events": events,
        "last_decision": decision,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let path = std::env::var("ARCHIVE_SCALING_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| impressions_tests::repo_root().join("target/e2e/archive-scaling.json"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    let csv: String = std::iter::once("t_s,input_per_s,archivers,ready,lag_records\n".to_owned())
        .chain(sampler.since(0.0).iter().map(|s| {
            format!(
                "{:.1},{},{},{},{}\n",
                s.t, s.input, s.replicas, s.ready, s.lag
            )
        }))
        .collect();
    std::fs::write(path.with_extension("csv"), csv).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
}
