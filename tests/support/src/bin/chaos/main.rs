//! `chaos [AtLeastOnce|ExactlyOnce] [--only FAULT,…]`: faults on the real stack while pipelines
//! run under load, one after the other, each bounded in time: kill -9 of workers during steady
//! load and during a scale-up, a Kafka broker killed and restarted, the broker hung (SIGSTOP)
//! for 30 s, Prometheus down and hung for 2 minutes each, an API server restart, the operator
//! leader killed, and a pipeline deleted under load.
//!
//! Three pipelines of one namespace, their worker pods containers from the worker image (node
//! agent `--runtime runc`) under a real 200m CPU limit and the worker's rate cap (a limit the
//! machine can saturate is filled by the worker's fixed cost: `tests/tests/closed_loop.rs`):
//! `chaos` (the one the faults aim at: up to 8 workers at 1,000 events/s), `side` (100 events/s, up to 2 workers: another pipeline the operator must
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
    images,
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
mod faults;
mod judge;
mod probes;
mod setup;

use faults::*;
use judge::*;
use probes::*;
use setup::*;

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
    // Worker pods run as containers from the worker image under real CPU and memory limits.
    images::require(&images::image("worker"));
    let agent = NodeAgentProcess::start_containers(stack, &ns);
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
