//! The worker's capacity under a real CPU limit: one worker pod runs from the worker image as a
//! runc container (node agent `--runtime runc`) with `resources.limits.cpu: 50m` and no rate cap.
//! Idle, the worker measures its fixed CPU (`impressions_worker_cpu_idle_cores`); then under
//! about half its capacity the operator's capacity estimate (processed rate / busy fraction, the
//! busy fraction being the larger of the processing thread's busy time and (CPU − idle CPU) /
//! (limit − idle CPU)) is read from the operator's gauge at each evaluation; then 12,000 events/s
//! saturate the worker and its processed rate is measured from its own counter while a backlog
//! grows. The saturated worker must use its CPU limit (the limit, not Kafka, bounds it), and the
//! estimate must not read the worker more than 15 % stronger than it is: from the processing
//! thread's busy time alone it read 2.7-3.6× the measured throughput (librdkafka's threads and
//! the CFS throttling share the quota and were left out), and a fleet sized on that falls behind.
//!
//! From below the estimate is within 15 % in most runs, not all (nine of ten on 2026-12-02,
//! mean −3 %, docs/benchmarks.md): the same worker's saturated rate and its CPU per event at part
//! load each move by ±15 % between runs minutes apart on a 2-core machine. The test bounds it at
//! 30 % below (the fleet is then sized with more headroom). The figures are written to
//! `target/e2e/capacity-limit.json` (`docs/results/capacity-limit.json` is a copy, quoted in
//! docs/benchmarks.md).

use std::time::{Duration, Instant};

use impressions_crds::ImpressionPipeline;
use impressions_tests::{
    Stack, cluster, images, kafka,
    observe::Sampler,
    operator::{OperatorProcess, eventually},
    processes::{LoadgenRun, NodeAgentProcess},
    unique,
    worker::{http_get_at, parse_metric},
};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

const CPU_LIMIT: &str = "50m";
const CPU_LIMIT_CORES: f64 = 0.05;
/// Events/s of the estimate's phase: about half of what one worker under [`CPU_LIMIT`] processes
/// saturated on the reference machines (4.7k-8.6k/s measured on 2-core VMs).
const LOAD: f64 = 3000.0;
/// Events/s of the saturated phase: above what the worker carries on any of them.
const SATURATE: f64 = 12000.0;
/// The estimate may read the worker at most this much stronger than it is measured saturated.
const ABOVE: f64 = 0.15;
/// ... and at most this much weaker (CPU per event at partial load, see above).
const BELOW: f64 = 0.3;

/// What the worker's /metrics and its cgroup said at one moment.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    processed: f64,
    busy_s: f64,
    cpu_s: f64,
    /// The cgroup's CPU time and throttled time (cpuacct.usage, cpu.stat), seconds.
    cgroup_cpu_s: f64,
    throttled_s: f64,
}

/// Rates between two readings: events/s, and the busy, CPU and throttled seconds per second.
fn rates(a: &Reading, b: &Reading) -> (f64, f64, f64, f64, f64) {
    let dt = (b.at - a.at).as_secs_f64();
    (
        (b.processed - a.processed) / dt,
        (b.busy_s - a.busy_s) / dt,
        (b.cpu_s - a.cpu_s) / dt,
        (b.cgroup_cpu_s - a.cgroup_cpu_s) / dt,
        (b.throttled_s - a.throttled_s) / dt,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_capacity_estimate_matches_a_cpu_limited_workers_throughput() {
    let stack = Stack::get();
    let image = images::image("worker");
    images::require(&image);
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("cap")).await.unwrap();
    let raw = kafka::pipeline_topics(stack, &ns).await;

    let policy = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": ns},
        "spec": {"minReplicas": 1, "maxReplicas": 1, "evaluationIntervalSeconds": 5, "queries": {"rateWindow": "15s"}}});
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&policy),
        )
        .await
        .unwrap();
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": "cap"},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": raw, "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{ns}-out"), "deadLetterTopic": format!("{ns}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{ns}-titles")}},
                 "worker": {"image": image, "threads": 1, "drainTimeoutSeconds": 5,
                            "resources": {"requests": {"cpu": CPU_LIMIT, "memory": "256Mi"}, "limits": {"cpu": CPU_LIMIT, "memory": "512Mi"}}},
                 "scaling": {"mode": "Auto", "policyRef": ns, "minReplicas": 1, "maxReplicas": 1}}});
    let pipelines: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    pipelines
        .create(
            &PostParams::default(),
            &serde_json::from_value(pipeline).unwrap(),
        )
        .await
        .unwrap();
    let sampler = Sampler::start(
        client.clone(),
        &ns,
        "cap-worker",
        &raw,
        &format!("{ns}.cap"),
    );
    let agent = NodeAgentProcess::start_containers(stack, &ns);
    let op = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &["--prometheus-url", &stack.prometheus_url],
    );
    let diag = |op: &OperatorProcess| format!("{}\n{}", op.log_tail(), agent.log_tail());

    // The worker's metrics endpoint (its pod IP), once it is Ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let (addr, pod) = eventually(Duration::from_secs(90), "the worker pod Ready", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let p = list.items.into_iter().next()?;
        let name = p.metadata.name.clone()?;
        let s = p.status?;
        let ready = s
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then(|| (format!("{}:9464", s.pod_ip.unwrap_or_default()), name))
    })
    .await;
    // The container's cgroup (node agent: /impressions-node-agent/<namespace>_<pod>).
    let cgroup = |controller: &str, file: &str| {
        let path = format!("/sys/fs/cgroup/{controller}/impressions-node-agent/{ns}_{pod}/{file}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let read = || {
        let (_, text) = http_get_at(addr.as_str(), "/metrics").expect("the worker's /metrics");
        let metric = |name: &str| parse_metric(&text, name);
        let throttled_ns: f64 = cgroup("cpu", "cpu.stat")
            .lines()
            .find_map(|l| l.strip_prefix("throttled_time "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        Reading {
            at: Instant::now(),
            processed: metric("impressions_worker_events_processed_total"),
            busy_s: metric("impressions_worker_busy_seconds_total"),
            cpu_s: metric("impressions_worker_cpu_seconds_total"),
            cgroup_cpu_s: cgroup("cpuacct", "cpuacct.usage")
                .trim()
                .parse::<f64>()
                .unwrap()
                / 1e9,
            throttled_s: throttled_ns / 1e9,
        }
    };
    let (_, text) = http_get_at(addr.as_str(), "/metrics").expect("the worker's /metrics");
    let limit = parse_metric(&text, "impressions_worker_cpu_limit_cores");
    assert_eq!(
        limit, CPU_LIMIT_CORES,
        "the worker reads its cgroup's limit\n{text}"
    );

    // The worker measures its fixed CPU (librdkafka's requests, the producer's poll, the HTTP
    // server) over a stretch of at least 5 s without events, from the scrapes' samples
    // (Prometheus every 2 s, and these reads); the operator's cpuFraction subtracts it.
    let idle = eventually(
        Duration::from_secs(20),
        "the worker's idle CPU measured",
        || async {
            let (_, text) = http_get_at(addr.as_str(), "/metrics")?;
            text.contains("impressions_worker_cpu_idle_cores ")
                .then(|| parse_metric(&text, "impressions_worker_cpu_idle_cores"))
        },
    )
    .await;
    assert!(
        idle > 0.0 && idle <= 0.5 * CPU_LIMIT_CORES,
        "idle CPU {idle} cores under a {CPU_LIMIT} limit"
    );
    tokio::time::sleep(Duration::from_secs(4)).await; // Prometheus scrapes it

    // The release build of loadgen (`make images` builds it): at 12,000 events/s the debug
    // build takes most of a core from the machine the 50m worker and the broker share.
    let loadgen = impressions_tests::repo_root().join("target/release/loadgen");
    assert!(
        loadgen.exists(),
        "{} is missing: `make images` (or cargo build --release --bin loadgen) builds it",
        loadgen.display()
    );

    // Half the capacity: the operator's estimate over 20 s once a rate window has passed.
    let mut half =
        LoadgenRun::start_program(&loadgen, stack, &raw, &format!("constant:{LOAD}"), 44.0, 1);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(22)).await;
    let a0 = read();
    // The operator's estimate at each evaluation (every 5 s), from its gauge: the status holds
    // the same value rounded and rewritten only when it moves by 10 %.
    let mut estimates = Vec::new();
    while start.elapsed() < Duration::from_secs(42) {
        let cap = parse_metric(
            &op.metrics(),
            &format!(
                "impressions_operator_pipeline_capacity_per_replica{{namespace=\"{ns}\",pipeline=\"cap\"}}"
            ),
        );
        if cap > 0.0 && estimates.last() != Some(&cap) {
            estimates.push(cap);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let status_estimate = pipelines
        .get("cap")
        .await
        .unwrap()
        .status
        .and_then(|s| s.throughput)
        .and_then(|t| t.capacity_per_replica);
    let a1 = read();
    half.wait();
    let (half_rate, half_busy, half_cpu, ..) = rates(&a0, &a1);

    // Saturated: 12,000 events/s, the processed rate over 20 s while the backlog grows
    // (over 10 s it moved by ±10 % between runs).
    let mut burst = LoadgenRun::start_program(
        &loadgen,
        stack,
        &raw,
        &format!("constant:{SATURATE}"),
        26.0,
        2,
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let b0 = read();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let b1 = read();
    let backlog = sampler
        .since(sampler.now() - 3.0)
        .last()
        .map_or(0, |s| s.lag);
    burst.wait();
    let (saturated, sat_busy, sat_cpu, sat_cgroup_cpu, sat_throttled) = rates(&b0, &b1);

    estimates.sort_by(f64::total_cmp);
    let estimate = estimates.get(estimates.len() / 2).copied();
    let error = estimate.map(|e| (e - saturated) / saturated);
    let figures = json!({
        "date": k8s_openapi::jiff::Timestamp::now().to_string(),
        "command": "cargo test -p impressions-stack-tests --test capacity_limit -- --nocapture (in make test)",
        "cpu_limit": CPU_LIMIT,
        "idle_cpu_cores": idle,
        "half_load": {"events_per_second": half_rate, "load_fraction": half_rate / saturated,
                      "thread_busy_fraction": half_busy, "cpu_fraction_of_limit": half_cpu / CPU_LIMIT_CORES},
        "estimate_from_the_whole_cpu_fraction": half_rate / (half_cpu / CPU_LIMIT_CORES),
        "saturated": {"events_per_second": saturated, "thread_busy_fraction": sat_busy,
                      "cpu_fraction_of_limit": sat_cpu / CPU_LIMIT_CORES, "cgroup_cpu_cores": sat_cgroup_cpu,
                      "throttled_fraction": sat_throttled, "lag_after": backlog},
        "estimates": estimates, "estimate": estimate, "relative_error": error,
        "status_capacity_per_replica": status_estimate,
        "estimate_from_thread_busy_alone": half_rate / half_busy,
    });
    let out = impressions_tests::repo_root().join("target/e2e");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("capacity-limit.json"),
        serde_json::to_string_pretty(&figures).unwrap(),
    )
    .unwrap();
    eprintln!("{figures:#}");

    assert!(
        backlog as f64 > 2.0 * LOAD,
        "no backlog at {:.0}/s: the worker was not saturated ({saturated:.0}/s processed)\n{figures:#}",
        SATURATE
    );
    assert!(
        sat_cgroup_cpu >= 0.7 * CPU_LIMIT_CORES,
        "saturated, the container used {sat_cgroup_cpu:.3} cores of its {CPU_LIMIT}: something else than the CPU limit bounds it\n{figures:#}"
    );
    let (Some(estimate), Some(error)) = (estimate, error) else {
        panic!(
            "no capacity estimate in the status\n{figures:#}\n{}",
            diag(&op)
        );
    };
    assert!(
        (-BELOW..=ABOVE).contains(&error),
        "capacity estimate {estimate:.0}/s vs measured {saturated:.0}/s under a {CPU_LIMIT} CPU limit: {:+.0} % (allowed {:+.0} % to {:+.0} %)\n{figures:#}\n{}",
        error * 100.0,
        -BELOW * 100.0,
        ABOVE * 100.0,
        diag(&op)
    );

    drop(sampler);
    drop(agent);
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
}
