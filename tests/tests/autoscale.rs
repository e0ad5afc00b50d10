//! Autoscaling on the real stack: a backlog on a pipeline's topic makes the operator raise the
//! Deployment's replicas and explain why; with Prometheus stopped it holds and reports
//! MetricsAvailable=False; in Recommend mode the status changes but the Deployment does not.
//! The signals are real: Kafka lag through rdkafka, throughput of a real worker process scraped
//! by a real Prometheus.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use impressions_crds::{ImpressionPipeline, conditions};
use impressions_tests::{
    Stack, cluster, kafka,
    operator::{OperatorProcess, eventually},
    unique,
    worker::{WorkerProcess, free_port},
};
use impressions_worker::loadgen::Mix;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

/// A Prometheus of the test's own (so that stopping it disturbs no other test).
struct OwnPrometheus {
    child: Child,
    url: String,
    targets: PathBuf,
}

impl OwnPrometheus {
    fn start(dir: &Path) -> OwnPrometheus {
        let targets = dir.join("targets");
        std::fs::create_dir_all(&targets).unwrap();
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: workers\n    file_sd_configs: [{{files: ['{}/*.json'], refresh_interval: 1s}}]\n", targets.display()),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian's package) on PATH");
        OwnPrometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            targets,
        }
    }
}

impl Drop for OwnPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a file_sd target for a worker, labelled with its pipeline.
fn scrape(targets: &Path, w: &WorkerProcess, ns: &str, pipeline: &str) {
    let sd = json!([{ "targets": [format!("127.0.0.1:{}", w.metrics_port)], "labels": { "namespace": ns, "pipeline": pipeline } }]);
    std::fs::write(
        targets.join(format!("{ns}-{pipeline}.json")),
        sd.to_string(),
    )
    .unwrap();
}

async fn setup(prefix: &str) -> (Client, String) {
    let client = Stack::get().client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique(prefix)).await.unwrap();
    (client, ns)
}

/// Topics with a backlog, a catalog, and a ScalingPolicy that reacts within seconds.
async fn backlog(stack: &Stack, client: &Client, id: &str, events: usize) -> String {
    for (t, p, compact) in [
        (format!("{id}-raw"), 8, false),
        (format!("{id}-out"), 2, false),
        (format!("{id}-dlq"), 1, false),
        (format!("{id}-titles"), 1, true),
    ] {
        kafka::create_topic(stack, &t, p, compact).await;
    }
    kafka::fill_catalog(stack, &format!("{id}-titles"), 100).await;
    kafka::produce_generated(stack, &format!("{id}-raw"), 1, events, 100, Mix::default()).await;
    let policy = format!("{id}-fast");
    let body = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": policy},
        "spec": {"minReplicas": 1, "maxReplicas": 8, "lagSloSeconds": 10, "catchUpSeconds": 30, "evaluationIntervalSeconds": 5,
                 "scaleUp": {"stabilizationWindowSeconds": 0, "maxStepPercent": 100, "maxStepReplicas": 4, "cooldownSeconds": 5},
                 "queries": {"rateWindow": "15s"},
                 // A failed read is stood in for by the last good one for 10 s, then missing.
                 "onMissingMetrics": {"action": "Hold", "staleAfterSeconds": 10}}});
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(&policy, &PatchParams::apply("tests"), &Patch::Apply(&body))
        .await
        .unwrap();
    policy
}

fn pipeline(stack: &Stack, id: &str, name: &str, policy: &str, mode: &str) -> serde_json::Value {
    json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": name},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": format!("{id}-raw"), "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{id}-out"), "deadLetterTopic": format!("{id}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{id}-titles")}},
                 "scaling": {"mode": mode, "policyRef": policy, "minReplicas": 1, "maxReplicas": 8}}})
}

/// A worker for the pipeline's consumer group, capped at 400 events/s (one pod's "CPU").
fn worker(stack: &Stack, id: &str, ns: &str, name: &str) -> WorkerProcess {
    let cfg = format!(
        "pipeline: {{namespace: {ns}, name: {name}}}\nsource: {{bootstrapServers: '{b}', topic: {id}-raw, consumerGroup: {ns}.{name}, offsetReset: earliest}}\nsink: {{topic: {id}-out, deadLetterTopic: {id}-dlq}}\ncatalog: {{topic: {id}-titles}}\nprocessing: {{threads: 1, maxBatch: 100, maxEventsPerSecond: 400}}\ndrainTimeoutSecs: 10\n",
        b = stack.kafka_bootstrap
    );
    let mut w = WorkerProcess::start(&format!("{id}-{name}"), &cfg);
    w.wait_ready(Duration::from_secs(30));
    w
}

fn condition(p: &ImpressionPipeline, t: &str) -> Option<(String, String, String)> {
    let c = conditions::get(&p.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn replicas(client: &Client, ns: &str, name: &str) -> Option<i32> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(&format!("{name}-worker"))
        .await
        .ok()??
        .spec?
        .replicas
}

#[tokio::test(flavor = "multi_thread")]
async fn backlog_scales_up_with_an_explanation_and_missing_metrics_hold() {
    let stack = Stack::get();
    let (client, ns) = setup("as-backlog").await;
    let id = unique("as");
    let policy = backlog(stack, &client, &id, 40_000).await;
    let dir = std::env::temp_dir().join("impressions-tests").join(&id);
    let mut prom = OwnPrometheus::start(&dir);
    let w = worker(stack, &id, &ns, "auto");
    scrape(&prom.targets, &w, &ns, "auto");
    let mut op = OperatorProcess::start(stack, "local", &ns, &["--prometheus-url", &prom.url]);
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    api.patch(
        "auto",
        &PatchParams::apply("tests"),
        &Patch::Apply(&pipeline(stack, &id, "auto", &policy, "Auto")),
    )
    .await
    .unwrap();

    let scaled = eventually(
        Duration::from_secs(90),
        "a scale-up for the backlog",
        || async { replicas(&client, &ns, "auto").await.filter(|r| *r > 1) },
    )
    .await;
    // The status is written right after the Deployment is applied: wait for it (and for the
    // Deployment, should a further decision have come in between).
    let p = eventually(Duration::from_secs(30), "the decision in status", || {
        let (api, client, ns) = (api.clone(), client.clone(), ns.clone());
        async move {
            let p = api.get("auto").await.ok()?;
            let to = p.status.as_ref()?.last_decision.as_ref()?.to;
            (replicas(&client, &ns, "auto").await == Some(to)).then_some(p)
        }
    })
    .await;
    let scaled = p
        .status
        .as_ref()
        .and_then(|s| s.last_decision.as_ref())
        .map_or(scaled, |d| d.to);
    let st = p.status.clone().unwrap();
    let d = st.last_decision.clone().expect("a decision in status");
    println!(
        "decision: {} {} → {}: {}",
        d.reason, d.from, d.to, d.message
    );
    assert!(d.reason.starts_with("ScaleUp"), "{d:?}");
    assert_eq!(d.to, scaled);
    assert!(
        d.message.contains("backlog") && d.message.contains("capacity"),
        "{}",
        d.message
    );
    assert!(st.lag.as_ref().is_some_and(|l| l.total > 0), "{:?}", st.lag);
    assert_eq!(st.partitions, Some(8));
    assert_eq!(condition(&p, "MetricsAvailable").unwrap().0, "True");
    let series = format!(
        "impressions_operator_pipeline_desired_replicas{{namespace=\"{ns}\",pipeline=\"auto\"}} {scaled}"
    );
    let text = op.metrics();
    assert!(
        text.contains(&series),
        "operator metrics lack {series}:\n{}",
        text.lines()
            .filter(|l| l.contains("pipeline_"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // An operator restart rebuilds the history from Prometheus and does not scale down.
    op.kill9();
    let op = OperatorProcess::start(stack, "local", &ns, &["--prometheus-url", &prom.url]);
    eventually(
        Duration::from_secs(30),
        "the history rebuilt after the restart",
        || async {
            std::fs::read_to_string(&op.log)
                .unwrap_or_default()
                .contains("rebuilt the scaling history")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        replicas(&client, &ns, "auto").await.unwrap() >= scaled,
        "the restart scaled down:\n{}",
        op.log_tail()
    );

    // Prometheus stops: replicas held, MetricsAvailable=False, never a scale-down.
    let _ = prom.child.kill();
    let _ = prom.child.wait();
    let (status, reason, msg) = eventually(
        Duration::from_secs(40),
        "MetricsAvailable=False",
        || async {
            condition(&api.get("auto").await.ok()?, "MetricsAvailable").filter(|c| c.0 == "False")
        },
    )
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "MetricsMissing"),
        "{msg}"
    );
    let held = replicas(&client, &ns, "auto").await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        replicas(&client, &ns, "auto").await.unwrap(),
        held,
        "replicas changed on missing metrics"
    );
    let d = api
        .get("auto")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_decision
        .unwrap();
    assert_eq!(d.reason, "HoldMetricsMissing", "{}", d.message);
    drop(w);
}

#[tokio::test(flavor = "multi_thread")]
async fn recommend_mode_changes_status_not_the_deployment() {
    let stack = Stack::get();
    let (client, ns) = setup("as-rec").await;
    let id = unique("asr");
    let policy = backlog(stack, &client, &id, 30_000).await;
    let w = worker(stack, &id, &ns, "rec");
    scrape(&stack.file_sd_dir, &w, &ns, "rec");
    let _op = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &["--prometheus-url", &stack.prometheus_url],
    );
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    api.patch(
        "rec",
        &PatchParams::apply("tests"),
        &Patch::Apply(&pipeline(stack, &id, "rec", &policy, "Recommend")),
    )
    .await
    .unwrap();

    let d = eventually(
        Duration::from_secs(90),
        "a recommendation above 1",
        || async {
            let d = api.get("rec").await.ok()?.status?.last_decision?;
            (d.to > 1).then_some(d)
        },
    )
    .await;
    println!("recommendation: {} → {}: {}", d.from, d.to, d.message);
    assert_eq!(
        replicas(&client, &ns, "rec").await,
        Some(1),
        "Recommend mode must not change the Deployment"
    );
    let st = api.get("rec").await.unwrap().status.unwrap();
    assert_eq!(
        st.desired_replicas,
        Some(1),
        "desiredReplicas is what runs in Recommend mode"
    );

    // The simulator replays this pipeline's real history from Prometheus (once a few points of
    // it are recorded).
    let simulate = || {
        Command::new(impressions_tests::worker::binary("operator"))
            .args([
                "simulate",
                "--prometheus",
                &stack.prometheus_url,
                "--pipeline",
                &format!("{ns}/rec"),
                "--hours",
                "0.1",
            ])
            .output()
            .unwrap()
    };
    let out = eventually(Duration::from_secs(60), "a replayable history", || async {
        let out = simulate();
        out.status.success().then_some(out)
    })
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("history of {ns}/rec")) && text.contains("impressions (u="),
        "{text}"
    );
    println!("{text}");
    std::fs::remove_file(stack.file_sd_dir.join(format!("{ns}-rec.json"))).ok();
    drop(w);
}

/// Serves a fixed Prometheus exposition on a free port until the test ends.
async fn serve_metrics(text: String) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let text = text.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

/// Queries Prometheus answered on `/api/v1/query`, from its own metrics.
async fn queries_answered(url: &str) -> f64 {
    let text = reqwest_text(&format!("{url}/metrics")).await;
    text.lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains("handler=\"/api/v1/query\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn reqwest_text(url: &str) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .await
        .expect("curl");
    assert!(out.status.success(), "GET {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every pipeline's signals from one query per signal: 40 pipelines sharing the templates are
/// answered, each with its own values, from at most two refreshes (eight queries), and a
/// pipeline without series reads as no data, not as an error. The busy fraction is the larger of
/// the `busyFraction` and `cpuFraction` answers; a pipeline without a CPU fraction (no CPU
/// limit) keeps its busy fraction.
#[tokio::test(flavor = "multi_thread")]
async fn one_query_per_signal_answers_every_pipeline() {
    use impressions_crds::policy::PrometheusQueries;
    use impressions_operator::autoscale::signals::prometheus::PrometheusThroughput;
    let dir = std::env::temp_dir().join(unique("prom-fleet"));
    std::fs::create_dir_all(&dir).unwrap();
    let prom = OwnPrometheus::start(&dir);
    let n = 40;
    let mut text = String::new();
    for i in 1..=n {
        for (metric, v) in [("t_rate", i as f64), ("t_busy", i as f64 / 100.0)] {
            text.push_str(&format!(
                "{metric}{{namespace=\"fleet\",pipeline=\"p{i}\"}} {v}\n"
            ));
        }
        // The first half have a CPU limit, and use more of it than their threads are busy.
        if i <= n / 2 {
            let v = i as f64 / 100.0 + 0.25;
            text.push_str(&format!(
                "t_cpu{{namespace=\"fleet\",pipeline=\"p{i}\"}} {v}\n"
            ));
        }
    }
    let port = serve_metrics(text).await;
    let sd = json!([{ "targets": [format!("127.0.0.1:{port}")] }]);
    std::fs::write(prom.targets.join("fleet.json"), sd.to_string()).unwrap();
    let client = prometheus_http_query::Client::try_from(prom.url.as_str()).unwrap();
    eventually(
        Duration::from_secs(60),
        "Prometheus scraped the series",
        || {
            let client = client.clone();
            async move {
                let r = client.query("count(t_rate)").get().await.ok()?;
                let v = r.data().as_vector()?.first()?.sample().value();
                (v as usize == n).then_some(())
            }
        },
    )
    .await;

    let q = PrometheusQueries {
        processed_rate: "sum(t_rate{namespace=\"{namespace}\",pipeline=\"{pipeline}\"})".into(),
        busy_fraction: "avg(t_busy{namespace=\"{namespace}\",pipeline=\"{pipeline}\"})".into(),
        cpu_fraction: "avg(t_cpu{namespace=\"{namespace}\",pipeline=\"{pipeline}\"})".into(),
        replicas: "count(t_rate{namespace=\"{namespace}\",pipeline=\"{pipeline}\"})".into(),
        ..PrometheusQueries::default()
    };
    let tp = PrometheusThroughput::new(&prom.url).unwrap();
    let before = queries_answered(&prom.url).await;
    let reads = (1..=n + 1).map(|i| {
        let (tp, q) = (tp.clone(), q.clone());
        async move { (i, tp.sample(&q, "fleet", &format!("p{i}")).await) }
    });
    for (i, r) in futures::future::join_all(reads).await {
        let t = r.unwrap_or_else(|e| panic!("p{i}: {e}"));
        if i > n {
            assert_eq!(t.processed_rate, None, "no series: no data");
            assert_eq!(t.workers, None);
            continue;
        }
        assert_eq!(t.processed_rate, Some(i as f64), "p{i}");
        let cpu = if i <= n / 2 { 0.25 } else { 0.0 };
        assert_eq!(t.busy_fraction, Some(i as f64 / 100.0 + cpu), "p{i}");
        assert_eq!(t.workers, Some(1.0), "p{i}");
    }
    let asked = queries_answered(&prom.url).await - before;
    assert!(
        (4.0..=8.0).contains(&asked),
        "{} pipelines read with {asked} queries",
        n + 1
    );
    assert_eq!(tp.reading_for(), n + 1);
    tp.forget("fleet", "p1");
    assert_eq!(tp.reading_for(), n);
}
