//! Kafka security on the real broker's SASL_SSL listener (SCRAM-SHA-512, a certificate of the
//! stack's CA): the worker configured the way its pod is, through `WORKER__SOURCE__KAFKA__<key>`
//! and `WORKER__SINK__KAFKA__<key>` variables named after the Secret's keys, processes events end
//! to end (at-least-once, and exactly-once with a transactional producer); a wrong password stops
//! it at start naming authentication; the operator reads a pipeline's lag over SASL_SSL with the
//! settings of the pipeline's Secret, and names an authentication failure in MetricsAvailable;
//! the listener refuses a plaintext client.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use impressions_crds::{ImpressionPipeline, conditions};
use impressions_tests::{
    Stack, cluster,
    kafka::{self, Isolation},
    operator::{OperatorProcess, eventually},
    unique,
    worker::{Topics, WorkerProcess, config_with_sink, event_id, expected, topics, wait_committed},
};
use impressions_worker::loadgen::Mix;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use rdkafka::{
    ClientConfig, ClientContext,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    error::KafkaError,
};
use serde_json::json;

/// The environment a worker pod gets from its pipeline's Secret: each key under the prefix the
/// operator's Deployment gives it (`envFrom` with `prefix`).
fn pod_env(prefix: &str, secret: &BTreeMap<String, String>) -> Vec<(String, String)> {
    secret
        .iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect()
}

/// A worker config on `t` whose clients all go to the SASL_SSL listener.
fn sasl_config(stack: &Stack, t: &Topics, sink_extra: &str) -> String {
    config_with_sink(
        stack,
        t,
        sink_extra,
        "processing: {threads: 1, maxBatch: 500}",
    )
    .replace(&stack.kafka_bootstrap, &stack.sasl().bootstrap)
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_over_sasl_ssl_from_the_source_secret_processes_end_to_end() {
    let stack = Stack::get();
    let t = topics(stack, "sec-alo", 3, 100).await;
    let sent = kafka::produce_generated(stack, &t.raw, 11, 3000, 100, Mix::default()).await;
    let (want_records, want_dead) = expected(&sent);

    // Only a source Secret: the sink (same cluster) shares its settings.
    let env = pod_env(
        "WORKER__SOURCE__KAFKA__",
        &kafka::sasl_settings(stack, None),
    );
    let mut w = WorkerProcess::start_with_env("sec-alo", &sasl_config(stack, &t, ""), &env);
    let t0 = Instant::now();
    w.wait_ready(Duration::from_secs(30));
    println!("ready over SASL_SSL in {:?}", t0.elapsed());

    let out = kafka::read_topic(stack, &t.out, want_records.len(), Duration::from_secs(40));
    let dlq = kafka::read_topic(stack, &t.dlq, want_dead.len(), Duration::from_secs(20));
    let got: HashSet<String> = out.iter().map(event_id).collect();
    assert_eq!(out.len(), want_records.len(), "records:\n{}", w.log_tail());
    assert_eq!(got, want_records);
    assert_eq!(
        dlq.len(),
        want_dead.len(),
        "dead letters:\n{}",
        w.log_tail()
    );
    let committed = wait_committed(stack, &t, Duration::from_secs(15)).await;
    let high: HashMap<i32, i64> = kafka::high_watermarks(stack, &t.raw)
        .into_iter()
        .filter(|(_, h)| *h > 0)
        .collect();
    assert_eq!(committed, high, "offsets committed over SASL_SSL");
    let (clean, _) = w.terminate(Duration::from_secs(25));
    assert!(clean, "clean stop:\n{}", w.log_tail());
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_worker_with_source_and_sink_secrets_over_sasl_ssl() {
    let stack = Stack::get();
    let t = topics(stack, "sec-eos", 2, 100).await;
    let sent = kafka::produce_generated(stack, &t.raw, 12, 2000, 100, Mix::default()).await;
    let (want_records, want_dead) = expected(&sent);

    // A Secret for each side: the transactional producer takes the sink's.
    let secret = kafka::sasl_settings(stack, None);
    let mut env = pod_env("WORKER__SOURCE__KAFKA__", &secret);
    env.extend(pod_env("WORKER__SINK__KAFKA__", &secret));
    let sink = format!(
        "deliveryGuarantee: ExactlyOnce, transactionalId: {}-0",
        t.group
    );
    let mut w = WorkerProcess::start_with_env("sec-eos", &sasl_config(stack, &t, &sink), &env);
    w.wait_ready(Duration::from_secs(30));
    let committed = wait_committed(stack, &t, Duration::from_secs(40)).await;
    let high: HashMap<i32, i64> = kafka::high_watermarks(stack, &t.raw)
        .into_iter()
        .filter(|(_, h)| *h > 0)
        .collect();
    assert_eq!(
        committed,
        high,
        "committed in transactions:\n{}",
        w.log_tail()
    );

    let out = kafka::read_to_end(
        stack,
        &t.out,
        Isolation::ReadCommitted,
        Duration::from_secs(20),
    );
    let dlq = kafka::read_to_end(
        stack,
        &t.dlq,
        Isolation::ReadCommitted,
        Duration::from_secs(20),
    );
    let got: Vec<String> = out.iter().map(event_id).collect();
    assert_eq!(got.len(), want_records.len(), "no duplicates, none missing");
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), want_records);
    assert_eq!(dlq.len(), want_dead.len());
    assert!(
        w.metric("impressions_worker_transactions_total{outcome=\"committed\"}") > 0.0,
        "{}",
        w.log_tail()
    );
    let (clean, _) = w.terminate(Duration::from_secs(25));
    assert!(clean, "clean stop:\n{}", w.log_tail());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_stops_the_worker_at_start_naming_authentication() {
    let stack = Stack::get();
    let t = topics(stack, "sec-bad", 1, 10).await;
    let env = pod_env(
        "WORKER__SOURCE__KAFKA__",
        &kafka::sasl_settings(stack, Some("not-the-password")),
    );
    // A catalog file: the worker would otherwise look ready without ever reaching Kafka.
    let dir = std::env::temp_dir().join("impressions-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = dir.join(format!("{}-catalog.jsonl", t.group));
    std::fs::write(
        &catalog,
        "{\"videoId\": 1, \"name\": \"One\", \"kind\": \"MOVIE\"}\n",
    )
    .unwrap();
    let cfg = sasl_config(stack, &t, "").replace(
        &format!("catalog: {{topic: {}}}", t.titles),
        &format!("catalog: {{file: '{}'}}", catalog.display()),
    );
    assert!(cfg.contains("catalog: {file:"), "{cfg}");
    let mut w = WorkerProcess::start_with_env("sec-bad", &cfg, &env);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "still running after 30 s:\n{}",
            w.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&w.log).unwrap();
    println!(
        "stopped in {:?} with {status}:\n{}",
        t0.elapsed(),
        w.log_tail()
    );
    assert!(!status.success(), "a failure exit status:\n{log}");
    assert!(
        log.contains("Kafka authentication failed") && log.contains("SASL authentication error"),
        "the log names authentication:\n{log}"
    );
    assert!(
        !log.contains("not-the-password"),
        "the password is not logged"
    );
    assert!(!log.contains("subscribed"), "never subscribed:\n{log}");
}

/// Records the global errors a test client reports.
#[derive(Default, Clone)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Errors {}

/// Asks the SASL_SSL listener for metadata with `settings`; returns whether it answered and
/// the errors the client reported.
fn ask(stack: &Stack, settings: &[(&str, &str)]) -> (bool, Vec<String>) {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &stack.sasl().bootstrap)
        .set("group.id", unique("sec-probe"));
    for (k, v) in settings {
        c.set(*k, *v);
    }
    let errors = Errors::default();
    let consumer: BaseConsumer<Errors> = c.create_with_context(errors.clone()).unwrap();
    let ok = consumer
        .fetch_metadata(None, Duration::from_secs(4))
        .is_ok();
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        let _ = consumer.poll(Duration::from_millis(20));
    }
    let e = errors.0.lock().unwrap().clone();
    (ok, e)
}

#[test]
fn the_sasl_listener_refuses_plaintext_and_wrong_credentials() {
    let stack = Stack::get();
    let (ok, errors) = ask(stack, &[]);
    assert!(
        !ok,
        "a plaintext client without credentials gets no metadata"
    );
    println!("plaintext: {errors:?}");
    assert!(
        !errors.is_empty(),
        "the client reports the refused connection"
    );

    let l = stack.sasl();
    let ca = l.ca_file.display().to_string();
    let sasl = |password: &str| {
        ask(
            stack,
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", l.mechanism.as_str()),
                ("sasl.username", l.username.as_str()),
                ("sasl.password", password),
                ("ssl.ca.location", ca.as_str()),
            ],
        )
    };
    let (ok, errors) = sasl("wrong");
    assert!(!ok);
    assert!(
        errors.iter().any(|e| e.contains("Authentication")),
        "{errors:?}"
    );
    let (ok, errors) = sasl(&l.password);
    assert!(ok, "the stack's user is let in: {errors:?}");

    // Without the stack's CA (the system's trust store only): the broker is not trusted.
    let (ok, errors) = ask(
        stack,
        &[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", l.mechanism.as_str()),
            ("sasl.username", l.username.as_str()),
            ("sasl.password", l.password.as_str()),
        ],
    );
    assert!(!ok, "an untrusted certificate: {errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("SSL")),
        "a TLS failure: {errors:?}"
    );
}

fn condition(p: &ImpressionPipeline, t: &str) -> Option<(String, String, String)> {
    let c = conditions::get(&p.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_reads_the_lag_over_sasl_ssl_with_the_source_secret() {
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("sec-op"))
        .await
        .unwrap();
    let id = unique("sec-op");
    for (topic, partitions, compact) in [
        (format!("{id}-raw"), 4, false),
        (format!("{id}-out"), 1, false),
        (format!("{id}-dlq"), 1, false),
        (format!("{id}-titles"), 1, true),
    ] {
        kafka::create_topic(stack, &topic, partitions, compact).await;
    }
    // The backlog: no worker runs, the group starts at the earliest offset.
    let backlog = 1234;
    kafka::produce_generated(stack, &format!("{id}-raw"), 5, backlog, 10, Mix::default()).await;

    // Secrets as a pipeline owner writes them: librdkafka settings, one per key.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for (name, password) in [("kafka-sasl", None), ("kafka-wrong", Some("wrong"))] {
        let data = kafka::sasl_settings(stack, password);
        let s: Secret = serde_json::from_value(
            json!({"metadata": {"name": name}, "type": "Opaque", "stringData": data}),
        )
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let policy = format!("{id}-fast");
    let body = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": policy},
        "spec": {"minReplicas": 1, "maxReplicas": 4, "evaluationIntervalSeconds": 5}});
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(&policy, &PatchParams::apply("tests"), &Patch::Apply(&body))
        .await
        .unwrap();
    let pipeline = |secret: &str| {
        json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": secret},
            "spec": {"region": "local",
                     "source": {"bootstrapServers": stack.sasl().bootstrap, "topic": format!("{id}-raw"),
                                "offsetReset": "Earliest", "secretRef": {"name": secret}},
                     "sink": {"topic": format!("{id}-out"), "deadLetterTopic": format!("{id}-dlq")},
                     "enrichment": {"catalog": {"topic": format!("{id}-titles")}},
                     "scaling": {"mode": "Recommend", "policyRef": policy}}})
    };
    // Prometheus answers (with no worker series), so a missing lag is what MetricsAvailable
    // reports.
    let op = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &["--prometheus-url", &stack.prometheus_url],
    );
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    for name in ["kafka-sasl", "kafka-wrong"] {
        api.patch(
            name,
            &PatchParams::apply("tests"),
            &Patch::Apply(&pipeline(name)),
        )
        .await
        .unwrap();
    }

    let t0 = Instant::now();
    let lag = eventually(
        Duration::from_secs(45),
        "the lag read over SASL_SSL in status",
        || async {
            let p = api.get("kafka-sasl").await.ok()?;
            p.status.as_ref()?.lag.clone().filter(|l| l.total > 0)
        },
    )
    .await;
    println!("lag over SASL_SSL after {:?}: {lag:?}", t0.elapsed());
    assert_eq!(lag.total, backlog as i64, "{}", op.log_tail());
    let p = api.get("kafka-sasl").await.unwrap();
    assert_eq!(p.status.as_ref().unwrap().partitions, Some(4));
    let (_, _, msg) = condition(&p, "MetricsAvailable").expect("MetricsAvailable");
    assert!(
        !msg.contains("Kafka"),
        "only Prometheus's series are missing: {msg}"
    );

    let (status, reason, msg) = eventually(
        Duration::from_secs(30),
        "MetricsAvailable naming the authentication failure",
        || async {
            let p = api.get("kafka-wrong").await.ok()?;
            condition(&p, "MetricsAvailable").filter(|c| c.2.contains("authentication"))
        },
    )
    .await;
    println!("wrong password: {status} {reason}: {msg}");
    assert_eq!(status, "False");
    assert!(msg.contains("Kafka authentication failed"), "{msg}");
    assert!(!msg.contains("wrong\""), "{msg}");
    let p = api.get("kafka-wrong").await.unwrap();
    assert!(
        p.status.as_ref().unwrap().lag.is_none(),
        "no lag without access"
    );
}
