//! The worker's capacity under a real CPU limit: two identical worker pods run from the worker
//! image as runc containers (node agent `--runtime runc`), each with `resources.limits.cpu: 100m`
//! and no rate cap, each a pipeline of its own. Idle, each worker measures its fixed CPU
//! (`impressions_worker_cpu_idle_cores`); a burst of 15,000 events/s to each warms both up and
//! sizes the rest. Then, twice, one worker runs at 70 % of its warm-up's rate (the policy's
//! target utilization) while the operator's capacity estimate for it (processed rate / busy
//! fraction, the busy fraction being the larger of the processing thread's busy time and
//! (CPU − idle CPU) / limit) is read from the operator's gauge at each evaluation,
//! and **at the same time** its twin drains a backlog: the twin's processed rate over the same
//! 20 s, from its own counter, is the measured capacity of one limited worker. The second cycle
//! swaps the roles, so neither worker's own quirks side with one part of the comparison. The
//! saturated twin must use its CPU limit (the limit, not Kafka, bounds it) and keep a backlog to
//! the end, and the mean of the cycles' errors (each cycle's median estimate against its twin's
//! rate) must be within 15 %, both ways.
//! From the processing thread's busy time alone the estimate read 2.7-3.6× the measured
//! throughput (librdkafka's threads and the CFS throttling share the quota and were left out),
//! and a fleet sized on that falls behind.
//!
//! Why twins at the same time (docs/benchmarks.md, 2 December): this machine's speed drifts by
//! ±10 % over minutes (a fixed compute loop's CPU time and one worker's CPU per event moved
//! alike), so a worker's estimate at part load and its own saturated rate a minute later
//! disagreed by −15 % to +14 % from that drift alone; measured in the same seconds, both sides
//! see the same machine. A drain beside a producer of the part load's rate ran within 4 % of
//! one without it: the neighbour's load is not what moved. Under 50m the worker's throughput
//! depended on the backlog's depth and near 85 % load flipped between keeping up and falling
//! behind, so 100m it is. A worker's first minute of events costs more CPU per event than later
//! ones, hence the warm-up. The figures are written to `target/e2e/capacity-limit.json`
//! (`docs/results/capacity-limit.json` is a copy, quoted in docs/benchmarks.md).

use std::{
    path::Path,
    time::{Duration, Instant},
};

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
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

const CPU_LIMIT: &str = "100m";
const CPU_LIMIT_CORES: f64 = 0.1;
/// The twins' pipelines.
const TWINS: [&str; 2] = ["one", "two"];
/// The estimate's phase runs at this share of the worker's warm-up rate: the policy's default
/// target utilization, where the autoscaler holds a fleet (the warm-up reads 0.85-1.0 of what a
/// twin then carries, so the load is 60-70 % of the capacity). At 45-55 % the estimate read
/// 7-17 % low: full fetches and produce batches cost less CPU per event than part-full ones.
const LOAD_FRACTION: f64 = 0.7;
/// Events/s of a backlog's burst: well above what a 100m worker carries on any of the reference
/// machines (6.4k-9.2k/s saturated on 2-core VMs).
const SATURATE: f64 = 30000.0;
/// The warm-up: half of [`SATURATE`] to each twin (so that loadgen and the broker carry what
/// they carry for one burst: with 30,000/s to each, the twins' rates read 20 % under what one
/// of them then drained at) for this many seconds; the rates are measured from 4 s to 20 s, while
/// a backlog remains (at 12k/s, 1.3× the fastest 100m worker measured, none is left at 20 s).
const BURST_SECONDS: f64 = 16.0;
/// Seconds of a part-load stretch; the estimates and the twin's rate are read from
/// [`MEASURE_FROM`] to [`MEASURE_TO`] into it (the operator's rate window is 15 s).
const PART_LOAD_SECONDS: f64 = 44.0;
const MEASURE_FROM: f64 = 22.0;
const MEASURE_TO: f64 = 42.0;
/// The estimate may read a worker at most this much stronger than its twin measured saturated
/// (a fleet sized on it falls behind) and at most this much weaker (a fleet sized on it runs
/// more replicas than it needs).
const ABOVE: f64 = 0.15;
const BELOW: f64 = 0.15;

/// What a worker's /metrics and its cgroup said at one moment.
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

/// Per second between two readings: events, and busy, CPU, cgroup CPU and throttled seconds.
#[derive(Debug, Clone, Copy)]
struct Rates {
    events_per_second: f64,
    busy: f64,
    cpu: f64,
    cgroup_cpu: f64,
    throttled: f64,
}

impl Rates {
    fn between(a: &Reading, b: &Reading) -> Rates {
        let dt = (b.at - a.at).as_secs_f64();
        Rates {
            events_per_second: (b.processed - a.processed) / dt,
            busy: (b.busy_s - a.busy_s) / dt,
            cpu: (b.cpu_s - a.cpu_s) / dt,
            cgroup_cpu: (b.cgroup_cpu_s - a.cgroup_cpu_s) / dt,
            throttled: (b.throttled_s - a.throttled_s) / dt,
        }
    }

    fn figures(&self) -> serde_json::Value {
        json!({"events_per_second": self.events_per_second, "thread_busy_fraction": self.busy,
               "cpu_fraction_of_limit": self.cpu / CPU_LIMIT_CORES, "cgroup_cpu_cores": self.cgroup_cpu,
               "throttled_fraction": self.throttled,
               "estimate_from_the_whole_cpu_fraction": self.events_per_second / (self.cpu / CPU_LIMIT_CORES),
               "estimate_from_thread_busy_alone": self.events_per_second / self.busy})
    }
}

/// One worker pod of the twins: its pipeline, raw topic, metrics endpoint and cgroup, and a
/// sampler of its consumer group's lag.
struct Worker {
    pipeline: &'static str,
    raw: String,
    addr: String,
    /// The container's cgroup under each controller's hierarchy (cgroup v1).
    cgroup: String,
    sampler: Sampler,
}

impl Worker {
    fn metrics(&self) -> String {
        http_get_at(self.addr.as_str(), "/metrics")
            .expect("the worker's /metrics")
            .1
    }

    fn cgroup_file(&self, controller: &str, file: &str) -> String {
        let path = format!("/sys/fs/cgroup/{controller}/{}/{file}", self.cgroup);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn read(&self) -> Reading {
        let text = self.metrics();
        let metric = |name: &str| parse_metric(&text, name);
        let throttled_ns: f64 = self
            .cgroup_file("cpu", "cpu.stat")
            .lines()
            .find_map(|l| l.strip_prefix("throttled_time "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        let usage_ns: f64 = self
            .cgroup_file("cpuacct", "cpuacct.usage")
            .trim()
            .parse()
            .unwrap();
        Reading {
            at: Instant::now(),
            processed: metric("impressions_worker_events_processed_total"),
            busy_s: metric("impressions_worker_busy_seconds_total"),
            cpu_s: metric("impressions_worker_cpu_seconds_total"),
            cgroup_cpu_s: usage_ns / 1e9,
            throttled_s: throttled_ns / 1e9,
        }
    }

    /// The consumer group's lag at the sampler's newest sample (0 when none).
    fn backlog(&self) -> i64 {
        let s = &self.sampler;
        s.since(s.now() - 3.0).last().map_or(0, |s| s.lag)
    }

    /// Loadgen writing `events_per_second` to this worker's topic for `seconds`.
    fn produce(
        &self,
        loadgen: &Path,
        stack: &Stack,
        events_per_second: f64,
        seconds: f64,
        seed: u64,
    ) -> LoadgenRun {
        let trace = format!("constant:{events_per_second:.0}");
        LoadgenRun::start_program(loadgen, stack, &self.raw, &trace, seconds, seed)
    }
}

/// Creates one twin's topics and pipeline (one replica, the namespace's policy).
async fn pipeline(client: &Client, stack: &Stack, ns: &str, name: &str, image: &str) -> String {
    let raw = kafka::pipeline_topics(stack, &format!("{ns}-{name}")).await;
    let spec = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": name},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": raw, "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{ns}-{name}-out"), "deadLetterTopic": format!("{ns}-{name}-dlq")},
                 "enrichment": {"catalog": {"topic": format!("{ns}-{name}-titles")}},
                 "worker": {"image": image, "threads": 1, "drainTimeoutSeconds": 5,
                            "resources": {"requests": {"cpu": CPU_LIMIT, "memory": "256Mi"}, "limits": {"cpu": CPU_LIMIT, "memory": "512Mi"}}},
                 "scaling": {"mode": "Auto", "policyRef": ns, "minReplicas": 1, "maxReplicas": 1}}});
    Api::<ImpressionPipeline>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(spec).unwrap(),
        )
        .await
        .unwrap();
    raw
}

/// The pipeline's worker once its pod is Ready: its metrics address (pod IP) and cgroup (node
/// agent: /sys/fs/cgroup/<controller>/impressions-node-agent/<namespace>_<pod>).
async fn ready_worker(client: &Client, ns: &str, pipeline: &'static str, raw: String) -> Worker {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("app.kubernetes.io/instance={pipeline}");
    let (addr, pod) = eventually(Duration::from_secs(90), "the worker pod Ready", || async {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?;
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
    let sampler = Sampler::start(
        client.clone(),
        ns,
        &format!("{pipeline}-worker"),
        &raw,
        &format!("{ns}.{pipeline}"),
    );
    Worker {
        pipeline,
        raw,
        addr,
        cgroup: format!("impressions-node-agent/{ns}_{pod}"),
        sampler,
    }
}

/// The warm-up: [`SATURATE`] / 2 events/s to each twin for [`BURST_SECONDS`]; each worker's rate
/// over 16 s while its backlog grows.
async fn warm_up(loadgen: &Path, stack: &Stack, twins: &[Worker; 2]) -> [(Rates, i64); 2] {
    let mut runs: Vec<LoadgenRun> = twins
        .iter()
        .map(|w| w.produce(loadgen, stack, SATURATE / 2.0, BURST_SECONDS, 2))
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let a = twins.each_ref().map(Worker::read);
    tokio::time::sleep(Duration::from_secs(16)).await;
    let b = twins.each_ref().map(Worker::read);
    for r in &mut runs {
        r.wait();
    }
    [0, 1].map(|i| (Rates::between(&a[i], &b[i]), twins[i].backlog()))
}

/// One cycle, measured in the same seconds on both twins.
struct Cycle {
    /// The worker at part load: its rates, and the operator's estimates of its capacity.
    part: Rates,
    estimates: Vec<f64>,
    /// Its twin, draining a backlog: its rates and the backlog left at the end.
    saturated: Rates,
    backlog_after: i64,
}

impl Cycle {
    /// The median of the operator's estimates.
    fn estimate(&self) -> Option<f64> {
        let mut e = self.estimates.clone();
        e.sort_by(f64::total_cmp);
        e.get(e.len() / 2).copied()
    }

    /// The median estimate's error against the twin's saturated rate.
    fn error(&self) -> Option<f64> {
        let saturated = self.saturated.events_per_second;
        self.estimate().map(|e| (e - saturated) / saturated)
    }
}

/// `part` at `load` events/s for [`PART_LOAD_SECONDS`] while `saturated` drains a backlog
/// produced just before (sized to outlast the stretch by half); the operator's estimate for
/// `part` at each evaluation (every 5 s) from its gauge (the status holds the same value
/// rounded and rewritten only when it moves by 10 %), and both workers' rates, from
/// [`MEASURE_FROM`] to [`MEASURE_TO`].
async fn cycle(
    loadgen: &Path,
    stack: &Stack,
    op: &OperatorProcess,
    ns: &str,
    (part, saturated): (&Worker, &Worker),
    load: f64,
    saturated_rate: f64,
) -> Cycle {
    // Both drained: the estimate is made at part load, not on a backlog.
    for w in [part, saturated] {
        eventually(Duration::from_secs(120), "the backlog drained", || async {
            let lag = w
                .sampler
                .since(w.sampler.now() - 2.0)
                .last()
                .map(|s| s.lag)?;
            ((lag as f64) < load).then_some(())
        })
        .await;
    }
    let produce_seconds = (1.5 * saturated_rate * (PART_LOAD_SECONDS + 2.0)
        / (SATURATE - saturated_rate))
        .clamp(4.0, 90.0);
    saturated
        .produce(loadgen, stack, SATURATE, produce_seconds, 3)
        .wait();

    let mut run = part.produce(loadgen, stack, load, PART_LOAD_SECONDS, 1);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(MEASURE_FROM)).await;
    let (p0, s0) = (part.read(), saturated.read());
    let gauge = format!(
        "impressions_operator_pipeline_capacity_per_replica{{namespace=\"{ns}\",pipeline=\"{}\"}}",
        part.pipeline
    );
    let mut estimates = Vec::new();
    while start.elapsed() < Duration::from_secs_f64(MEASURE_TO) {
        let cap = parse_metric(&op.metrics(), &gauge);
        if cap > 0.0 && estimates.last() != Some(&cap) {
            estimates.push(cap);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (p1, s1) = (part.read(), saturated.read());
    let backlog_after = saturated.backlog();
    run.wait();
    Cycle {
        part: Rates::between(&p0, &p1),
        estimates,
        saturated: Rates::between(&s0, &s1),
        backlog_after,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_capacity_estimate_matches_a_cpu_limited_workers_throughput() {
    let stack = Stack::get();
    let image = images::image("worker");
    images::require(&image);
    // The release build of loadgen (`make images` builds it): at 30,000 events/s the debug build
    // takes most of a core from the machine the workers and the broker share.
    let loadgen = impressions_tests::repo_root().join("target/release/loadgen");
    assert!(
        loadgen.exists(),
        "{} is missing: `make images` (or cargo build --release --bin loadgen) builds it",
        loadgen.display()
    );
    let client = stack.client().await;
    cluster::install_crds(&client).await.unwrap();
    let ns = cluster::namespace(&client, &unique("cap")).await.unwrap();

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
    let mut raws = Vec::new();
    for name in TWINS {
        raws.push(pipeline(&client, stack, &ns, name, &image).await);
    }
    let agent = NodeAgentProcess::start_containers(stack, &ns);
    let op = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &["--prometheus-url", &stack.prometheus_url],
    );
    let mut raws = raws.into_iter();
    let twins = [
        ready_worker(&client, &ns, TWINS[0], raws.next().unwrap()).await,
        ready_worker(&client, &ns, TWINS[1], raws.next().unwrap()).await,
    ];
    for w in &twins {
        let limit = parse_metric(&w.metrics(), "impressions_worker_cpu_limit_cores");
        assert_eq!(
            limit, CPU_LIMIT_CORES,
            "{} reads its cgroup's limit",
            w.pipeline
        );
    }

    // Each worker measures its fixed CPU (librdkafka's requests, the producer's poll, the HTTP
    // server) over a stretch of at least 5 s without events, from the scrapes' samples
    // (Prometheus every 2 s, and these reads); the operator's cpuFraction subtracts it.
    let mut idle = Vec::new();
    for w in &twins {
        let cores = eventually(
            Duration::from_secs(20),
            "the worker's idle CPU measured",
            || async {
                let (_, text) = http_get_at(w.addr.as_str(), "/metrics")?;
                text.contains("impressions_worker_cpu_idle_cores ")
                    .then(|| parse_metric(&text, "impressions_worker_cpu_idle_cores"))
            },
        )
        .await;
        assert!(
            cores > 0.0 && cores <= 0.5 * CPU_LIMIT_CORES,
            "{}: idle CPU {cores} cores under a {CPU_LIMIT} limit",
            w.pipeline
        );
        idle.push(cores);
    }
    tokio::time::sleep(Duration::from_secs(4)).await; // Prometheus scrapes it

    // A warm-up burst first: a worker's first minute of events costs more CPU per event than
    // later ones (its buffers and caches grow), and fleets are sized on warm workers. Each
    // worker's rate in it sizes its part load and the backlog its twin drains; it is not
    // compared (measured while loadgen produces 30,000/s beside it).
    let warm = warm_up(&loadgen, stack, &twins).await;
    let warm_rate = warm.map(|(r, _)| r.events_per_second);
    // Twice, one at part load and its twin saturated; then the other way round.
    let mut cycles = Vec::new();
    for (p, s) in [(0, 1), (1, 0)] {
        let load = (LOAD_FRACTION * warm_rate[p]).round();
        let c = cycle(
            &loadgen,
            stack,
            &op,
            &ns,
            (&twins[p], &twins[s]),
            load,
            warm_rate[s],
        )
        .await;
        cycles.push((p, load, c));
    }

    // Each cycle's median estimate against its twin's rate in the same seconds; the error is the
    // mean of the two cycles' (the machine's speed may differ between the cycles: a pooled
    // median against a pooled mean would compare stretches a minute apart again).
    let errors: Option<Vec<f64>> = cycles.iter().map(|(_, _, c)| c.error()).collect();
    let error = errors.map(|e| e.iter().sum::<f64>() / e.len() as f64);
    let mean = |f: &dyn Fn(&Cycle) -> f64| {
        cycles.iter().map(|(_, _, c)| f(c)).sum::<f64>() / cycles.len() as f64
    };
    let estimate = mean(&|c| c.estimate().unwrap_or(0.0));
    let saturated = mean(&|c| c.saturated.events_per_second);
    let figures = json!({
        "date": k8s_openapi::jiff::Timestamp::now().to_string(),
        "command": "cargo test -p impressions-stack-tests --test capacity_limit -- --nocapture (in make test)",
        "cpu_limit": CPU_LIMIT,
        "idle_cpu_cores": idle,
        "warm_up": warm.iter().map(|(r, lag)| json!({"rates": r.figures(), "lag_after": lag})).collect::<Vec<_>>(),
        "cycles": cycles.iter().map(|(p, load, c)| json!({
            "part_load_worker": TWINS[*p], "load": load, "part_load": c.part.figures(),
            "estimates": c.estimates, "estimate": c.estimate(),
            "saturated_worker": TWINS[1 - p], "saturated": c.saturated.figures(), "backlog_after": c.backlog_after,
            "relative_error": c.error(),
        })).collect::<Vec<_>>(),
        "estimate_mean_of_cycles": estimate, "saturated_events_per_second": saturated,
        "relative_error": error,
    });
    let out = impressions_tests::repo_root().join("target/e2e");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("capacity-limit.json"),
        serde_json::to_string_pretty(&figures).unwrap(),
    )
    .unwrap();
    eprintln!("{figures:#}");

    for (_, load, c) in &cycles {
        assert!(
            c.backlog_after as f64 > 2.0 * load,
            "the backlog ran out during the part load: the twin was not saturated to the end\n{figures:#}"
        );
        assert!(
            c.saturated.cgroup_cpu >= 0.7 * CPU_LIMIT_CORES,
            "saturated, the container used {:.3} cores of its {CPU_LIMIT}: something else than the CPU limit bounds it\n{figures:#}",
            c.saturated.cgroup_cpu
        );
    }
    let Some(error) = error else {
        panic!(
            "no capacity estimate from the operator\n{figures:#}\n{}\n{}",
            op.log_tail(),
            agent.log_tail()
        );
    };
    assert!(
        (-BELOW..=ABOVE).contains(&error),
        "capacity estimate {estimate:.0}/s vs measured {saturated:.0}/s under a {CPU_LIMIT} CPU limit (means of the cycles): {:+.0} % (allowed {:+.0} % to {:+.0} %)\n{figures:#}\n{}",
        error * 100.0,
        -BELOW * 100.0,
        ABOVE * 100.0,
        op.log_tail()
    );

    drop(twins);
    drop(agent);
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
}
