//! The worker's capacity under a real CPU limit: one worker pod runs from the worker image as a
//! runc container (node agent `--runtime runc`) with `resources.limits.cpu: 100m` and no rate
//! cap. Idle, the worker measures its fixed CPU (`impressions_worker_cpu_idle_cores`); a burst
//! of 30,000 events/s warms it up and sizes the rest; then, twice, at 60 % of the warm-up's rate
//! the operator's capacity estimate (processed rate / busy fraction, the busy fraction being the
//! larger of the processing thread's busy time and (CPU − idle CPU) / (limit − idle CPU)) is read
//! from the operator's gauge at each evaluation, and a backlog is produced that the worker then
//! drains alone: its processed rate over 16 s of the drain, from its own counter, is its
//! measured capacity. The worker must use its CPU limit while draining (the limit, not Kafka,
//! bounds it), and the median estimate must be at most 15 % above the mean drain rate (30 % below): from the
//! processing thread's busy time alone it read 2.7-3.6× the measured throughput (librdkafka's
//! threads and the CFS throttling share the quota and were left out), and a fleet sized on that
//! falls behind.
//!
//! Why so (docs/benchmarks.md, 2 December): under 50m the worker's throughput depended on the
//! backlog's depth (3.4k/s at the start of a burst, 5k/s a minute in) and near 85 % load it
//! flipped between keeping up and falling behind, so neither side of the comparison held still;
//! a rate measured while loadgen produced 30,000/s beside the worker moved by ±15 % between
//! bursts (the machine's two cores busy); a worker's first minute of events costs more CPU per
//! event than later ones. The figures are written to `target/e2e/capacity-limit.json`
//! (`docs/results/capacity-limit.json` is a copy, quoted in docs/benchmarks.md).

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

const CPU_LIMIT: &str = "100m";
const CPU_LIMIT_CORES: f64 = 0.1;
/// The estimate's phase runs at this share of the first burst's saturated rate: below the
/// policy's default target utilization (0.7), where fleets run.
const LOAD_FRACTION: f64 = 0.6;
/// Events/s of a burst: above what the worker carries on any of the reference machines (a 50m
/// worker carried 4.1k-8.6k/s saturated on 2-core VMs).
const SATURATE: f64 = 30000.0;
/// Seconds of the burst that saturates the worker: its processed rate is measured from 4 s to
/// 20 s, while a backlog remains (at 17k/s, twice the fastest 50m worker measured, 80k events
/// are left).
const BURST_SECONDS: f64 = 14.0;
/// Seconds over which a drain's processed rate is measured.
const DRAIN_WINDOW_SECONDS: f64 = 16.0;
/// Estimate-then-saturate cycles; the comparison is the median of all estimates against the
/// mean of the saturated rates.
const CYCLES: usize = 2;
/// The estimate may read the worker at most this much stronger than it is measured saturated
/// (a fleet sized on it falls behind) ...
const ABOVE: f64 = 0.15;
/// ... and at most this much weaker (a fleet sized on it runs more replicas than it needs). Not
/// 15 %: one run of seven (13:10 on 2 December, the machine slow) read −20 % (docs/benchmarks.md).
const BELOW: f64 = 0.3;

/// One cycle: the part load, the operator's estimates during it, the drain after it.
struct Cycle {
    part: PartLoad,
    estimates: Vec<f64>,
    drained: Saturated,
}

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

/// A stretch at part load: the worker's processed rate, thread busy and CPU (cores).
#[derive(Debug, Clone, Copy)]
struct PartLoad {
    events_per_second: f64,
    busy: f64,
    cpu: f64,
}

impl PartLoad {
    fn figures(&self, saturated: f64) -> serde_json::Value {
        json!({"events_per_second": self.events_per_second, "load_fraction": self.events_per_second / saturated,
               "thread_busy_fraction": self.busy, "cpu_fraction_of_limit": self.cpu / CPU_LIMIT_CORES,
               "estimate_from_the_whole_cpu_fraction": self.events_per_second / (self.cpu / CPU_LIMIT_CORES),
               "estimate_from_thread_busy_alone": self.events_per_second / self.busy})
    }
}

/// A saturated stretch: processed rate, thread busy, CPU (worker's and cgroup's, cores),
/// throttled seconds per second and the backlog left at its end.
#[derive(Debug, Clone, Copy)]
struct Saturated {
    events_per_second: f64,
    busy: f64,
    cpu: f64,
    cgroup_cpu_cores: f64,
    throttled: f64,
    lag_after: i64,
}

impl Saturated {
    fn between(a: &Reading, b: &Reading, lag_after: i64) -> Saturated {
        let (events_per_second, busy, cpu, cgroup_cpu_cores, throttled) = rates(a, b);
        Saturated {
            events_per_second,
            busy,
            cpu,
            cgroup_cpu_cores,
            throttled,
            lag_after,
        }
    }

    fn figures(&self) -> serde_json::Value {
        json!({"events_per_second": self.events_per_second, "thread_busy_fraction": self.busy,
               "cpu_fraction_of_limit": self.cpu / CPU_LIMIT_CORES, "cgroup_cpu_cores": self.cgroup_cpu_cores,
               "throttled_fraction": self.throttled, "lag_after": self.lag_after})
    }
}

/// `load` events/s for 44 s; the operator's estimate at each evaluation (every 5 s) over the
/// last 20 s, once a rate window has passed, from its gauge (the status holds the same value
/// rounded and rewritten only when it moves by 10 %).
async fn part_load(
    loadgen: &std::path::Path,
    stack: &Stack,
    raw: &str,
    op: &OperatorProcess,
    ns: &str,
    read: &dyn Fn() -> Reading,
    load: f64,
) -> (PartLoad, Vec<f64>) {
    let mut run =
        LoadgenRun::start_program(loadgen, stack, raw, &format!("constant:{load:.0}"), 44.0, 1);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(22)).await;
    let a0 = read();
    let gauge = format!(
        "impressions_operator_pipeline_capacity_per_replica{{namespace=\"{ns}\",pipeline=\"cap\"}}"
    );
    let mut estimates = Vec::new();
    while start.elapsed() < Duration::from_secs(42) {
        let cap = parse_metric(&op.metrics(), &gauge);
        if cap > 0.0 && estimates.last() != Some(&cap) {
            estimates.push(cap);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let a1 = read();
    run.wait();
    let (events_per_second, busy, cpu, ..) = rates(&a0, &a1);
    (
        PartLoad {
            events_per_second,
            busy,
            cpu,
        },
        estimates,
    )
}

/// Loadgen producing [`SATURATE`] events/s for `seconds`.
fn saturating(
    loadgen: &std::path::Path,
    stack: &Stack,
    raw: &str,
    seconds: f64,
    seed: u64,
) -> LoadgenRun {
    LoadgenRun::start_program(
        loadgen,
        stack,
        raw,
        &format!("constant:{SATURATE}"),
        seconds,
        seed,
    )
}

/// The warm-up: [`SATURATE`] events/s for [`BURST_SECONDS`], the worker's processed rate over
/// 16 s from its own counter while the backlog grows (loadgen and the broker busy beside it).
async fn warm_up(
    loadgen: &std::path::Path,
    stack: &Stack,
    raw: &str,
    sampler: &Sampler,
    read: &dyn Fn() -> Reading,
) -> Saturated {
    let mut run = saturating(loadgen, stack, raw, BURST_SECONDS, 2);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let b0 = read();
    tokio::time::sleep(Duration::from_secs(16)).await;
    let b1 = read();
    let lag_after = backlog(sampler);
    run.wait();
    Saturated::between(&b0, &b1, lag_after)
}

/// A backlog the worker drains alone: [`SATURATE`] events/s for `seconds`, then, once loadgen
/// has stopped, the worker's processed rate over [`DRAIN_WINDOW_SECONDS`] while the backlog
/// lasts. Only the broker serves it meanwhile, as in a region whose fleet catches up.
async fn drain(
    loadgen: &std::path::Path,
    stack: &Stack,
    raw: &str,
    sampler: &Sampler,
    read: &dyn Fn() -> Reading,
    seconds: f64,
) -> Saturated {
    let mut run = saturating(loadgen, stack, raw, seconds, 3);
    run.wait();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b0 = read();
    tokio::time::sleep(Duration::from_secs_f64(DRAIN_WINDOW_SECONDS)).await;
    let b1 = read();
    Saturated::between(&b0, &b1, backlog(sampler))
}

/// The consumer group's lag at the sampler's newest sample (0 when none).
fn backlog(sampler: &Sampler) -> i64 {
    sampler
        .since(sampler.now() - 3.0)
        .last()
        .map_or(0, |s| s.lag)
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

    // A warm-up burst first: a worker's first minute of events costs more CPU per event than
    // later ones (its buffers and caches grow), and fleets are sized on warm workers. Its rate,
    // measured while loadgen produces 30,000/s beside it, sets the part load and the drains'
    // size; it is not compared (the machine's other load moved it by ±15 % between bursts).
    let warm = warm_up(&loadgen, stack, &raw, &sampler, &read).await;
    let load = (LOAD_FRACTION * warm.events_per_second).round();
    // Each drain's backlog lasts its window with a third to spare.
    let produce_seconds = (1.3 * warm.events_per_second * (DRAIN_WINDOW_SECONDS + 2.0)
        / (SATURATE - warm.events_per_second))
        .clamp(4.0, 60.0);
    // Two cycles, so that neither side of the comparison rests on one stretch of a noisy
    // machine: the part load (the operator's estimate at each evaluation), then a backlog the
    // worker drains alone (its own counter).
    let mut estimates = Vec::new();
    let mut cycles: Vec<Cycle> = Vec::new();
    let mut status_estimate = None;
    for _ in 0..CYCLES {
        // Drained: the estimate is made at part load, not on a backlog.
        eventually(Duration::from_secs(120), "the backlog drained", || async {
            let lag = sampler.since(sampler.now() - 2.0).last().map(|s| s.lag)?;
            ((lag as f64) < load).then_some(())
        })
        .await;
        let (part, part_estimates) = part_load(&loadgen, stack, &raw, &op, &ns, &read, load).await;
        status_estimate = pipelines
            .get("cap")
            .await
            .unwrap()
            .status
            .and_then(|s| s.throughput)
            .and_then(|t| t.capacity_per_replica);
        let drained = drain(&loadgen, stack, &raw, &sampler, &read, produce_seconds).await;
        estimates.extend(part_estimates.iter().copied());
        cycles.push(Cycle {
            part,
            estimates: part_estimates,
            drained,
        });
    }
    let saturated_rates: Vec<f64> = cycles.iter().map(|c| c.drained.events_per_second).collect();
    let saturated = saturated_rates.iter().sum::<f64>() / saturated_rates.len() as f64;
    let backlog = cycles
        .iter()
        .map(|c| c.drained.lag_after)
        .min()
        .unwrap_or(0);
    let sat_cgroup_cpu = cycles
        .iter()
        .map(|c| c.drained.cgroup_cpu_cores)
        .fold(f64::INFINITY, f64::min);
    estimates.sort_by(f64::total_cmp);
    let estimate = estimates.get(estimates.len() / 2).copied();
    let error = estimate.map(|e| (e - saturated) / saturated);
    let figures = json!({
        "date": k8s_openapi::jiff::Timestamp::now().to_string(),
        "command": "cargo test -p impressions-stack-tests --test capacity_limit -- --nocapture (in make test)",
        "cpu_limit": CPU_LIMIT,
        "idle_cpu_cores": idle,
        "warm_up": warm.figures(),
        "drain_backlog_produced_seconds": produce_seconds,
        "cycles": cycles.iter().map(|c| json!({
            "half_load": c.part.figures(saturated),
            "estimates": c.estimates,
            "saturated": c.drained.figures(),
        })).collect::<Vec<_>>(),
        "estimates": estimates, "estimate": estimate, "saturated_events_per_second": saturated,
        "relative_error": error,
        "status_capacity_per_replica": status_estimate,
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
        backlog as f64 > 2.0 * load,
        "the backlog ran out within a drain's window: the worker was not saturated ({saturated:.0}/s processed)\n{figures:#}"
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
