//! End-to-end throughput on the local Kafka: the worker binary against a no-op
//! consume→produce passthrough built from the worker's own client settings, in the same run, on
//! the same pre-produced data. Prints a JSON line per contender and the ratio.
//!
//! `cargo run --release -p impressions-tests --bin bench_e2e -- [EVENTS [THREADS [GUARANTEES]]]`
//! with the stack up (`make bench-worker` does both). GUARANTEES is a comma-separated list of
//! `AtLeastOnce` (the default) and `ExactlyOnce[:INTERVAL_MS]` (transactions every INTERVAL_MS,
//! default the worker's 100 ms): one worker run each, back to back on the same data, each with
//! its own consumer group. An exactly-once worker is done when every event is committed in a
//! transaction (its outputs visible to read_committed readers), an at-least-once one when every
//! output is acknowledged.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use impressions_tests::{Stack, kafka, unique, worker::WorkerProcess};
use impressions_worker::{config::WorkerConfig, loadgen::Mix};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer},
};

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let threads: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let guarantees: Vec<(String, Option<u64>)> = std::env::args()
        .nth(3)
        .unwrap_or_else(|| "AtLeastOnce".into())
        .split(',')
        .map(|g| {
            let interval = match g.split_once(':') {
                None if g == "AtLeastOnce" => None,
                None if g == "ExactlyOnce" => Some(100),
                Some(("ExactlyOnce", ms)) => {
                    Some(ms.parse::<u64>().expect("ExactlyOnce:INTERVAL_MS"))
                }
                _ => panic!("GUARANTEES: AtLeastOnce, ExactlyOnce or ExactlyOnce:INTERVAL_MS"),
            };
            (g.to_owned(), interval)
        })
        .collect();
    let stack = Stack::get();
    let id = unique("bench");
    let (raw, out, dlq, titles) = (
        format!("{id}-raw"),
        format!("{id}-out"),
        format!("{id}-dlq"),
        format!("{id}-titles"),
    );
    let pass_out = format!("{id}-pass-out");
    for (t, p, c) in [
        (&raw, 4, false),
        (&out, 4, false),
        (&pass_out, 4, false),
        (&dlq, 1, false),
        (&titles, 1, true),
    ] {
        kafka::create_topic(stack, t, p, c).await;
    }
    kafka::fill_catalog(stack, &titles, 5000).await;
    eprintln!("producing {n} events…");
    let sent = kafka::produce_generated(stack, &raw, 42, n, 5000, Mix::default()).await;
    let outputs = sent
        .iter()
        .filter(|s| s.kind.is_record() || s.kind.reject_reason().is_some())
        .count();
    drop(sent);

    let yaml = |group: &str, sink_extra: &str| {
        format!(
            "pipeline: {{namespace: bench, name: {group}}}\nsource: {{bootstrapServers: '{b}', topic: {raw}, consumerGroup: {group}, offsetReset: earliest}}\nsink: {{topic: {out}, deadLetterTopic: {dlq}{sink_extra}}}\ncatalog: {{topic: {titles}}}\nprocessing: {{threads: {threads}, maxBatch: 2000}}\n",
            b = stack.kafka_bootstrap,
        )
    };

    // Passthrough: the worker's (at-least-once) consumer and producer settings, no processing.
    let cfg = WorkerConfig::from_yaml(&yaml(&format!("{id}-pass"), ""), []).unwrap();
    let pass_secs = passthrough(&cfg, n, &pass_out);
    let pass_rate = n as f64 / pass_secs;
    println!(
        "{}",
        serde_json::json!({"contender": "passthrough", "events": n, "seconds": pass_secs, "events_per_second": pass_rate})
    );

    for (i, (guarantee, exactly_once)) in guarantees.iter().enumerate() {
        let group = format!("{id}-worker-{i}");
        let sink_extra = match exactly_once {
            None => String::new(),
            Some(ms) => format!(
                ", deliveryGuarantee: ExactlyOnce, transactionIntervalMs: {ms}, transactionalId: {group}-0"
            ),
        };
        let mut report = worker(
            &group,
            &yaml(&group, &sink_extra),
            n,
            outputs,
            exactly_once.is_some(),
        );
        report["guarantee"] = serde_json::json!(guarantee);
        report["threads"] = serde_json::json!(threads);
        report["worker_vs_passthrough"] =
            serde_json::json!(report["events_per_second"].as_f64().unwrap() / pass_rate);
        println!("{report}");
    }
}

/// Runs the worker binary until it is done with `n` events, timed from its first consumed event
/// (start-up and group join excluded, as for the passthrough).
fn worker(
    name: &str,
    yaml: &str,
    n: usize,
    outputs: usize,
    exactly_once: bool,
) -> serde_json::Value {
    let mut w = WorkerProcess::start(name, yaml);
    w.wait_ready(Duration::from_secs(60));
    while w.metric("impressions_worker_events_consumed_total") == 0.0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let t0 = Instant::now();
    loop {
        let finished = if exactly_once {
            w.metric("impressions_worker_events_committed_total") as usize >= n
        } else {
            let done = w.metric("impressions_worker_records_produced_total")
                + w.metric("impressions_worker_dead_letters_produced_total");
            done as usize >= outputs
                && w.metric("impressions_worker_events_processed_total") as usize >= n
        };
        if finished {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "worker did not finish:\n{}",
            w.log_tail()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let secs = t0.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "contender": "worker",
        "events": n,
        "seconds": secs,
        "events_per_second": n as f64 / secs,
        "busy_seconds": w.metric("impressions_worker_busy_seconds_total"),
        "transactions": w.metric("impressions_worker_transactions_total{outcome=\"committed\"}"),
        "aborted": w.metric("impressions_worker_transactions_total{outcome=\"aborted\"}"),
        "commit_seconds": w.metric("impressions_worker_transaction_commit_seconds_sum"),
        "cpu_seconds": cpu_seconds(w.child.id()),
    });
    w.terminate(Duration::from_secs(30));
    report
}

/// User + system CPU seconds a process used so far (less sensitive than throughput to what else
/// runs on the machine).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which is in parentheses): utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or_default();
    let ticks: f64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// Consumes `n` events and produces each payload unchanged, with the worker's client settings;
/// offsets are stored once at the end, after a flush (the fastest a passthrough can be).
/// Returns the seconds from the first consumed event to the flush of the last output.
fn passthrough(cfg: &WorkerConfig, n: usize, out: &str) -> f64 {
    let consumer: BaseConsumer = impressions_worker::kafka::client::consumer(cfg)
        .create()
        .unwrap();
    let producer: Arc<ThreadedProducer<DefaultProducerContext>> = Arc::new(
        impressions_worker::kafka::client::producer(cfg)
            .create()
            .unwrap(),
    );
    consumer.subscribe(&[&cfg.source.topic]).unwrap();
    let mut done = 0usize;
    let mut started = Instant::now();
    let mut last: std::collections::HashMap<i32, i64> = Default::default();
    while done < n {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        if done == 0 {
            started = Instant::now();
        }
        let mut rec = BaseRecord::to(out).payload(m.payload().unwrap_or_default());
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        last.insert(m.partition(), m.offset());
        done += 1;
    }
    store(&consumer, &producer, &cfg.source.topic, &last);
    started.elapsed().as_secs_f64()
}

fn store(
    c: &BaseConsumer,
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    last: &std::collections::HashMap<i32, i64>,
) {
    p.flush(Duration::from_secs(300)).unwrap();
    let mut tpl = TopicPartitionList::new();
    for (part, off) in last {
        tpl.add_partition_offset(topic, *part, Offset::Offset(off + 1))
            .unwrap();
    }
    let _ = c.store_offsets(&tpl);
}
