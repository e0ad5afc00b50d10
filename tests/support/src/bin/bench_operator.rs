//! The operator at fleet scale: N ImpressionPipelines (Auto mode) with a real topic each on the
//! stack's Kafka, the operator (release build) pointed at the stack's Prometheus, and:
//! - the time until every pipeline is reconciled;
//! - over an idle minute and a minute of steady traffic on every topic: the seconds between two
//!   evaluations of one pipeline (p50, p99, from the operator's
//!   `impressions_operator_evaluation_interval_seconds`), the API requests per minute by verb
//!   (the API server's own `apiserver_request_total`), and the writes per minute;
//! - the operator's RSS and threads.
//!
//! Faults: `--hang-prometheus` points the operator at a Prometheus that accepts and never
//! answers; `--blackhole K` gives K pipelines a bootstrap that never answers.
//!
//! `target/release/bench_operator [N] [--hang-prometheus] [--blackhole K] [--out FILE]` with the
//! stack up (`make bench-operator`); the results are printed and written to FILE as JSON.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use impressions_crds::ImpressionPipeline;
use impressions_tests::{Stack, blackhole::BlackHole, cluster, operator::OperatorProcess, unique};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer},
};
use serde_json::{Value, json};

/// The API's resources the operator works with.
const RESOURCES: [&str; 10] = [
    "impressionpipelines",
    "raweventschemas",
    "endpointslices",
    "scalingpolicies",
    "deployments",
    "configmaps",
    "services",
    "poddisruptionbudgets",
    "events",
    "leases",
];

fn proc_status(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The labels and value of a Prometheus text line `name{a="b",…} value`.
fn parse_line(line: &str) -> Option<(BTreeMap<String, String>, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let labels = head
        .split_once('{')
        .map(|(_, l)| l.trim_end_matches('}'))
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for pair in labels.split("\",") {
        if let Some((k, v)) = pair.split_once("=\"") {
            out.insert(k.trim().to_owned(), v.trim_end_matches('"').to_owned());
        }
    }
    Some((out, value.parse().ok()?))
}

/// `apiserver_request_total` of the operator's resources, summed by verb.
fn api_requests_by_verb(stack: &Stack) -> BTreeMap<String, f64> {
    let out = stack
        .kubectl()
        .args(["get", "--raw", "/metrics"])
        .output()
        .expect("kubectl get --raw /metrics");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut by_verb = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((labels, v)) = parse_line(line) else {
            continue;
        };
        let resource = labels.get("resource").map(String::as_str).unwrap_or("");
        if RESOURCES.contains(&resource) {
            *by_verb
                .entry(labels.get("verb").cloned().unwrap_or_default())
                .or_insert(0.0) += v;
        }
    }
    by_verb
}

/// Instant queries the stack's Prometheus answered (its own `prometheus_http_requests_total`
/// for `/api/v1/query`): the operator's signal reads plus the quality monitor's.
fn prometheus_queries(stack: &Stack) -> f64 {
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .arg(format!("{}/metrics", stack.prometheus_url))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("prometheus_http_requests_total{"))
        .filter_map(parse_line)
        .filter(|(labels, _)| labels.get("handler").map(String::as_str) == Some("/api/v1/query"))
        .map(|(_, v)| v)
        .sum()
}

/// The evaluation-interval histogram's cumulative buckets (le → count).
fn interval_buckets(metrics: &str) -> Vec<(f64, f64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with("impressions_operator_evaluation_interval_seconds_bucket{"))
        .filter_map(parse_line)
        .filter_map(|(labels, v)| {
            let le = labels.get("le")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v))
        })
        .collect()
}

/// A quantile of the observations between two snapshots of the buckets (the bucket's upper
/// bound, as Prometheus's histogram_quantile without interpolation).
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, n)| *n);
            (*le, n - b)
        })
        .collect();
    let total = diff.last()?.1;
    if total <= 0.0 {
        return None;
    }
    diff.iter()
        .find(|(_, n)| *n >= q * total)
        .map(|(le, _)| *le)
}

/// A minute of measurement.
async fn window(stack: &Stack, op: &OperatorProcess, seconds: u64) -> Value {
    let (api0, m0, q0) = (
        api_requests_by_verb(stack),
        op.metrics(),
        prometheus_queries(stack),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (api1, m1, q1) = (
        api_requests_by_verb(stack),
        op.metrics(),
        prometheus_queries(stack),
    );
    let per_minute: BTreeMap<String, f64> = api1
        .iter()
        .map(|(verb, n)| {
            let d = n - api0.get(verb).copied().unwrap_or(0.0);
            (verb.clone(), (d * 60.0 / seconds as f64).round())
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    let writes: f64 = per_minute
        .iter()
        .filter(|(v, _)| matches!(v.as_str(), "PATCH" | "POST" | "PUT" | "DELETE" | "APPLY"))
        .map(|(_, n)| n)
        .sum();
    let (b0, b1) = (interval_buckets(&m0), interval_buckets(&m1));
    let evaluations = b1.last().map_or(0.0, |l| l.1) - b0.last().map_or(0.0, |l| l.1);
    json!({
        "seconds": seconds,
        "api_requests_per_minute_by_verb": per_minute,
        "writes_per_minute": writes,
        "prometheus_queries_per_minute": ((q1 - q0) * 60.0 / seconds as f64).round(),
        "evaluations": evaluations,
        "evaluation_interval_p50_seconds": quantile(&b0, &b1, 0.5),
        "evaluation_interval_p99_seconds": quantile(&b0, &b1, 0.99),
    })
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut n, mut hang_prometheus, mut blackholed, mut out) = (1000usize, false, 0usize, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--hang-prometheus" => hang_prometheus = true,
            "--blackhole" => blackholed = args.next().and_then(|v| v.parse().ok()).unwrap_or(10),
            "--out" => out = args.next(),
            other => {
                n = other
                    .parse()
                    .expect("N, --hang-prometheus, --blackhole K, --out FILE")
            }
        }
    }
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("scale")).await.unwrap();
    let id = unique("scale");
    let topic = |i: usize| format!("{id}-raw-{i}");

    eprintln!("creating {n} topics…");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    let names: Vec<String> = (0..n).map(topic).collect();
    for chunk in names.chunks(200) {
        let topics: Vec<NewTopic<'_>> = chunk
            .iter()
            .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
        for r in admin.create_topics(&topics, &opts).await.unwrap() {
            r.unwrap();
        }
    }

    let policy = format!("{id}-policy");
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(
            &policy,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(
                json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy",
                "metadata": {"name": policy},
                "spec": {"minReplicas": 1, "maxReplicas": 4, "evaluationIntervalSeconds": 15,
                         "queries": {"rateWindow": "1m"}}}),
            ),
        )
        .await
        .unwrap();
    let hole = BlackHole::start();
    eprintln!("creating {n} pipelines in {ns} ({blackholed} with a black-holed bootstrap)…");
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    let t0 = Instant::now();
    let pp = PatchParams::apply("bench");
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let futs = chunk.iter().map(|i| {
            let name = format!("p{i:04}");
            let bootstrap = if *i < blackholed {
                hole.address()
            } else {
                stack.kafka_bootstrap.clone()
            };
            let body = json!({
                "apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": name},
                "spec": {"region": "local", "source": {"bootstrapServers": bootstrap, "topic": topic(*i), "offsetReset": "Earliest"},
                         "sink": {"topic": format!("{id}-out"), "deadLetterTopic": format!("{id}-dlq")},
                         "enrichment": {"catalog": {"topic": format!("{id}-titles")}},
                         "scaling": {"mode": "Auto", "policyRef": policy, "minReplicas": 1, "maxReplicas": 4}}
            });
            let (api, pp) = (api.clone(), pp.clone());
            async move { api.patch(&name, &pp, &Patch::Apply(&body)).await.map(|_| ()) }
        });
        for r in futures::future::join_all(futs).await {
            r.unwrap();
        }
    }
    eprintln!("created in {:?}; starting the operator", t0.elapsed());

    let prometheus_hole = BlackHole::start();
    let prometheus = if hang_prometheus {
        format!("http://{}", prometheus_hole.address())
    } else {
        stack.prometheus_url.clone()
    };
    let op = OperatorProcess::start(stack, "local", &ns, &["--prometheus-url", &prometheus]);
    let pid = op.child.id();
    let start = Instant::now();
    loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        let done = list
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .is_some()
            })
            .count();
        if done == n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "only {done}/{n} reconciled after 20 min:\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_reconciled = start.elapsed().as_secs_f64();
    eprintln!("all {n} reconciled in {all_reconciled:.1}s; waiting for the Deployments to settle");
    // The controller-manager creates N ReplicaSets and pods meanwhile; each Deployment status
    // change is a real change the pipeline follows. The windows start once they settled.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), &ns);
    let settle_start = Instant::now();
    loop {
        let list = deployments.list(&ListParams::default()).await.unwrap();
        let settled = list
            .items
            .iter()
            .filter(|d| {
                let st = d.status.clone().unwrap_or_default();
                st.observed_generation == d.metadata.generation
                    && st.replicas == d.spec.as_ref().and_then(|s| s.replicas)
            })
            .count();
        if settled == n {
            break;
        }
        assert!(
            settle_start.elapsed() < Duration::from_secs(1200),
            "Deployments not settled: {settled}/{n}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let seconds_to_settle = settle_start.elapsed().as_secs_f64();
    eprintln!("settled in {seconds_to_settle:.0}s; 30 s more");
    tokio::time::sleep(Duration::from_secs(30)).await;

    eprintln!("idle minute…");
    let idle = window(stack, &op, 60).await;

    eprintln!("a minute of steady traffic on every topic…");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (stop, names) = (stop.clone(), names.clone());
        std::thread::spawn(move || {
            // 2 events/s per topic: a steady, small backlog that nobody consumes.
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let t = Instant::now();
                for name in &names {
                    for _ in 0..2 {
                        let _ = producer.send(BaseRecord::<str, str>::to(name).payload("{}"));
                        sent += 1;
                    }
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
            }
            let _ = producer.flush(Duration::from_secs(10));
            sent
        })
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    let steady = window(stack, &op, 60).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let sent = traffic.join().unwrap();

    let result = json!({
        "date": k8s_openapi::jiff::Timestamp::now().to_string(),
        "pipelines": n,
        "blackholed_bootstraps": blackholed,
        "prometheus_hung": hang_prometheus,
        "evaluation_interval_seconds": 15,
        "seconds_to_reconcile_all": all_reconciled,
        "seconds_for_the_deployments_to_settle": seconds_to_settle,
        "note": "APPLY requests are the operator's (server-side apply); PUT, POST and PATCH include the controller-manager's",
        "idle": idle,
        "steady_traffic": steady,
        "events_sent": sent,
        "operator_peak_rss_mb": proc_status(pid, "VmHWM:") / 1024.0,
        "operator_rss_mb": proc_status(pid, "VmRSS:") / 1024.0,
        "operator_threads": proc_status(pid, "Threads:"),
    });
    let text = serde_json::to_string_pretty(&result).unwrap();
    println!("{text}");
    if let Some(path) = out {
        std::fs::write(&path, text + "\n").unwrap();
        eprintln!("written to {path}");
    }
    drop(op);
    // The stack is left as it was: the namespace (and its 1,000 Deployments) goes.
    let _ = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .delete(&ns, &Default::default())
        .await;
}
