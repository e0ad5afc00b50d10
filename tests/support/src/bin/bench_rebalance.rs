//! The consumption pause of one scaling action, measured on the local Kafka under steady
//! traffic, per consumer group protocol (`source.groupProtocol`: Consumer, KIP-848, and
//! Classic, cooperative-sticky).
//!
//! A group of `--workers` worker processes consumes `--partitions` partitions, each fed
//! `--rate` events/s (far below the workers' capacity). Each input's key names its partition
//! and the time it was produced; each output keeps its input's key and carries the time the
//! worker produced it. Each repeat makes four scaling actions, one at a time, each once the
//! group's assignment is settled: one worker joins (N → N+1), one leaves by SIGTERM (N+1 → N),
//! all but one leave together (N → 1), and as many join together (1 → N). Afterwards every
//! output is read back and, per action:
//!
//! - the pause of a partition: the longest time without an output of it, from the action until
//!   the next (the gap between the last output of its old owner and the first of its new one,
//!   re-read duplicates included); a partition counts as moved when its pause is longer than
//!   the steady traffic ever left it;
//! - the group's lost seconds: the peak backlog the action added (inputs produced but not yet
//!   output, above the steady backlog), in seconds of the group's arrival. This is the
//!   rebalance cost the autoscaler's decision adds to the demand (`rebalanceCostSeconds`); the
//!   same figure over the steady window (no action) is its noise floor;
//! - the throughput dip: the lowest output rate over a second, as a fraction of the arrival;
//! - the settle time: from the action until every partition was assigned to the new group
//!   (the workers' `impressions_worker_assigned_partitions`).
//!
//! `cargo run -p impressions-tests --bin bench_rebalance -- [--protocols Consumer,Classic]
//! [--workers 4] [--partitions 8] [--rate 100] [--repeats 5] [--label NAME] [--out FILE]` with
//! the stack up (`make bench-rebalance`). The broker's consumer-group settings are read and
//! recorded: under the consumer protocol they decide the pause. `--out` merges this run into
//! the file under `--label` (other labels' runs stay).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use impressions_tests::{
    Stack,
    kafka::{self, Isolation},
    worker::{self, WorkerProcess},
};
use impressions_worker::{
    loadgen::{Generator, Mix},
    now_ms,
};
use rdkafka::{
    Message,
    producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer},
};
use serde_json::{Value, json};

/// The broker settings that decide a consumer group's pauses.
const BROKER_SETTINGS: &[&str] = &[
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.session.timeout.ms",
    "group.consumer.assignors",
    "group.initial.rebalance.delay.ms",
];

/// How long the assignment must stay the same to count as settled.
const SETTLED_FOR: Duration = Duration::from_secs(3);

/// The longest an action may take to settle.
const SETTLE_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Args {
    protocols: Vec<String>,
    workers: usize,
    partitions: i32,
    rate: u32,
    repeats: usize,
    label: String,
    out: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        protocols: vec!["Consumer".into(), "Classic".into()],
        workers: 4,
        partitions: 8,
        rate: 100,
        repeats: 5,
        label: "local".into(),
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--protocols" => a.protocols = value().split(',').map(str::to_owned).collect(),
            "--workers" => a.workers = value().parse().expect("--workers N"),
            "--partitions" => a.partitions = value().parse().expect("--partitions N"),
            "--rate" => a.rate = value().parse().expect("--rate EVENTS_PER_SECOND"),
            "--repeats" => a.repeats = value().parse().expect("--repeats N"),
            "--label" => a.label = value(),
            "--out" => a.out = Some(value()),
            f => panic!("unknown flag {f}"),
        }
    }
    assert!(
        a.workers >= 2 && (a.workers as i32) < a.partitions,
        "--workers must be at least 2 and below --partitions"
    );
    a
}

/// One scaling action and when it was made.
#[derive(Debug, Clone)]
struct Action {
    case: &'static str,
    at_ms: i64,
    settled_ms: i64,
}

#[tokio::main]
async fn main() {
    let a = args();
    let stack = Stack::get();
    let broker = kafka::broker_settings(stack, BROKER_SETTINGS).await;
    eprintln!("broker: {broker:?}");
    let mut protocols = serde_json::Map::new();
    for protocol in &a.protocols {
        eprintln!("== {protocol}");
        protocols.insert(protocol.clone(), run(stack, &a, protocol).await);
    }
    let run = json!({
        "date": date(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine": "2 cores, 24 GiB; the local stack (Kafka 4.1.1 KRaft, one broker) on the same cores",
        "broker": broker,
        "workers": a.workers,
        "partitions": a.partitions,
        "events_per_second_per_partition": a.rate,
        "repeats": a.repeats,
        "protocols": protocols,
    });
    println!("{}", serde_json::to_string_pretty(&run).unwrap());
    if let Some(path) = &a.out {
        let mut doc: Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| json!({}));
        if !doc.is_object() {
            doc = json!({});
        }
        doc["runs"][&a.label] = run;
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
        eprintln!("wrote {path} (run {:?})", a.label);
    }
}

/// One protocol's run: the group, the traffic, the actions, the analysis.
async fn run(stack: &'static Stack, a: &Args, protocol: &str) -> Value {
    let t = worker::topics(stack, "rebalance", a.partitions, 50).await;
    let config = worker::with_group_protocol(
        &worker::config(stack, &t, "processing: {maxBatch: 500}"),
        protocol,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (raw, stop, partitions, rate) = (t.raw.clone(), stop.clone(), a.partitions, a.rate);
        std::thread::spawn(move || produce(stack, &raw, partitions, rate, &stop))
    };
    let mut n = 0;
    let start = |n: &mut usize| {
        *n += 1;
        WorkerProcess::start(
            &impressions_tests::unique(&format!("rebalance-{protocol}-{n}")),
            &config,
        )
    };
    let mut group: Vec<WorkerProcess> = (0..a.workers).map(|_| start(&mut n)).collect();
    for w in &mut group {
        w.wait_ready(Duration::from_secs(60));
    }
    settle(&group, a.partitions, now_ms());
    // The backlog of the workers' start is worked off; then the steady state every action is
    // compared with.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let steady_from = now_ms();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let steady_to = now_ms();

    let mut actions = Vec::new();
    let mut stopped = Vec::new();
    for r in 0..a.repeats {
        eprintln!("repeat {}/{}", r + 1, a.repeats);
        let at = now_ms();
        group.push(start(&mut n));
        actions.push(action("join_one", at, settle(&group, a.partitions, at)));
        pause().await;

        let at = now_ms();
        let mut leaver = group.pop().unwrap();
        sigterm(&[&leaver]);
        actions.push(action("leave_one", at, settle(&group, a.partitions, at)));
        exited(&mut leaver);
        stopped.push(leaver);
        pause().await;

        let at = now_ms();
        let leavers: Vec<WorkerProcess> = group.drain(1..).collect();
        sigterm(&leavers.iter().collect::<Vec<_>>());
        actions.push(action(
            "leave_several",
            at,
            settle(&group, a.partitions, at),
        ));
        for mut l in leavers {
            exited(&mut l);
            stopped.push(l);
        }
        pause().await;

        let at = now_ms();
        for _ in 1..a.workers {
            group.push(start(&mut n));
        }
        actions.push(action("join_several", at, settle(&group, a.partitions, at)));
        pause().await;
    }
    let end = now_ms();
    stop.store(true, Ordering::Release);
    let produced = traffic.join().expect("traffic thread");
    let committed = worker::wait_committed(stack, &t, Duration::from_secs(60)).await;
    let high = kafka::high_watermarks(stack, &t.raw);
    assert!(
        high.iter().all(|(p, h)| committed.get(p) == Some(h)),
        "the group did not catch up: committed {committed:?}, end {high:?}"
    );
    for w in &mut group {
        let (ok, took) = w.terminate(Duration::from_secs(30));
        assert!(ok, "a worker exits 0 ({took:?}):\n{}", w.log_tail());
    }
    let out = kafka::read_to_end(
        stack,
        &t.out,
        Isolation::ReadUncommitted,
        Duration::from_secs(120),
    );
    let outputs: Vec<Output> = out.iter().filter_map(Output::of).collect();
    assert_eq!(
        outputs.len(),
        out.len(),
        "every output's key names its input"
    );
    analyse(
        &outputs,
        produced,
        a,
        (steady_from, steady_to),
        &actions,
        end,
    )
}

fn action(case: &'static str, at_ms: i64, settled_ms: i64) -> Action {
    eprintln!("  {case}: settled after {} ms", settled_ms - at_ms);
    Action {
        case,
        at_ms,
        settled_ms,
    }
}

/// Quiet time between actions, so that each one's pause is its own.
async fn pause() {
    tokio::time::sleep(Duration::from_secs(4)).await;
}

fn sigterm(workers: &[&WorkerProcess]) {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .args(workers.iter().map(|w| w.child.id().to_string()))
        .status()
        .expect("kill");
    assert!(status.success(), "SIGTERM reached the workers");
}

/// Waits for a worker sent SIGTERM to exit 0.
fn exited(w: &mut WorkerProcess) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = w.child.try_wait().expect("wait") {
            assert!(s.success(), "a leaving worker exits 0:\n{}", w.log_tail());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a leaving worker did not exit:\n{}",
            w.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every partition is assigned and every worker holds some, unchanged for
/// [`SETTLED_FOR`]; returns when that assignment was first seen (ms).
fn settle(group: &[WorkerProcess], partitions: i32, since_ms: i64) -> i64 {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let mut seen: Option<(Vec<f64>, i64, Instant)> = None;
    loop {
        let held: Vec<f64> = group
            .iter()
            .map(|w| w.metric("impressions_worker_assigned_partitions"))
            .collect();
        let whole =
            held.iter().sum::<f64>() == f64::from(partitions) && held.iter().all(|h| *h > 0.0);
        match &seen {
            Some((h, at, since)) if *h == held && whole => {
                if since.elapsed() >= SETTLED_FOR {
                    return *at;
                }
            }
            _ => seen = whole.then(|| (held.clone(), now_ms(), Instant::now())),
        }
        assert!(
            Instant::now() < deadline,
            "the group did not settle within {SETTLE_DEADLINE:?} of {since_ms}: held {held:?}\n{}",
            group
                .iter()
                .map(|w| w.log_tail())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Produces `rate` valid impressions a second to each partition, in 20 ms steps, until `stop`;
/// each keyed `<partition>:<sequence>:<produced at, ms>`. Returns how many.
fn produce(stack: &Stack, topic: &str, partitions: i32, rate: u32, stop: &AtomicBool) -> usize {
    let p: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .expect("producer");
    let mix = Mix {
        non_impression: 0.0,
        invalid: 0.0,
        mismatch: 0.0,
    };
    let mut g = Generator::new(7, 50, mix);
    let step = Duration::from_millis(20);
    let per_step = f64::from(rate) * step.as_secs_f64();
    let started = Instant::now();
    let mut seq = 0usize;
    let mut due = 0.0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Acquire) {
        due += per_step;
        while due >= 1.0 {
            due -= 1.0;
            let now = now_ms();
            for partition in 0..partitions {
                let e = g.next_event(now);
                let key = format!("{partition}:{seq}:{now}");
                let mut record = BaseRecord::to(topic)
                    .partition(partition)
                    .key(&key)
                    .payload(&e.payload);
                loop {
                    match p.send(record) {
                        Ok(()) => break,
                        Err((_, r)) => {
                            record = r;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                seq += 1;
            }
        }
        next += step;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    p.flush(Duration::from_secs(30)).expect("traffic flushed");
    eprintln!("produced {seq} events in {:.0?}", started.elapsed());
    seq
}

/// An output: its input's partition and production time, and when the worker produced it.
#[derive(Debug, Clone, Copy)]
struct Output {
    partition: i32,
    seq: u64,
    produced_ms: i64,
    output_ms: i64,
}

impl Output {
    fn of(m: &rdkafka::message::OwnedMessage) -> Option<Output> {
        let key = std::str::from_utf8(m.key()?).ok()?;
        let mut parts = key.split(':');
        Some(Output {
            partition: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            produced_ms: parts.next()?.parse().ok()?,
            output_ms: m.timestamp().to_millis()?,
        })
    }
}

/// The figures of every action and their median and maximum per case.
fn analyse(
    outputs: &[Output],
    produced: usize,
    a: &Args,
    steady: (i64, i64),
    actions: &[Action],
    end: i64,
) -> Value {
    // Each partition's output times, sorted (re-read duplicates included: a new owner that
    // re-reads has resumed); each input's first output.
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut first: HashMap<u64, (i64, i64)> = HashMap::new();
    for o in outputs {
        by_partition
            .entry(o.partition)
            .or_default()
            .push(o.output_ms);
        let e = first.entry(o.seq).or_insert((o.produced_ms, o.output_ms));
        e.1 = e.1.min(o.output_ms);
    }
    assert_eq!(first.len(), produced, "every input has an output");
    for v in by_partition.values_mut() {
        v.sort_unstable();
    }
    let mut produced_at: Vec<i64> = first.values().map(|(p, _)| *p).collect();
    let mut output_at: Vec<i64> = first.values().map(|(_, o)| *o).collect();
    produced_at.sort_unstable();
    output_at.sort_unstable();
    let arrival = f64::from(a.rate) * f64::from(a.partitions);
    let backlog = |t: i64| {
        (produced_at.partition_point(|x| *x <= t) - output_at.partition_point(|x| *x <= t)) as f64
    };
    let outputs_between = |from: i64, to: i64| {
        output_at.partition_point(|x| *x <= to) - output_at.partition_point(|x| *x <= from)
    };

    // Steady state: the longest gap of any partition, and the median backlog.
    let steady_gap = by_partition
        .values()
        .map(|v| longest_gap(v, steady.0, steady.1))
        .max()
        .unwrap_or(0);
    let mut steady_backlog: Vec<f64> = (steady.0..steady.1).step_by(50).map(backlog).collect();
    steady_backlog.sort_by(f64::total_cmp);
    let steady_peak = steady_backlog.last().copied().unwrap_or(0.0);
    let steady_backlog = steady_backlog[steady_backlog.len() / 2];
    // A partition paused when it went longer without an output than the steady traffic ever
    // left it (and at least 250 ms).
    let moved_above = steady_gap.max(250);

    let mut cases: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (i, act) in actions.iter().enumerate() {
        let until = actions.get(i + 1).map_or(end, |n| n.at_ms);
        let mut pauses: Vec<i64> = by_partition
            .values()
            .map(|v| longest_gap(v, act.at_ms, until))
            .filter(|g| *g > moved_above)
            .collect();
        pauses.sort_unstable();
        let peak = (act.at_ms..until)
            .step_by(50)
            .map(backlog)
            .fold(steady_backlog, f64::max);
        let lost_seconds = (peak - steady_backlog) / arrival;
        let dip = (act.at_ms..until.saturating_sub(1000))
            .step_by(100)
            .map(|t| outputs_between(t, t + 1000) as f64 / arrival)
            .fold(f64::INFINITY, f64::min);
        cases.entry(act.case).or_default().push(json!({
            "moved_partitions": pauses.len(),
            "pause_max_ms": pauses.last().copied().unwrap_or(0),
            "pause_median_ms": pauses.get(pauses.len() / 2).copied().unwrap_or(0),
            "lost_seconds": round3(lost_seconds),
            "min_throughput_fraction": round3(if dip.is_finite() { dip } else { 1.0 }),
            "settle_ms": act.settled_ms - act.at_ms,
        }));
    }
    let summary: serde_json::Map<String, Value> = cases
        .iter()
        .map(|(case, runs)| {
            let mut s = serde_json::Map::new();
            for figure in [
                "pause_max_ms",
                "pause_median_ms",
                "moved_partitions",
                "lost_seconds",
                "min_throughput_fraction",
                "settle_ms",
            ] {
                let mut v: Vec<f64> = runs.iter().filter_map(|r| r[figure].as_f64()).collect();
                v.sort_by(f64::total_cmp);
                s.insert(
                    figure.to_owned(),
                    json!({ "median": round3(v[v.len() / 2]), "max": round3(v[v.len() - 1]) }),
                );
            }
            s.insert("runs".to_owned(), json!(runs));
            ((*case).to_owned(), Value::Object(s))
        })
        .collect();
    json!({
        "events": produced,
        "outputs_read": outputs.len(),
        "steady_longest_gap_ms": steady_gap,
        "steady_backlog_events": steady_backlog,
        // The figure lost_seconds would read over the steady window: its noise floor.
        "steady_lost_seconds": round3((steady_peak - steady_backlog) / arrival),
        "cases": summary,
    })
}

/// The longest time without an output in `times` (sorted) that ends within `(from, to]`,
/// counted from the output before it.
fn longest_gap(times: &[i64], from: i64, to: i64) -> i64 {
    let start = times.partition_point(|t| *t <= from).max(1);
    times[start..]
        .iter()
        .take_while(|t| **t <= to)
        .zip(&times[start - 1..])
        .map(|(next, prev)| next - prev)
        .max()
        .unwrap_or(0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%MZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
