//! `chaos [AtLeastOnce|ExactlyOnce] [--only FAULT,…]`: faults on the real stack while pipelines
//! run under load, one after the other, each bounded in time: kill -9 of workers during steady
//! load and during a scale-up, a Kafka broker killed and restarted, the broker hung (SIGSTOP)
//! for 30 s, Prometheus down and hung for 2 minutes each, an API server restart, the operator
//! leader killed, and a pipeline deleted under load.
//!
//! Three pipelines of one namespace: `chaos` (the one the faults aim at: up to 8 workers at
//! 1,000 events/s), `side` (100 events/s, up to 2 workers: another pipeline the operator must
//! keep evaluating) and `gone` (created before the last fault and deleted under load).
//!
//! Each fault must happen (a kill with no process to kill, a scale-up that never came, no
//! leader to kill, a hang nobody met fail the run) and, per fault: nothing lost (every valid
//! impression has a record and every invalid event a dead letter, nothing invented),
//! duplicates 0 under ExactlyOnce and within a bound under AtLeastOnce, the lag back under 2 s of
//! input within a bound, no wrong scaling action (every replica change judged against the
//! operator's decision log, `impressions_tests::decisions`), and for the new faults the other
//! pipelines evaluated on time. Bounds and their reasons are in the constants below and in
//! docs/reliability.md.
//!
//! It restarts stack components: run it on a stack of its own (`make chaos` does). Writes
//! `target/chaos/chaos-<guarantee>.json` and prints a Markdown table for docs/reliability.md.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use impressions_crds::ImpressionPipeline;
use impressions_tests::{
    Stack, cluster,
    decisions::{self, DecisionLog, Interval, Rules, Verdict},
    kafka::{self, Isolation},
    observe::{Account, Clock, Outputs, Sample, Sampler, Skipped},
    operator::OperatorProcess,
    processes::{LoadgenRun, NodeAgentProcess},
    repo_root, unique,
};
use impressions_worker::loadgen::Kind;
use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde::Serialize;
use serde_json::json;

/// Events per second one worker may process (its emulated CPU).
const CAP: u64 = 500;
const STEADY: f64 = 1000.0;
const SIDE_RATE: f64 = 100.0;
const GONE_RATE: f64 = 300.0;
/// The policy: evaluations every 5 s, a 30 s scale-down window.
const INTERVAL: f64 = 5.0;
const DOWN_WINDOW: f64 = 30.0;
/// The evaluation loop's tick, and the deadlines it puts on one evaluation's reads
/// (`operator/src/autoscale/evaluator.rs`, `signals/prometheus.rs`).
const TICK: f64 = 1.0;
const KAFKA_DEADLINE: f64 = 10.0;
const PROMETHEUS_DEADLINE: f64 = 5.0;
/// Scheduling on a shared 2-core machine (debug builds, a dozen processes).
const SLACK: f64 = 4.0;
/// The longest an evaluation may take when both its reads hang: between two logged evaluations
/// of a pipeline at most this passes (a longer gap does not cover a scale-down window).
const MAX_GAP: f64 = INTERVAL + TICK + KAFKA_DEADLINE + PROMETHEUS_DEADLINE;
/// An evaluation is applied (trigger, reconcile, server-side apply) and sampled within this
/// (besides the time the API server was away).
const APPLY_WITHIN: f64 = 20.0;
/// How long after a metrics fault the operator's reads may still fail (librdkafka reconnects
/// with a back-off up to 10 s; Prometheus's 15 s rate window refills): a fault hid the metrics
/// until its end or the last failed read the log shows within this after it, whichever is later.
const BLIND_AFTER: f64 = 30.0;
/// The workers' `auto.commit.interval.ms` (`worker/src/kafka/client.rs`): at-least-once, what a
/// rebalance may redeliver is at most what was processed in one commit interval.
const COMMIT_INTERVAL_S: f64 = 1.0;
/// Lag excursions that start later than this after a fault's end are not its doing.
const EFFECT_WITHIN: f64 = 30.0;

/// Bounds on the time from a fault's end until the lag is back under 2 s of input, and why.
const RECOVER_KILL: (f64, &str) = (
    60.0,
    "the dead member's session (10 s) expires or its restarted process joins, the backlog of at most those seconds is drained within the policy's 30 s catch-up, plus 20 s for process start and the rebalance",
);
const RECOVER_SCALING: (f64, &str) = (
    90.0,
    "as a kill (60 s) while the fleet is still growing to serve 2.5× the load: one more 30 s catch-up",
);
const RECOVER_BROKER: (f64, &str) = (
    60.0,
    "clients reconnect (back-off up to 10 s) and rejoin the group (session 10 s), the backlog of the outage is drained within the 30 s catch-up, plus 10 s",
);
const RECOVER_UNTOUCHED: (f64, &str) = (
    30.0,
    "the workers do not depend on it: any excursion is a rebalance's, drained within the 30 s catch-up",
);

/// The other pipelines' longest gap between evaluations during a fault: the interval, the
/// loop's tick, the deadline of the read that hangs, and scheduling slack.
const ON_TIME_PROMETHEUS_HUNG: f64 = INTERVAL + TICK + PROMETHEUS_DEADLINE + SLACK;
const ON_TIME_BROKER_HUNG: f64 = INTERVAL + TICK + KAFKA_DEADLINE + SLACK;
const ON_TIME: f64 = INTERVAL + TICK + SLACK;
/// A deleted pipeline is forgotten within the loop's 5 s sweep and one evaluation in flight.
const FORGOTTEN_WITHIN: f64 = 5.0 + INTERVAL + SLACK;

const FAULTS: [&str; 9] = [
    "worker-kill",
    "worker-kill-scaling",
    "broker-kill",
    "broker-hang",
    "prometheus-down",
    "prometheus-hang",
    "apiserver-restart",
    "leader-kill",
    "pipeline-delete",
];

fn stack_cmd(args: &[&str]) -> Result<(), String> {
    let ok = Command::new(repo_root().join("tests/stack/stack.sh"))
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!("stack.sh {} failed", args.join(" ")))
    }
}

/// Pids of the worker processes of `deploy` that the node agent runs (their working folder is
/// their pod's, `pods/<ns>_<deploy>-…`, and their program is the worker).
fn worker_pids(state_dir: &Path, ns: &str, deploy: &str) -> Vec<u32> {
    let prefix = format!("{ns}_{deploy}-");
    let pods = state_dir.join("pods");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            let pod = cwd.strip_prefix(&pods).ok()?.components().next()?;
            let exe = std::fs::read_link(e.path().join("exe")).ok()?;
            let is_worker = exe
                .file_name()?
                .to_str()?
                .split(' ')
                .next()
                .is_some_and(|n| n == "worker");
            (is_worker && pod.as_os_str().to_str()?.starts_with(&prefix) && !zombie(pid))
                .then_some(pid)
        })
        .collect()
}

/// A process that exited and was not reaped yet (or is gone).
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(after == 'Z' || after == 'X')
        })
        .unwrap_or(true)
}

/// SIGKILL, then proof that the process died within 5 s.
fn kill9(pid: u32) -> Result<(), String> {
    let sent = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        return Err(format!("kill -9 {pid} failed"));
    }
    for _ in 0..50 {
        if zombie(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("process {pid} still runs 5 s after kill -9"))
}

/// Sends `request` to `addr` and tells whether anything came back within 3 s; an error when
/// the connection itself fails (refused: a stopped component, not a hung one).
fn answers(addr: &str, request: &[u8]) -> Result<bool, String> {
    let sock: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    s.write_all(request)
        .map_err(|e| format!("writing to {addr}: {e}"))?;
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(n) => Ok(n > 0),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(format!("reading from {addr}: {e}")),
    }
}

/// A Kafka ApiVersions v0 request (any live broker answers it).
fn api_versions_request() -> Vec<u8> {
    let client = b"chaos";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

const HTTP_READY: &[u8] = b"GET /-/ready HTTP/1.0\r\n\r\n";

/// Proof of a hang: the port accepts the connection and nothing answers `request`.
fn hang_met(addr: &str, request: &[u8]) -> Result<(), String> {
    match answers(addr, request)? {
        false => Ok(()),
        true => Err(format!("{addr} answered: it is not hung")),
    }
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The lag above which a pipeline counts as behind: 2 s of input, and at least 1,000 events
/// (one worker's commit interval and batch at a low rate is not an excursion).
fn behind(s: &Sample) -> bool {
    s.lag as f64 > (2.0 * s.input).max(1000.0)
}

/// Seconds from `to` until the last lag excursion that began between `from` and
/// `to + EFFECT_WITHIN` ended (0 if none outlasted `to`); `None` if one never ended.
fn recovery(samples: &[Sample], from: f64, to: f64) -> Option<f64> {
    let mut rec = 0.0f64;
    let mut open = false;
    for s in samples.iter().filter(|s| s.t >= from) {
        match (behind(s), open) {
            (true, false) => {
                if s.t > to + EFFECT_WITHIN {
                    break;
                }
                open = true;
            }
            (false, true) => {
                rec = rec.max(s.t - to);
                open = false;
            }
            _ => {}
        }
    }
    (!open).then_some(rec)
}

/// The replica counts between two times, as a sequence of changes.
fn replicas(samples: &[Sample], from: f64, until: f64) -> String {
    let mut out: Vec<i32> = Vec::new();
    for s in samples.iter().filter(|s| s.t >= from && s.t < until) {
        if out.last() != Some(&s.replicas) {
            out.push(s.replicas);
        }
    }
    out.iter().map(i32::to_string).collect::<Vec<_>>().join("→")
}

/// One pipeline of the run.
#[derive(Debug)]
struct Pipe {
    name: &'static str,
    raw: String,
    sampler: Option<Sampler>,
    /// What a dropped sampler had gathered.
    kept: (Vec<Sample>, Vec<Skipped>),
}

impl Pipe {
    fn deploy(&self) -> String {
        format!("{}-worker", self.name)
    }

    fn samples(&self) -> Vec<Sample> {
        let mut s = self.kept.0.clone();
        if let Some(x) = &self.sampler {
            s.extend(x.since(0.0));
        }
        s
    }

    fn skipped(&self, from: f64, to: f64) -> Vec<Skipped> {
        let mut s: Vec<Skipped> = self
            .kept
            .1
            .iter()
            .filter(|k| k.t >= from && k.t < to)
            .cloned()
            .collect();
        if let Some(x) = &self.sampler {
            s.extend(x.skipped(from, to));
        }
        s
    }

    fn last(&self) -> Option<Sample> {
        self.sampler.as_ref()?.since(0.0).last().copied()
    }

    fn stop_sampling(&mut self) {
        if let Some(s) = self.sampler.take() {
            self.kept.0.extend(s.since(0.0));
            self.kept.1.extend(s.skipped(0.0, f64::INFINITY));
        }
    }
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

#[derive(Debug)]
struct LoadRun {
    pipe: usize,
    rate: f64,
    run: LoadgenRun,
}

/// One fault: its load, its window and what it must show.
#[derive(Debug)]
struct Phase {
    fault: &'static str,
    /// When its first load started.
    start: f64,
    /// The fault's window (from = to for an instant fault such as a kill).
    from: f64,
    to: f64,
    runs: Vec<LoadRun>,
    notes: Vec<String>,
    /// Workers of `chaos` killed (each leaves the group and rejoins: two rebalances).
    killed: usize,
    /// The broker restarted or hung: every member rejoins (one rebalance).
    broker: bool,
    recover_bound: Option<(f64, &'static str)>,
    /// The bound of the other pipelines' longest gap between evaluations.
    on_time: Option<f64>,
    /// Pipelines that must keep being evaluated on time.
    evaluated: Vec<usize>,
    /// Until when the fault's aftermath is watched (evaluation gaps); `to + 10 s` if not set.
    watch_until: Option<f64>,
    failures: Vec<String>,
}

impl Phase {
    fn new(fault: &'static str, start: f64) -> Phase {
        Phase {
            fault,
            start,
            from: start,
            to: start,
            runs: Vec::new(),
            notes: Vec::new(),
            killed: 0,
            broker: false,
            recover_bound: None,
            on_time: None,
            evaluated: Vec::new(),
            watch_until: None,
            failures: Vec::new(),
        }
    }

    fn fail(&mut self, what: String) {
        eprintln!("!! {}: {what}", self.fault);
        self.failures.push(what);
    }
}

struct Run<'a> {
    stack: &'a Stack,
    client: Client,
    ns: String,
    guarantee: String,
    clock: Clock,
    pipes: Vec<Pipe>,
    agent: NodeAgentProcess,
    ops: HashMap<String, OperatorProcess>,
    /// Every operator process's log, in start order (the decision log's sources).
    op_logs: Vec<PathBuf>,
    seed: u64,
    /// When faults hid the metrics, and when decisions could not be applied.
    blind: Vec<Interval>,
    stalls: Vec<Interval>,
    /// Operators that exited and were restarted (time, note).
    restarts: Vec<(f64, String)>,
    /// Per operator: its restarts in a row and when it was last restarted (the back-off).
    backoff: HashMap<String, (u32, f64)>,
}

impl Run<'_> {
    fn now(&self) -> f64 {
        self.clock.now()
    }

    fn start_op(&mut self, id: &str) -> OperatorProcess {
        let args = [
            "--prometheus-url",
            self.stack.prometheus_url.as_str(),
            "--leader-election",
            "--lease-namespace",
            self.ns.as_str(),
            "--identity",
            id,
            "--lease-duration-seconds",
            "10",
        ];
        let op = OperatorProcess::start(self.stack, "local", &self.ns, &args);
        self.op_logs.push(op.log.clone());
        op
    }

    /// Restarts operators that exited, as their pods would be: after a back-off that doubles
    /// from 1 s to at most 10 s while restarts come within 30 s of each other (an operator that
    /// cannot reach the API server exits at once).
    fn revive(&mut self) {
        let now = self.now();
        let exited: Vec<(String, String)> = self
            .ops
            .iter_mut()
            .filter_map(|(id, op)| {
                let status = op.child.try_wait().ok().flatten()?;
                Some((id.clone(), status.to_string()))
            })
            .collect();
        for (id, status) in exited {
            let (n, last) = self.backoff.get(&id).copied().unwrap_or((0, f64::MIN));
            let n = if now - last > 30.0 { 0 } else { n };
            if now < last + f64::from(2u32.pow(n.min(4))).min(10.0) {
                continue;
            }
            self.backoff.insert(id.clone(), (n + 1, now));
            let t = now;
            eprintln!("   {id} exited ({status}) at {t:.0} s: restarting it");
            self.restarts.push((
                t,
                format!("{id} exited ({status}) at {t:.0} s, restarted as its pod would be"),
            ));
            let op = self.start_op(&id);
            self.ops.insert(id, op);
        }
    }

    /// Sleeps, restarting exited operators every second.
    async fn sleep(&mut self, secs: f64) {
        let end = self.now() + secs;
        loop {
            self.revive();
            let left = end - self.now();
            if left <= 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_secs_f64(left.min(1.0))).await;
        }
    }

    async fn until(&mut self, t: f64) {
        let left = t - self.now();
        if left > 0.0 {
            self.sleep(left).await;
        }
    }

    /// Starts loadgen into a pipeline at `rate` for `secs`.
    fn load(&mut self, ph: &mut Phase, pipe: usize, rate: f64, secs: f64) {
        self.seed += 1;
        if let Some(s) = &self.pipes[pipe].sampler {
            s.set_input(rate);
        }
        let run = LoadgenRun::start(
            self.stack,
            &self.pipes[pipe].raw,
            &format!("constant:{rate}"),
            secs,
            self.seed,
        );
        ph.runs.push(LoadRun { pipe, rate, run });
    }

    /// A phase's loads: `chaos` at `rate` for `secs`, `side` at its rate until the phase ends.
    fn loads(&mut self, ph: &mut Phase, rate: f64, secs: f64) {
        self.load(ph, A, rate, secs);
        self.load(ph, B, SIDE_RATE, 3600.0);
    }

    /// Waits until `chaos`'s loadgen runs ended, then stops the others'.
    async fn finish(&mut self, ph: &mut Phase) {
        while ph.runs.iter_mut().any(|r| r.pipe == A && r.run.running()) {
            self.sleep(1.0).await;
        }
        for r in &mut ph.runs {
            match r.run.stop() {
                Ok(s) if s.success() => {}
                Ok(s) => ph.failures.push(format!(
                    "loadgen into {} exited with {s}",
                    self.pipes[r.pipe].name
                )),
                Err(e) => ph.failures.push(format!("loadgen: {e}")),
            }
        }
    }

    fn pids(&self, pipe: usize) -> Vec<u32> {
        worker_pids(&self.agent.state_dir, &self.ns, &self.pipes[pipe].deploy())
    }

    /// The holder of the operators' Lease, read within 20 s.
    async fn leader(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.ns);
        for _ in 0..20 {
            if let Ok(l) = leases.get_opt("impressions-operator-local").await {
                return l.and_then(|l| l.spec?.holder_identity);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        None
    }
}

fn pipeline_manifest(
    stack: &Stack,
    ns: &str,
    name: &str,
    guarantee: &str,
    max: i32,
) -> serde_json::Value {
    let p = format!("{ns}-{name}");
    json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": name},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": format!("{p}-raw"), "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{p}-out"), "deadLetterTopic": format!("{p}-dlq"), "deliveryGuarantee": guarantee},
                 "enrichment": {"catalog": {"topic": format!("{p}-titles")}},
                 "worker": {"threads": 1, "drainTimeoutSeconds": 5, "maxEventsPerSecond": CAP},
                 "scaling": {"mode": "Auto", "policyRef": ns, "minReplicas": 1, "maxReplicas": max}}})
}

async fn create_pipeline(run: &Run<'_>, name: &str, max: i32) -> anyhow::Result<()> {
    let manifest = pipeline_manifest(run.stack, &run.ns, name, &run.guarantee, max);
    Api::<ImpressionPipeline>::namespaced(run.client.clone(), &run.ns)
        .create(&PostParams::default(), &serde_json::from_value(manifest)?)
        .await?;
    Ok(())
}

fn sampler(run: &Run<'_>, name: &str) -> Sampler {
    let p = format!("{}-{name}", run.ns);
    Sampler::with_clock(
        run.clock,
        run.client.clone(),
        &run.ns,
        &format!("{name}-worker"),
        &format!("{p}-raw"),
        &format!("{}.{name}", run.ns),
    )
}

#[derive(Debug, Serialize)]
struct PipeOutcome {
    pipeline: &'static str,
    input_per_s: f64,
    #[serde(flatten)]
    account: Account,
    lost: usize,
    duplicates_bound: usize,
    rebalances: usize,
    /// Seconds from the fault's end until the lag is back under 2 s of input.
    recover_s: Option<f64>,
    /// The longest time without an evaluation during the fault window (s, from when).
    longest_evaluation_gap: (f64, f64),
    changes: Vec<Verdict>,
    samples_skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
struct Outcome {
    fault: &'static str,
    from: f64,
    to: f64,
    recover_bound_s: Option<f64>,
    recover_bound_why: Option<&'static str>,
    evaluation_gap_bound_s: Option<f64>,
    pipelines: Vec<PipeOutcome>,
    wrong_scaling_actions: usize,
    replicas: String,
    notes: Vec<String>,
    failures: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let guarantee = args
        .iter()
        .find(|a| !a.starts_with("--") && !a.contains(','))
        .cloned()
        .unwrap_or_else(|| "AtLeastOnce".into());
    anyhow::ensure!(
        guarantee == "AtLeastOnce" || guarantee == "ExactlyOnce",
        "usage: chaos [AtLeastOnce|ExactlyOnce] [--only FAULT,…] (faults: {})",
        FAULTS.join(", ")
    );
    let only: Vec<String> = match args.iter().position(|a| a == "--only") {
        Some(i) => args
            .get(i + 1)
            .map(|s| s.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        None => FAULTS.iter().map(|s| s.to_string()).collect(),
    };
    for f in &only {
        anyhow::ensure!(
            FAULTS.contains(&f.as_str()),
            "unknown fault {f} (one of {})",
            FAULTS.join(", ")
        );
    }
    let wanted = |f: &str| only.iter().any(|o| o == f);

    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await?;
    let ns = cluster::namespace(&client, &unique("chaos")).await?;
    for name in ["chaos", "side", "gone"] {
        kafka::pipeline_topics(stack, &format!("{ns}-{name}")).await;
    }
    let policy = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": ns},
        "spec": {"minReplicas": 1, "maxReplicas": 8, "lagSloSeconds": 10, "catchUpSeconds": 30, "evaluationIntervalSeconds": INTERVAL as u32,
                 "scaleUp": {"stabilizationWindowSeconds": 0, "maxStepPercent": 200, "maxStepReplicas": 4, "cooldownSeconds": 10},
                 "scaleDown": {"stabilizationWindowSeconds": DOWN_WINDOW as u32, "maxStepPercent": 50, "maxStepReplicas": 0, "cooldownSeconds": 10},
                 "onMissingMetrics": {"action": "Hold", "staleAfterSeconds": 30},
                 "queries": {"rateWindow": "15s"}}});
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::apply("chaos").force(),
            &Patch::Apply(&policy),
        )
        .await?;

    let clock = Clock::new();
    let agent = NodeAgentProcess::start(stack, &ns);
    let pipes = ["chaos", "side", "gone"]
        .into_iter()
        .map(|name| Pipe {
            name,
            raw: format!("{ns}-{name}-raw"),
            sampler: None,
            kept: Default::default(),
        })
        .collect();
    let mut run = Run {
        stack,
        client: client.clone(),
        ns: ns.clone(),
        guarantee: guarantee.clone(),
        clock,
        pipes,
        agent,
        ops: HashMap::new(),
        op_logs: Vec::new(),
        seed: 100,
        blind: Vec::new(),
        stalls: Vec::new(),
        restarts: Vec::new(),
        backoff: HashMap::new(),
    };
    create_pipeline(&run, "chaos", 8).await?;
    create_pipeline(&run, "side", 2).await?;
    for id in ["op-a", "op-b"] {
        let op = run.start_op(id);
        run.ops.insert(id.into(), op);
    }
    run.pipes[A].sampler = Some(sampler(&run, "chaos"));
    run.pipes[B].sampler = Some(sampler(&run, "side"));
    let mut phases: Vec<Phase> = Vec::new();

    // Warm-up: the fleets settle on the steady load.
    eprintln!("== warm-up");
    let mut ph = Phase::new("warm-up (1,000/s)", run.now());
    run.loads(&mut ph, STEADY, 45.0);
    run.finish(&mut ph).await;
    phases.push(ph);

    for fault in FAULTS.iter().filter(|f| wanted(f)) {
        let ph = match *fault {
            "worker-kill" => worker_kill(&mut run).await,
            "worker-kill-scaling" => worker_kill_scaling(&mut run).await,
            "broker-kill" => broker_kill(&mut run).await,
            "broker-hang" => broker_hang(&mut run).await,
            "prometheus-down" => prometheus_down(&mut run).await,
            "prometheus-hang" => prometheus_hang(&mut run).await,
            "apiserver-restart" => apiserver_restart(&mut run).await,
            "leader-kill" => leader_kill(&mut run).await,
            _ => pipeline_delete(&mut run).await?,
        };
        phases.push(ph);
    }

    // Drain, then account per fault.
    eprintln!("== draining and accounting");
    let deadline = run.now() + 120.0;
    while run.now() < deadline {
        let drained = [A, B].iter().all(|p| {
            run.pipes[*p]
                .sampler
                .as_ref()
                .and_then(|s| s.since(s.now() - 3.0).last().copied())
                .is_some_and(|s| s.lag == 0)
        });
        if drained {
            break;
        }
        run.sleep(1.0).await;
    }
    let end = run.now();
    let (report, invented) = judge(&run, &mut phases, end);
    let outcomes = &report.faults;
    let dir: PathBuf = repo_root().join("target/chaos");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("chaos-{guarantee}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&report)?)?;
    print_table(&guarantee, outcomes);
    println!("\nresults: {}", file.display());
    let mut bad: Vec<String> = outcomes
        .iter()
        .flat_map(|o| o.failures.iter().map(move |f| format!("{}: {f}", o.fault)))
        .collect();
    bad.extend(invented);
    for b in &bad {
        println!("FAILED {b}");
    }
    drop(run);
    anyhow::ensure!(bad.is_empty(), "chaos found {} failures", bad.len());
    Ok(())
}

/// Accounts for every phase: events, duplicates, recovery, evaluations, and every replica change
/// judged against the decision log in the phase where it was seen. Also returns the records of
/// events no run sent.
/// The run's record: what the verdicts were judged from, and the faults.
#[derive(Debug, Serialize)]
struct Report {
    guarantee: String,
    namespace: String,
    /// The wall-clock time (s since the Unix epoch) of the run's time 0.
    clock_origin_unix: f64,
    operator_logs: Vec<PathBuf>,
    /// When faults hid the metrics (extended to the last failed read the log shows).
    blind: Vec<Interval>,
    /// When decisions could not be applied.
    stalls: Vec<Interval>,
    faults: Vec<Outcome>,
}

fn judge(run: &Run<'_>, phases: &mut [Phase], end: f64) -> (Report, Vec<String>) {
    let isolation = if run.guarantee == "ExactlyOnce" {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    let outputs: Vec<Outputs> = run
        .pipes
        .iter()
        .map(|p| {
            let pre = format!("{}-{}", run.ns, p.name);
            Outputs::read(
                run.stack,
                &format!("{pre}-out"),
                &format!("{pre}-dlq"),
                isolation,
            )
        })
        .collect();
    let log = DecisionLog::read(&run.op_logs, &run.clock);
    // A metrics fault hid the metrics until its end, or later while reads still failed.
    let blind: Vec<Interval> = run
        .blind
        .iter()
        .map(|b| Interval {
            to: log
                .last_failed_read(b.to, b.to + BLIND_AFTER)
                .map_or(b.to, |t| t.max(b.to)),
            ..b.clone()
        })
        .collect();
    let rules = Rules {
        down_window: DOWN_WINDOW,
        max_gap: MAX_GAP,
        apply_within: APPLY_WITHIN,
        blind: blind.clone(),
        stalls: run.stalls.clone(),
    };
    let samples: Vec<Vec<Sample>> = run.pipes.iter().map(Pipe::samples).collect();
    // Every change of every pipeline, judged, in the phase where it was seen.
    let phase_of = |t: f64| phases.iter().rposition(|p| p.start <= t).unwrap_or(0);
    let mut verdicts: Vec<Vec<Vec<Verdict>>> =
        vec![vec![Vec::new(); run.pipes.len()]; phases.len()];
    for (i, p) in run.pipes.iter().enumerate() {
        for c in decisions::changes(&samples[i]) {
            let v = log.judge(&c, &run.ns, p.name, &rules);
            verdicts[phase_of(c.t)][i].push(v);
        }
    }

    let starts: Vec<f64> = phases.iter().map(|p| p.start).collect();
    let mut outcomes = Vec::new();
    for (k, ph) in phases.iter_mut().enumerate() {
        let next = starts.get(k + 1).copied().unwrap_or(end);
        let mut pipes_out = Vec::new();
        for (i, pipe) in run.pipes.iter().enumerate() {
            let runs: Vec<&LoadRun> = ph.runs.iter().filter(|r| r.pipe == i).collect();
            if runs.is_empty() {
                continue;
            }
            let mut sent: HashMap<String, Kind> = HashMap::new();
            for r in &runs {
                match r.run.try_sent() {
                    Ok(s) => sent.extend(s),
                    Err(e) => ph.failures.push(format!(
                        "{}: the events loadgen sent are unknown ({}: {e})",
                        pipe.name,
                        r.run.ids.display()
                    )),
                }
            }
            let rate = runs.iter().map(|r| r.rate).fold(0.0, f64::max);
            let account = Account::of(&sent, &outputs[i]);
            let changed: usize = decisions::changes(&samples[i])
                .iter()
                .filter(|c| c.t >= ph.start && c.t < next + 10.0)
                .map(|c| (c.to - c.from).unsigned_abs() as usize)
                .sum();
            let rebalances =
                changed + if i == A { 2 * ph.killed } else { 0 } + usize::from(ph.broker);
            let bound = if run.guarantee == "ExactlyOnce" {
                0
            } else {
                (rate * COMMIT_INTERVAL_S) as usize * rebalances
            };
            let lost = if i == C {
                account.unexpected_records
            } else {
                account.missing_records + account.missing_dead_letters + account.unexpected_records
            };
            let recover_s = (i != C && ph.recover_bound.is_some())
                .then(|| recovery(&samples[i], ph.from, ph.to))
                .flatten();
            let watched = ph.watch_until.unwrap_or(ph.to + 10.0);
            let gap = log.longest_gap(&run.ns, pipe.name, ph.from, watched);
            let name = pipe.name;
            if lost > 0 {
                ph.failures
                    .push(format!("{name}: {lost} events lost or invented"));
            }
            if account.duplicates > bound && (i != C || run.guarantee == "ExactlyOnce") {
                ph.failures.push(format!(
                    "{name}: {} duplicates, above the bound of {bound} ({rate}/s × {COMMIT_INTERVAL_S} s × {rebalances} rebalances)",
                    account.duplicates
                ));
            }
            if let Some((b, _)) = ph.recover_bound
                && i != C
            {
                match recover_s {
                    None => ph.failures.push(format!(
                        "{name}: the lag never came back under 2 s of input"
                    )),
                    Some(r) if r > b => ph.failures.push(format!(
                        "{name}: lag back under 2 s of input {r:.0} s after the fault (bound {b:.0} s)"
                    )),
                    _ => {}
                }
            }
            if let Some(b) = ph.on_time
                && ph.evaluated.contains(&i)
                && gap.0 > b
            {
                ph.failures.push(format!(
                    "{name}: not evaluated for {:.1} s from {:.1} (bound {b:.0} s)",
                    gap.0, gap.1
                ));
            }
            for v in verdicts[k][i].iter().filter(|v| !v.due) {
                ph.failures.push(format!(
                    "{name}: wrong scaling {} → {} seen at {:.1}: {}",
                    v.change.from, v.change.to, v.change.t, v.why
                ));
            }
            pipes_out.push(PipeOutcome {
                pipeline: name,
                input_per_s: rate,
                lost,
                account,
                duplicates_bound: bound,
                rebalances,
                recover_s,
                longest_evaluation_gap: gap,
                changes: verdicts[k][i].clone(),
                samples_skipped: pipe.skipped(ph.start, next),
            });
        }
        // What each fault must have shown the operator.
        let missing_held = log.count(&run.ns, "chaos", "HoldMetricsMissing", ph.from, ph.to + 5.0);
        if ph.fault.starts_with("Prometheus") && missing_held == 0 {
            ph.failures.push(
                "chaos: no HoldMetricsMissing evaluation during the fault: the operator did not meet it or did not hold"
                    .into(),
            );
        }
        if ph.fault.starts_with("broker hung")
            && missing_held == 0
            && log.stand_ins(ph.from, ph.to + 5.0).is_empty()
        {
            ph.failures.push(
                "no failed read (stand-in or missing metrics) logged during the hang: the operator did not meet it"
                    .into(),
            );
        }
        if ph.fault.starts_with("pipeline deleted")
            && let Some(last) = log.last(&run.ns, "gone")
            && last > ph.from + FORGOTTEN_WITHIN
        {
            ph.failures.push(format!(
                "gone: still evaluated {:.1} s after its deletion (bound {FORGOTTEN_WITHIN:.0} s)",
                last - ph.from
            ));
        }
        if ph.fault.starts_with("pipeline deleted")
            && let Some(c) = pipes_out.iter().find(|p| p.pipeline == "gone")
        {
            ph.notes.push(format!(
                "gone: {} of {} events had their output before the deletion",
                c.account.records_distinct + c.account.dead_letters_distinct,
                c.account.events_sent
            ));
        }
        for (t, note) in &run.restarts {
            if *t >= ph.start && *t < next {
                ph.notes.push(note.clone());
            }
        }
        let wrong = verdicts[k].iter().flatten().filter(|v| !v.due).count();
        outcomes.push(Outcome {
            fault: ph.fault,
            from: ph.from,
            to: ph.to,
            recover_bound_s: ph.recover_bound.map(|b| b.0),
            recover_bound_why: ph.recover_bound.map(|b| b.1),
            evaluation_gap_bound_s: ph.on_time,
            pipelines: pipes_out,
            wrong_scaling_actions: wrong,
            replicas: replicas(&samples[A], ph.start, next),
            notes: ph.notes.clone(),
            failures: ph.failures.clone(),
        });
    }
    // Records of ids no run sent, over the whole run.
    let mut invented = Vec::new();
    for (i, pipe) in run.pipes.iter().enumerate() {
        let mut sent = std::collections::HashSet::new();
        for ph in phases.iter() {
            for r in ph.runs.iter().filter(|r| r.pipe == i) {
                sent.extend(r.run.try_sent().unwrap_or_default().into_keys());
            }
        }
        let n = outputs[i]
            .records
            .keys()
            .filter(|id| !sent.contains(*id))
            .count();
        if n > 0 {
            invented.push(format!("{}: {n} records of events never sent", pipe.name));
        }
    }
    let report = Report {
        guarantee: run.guarantee.clone(),
        namespace: run.ns.clone(),
        clock_origin_unix: run.clock.unix_origin(),
        operator_logs: run.op_logs.clone(),
        blind,
        stalls: run.stalls.clone(),
        faults: outcomes,
    };
    (report, invented)
}

async fn worker_kill(run: &mut Run<'_>) -> Phase {
    eprintln!("== kill -9 of a worker under steady load");
    let mut ph = Phase::new("worker kill -9, steady 1,000/s", run.now());
    ph.recover_bound = Some(RECOVER_KILL);
    run.loads(&mut ph, STEADY, 60.0);
    run.until(ph.start + 20.0).await;
    let pids = run.pids(A);
    ph.from = run.now();
    ph.to = ph.from;
    match pids.first() {
        None => ph.fail("no worker process of chaos found: the kill did not happen".into()),
        Some(p) => match kill9(*p) {
            Ok(()) => {
                ph.killed = 1;
                ph.notes
                    .push(format!("killed 1 of {} workers (pid {p})", pids.len()));
            }
            Err(e) => ph.fail(format!("the kill did not happen: {e}")),
        },
    }
    run.finish(&mut ph).await;
    ph
}

async fn worker_kill_scaling(run: &mut Run<'_>) -> Phase {
    eprintln!("== kill -9 of two workers during a scale-up");
    let mut ph = Phase::new("worker kill -9 during a scale-up (2,500/s)", run.now());
    ph.recover_bound = Some(RECOVER_SCALING);
    // Room to grow: at most 4 of 8 replicas; if more, half the steady load until the fleet
    // comes down (at least 10 s of it, so that loadgen is running when it is stopped).
    run.load(&mut ph, B, SIDE_RATE, 3600.0);
    let room = |run: &Run<'_>| {
        run.pipes[A]
            .last()
            .filter(|s| s.replicas <= 4 && s.deployment)
            .map(|s| s.replicas)
    };
    let mut base = room(run);
    if base.is_none() {
        run.load(&mut ph, A, STEADY / 2.0, 180.0);
        let start = run.now();
        run.sleep(10.0).await;
        while base.is_none() && run.now() < start + 180.0 {
            base = room(run);
            run.sleep(1.0).await;
        }
        if let Some(low) = ph.runs.iter_mut().find(|r| r.pipe == A)
            && !matches!(low.run.stop(), Ok(s) if s.success())
        {
            ph.failures
                .push("loadgen at half the steady load did not stop cleanly".into());
        }
    }
    let base = match base {
        Some(b) => b,
        None => {
            ph.fail("the fleet did not come down to 4 replicas at 500/s within 180 s: no room for a scale-up".into());
            run.pipes[A].last().map_or(8, |s| s.replicas)
        }
    };
    run.load(&mut ph, A, 2.5 * STEADY, 75.0);
    let step = run.now();
    let mut grew = false;
    while run.now() < step + 60.0 {
        run.sleep(1.0).await;
        // A scale-up: the replicas rise between two samples since the step.
        if run.pipes[A].sampler.as_ref().is_some_and(|s| {
            s.since(step - 3.0)
                .windows(2)
                .any(|w| w[0].deployment && w[1].replicas > w[0].replicas)
        }) {
            grew = true;
            break;
        }
    }
    ph.from = run.now();
    ph.to = ph.from;
    if !grew {
        ph.fail(format!(
            "no scale-up from {base} replicas within 60 s of the step to 2,500/s: the kill during a scale-up did not happen"
        ));
    } else {
        let mut pids = run.pids(A);
        let wait = run.now() + 15.0;
        while pids.len() < 2 && run.now() < wait {
            run.sleep(0.5).await;
            pids = run.pids(A);
        }
        ph.from = run.now();
        ph.to = ph.from;
        let mut killed = Vec::new();
        for p in pids.iter().take(2) {
            match kill9(*p) {
                Ok(()) => killed.push(*p),
                Err(e) => ph.fail(format!("the kill did not happen: {e}")),
            }
        }
        if killed.len() < 2 {
            ph.fail(format!(
                "killed {} of the 2 workers planned ({} running)",
                killed.len(),
                pids.len()
            ));
        }
        ph.killed = killed.len();
        let now = run.pipes[A].last().map_or(0, |s| s.replicas);
        ph.notes.push(format!(
            "killed {} of {} running workers as the fleet grew {base} → {now}",
            killed.len(),
            pids.len()
        ));
    }
    run.finish(&mut ph).await;
    ph
}

async fn broker_kill(run: &mut Run<'_>) -> Phase {
    eprintln!("== Kafka broker kill -9 and restart");
    let mut ph = Phase::new("broker kill -9 + restart", run.now());
    ph.recover_bound = Some(RECOVER_BROKER);
    ph.broker = true;
    run.loads(&mut ph, STEADY, 60.0);
    run.until(ph.start + 15.0).await;
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "kafka", "--kill"]) {
        ph.fail(e);
    }
    if answers(&run.stack.kafka_bootstrap, &api_versions_request()).is_ok() {
        ph.fail("the broker still accepts connections after kill -9".into());
    }
    run.sleep(10.0).await;
    if let Err(e) = stack_cmd(&["start", "kafka"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    ph.notes.push(format!(
        "broker down {:.0} s (10 s, then its start)",
        ph.to - ph.from
    ));
    run.blind.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the broker kill".into(),
    });
    run.finish(&mut ph).await;
    ph
}

async fn broker_hang(run: &mut Run<'_>) -> Phase {
    eprintln!("== Kafka broker hung (SIGSTOP) for 30 s");
    let mut ph = Phase::new("broker hung (SIGSTOP) 30 s", run.now());
    ph.recover_bound = Some(RECOVER_BROKER);
    ph.broker = true;
    ph.on_time = Some(ON_TIME_BROKER_HUNG);
    ph.evaluated = vec![A, B];
    run.loads(&mut ph, STEADY, 75.0);
    run.until(ph.start + 15.0).await;
    let addr = run.stack.kafka_bootstrap.clone();
    if !matches!(answers(&addr, &api_versions_request()), Ok(true)) {
        ph.fail("the broker does not answer before its hang: the probe is wrong".into());
    }
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "kafka", "--hang"]) {
        ph.fail(e);
    }
    if let Err(e) = hang_met(&addr, &api_versions_request()) {
        ph.fail(format!("the hang did not happen: {e}"));
    }
    run.until(ph.from + 30.0).await;
    if let Err(e) = stack_cmd(&["start", "kafka", "--hang"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    run.blind.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the broker hang".into(),
    });
    run.finish(&mut ph).await;
    ph
}

async fn prometheus_down(run: &mut Run<'_>) -> Phase {
    eprintln!("== Prometheus down for 2 minutes");
    let mut ph = Phase::new("Prometheus down 2 min", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    run.loads(&mut ph, STEADY, 150.0);
    run.until(ph.start + 10.0).await;
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "prometheus"]) {
        ph.fail(e);
    }
    run.sleep(120.0).await;
    if let Err(e) = stack_cmd(&["start", "prometheus"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    run.blind.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "Prometheus down".into(),
    });
    run.finish(&mut ph).await;
    ph
}

async fn prometheus_hang(run: &mut Run<'_>) -> Phase {
    eprintln!("== Prometheus hung (SIGSTOP) for 2 minutes");
    let mut ph = Phase::new("Prometheus hung (SIGSTOP) 2 min", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    ph.on_time = Some(ON_TIME_PROMETHEUS_HUNG);
    ph.evaluated = vec![A, B];
    run.loads(&mut ph, STEADY, 150.0);
    run.until(ph.start + 10.0).await;
    let addr = host_port(&run.stack.prometheus_url);
    if !matches!(answers(&addr, HTTP_READY), Ok(true)) {
        ph.fail("Prometheus does not answer before its hang: the probe is wrong".into());
    }
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "prometheus", "--hang"]) {
        ph.fail(e);
    }
    if let Err(e) = hang_met(&addr, HTTP_READY) {
        ph.fail(format!("the hang did not happen: {e}"));
    }
    run.until(ph.from + 120.0).await;
    if let Err(e) = stack_cmd(&["start", "prometheus", "--hang"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    run.blind.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the Prometheus hang".into(),
    });
    run.finish(&mut ph).await;
    ph
}

async fn apiserver_restart(run: &mut Run<'_>) -> Phase {
    eprintln!("== API server restart");
    let mut ph = Phase::new("API server restart", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    run.loads(&mut ph, STEADY, 90.0);
    run.until(ph.start + 15.0).await;
    ph.from = run.now();
    if let Err(e) = stack_cmd(&["stop", "kube-apiserver"]) {
        ph.fail(e);
    }
    run.sleep(10.0).await;
    if let Err(e) = stack_cmd(&["start", "kube-apiserver"]) {
        ph.fail(e);
    }
    ph.to = run.now();
    ph.notes
        .push(format!("API server away {:.0} s", ph.to - ph.from));
    run.stalls.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the API server restart".into(),
    });
    run.finish(&mut ph).await;
    ph
}

async fn leader_kill(run: &mut Run<'_>) -> Phase {
    eprintln!("== the operator leader killed");
    let mut ph = Phase::new("operator leader kill -9", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    run.loads(&mut ph, STEADY, 75.0);
    run.until(ph.start + 15.0).await;
    let leader = run.leader().await;
    ph.from = run.now();
    match leader
        .clone()
        .and_then(|id| Some((id.clone(), run.ops.remove(&id)?)))
    {
        None => ph.fail(format!(
            "no leader to kill (the Lease names {leader:?}, operators running: {:?})",
            run.ops.keys().collect::<Vec<_>>()
        )),
        Some((id, mut op)) => {
            op.kill9();
            let t = run.now();
            let mut next = None;
            while run.now() < t + 60.0 {
                run.sleep(0.5).await;
                let now = run.leader().await;
                if now.is_some() && now.as_deref() != Some(id.as_str()) {
                    next = now;
                    break;
                }
            }
            match next {
                Some(n) => ph.notes.push(format!(
                    "{id} killed; {n} leads after {:.1} s",
                    run.now() - t
                )),
                None => ph.fail(format!("{id} killed; no new leader within 60 s")),
            }
            let op = run.start_op(&id);
            run.ops.insert(id, op);
        }
    }
    ph.to = run.now();
    run.stalls.push(Interval {
        from: ph.from,
        to: ph.to,
        what: "the leader's failover".into(),
    });
    run.finish(&mut ph).await;
    ph
}

async fn pipeline_delete(run: &mut Run<'_>) -> anyhow::Result<Phase> {
    eprintln!("== a pipeline deleted under load");
    let mut ph = Phase::new("pipeline deleted under load", run.now());
    ph.recover_bound = Some(RECOVER_UNTOUCHED);
    ph.on_time = Some(ON_TIME);
    ph.evaluated = vec![A, B];
    create_pipeline(run, "gone", 2).await?;
    run.pipes[C].sampler = Some(sampler(run, "gone"));
    run.loads(&mut ph, STEADY, 100.0);
    run.load(&mut ph, C, GONE_RATE, 3600.0);
    let loaded = run.now();
    let ready_by = loaded + 60.0;
    let mut running = false;
    while run.now() < ready_by {
        run.sleep(1.0).await;
        if run.pipes[C]
            .last()
            .is_some_and(|s| s.t > loaded + 15.0 && s.ready >= 1 && !behind(&s))
        {
            running = true;
            break;
        }
    }
    if !running {
        ph.fail("the pipeline to delete never ran (no ready worker keeping up within 60 s): the deletion would not be under load".into());
    }
    ph.from = run.now();
    ph.to = ph.from;
    Api::<ImpressionPipeline>::namespaced(run.client.clone(), &run.ns)
        .delete("gone", &DeleteParams::default())
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(run.client.clone(), &run.ns);
    let (mut gone_at, mut stopped_at, mut forgotten_at) = (None, None, None);
    while run.now() < ph.from + 60.0 {
        run.sleep(1.0).await;
        let t = run.now() - ph.from;
        if gone_at.is_none() && matches!(deployments.get_opt("gone-worker").await, Ok(None)) {
            gone_at = Some(t);
        }
        if stopped_at.is_none() && run.pids(C).is_empty() {
            stopped_at = Some(t);
        }
        if forgotten_at.is_none()
            && let Some(l) = run.leader().await
            && let Some(op) = run.ops.get(&l)
        {
            let m = op.metrics();
            if !m.is_empty() && !m.contains("pipeline=\"gone\"") {
                forgotten_at = Some(t);
            }
        }
        if gone_at.is_some() && stopped_at.is_some() && forgotten_at.is_some() {
            break;
        }
    }
    // The others are watched for 45 s after the deletion at least.
    run.until(ph.from + 45.0).await;
    ph.watch_until = Some(run.now());
    match (gone_at, stopped_at, forgotten_at) {
        (Some(g), Some(s), Some(f)) => ph.notes.push(format!(
            "gone: Deployment deleted after {g:.0} s, its workers stopped after {s:.0} s, its series off the leader's /metrics after {f:.0} s"
        )),
        _ => ph.fail(format!(
            "60 s after the deletion: Deployment deleted {gone_at:?}, workers stopped {stopped_at:?}, series gone {forgotten_at:?} (s)"
        )),
    }
    run.finish(&mut ph).await;
    run.pipes[C].stop_sampling();
    Ok(ph)
}

fn print_table(guarantee: &str, outcomes: &[Outcome]) {
    println!(
        "\n{guarantee}:\n\n| fault | events | lost | duplicates (bound) | recover s (bound) | wrong scaling | replicas of chaos | longest evaluation gap s (bound) | samples skipped | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        let sum = |f: &dyn Fn(&PipeOutcome) -> usize| o.pipelines.iter().map(f).sum::<usize>();
        let events = sum(&|p| p.account.events_sent);
        let lost = sum(&|p| p.lost);
        let dups = sum(&|p| p.account.duplicates);
        let bound = sum(&|p| p.duplicates_bound);
        let skipped = sum(&|p| p.samples_skipped.len());
        let recover = o
            .pipelines
            .iter()
            .filter_map(|p| p.recover_s)
            .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))));
        let gap = o
            .pipelines
            .iter()
            .filter(|p| p.pipeline != "gone")
            .map(|p| p.longest_evaluation_gap.0)
            .fold(0.0, f64::max);
        println!(
            "| {} | {events} | {lost} | {dups} ({bound}) | {} | {} | {} | {gap:.0}{} | {skipped} | {} |",
            o.fault,
            match (recover, o.recover_bound_s) {
                (Some(r), Some(b)) => format!("{r:.0} ({b:.0})"),
                (None, Some(b)) => format!("never ({b:.0})"),
                _ => "-".into(),
            },
            o.wrong_scaling_actions,
            o.replicas.chars().take(40).collect::<String>(),
            o.evaluation_gap_bound_s
                .map_or(String::new(), |b| format!(" ({b:.0})")),
            o.notes.join("; ")
        );
    }
}
