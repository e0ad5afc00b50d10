//! `chaos [AtLeastOnce|ExactlyOnce]`: faults on the real stack while a pipeline runs under load,
//! one after the other, each bounded in time: kill -9 of workers during steady load and during a
//! scale-up, a Kafka broker kill and restart, Prometheus down for 2 minutes, an API server
//! restart, and the operator leader killed. For each: events lost, duplicates, time to recover
//! (lag back under 2 s of input) and wrong scaling actions (a scale-down while a fault hides the
//! metrics, or any change caused by an operator or API server fault).
//!
//! It restarts stack components: run it on a stack of its own (`make chaos` does). Writes
//! `target/chaos/chaos-<guarantee>.json` and prints a Markdown table for docs/reliability.md.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use impressions_crds::ImpressionPipeline;
use impressions_tests::{
    Stack, cluster,
    kafka::{self, Isolation},
    observe::{Account, Outputs, Sample, Sampler},
    operator::OperatorProcess,
    processes::{LoadgenRun, NodeAgentProcess},
    repo_root, unique,
};
use impressions_worker::loadgen::Kind;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde::Serialize;
use serde_json::json;

const CAP: u64 = 500;
const STEADY: f64 = 1000.0;

#[derive(Debug, Serialize)]
struct Outcome {
    fault: &'static str,
    input_per_s: f64,
    #[serde(flatten)]
    account: Account,
    /// Seconds from the end of the fault until the lag is under 2 s of input.
    recover_s: Option<f64>,
    wrong_scaling_actions: usize,
    replicas: String,
    note: String,
}

fn stack_cmd(args: &[&str]) {
    let ok = Command::new(repo_root().join("tests/stack/stack.sh"))
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "stack.sh {args:?} failed");
}

/// Pids of the worker processes the node agent runs (their working folder is their pod's).
fn worker_pids(state_dir: &Path) -> Vec<u32> {
    let pods = state_dir.join("pods");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            cwd.starts_with(&pods).then_some(pid)
        })
        .collect()
}

fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

fn recover_after(samples: &[Sample], t: f64) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.t >= t && s.lag as f64 <= 2.0 * s.input.max(1.0))
        .map(|s| s.t - t)
}

fn downs(samples: &[Sample], from: f64, to: f64) -> usize {
    let w: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= from && s.t <= to)
        .collect();
    w.windows(2)
        .filter(|p| p[1].replicas < p[0].replicas)
        .count()
}

fn changes(samples: &[Sample], from: f64, to: f64) -> usize {
    let w: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= from && s.t <= to)
        .collect();
    w.windows(2)
        .filter(|p| p[1].replicas != p[0].replicas)
        .count()
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

struct Run<'a> {
    stack: &'a Stack,
    raw: String,
    sampler: Sampler,
    runs: Vec<(&'static str, f64, LoadgenRun)>,
    seed: u64,
}

impl Run<'_> {
    /// Starts loadgen at `rate` for `secs` and returns when the time `at` (s into it) comes.
    fn load(&mut self, fault: &'static str, rate: f64, secs: f64) -> f64 {
        self.seed += 1;
        self.sampler.set_input(rate);
        let t0 = self.sampler.now();
        let run = LoadgenRun::start(
            self.stack,
            &self.raw,
            &format!("constant:{rate}"),
            secs,
            self.seed,
        );
        self.runs.push((fault, rate, run));
        t0
    }

    async fn until(&self, t0: f64, at: f64) {
        let wait = t0 + at - self.sampler.now();
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// Waits (at most 2 min) until the replicas held for 40 s, so that a change during the next
    /// fault is the fault's doing and not a scale-down that was due anyway.
    async fn settle(&self) {
        for _ in 0..120 {
            let s = self.sampler.since(self.sampler.now() - 40.0);
            let covered = self
                .sampler
                .since(0.0)
                .first()
                .is_some_and(|f| f.t < self.sampler.now() - 40.0);
            if covered && s.len() > 3 && s.iter().all(|x| x.replicas == s[0].replicas) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn finish_load(&mut self) {
        if let Some((_, _, r)) = self.runs.last_mut() {
            r.wait();
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let guarantee = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "AtLeastOnce".into());
    anyhow::ensure!(
        guarantee == "AtLeastOnce" || guarantee == "ExactlyOnce",
        "the argument is AtLeastOnce or ExactlyOnce"
    );
    let stack = Stack::get();
    let client = stack.client().await;
    cluster::install_crds(&client).await?;
    let ns = cluster::namespace(&client, &unique("chaos")).await?;
    let raw = kafka::pipeline_topics(stack, &ns).await;
    let policy = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": ns},
        "spec": {"minReplicas": 1, "maxReplicas": 8, "lagSloSeconds": 10, "catchUpSeconds": 30, "evaluationIntervalSeconds": 5,
                 "scaleUp": {"stabilizationWindowSeconds": 0, "maxStepPercent": 200, "maxStepReplicas": 4, "cooldownSeconds": 10},
                 "scaleDown": {"stabilizationWindowSeconds": 30, "maxStepPercent": 50, "maxStepReplicas": 0, "cooldownSeconds": 10},
                 "onMissingMetrics": {"action": "Hold", "staleAfterSeconds": 30},
                 "queries": {"rateWindow": "15s"}}});
    Api::<impressions_crds::ScalingPolicy>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::apply("chaos").force(),
            &Patch::Apply(&policy),
        )
        .await?;
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": "chaos"},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": raw, "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{ns}-out"), "deadLetterTopic": format!("{ns}-dlq"), "deliveryGuarantee": guarantee},
                 "enrichment": {"catalog": {"topic": format!("{ns}-titles")}},
                 "worker": {"threads": 1, "drainTimeoutSeconds": 5, "maxEventsPerSecond": CAP},
                 "scaling": {"mode": "Auto", "policyRef": ns, "minReplicas": 1, "maxReplicas": 8}}});
    Api::<ImpressionPipeline>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &serde_json::from_value(pipeline)?)
        .await?;

    let agent = NodeAgentProcess::start(stack, &ns);
    let op_args = |id: &str| {
        vec![
            "--prometheus-url".to_owned(),
            stack.prometheus_url.clone(),
            "--leader-election".into(),
            "--lease-namespace".into(),
            ns.clone(),
            "--identity".into(),
            id.into(),
            "--lease-duration-seconds".into(),
            "10".into(),
        ]
    };
    let start_op = |id: &str| {
        let a = op_args(id);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        OperatorProcess::start(stack, "local", &ns, &a)
    };
    let mut ops: HashMap<String, OperatorProcess> = HashMap::new();
    ops.insert("op-a".into(), start_op("op-a"));
    ops.insert("op-b".into(), start_op("op-b"));
    let sampler = Sampler::start(
        client.clone(),
        &ns,
        "chaos-worker",
        &raw,
        &format!("{ns}.chaos"),
    );
    let mut run = Run {
        stack,
        raw,
        sampler,
        runs: Vec::new(),
        seed: 100,
    };
    let mut faults: Vec<(&'static str, f64, f64, String)> = Vec::new();

    // Warm-up: the fleet settles on the steady load.
    eprintln!("== warm-up");
    let t0 = run.load("warm-up", STEADY, 45.0);
    run.finish_load();
    faults.push(("warm-up", t0, t0, String::new()));

    eprintln!("== kill -9 of a worker under steady load");
    let t0 = run.load("worker kill -9 (steady)", STEADY, 60.0);
    run.until(t0, 20.0).await;
    let pids = worker_pids(&agent.state_dir);
    let at = run.sampler.now();
    if let Some(p) = pids.first() {
        kill9(*p);
    }
    faults.push((
        "worker kill -9 (steady)",
        at,
        at,
        format!("killed 1 of {} workers", pids.len()),
    ));
    run.finish_load();

    eprintln!("== kill -9 of two workers during a scale-up");
    let base = run
        .sampler
        .since(run.sampler.now() - 3.0)
        .last()
        .map_or(1, |s| s.replicas);
    let t0 = run.load("worker kill -9 (scaling)", 2.5 * STEADY, 75.0);
    let mut at = run.sampler.now();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if run.sampler.since(t0).iter().any(|s| s.replicas > base) {
            at = run.sampler.now();
            break;
        }
    }
    let pids = worker_pids(&agent.state_dir);
    for p in pids.iter().take(2) {
        kill9(*p);
    }
    faults.push((
        "worker kill -9 (scaling)",
        at,
        at,
        format!("killed 2 of {} workers as the fleet grew", pids.len()),
    ));
    run.finish_load();

    eprintln!("== Kafka broker kill -9 and restart");
    let t0 = run.load("broker kill -9 + restart", STEADY, 60.0);
    run.until(t0, 15.0).await;
    let at = run.sampler.now();
    stack_cmd(&["stop", "kafka", "--kill"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    stack_cmd(&["start", "kafka"]);
    faults.push((
        "broker kill -9 + restart",
        at,
        run.sampler.now(),
        "broker down ~10 s plus its start".into(),
    ));
    run.finish_load();

    eprintln!("== Prometheus down for 2 minutes");
    let t0 = run.load("Prometheus down 2 min", STEADY, 150.0);
    run.until(t0, 10.0).await;
    let at = run.sampler.now();
    stack_cmd(&["stop", "prometheus"]);
    tokio::time::sleep(Duration::from_secs(120)).await;
    stack_cmd(&["start", "prometheus"]);
    faults.push((
        "Prometheus down 2 min",
        at,
        run.sampler.now(),
        "metrics missing: hold".into(),
    ));
    run.finish_load();

    eprintln!("== API server restart");
    let t0 = run.load("API server restart", STEADY, 180.0);
    run.settle().await;
    run.until(t0, 15.0).await;
    let at = run.sampler.now();
    stack_cmd(&["stop", "kube-apiserver"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    stack_cmd(&["start", "kube-apiserver"]);
    faults.push((
        "API server restart",
        at,
        run.sampler.now(),
        "API down ~10 s plus its start".into(),
    ));
    run.finish_load();

    // An operator that lost its Lease during the API outage exits (its pod would restart it).
    let mut restarted = Vec::new();
    for (id, op) in ops.iter_mut() {
        if op.child.try_wait()?.is_some() {
            restarted.push(id.clone());
        }
    }
    for id in &restarted {
        ops.insert(id.clone(), start_op(id));
    }
    if let Some(f) = faults.last_mut()
        && !restarted.is_empty()
    {
        f.3 = format!(
            "{}; {restarted:?} exited on losing the Lease, restarted as its pod would be",
            f.3
        );
    }

    eprintln!("== the operator leader killed");
    let t0 = run.load("operator leader kill -9", STEADY, 90.0);
    run.settle().await;
    run.until(t0, 15.0).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = |l: &[Lease]| {
        l.iter()
            .find_map(|l| l.spec.as_ref()?.holder_identity.clone())
    };
    let leader = holder(&leases.list(&ListParams::default()).await?.items);
    let at = run.sampler.now();
    let mut note = format!("leader {leader:?}");
    if let Some(id) = &leader
        && let Some(mut op) = ops.remove(id)
    {
        op.kill9();
        let t = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = holder(&leases.list(&ListParams::default()).await?.items);
            if now.is_some() && now != leader {
                note = format!(
                    "{id} killed; {} leads after {:.1} s",
                    now.unwrap_or_default(),
                    t.elapsed().as_secs_f64()
                );
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                note = format!("{id} killed; no new leader within 60 s");
                break;
            }
        }
        ops.insert(id.clone(), start_op(id));
    }
    faults.push(("operator leader kill -9", at, run.sampler.now(), note));
    run.finish_load();

    // Drain, then account per fault.
    eprintln!("== draining and accounting");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if run
            .sampler
            .since(run.sampler.now() - 2.0)
            .last()
            .is_some_and(|s| s.lag == 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let isolation = if guarantee == "ExactlyOnce" {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    let outputs = Outputs::read(stack, &format!("{ns}-out"), &format!("{ns}-dlq"), isolation);
    let samples = run.sampler.since(0.0);
    let mut outcomes = Vec::new();
    for (i, (fault, rate, r)) in run.runs.iter().enumerate() {
        let sent: HashMap<String, Kind> = r.sent();
        let (_, from, to, note) = &faults[i];
        let metrics_hidden = fault.starts_with("Prometheus") || fault.starts_with("broker");
        let control_fault = fault.starts_with("API") || fault.starts_with("operator");
        let wrong = if metrics_hidden {
            downs(&samples, *from, to + 15.0)
        } else if control_fault {
            changes(&samples, *from, to + 15.0)
        } else {
            0
        };
        outcomes.push(Outcome {
            fault,
            input_per_s: *rate,
            account: Account::of(&sent, &outputs),
            recover_s: (*fault != "warm-up")
                .then(|| recover_after(&samples, *to))
                .flatten(),
            wrong_scaling_actions: wrong,
            replicas: replicas(
                &samples,
                *from,
                faults.get(i + 1).map_or(f64::INFINITY, |f| f.1),
            ),
            note: note.clone(),
        });
    }

    let dir: PathBuf = repo_root().join("target/chaos");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("chaos-{guarantee}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&outcomes)?)?;
    println!(
        "\n{guarantee}: | fault | events | lost | duplicates | recover s | wrong scaling | replicas | note |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut bad = Vec::new();
    for o in &outcomes {
        let lost = o.account.missing_records + o.account.missing_dead_letters;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            o.fault,
            o.account.events_sent,
            lost,
            o.account.duplicates,
            o.recover_s.map_or("-".into(), |r| format!("{r:.0}")),
            o.wrong_scaling_actions,
            o.replicas.chars().take(40).collect::<String>(),
            o.note
        );
        if lost > 0 || o.account.unexpected_records > 0 {
            bad.push(format!("{}: {lost} events lost", o.fault));
        }
        if o.wrong_scaling_actions > 0 {
            bad.push(format!(
                "{}: {} wrong scaling actions",
                o.fault, o.wrong_scaling_actions
            ));
        }
        if guarantee == "ExactlyOnce" && o.account.duplicates > 0 {
            bad.push(format!(
                "{}: {} duplicates under ExactlyOnce",
                o.fault, o.account.duplicates
            ));
        }
    }
    println!("\nresults: {}", file.display());
    drop(run);
    drop(ops);
    drop(agent);
    anyhow::ensure!(bad.is_empty(), "chaos found: {}", bad.join("; "));
    Ok(())
}
