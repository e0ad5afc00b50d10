//! `loadgen`: realistic raw client events into Kafka at a target rate or along a trace, and the
//! title catalog they refer to. Deterministic from a seed; reports what it sent, by kind.

use std::{
    io::Write,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

mod release_args;

use clap::{Parser, Subcommand};
use impressions_worker::{
    loadgen::{Generator, Mix, Report, Trace, events},
    now_ms,
};
use rdkafka::{
    ClientConfig, ClientContext,
    producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer},
};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Generates raw impression traffic and the title catalog into Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Produce raw events along a rate trace.
    Produce(Box<ProduceArgs>),
    /// Fill the catalog topic with N titles (key = videoId, value = title JSON).
    Catalog {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1000)]
        titles: u32,
    },
    /// Create topics (existing ones are left as they are).
    Topics {
        #[arg(long)]
        bootstrap: String,
        #[arg(long, default_value_t = 12)]
        partitions: i32,
        /// Topics created compacted (the catalog).
        #[arg(long)]
        compacted: Vec<String>,
        /// Topics created with the default cleanup policy.
        topics: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
struct ProduceArgs {
    #[arg(long)]
    bootstrap: String,
    #[arg(long)]
    topic: String,
    /// constant:RATE | step:BEFORE:AFTER:AT_S | diurnal:MIN:MAX:PERIOD_S | spike:BASE:PEAK:AT_S:FOR_S | csv:PATH
    #[arg(long, default_value = "constant:1000")]
    trace: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many events (whichever comes first).
    #[arg(long)]
    max_events: Option<u64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Titles in the catalog the events refer to.
    #[arg(long, default_value_t = 1000)]
    titles: u32,
    /// Share of events of other types than impression.
    #[arg(long, default_value_t = 0.2)]
    non_impression: f64,
    /// Share of invalid impressions.
    #[arg(long, default_value_t = 0.02)]
    invalid: f64,
    /// Share of impressions with column mismatches.
    #[arg(long, default_value_t = 0.03)]
    mismatch: f64,
    /// Also write the report (JSON) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write `event_id kind` for every event sent.
    #[arg(long)]
    ids_out: Option<PathBuf>,
    #[command(flatten)]
    release: release_args::ReleaseArgs,
}

#[derive(Debug, Default)]
struct Acks {
    ok: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug)]
struct AckContext(Arc<Acks>);
impl ClientContext for AckContext {}
impl ProducerContext for AckContext {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let c = if r.is_ok() {
            &self.0.ok
        } else {
            &self.0.failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    #[serde(flatten)]
    report: Report,
    acknowledged: u64,
    failed: u64,
    /// Sent but neither acknowledged nor failed when loadgen stopped (after SIGTERM).
    unacknowledged: u64,
    /// Stopped by SIGTERM or Ctrl-C before the end of the trace.
    stopped: bool,
    seconds: f64,
    events_per_second: f64,
}

fn producer(bootstrap: &str) -> anyhow::Result<(ThreadedProducer<AckContext>, Arc<Acks>)> {
    let acks = Arc::new(Acks::default());
    let p = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "10")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "500000")
        .create_with_context(AckContext(acks.clone()))?;
    Ok((p, acks))
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Produce(a) => produce(*a),
        Command::Topics {
            bootstrap,
            partitions,
            compacted,
            topics,
        } => create_topics(&bootstrap, partitions, &compacted, &topics),
        Command::Catalog {
            bootstrap,
            topic,
            titles,
        } => {
            let (p, acks) = producer(&bootstrap)?;
            let never = AtomicBool::new(false);
            for t in events::catalog(titles) {
                let key = t.video_id.to_string();
                let value = serde_json::to_vec(&t)?;
                send(
                    &p,
                    BaseRecord::to(&topic).key(key.as_bytes()).payload(&value),
                    &never,
                );
            }
            p.flush(Duration::from_secs(60))?;
            let failed = acks.failed.load(Ordering::Relaxed);
            println!(
                "{}",
                serde_json::json!({"titles": titles, "acknowledged": acks.ok.load(Ordering::Relaxed), "failed": failed})
            );
            anyhow::ensure!(
                failed == 0,
                "{failed} catalog records were not acknowledged"
            );
            Ok(())
        }
    }
}

fn create_topics(
    bootstrap: &str,
    partitions: i32,
    compacted: &[String],
    topics: &[String],
) -> anyhow::Result<()> {
    use rdkafka::{
        admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
        client::DefaultClientContext,
        types::RDKafkaErrorCode,
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    fn new(name: &str, partitions: i32, compact: bool) -> NewTopic<'_> {
        let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        if compact {
            t.set("cleanup.policy", "compact")
        } else {
            t
        }
    }
    let all: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| new(t, partitions, false))
        .chain(compacted.iter().map(|t| new(t, partitions, true)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in rt.block_on(admin.create_topics(&all, &opts))? {
        match r {
            Ok(t) => println!("created {t}"),
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => println!("exists {t}"),
            Err((t, e)) => anyhow::bail!("creating topic {t}: {e}"),
        }
    }
    Ok(())
}

/// How long loadgen waits for the acknowledgements of what it sent once it was asked to stop.
const STOP_FLUSH: Duration = Duration::from_secs(3);

/// A flag raised by SIGTERM or Ctrl-C (watched on a thread of its own).
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (raised, ready) = (flag.clone(), std::sync::mpsc::channel::<()>());
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async {
                let term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
                let _ = ready.0.send(());
                let Ok(mut term) = term else { return };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            });
            eprintln!("loadgen: stop requested");
            raised.store(true, Ordering::Release);
        })?;
    // The handlers are in place before the first event is sent.
    let _ = ready.1.recv();
    Ok(flag)
}

/// Sends `rec`, waiting while the local queue is full; false when a stop was requested first.
fn send(
    p: &ThreadedProducer<AckContext>,
    mut rec: BaseRecord<'_, [u8], [u8]>,
    stop: &AtomicBool,
) -> bool {
    loop {
        match p.send(rec) {
            Ok(()) => return true,
            Err((_, back)) => {
                if stop.load(Ordering::Acquire) {
                    return false;
                }
                rec = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn produce(a: ProduceArgs) -> anyhow::Result<()> {
    let trace = Trace::parse(&a.trace).map_err(anyhow::Error::msg)?;
    let mix = Mix {
        non_impression: a.non_impression,
        invalid: a.invalid,
        mismatch: a.mismatch,
    };
    anyhow::ensure!(
        mix.non_impression + mix.invalid + mix.mismatch <= 1.0,
        "the shares add up to more than 1"
    );
    let release = a.release.release()?;
    let stop = stop_flag()?;
    let (p, acks) = producer(&a.bootstrap)?;
    let mut ids = a
        .ids_out
        .as_ref()
        .map(std::fs::File::create)
        .transpose()?
        .map(std::io::BufWriter::new);
    let mut g = Generator::new(a.seed, a.titles, mix);
    if let Some(r) = release {
        g = g.with_release(r);
    }
    let mut report = Report::default();
    let start = Instant::now();
    let mut target = 0.0f64;
    let mut last = 0.0f64;
    let max = a.max_events.unwrap_or(u64::MAX);
    'trace: while report.total < max && !stop.load(Ordering::Acquire) {
        let t = start.elapsed().as_secs_f64();
        if t >= a.duration {
            break;
        }
        target += trace.rate_at(t) * (t - last);
        last = t;
        let now = now_ms();
        while (report.total as f64) < target && report.total < max {
            let e = g.next_event(now);
            let sent = send(
                &p,
                BaseRecord::to(&a.topic)
                    .key(e.event_id.as_bytes())
                    .payload(&e.payload),
                &stop,
            );
            if !sent {
                break 'trace;
            }
            report.add(e.kind);
            if let Some(w) = ids.as_mut() {
                writeln!(
                    w,
                    "{} {}",
                    e.event_id,
                    serde_json::to_string(&e.kind)?.trim_matches('"')
                )?;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stopped = stop.load(Ordering::Acquire);
    if stopped {
        // What is not acknowledged within the flush deadline is reported, not waited for.
        let _ = p.flush(STOP_FLUSH);
    } else {
        p.flush(Duration::from_secs(60))?;
    }
    if let Some(mut w) = ids {
        w.flush()?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let (acknowledged, failed) = (
        acks.ok.load(Ordering::Relaxed),
        acks.failed.load(Ordering::Relaxed),
    );
    let summary = Summary {
        events_per_second: report.total as f64 / seconds,
        acknowledged,
        failed,
        unacknowledged: report.total.saturating_sub(acknowledged + failed),
        stopped,
        report,
        seconds,
    };
    let json = serde_json::to_string_pretty(&summary)?;
    println!("{json}");
    if let Some(path) = a.report {
        std::fs::write(path, &json)?;
    }
    anyhow::ensure!(
        summary.failed == 0,
        "{} events were not acknowledged",
        summary.failed
    );
    Ok(())
}
