//! Data quality on the real stack: a real worker process scraped by the stack's Prometheus, the
//! operator judging the pipeline's `spec.quality` thresholds, and the `loadgen` binary producing
//! clean traffic, then a rising share of invalid events, then clean traffic again. DataQuality
//! goes OK → Warning → Critical → OK, naming the offender and its ratio; each change of level is
//! an Event; the operator's gauge and `kubectl get ipl` show the level.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use impressions_crds::{ImpressionPipeline, ScalingPolicy, conditions};
use impressions_tests::{
    Stack, cluster,
    operator::{OperatorProcess, eventually},
    unique,
    worker::{self, WorkerProcess, binary},
};
use k8s_openapi::api::core::v1::Event;
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

/// A `loadgen produce` process, stopped on drop.
struct Loadgen(Child);

impl Loadgen {
    /// Produces 200 events/s to `topic` for up to five minutes, `invalid` of them invalid, no
    /// mismatches.
    fn start(stack: &Stack, topic: &str, seed: u64, invalid: f64) -> Loadgen {
        let child = Command::new(binary("loadgen"))
            .args([
                "produce",
                "--bootstrap",
                &stack.kafka_bootstrap,
                "--topic",
                topic,
            ])
            .args([
                "--trace",
                "constant:200",
                "--duration",
                "300",
                "--titles",
                "100",
            ])
            .args(["--mismatch", "0", "--invalid", &invalid.to_string()])
            .args(["--seed", &seed.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start loadgen");
        Loadgen(child)
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Prometheus file_sd target file, removed on drop.
struct Target(PathBuf);

impl Target {
    fn write(stack: &Stack, w: &WorkerProcess, ns: &str, pipeline: &str) -> Target {
        let path = stack.file_sd_dir.join(format!("{ns}-{pipeline}.json"));
        let sd = json!([{ "targets": [format!("127.0.0.1:{}", w.metrics_port)],
                          "labels": { "namespace": ns, "pipeline": pipeline } }]);
        std::fs::write(&path, sd.to_string()).unwrap();
        Target(path)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn data_quality(p: &ImpressionPipeline) -> Option<(String, String, String)> {
    let c = conditions::get(&p.status.as_ref()?.conditions, conditions::DATA_QUALITY)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until DataQuality has `reason`; returns its status and message and how long it took.
async fn until(
    api: &Api<ImpressionPipeline>,
    reason: &str,
    timeout: Duration,
) -> (String, String, Duration) {
    let t0 = Instant::now();
    let (status, _, message) = eventually(timeout, &format!("DataQuality {reason}"), || async {
        data_quality(&api.get("dq").await.ok()?).filter(|c| c.1 == reason)
    })
    .await;
    println!(
        "DataQuality={status} {reason} after {:.1} s: {message}",
        t0.elapsed().as_secs_f64()
    );
    (status, message, t0.elapsed())
}

async fn events(client: &Client, ns: &str) -> Vec<(String, String, String)> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("dq"))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rising_share_of_invalid_events_turns_data_quality_warning_then_critical() {
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("dq")).await.unwrap();
    let t = worker::topics(stack, "dq", 4, 100).await;

    // Evaluations every 5 s; the pipeline is Manual so that scaling stays out of the picture.
    let policy = unique("dq-fast");
    let body = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy",
        "metadata": {"name": policy},
        "spec": {"minReplicas": 1, "maxReplicas": 4, "evaluationIntervalSeconds": 5}});
    Api::<ScalingPolicy>::all(client.clone())
        .patch(&policy, &PatchParams::apply("tests"), &Patch::Apply(&body))
        .await
        .unwrap();

    let mut w = WorkerProcess::start(
        &format!("{ns}-dq"),
        &worker::config(stack, &t, "processing: {threads: 1, maxBatch: 200}"),
    );
    w.wait_ready(Duration::from_secs(30));
    let _target = Target::write(stack, &w, &ns, "dq");
    let op = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &["--prometheus-url", &stack.prometheus_url],
    );
    // Dead letters: warning at 5 % of impression events, critical at 20 %, over 20 s. The other
    // thresholds stay out of the way (a share of the invalid events also lacks profileId).
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
        "metadata": {"name": "dq"},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": t.raw,
                            "consumerGroup": t.group, "offsetReset": "Earliest"},
                 "sink": {"topic": t.out, "deadLetterTopic": t.dlq},
                 "enrichment": {"catalog": {"topic": t.titles}},
                 "quality": {"windowSeconds": 20,
                             "invalidRatio": {"warning": 0.05, "critical": 0.2},
                             "nullRatio": {"warning": 0.3, "critical": 0.6},
                             "mismatchRatio": {"warning": 0.3, "critical": 0.6}},
                 "scaling": {"mode": "Manual", "policyRef": policy},
                 "replicas": 1}});
    api.patch("dq", &PatchParams::apply("tests"), &Patch::Apply(&pipeline))
        .await
        .unwrap();

    // Before any traffic: no impression events, so no judgement.
    let (status, message, _) = until(&api, "NoData", Duration::from_secs(30)).await;
    assert_eq!(status, "Unknown", "{message}");

    // Clean traffic (20 % other event types, no invalid events): OK.
    let clean = Loadgen::start(stack, &t.raw, 1, 0.0);
    let (status, _, _) = until(&api, "OK", Duration::from_secs(40)).await;
    assert_eq!(status, "True");

    // 8 % of all events invalid = 10 % of impression events: Warning, naming dead letters.
    drop(clean);
    let some = Loadgen::start(stack, &t.raw, 2, 0.08);
    let (status, message, warning_after) = until(&api, "Warning", Duration::from_secs(40)).await;
    assert_eq!(status, "False");
    assert!(
        message.contains("of impression events dead-lettered (most often ")
            && message.contains("over the last 20s; invalid warning threshold 5%"),
        "{message}"
    );
    let ratio: f64 = message.split('%').next().unwrap().parse().unwrap();
    assert!((5.0..20.0).contains(&ratio), "{message}");

    // 40 % invalid = 50 % of impression events: Critical.
    drop(some);
    let many = Loadgen::start(stack, &t.raw, 3, 0.4);
    let (status, message, critical_after) = until(&api, "Critical", Duration::from_secs(40)).await;
    assert_eq!(status, "False");
    assert!(
        message.contains("of impression events dead-lettered")
            && message.contains("invalid critical threshold 20%"),
        "{message}"
    );
    let ratio: f64 = message.split('%').next().unwrap().parse().unwrap();
    assert!(ratio >= 20.0, "{message}");

    let series = format!(
        "impressions_operator_pipeline_data_quality{{namespace=\"{ns}\",pipeline=\"dq\"}} 2"
    );
    assert!(
        op.metrics().contains(&series),
        "operator metrics lack {series}"
    );
    let out = stack
        .kubectl()
        .args(["get", "ipl", "dq", "-n", &ns, "--no-headers"])
        .output()
        .unwrap();
    let row = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(row.split_whitespace().any(|c| c == "Critical"), "{row}");

    // Clean again: back to OK once the window no longer holds the invalid events.
    drop(many);
    let _clean = Loadgen::start(stack, &t.raw, 4, 0.0);
    let (_, _, recovered_after) = until(&api, "OK", Duration::from_secs(60)).await;

    let evs = eventually(Duration::from_secs(10), "the level Events", || async {
        let evs = events(&client, &ns).await;
        let has = |r: &str| evs.iter().any(|e| e.1 == r);
        (has("DataQualityWarning") && has("DataQualityCritical") && has("DataQualityRecovered"))
            .then_some(evs)
    })
    .await;
    for (type_, reason, message) in evs.iter().filter(|e| e.1.starts_with("DataQuality")) {
        println!("Event {type_} {reason}: {message}");
    }
    let critical = evs.iter().find(|e| e.1 == "DataQualityCritical").unwrap();
    assert_eq!(critical.0, "Warning");
    assert!(critical.2.contains("dead-lettered"), "{}", critical.2);
    assert_eq!(
        evs.iter().filter(|e| e.1 == "DataQualityCritical").count(),
        1,
        "one Event per change of level: {evs:?}"
    );
    println!(
        "Warning after {:.1} s, Critical after {:.1} s, OK again after {:.1} s",
        warning_after.as_secs_f64(),
        critical_after.as_secs_f64(),
        recovered_after.as_secs_f64()
    );
    w.kill9();
}
