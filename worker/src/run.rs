//! The worker's main loop: poll a batch, process it (on one or more threads, partitions kept
//! whole), send outputs, release offsets as outputs are acknowledged (at-least-once) or commit
//! them with the outputs in a transaction (exactly-once, [`crate::kafka::transactional`]). On
//! stop it finishes the batch in hand, drains in-flight outputs, commits and leaves the group
//! within the drain timeout. Each processing thread offers the payloads it processes to its
//! schema learner; the loop ends the learners' window when it is due
//! ([`crate::schema_report`]).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    ClientContext, Message,
    client::Client,
    consumer::{BaseConsumer, Consumer},
    message::OwnedMessage,
    producer::Producer,
};

use crate::{
    avro::{self, Encoder, Framing},
    catalog::{Catalog, SharedCatalog},
    config::{DeliveryGuarantee, WorkerConfig},
    kafka::{
        auth::AuthWatch,
        consumer::SourceContext,
        offsets::Tracker,
        producer::{DeliveryContext, ProduceFailure, SinkProducer},
        sink::{Origin, Sink, SinkSettings},
        transactional::{self, Transactions},
    },
    metrics::{EventTypeLabel, Metrics, ReasonLabel},
    now_ms,
    process::{Outcome, Processor},
    quality::Tally,
    ratecap::RateCap,
    schema::Learner,
    schema_report::{Board, Windows},
};

/// What the HTTP endpoints report.
#[derive(Debug, Default)]
pub struct Health {
    /// The catalog is loaded and the consumer has joined: ready for traffic.
    pub ready: AtomicBool,
    /// Milliseconds of the last loop iteration, for liveness.
    pub heartbeat_ms: AtomicI64,
    /// The worker is stopping.
    pub draining: AtomicBool,
    /// The schema learner's last window (`GET /schema`).
    pub schema: Board,
    /// Where the exported CPU counter starts: marked when the worker first becomes ready.
    pub cpu_since_ready: Arc<crate::cpu::SinceReady>,
}

/// One processing thread's state: its per-event path and its schema learner (none when schema
/// learning is disabled).
struct Lane<'a> {
    processor: Processor<'a>,
    learner: Option<Learner>,
}

/// Counts of one batch, folded into the metrics once.
#[derive(Debug, Default)]
struct BatchCounts {
    processed: u64,
    rejected: BTreeMap<&'static str, u64>,
    filtered: BTreeMap<&'static str, u64>,
    tally: Tally,
    /// Events the schema learners walked.
    schema_sampled: u64,
}

impl BatchCounts {
    fn merge(&mut self, o: BatchCounts) {
        self.processed += o.processed;
        for (k, v) in o.rejected {
            *self.rejected.entry(k).or_default() += v;
        }
        for (k, v) in o.filtered {
            *self.filtered.entry(k).or_default() += v;
        }
        self.tally.merge(&o.tally);
        self.schema_sampled += o.schema_sampled;
    }
}

/// How long the Kafka clients may take to close once `run` ends.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// When dropped, ends the process if it is still running `grace` later: the clients dropped
/// after it (the consumer leaving its group, the producer purging) must not hold a stopped or
/// failed worker up. The exit status is 1: the clients were not closed.
struct CloseDeadline(Duration);

impl Drop for CloseDeadline {
    fn drop(&mut self) {
        let grace = self.0;
        let spawned = std::thread::Builder::new()
            .name("close-deadline".into())
            .spawn(move || {
                std::thread::sleep(grace);
                tracing::error!(
                    ?grace,
                    "the Kafka clients did not close in time; exiting without them"
                );
                std::process::exit(1);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no close deadline: cannot start its thread");
        }
    }
}

/// Runs until `stop` is set or a fatal error happens. An authentication or TLS failure of any
/// client (recorded in `auth`, shared with the catalog reader) is fatal.
pub fn run(
    cfg: &WorkerConfig,
    catalog: SharedCatalog,
    catalog_loaded: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
    auth: Arc<AuthWatch>,
) -> anyhow::Result<()> {
    // At-least-once: the first output that cannot be produced, which stops the worker.
    let failure = Arc::new(ProduceFailure::default());
    let drain = Duration::from_secs(cfg.drain_timeout_secs);
    let exactly_once = cfg.sink.delivery_guarantee == DeliveryGuarantee::ExactlyOnce;
    let producer_config = if exactly_once {
        let id = transactional::transactional_id(cfg)?;
        tracing::info!(transactional_id = %id, "exactly-once: transactional producer");
        crate::kafka::client::transactional_producer(cfg, &id)
    } else {
        crate::kafka::client::producer(cfg)
    };
    let producer: Arc<SinkProducer> =
        Arc::new(producer_config.create_with_context(DeliveryContext {
            metrics: metrics.clone(),
            dead_letter_topic: cfg.sink.dead_letter_topic.clone(),
            source_topic: cfg.source.topic.clone(),
            failure: failure.clone(),
            transactional: exactly_once,
            auth: auth.clone(),
        })?);
    // Before init_transactions, which would wait out its timeout on a refused handshake.
    if !wait_reachable(
        producer.client(),
        "sink producer",
        &cfg.sink.topic,
        || {},
        &auth,
        &stop,
        &health,
    )? {
        return Ok(());
    }
    let tracker = Arc::new(Tracker::default());
    let txn = if exactly_once {
        Some(Arc::new(Transactions::start(
            cfg,
            producer.clone(),
            tracker.clone(),
            metrics.clone(),
        )?))
    } else {
        None
    };
    let mut ctx = SourceContext::new(
        metrics.clone(),
        tracker.clone(),
        producer.clone(),
        cfg.source.topic.clone(),
        drain,
        auth.clone(),
    );
    ctx.transactions = txn.clone();
    let txn = txn.as_deref();
    let consumer: BaseConsumer<SourceContext> =
        crate::kafka::client::consumer(cfg).create_with_context(ctx)?;
    // Dropped before the clients (declared after them): however `run` ends, closing them is
    // bounded. librdkafka's consumer close waits for the group without a deadline; after a
    // fatal error in a rebalance with the coordinator away it waited for minutes.
    let _close_deadline = CloseDeadline(CLOSE_GRACE);
    // Not subscribed yet: polls serve only the client's errors and logs.
    let serve = || {
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            let _ = consumer.poll(Duration::from_millis(10));
        }
    };
    if !wait_reachable(
        consumer.client(),
        "source consumer",
        &cfg.source.topic,
        serve,
        &auth,
        &stop,
        &health,
    )? {
        return Ok(());
    }
    let sink = Sink::new(
        producer.clone(),
        SinkSettings {
            topic: cfg.sink.topic.clone(),
            dead_letter_topic: cfg.sink.dead_letter_topic.clone(),
            max_dead_letter_payload: cfg.dead_letter.max_payload_bytes,
        },
        metrics.clone(),
        (!exactly_once).then(|| failure.clone()),
    );

    let schema = avro::schema();
    let framing = cfg
        .sink
        .schema_id
        .map(|schema_id| Framing::Confluent { schema_id })
        .unwrap_or(Framing::SingleObject);
    let mut lanes: Vec<Lane<'_>> = (0..cfg.processing.threads)
        .map(|lane| Lane {
            processor: Processor::new(
                Encoder::new(&schema, framing),
                cfg.limits(),
                cfg.locations(),
            ),
            learner: cfg.learner(lane).map(|l| Learner::new(&l)),
        })
        .collect();
    let cap = cfg.processing.max_events_per_second.map(RateCap::new);

    // Not subscribed before the catalog is loaded: an unknown title would be dead-lettered.
    while !catalog_loaded.load(Ordering::Acquire) {
        if let Some(f) = auth.failure() {
            anyhow::bail!(f);
        }
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        health.heartbeat_ms.store(now_ms(), Ordering::Release);
        std::thread::sleep(Duration::from_millis(100));
    }
    consumer.subscribe(&[&cfg.source.topic])?;
    tracing::info!(
        topic = %cfg.source.topic,
        group = %cfg.source.consumer_group,
        protocol = ?cfg.source.group_protocol,
        "subscribed"
    );
    auth.set_running();
    health.cpu_since_ready.mark();
    health.ready.store(true, Ordering::Release);
    let pod = crate::instance::instance_name().unwrap_or_else(|| "unknown".into());
    let mut windows = Windows::new(cfg, pod, now_ms());

    let mut batch: Vec<OwnedMessage> = Vec::with_capacity(cfg.processing.max_batch);
    while !stop.load(Ordering::Acquire) && !failure.failed() {
        if let Some(f) = auth.failure() {
            // Nothing can be committed any more: stop at once, the group re-reads the rest.
            health.ready.store(false, Ordering::Release);
            anyhow::bail!(f);
        }
        let now = now_ms();
        health.heartbeat_ms.store(now, Ordering::Release);
        if let Some(w) = &mut windows
            && let Some(report) = w.tick(
                now,
                lanes.iter_mut().filter_map(|l| l.learner.as_mut()),
                &metrics,
            )
        {
            health.schema.publish(report);
        }
        batch.clear();
        poll_batch(&consumer, &mut batch, cfg.processing.max_batch, txn)?;
        settle(&consumer, txn, &mut batch)?;
        if batch.is_empty() {
            continue;
        }
        if let Some(t) = txn {
            t.begin(&batch)?;
        }
        let started = Instant::now();
        metrics.consumed.inc_by(batch.len() as u64);
        let counts = process_batch(
            &batch,
            &mut lanes,
            &catalog.load(),
            &tracker,
            &sink,
            &cfg.source.topic,
            started,
        );
        fold(&metrics, counts);
        if let Some(cap) = &cap {
            let hold = cap.hold(batch.len(), started.elapsed());
            if !hold.is_zero() {
                std::thread::sleep(hold);
                metrics.rate_cap_wait_seconds.inc_by(hold.as_secs_f64());
            }
        }
        metrics.busy_seconds.inc_by(started.elapsed().as_secs_f64());
        settle(&consumer, txn, &mut batch)?;
    }

    health.draining.store(true, Ordering::Release);
    health.ready.store(false, Ordering::Release);
    let ctx = consumer.context();
    let clean = match txn {
        None => {
            let clean = ctx.drain_and_store(&consumer);
            ctx.commit_now(&consumer);
            clean
        }
        // An aborted last transaction is clean too: its events are re-read by the next owner.
        Some(t) => {
            t.commit(&consumer)?;
            true
        }
    };
    if let Some(lost) = failure.message() {
        anyhow::bail!(lost);
    }
    if !clean {
        anyhow::bail!("drain timed out after {drain:?}; uncommitted events will be re-read");
    }
    // The consumer leaves its group as it is dropped: librdkafka's close revokes the assignment
    // (served by the poll loop of the drop, committing what is left) and then sends LeaveGroup.
    // An explicit unsubscribe before it made the close race the revoke's own commit under
    // traffic and end without a LeaveGroup (tests/tests/leave_group.rs).
    tracing::info!("drained and committed; leaving the group");
    Ok(())
}

/// After a poll and after a batch: stores the offsets acknowledged outputs released
/// (at-least-once), or commits the open transaction when it is due (exactly-once); if that
/// aborted and rewound, the messages in hand of the rewound partitions are fetched again, so
/// they are dropped from `batch`.
fn settle(
    consumer: &BaseConsumer<SourceContext>,
    txn: Option<&Transactions>,
    batch: &mut Vec<OwnedMessage>,
) -> anyhow::Result<()> {
    match txn {
        None => consumer.context().store_done(consumer),
        Some(t) => {
            t.check()?;
            t.commit_if_due(consumer)?;
            t.drop_stale(batch);
        }
    }
    Ok(())
}

/// Waits until `client` got an answer to a metadata request for `topic` from its brokers (it
/// reached them and authenticated; the topic need not exist), serving the client's events with
/// `serve` between tries. Returns false if `stop` came first; a recorded authentication or TLS
/// failure is the error. An unreachable broker is waited for (the worker stays not ready).
fn wait_reachable<C: ClientContext>(
    client: &Client<C>,
    what: &str,
    topic: &str,
    serve: impl Fn(),
    auth: &AuthWatch,
    stop: &AtomicBool,
    health: &Health,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut reported = Instant::now();
    loop {
        health.heartbeat_ms.store(now_ms(), Ordering::Release);
        let answer = client.fetch_metadata(Some(topic), Duration::from_secs(1));
        if answer.is_ok() {
            tracing::info!(
                client = what,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "reached Kafka"
            );
            return Ok(true);
        }
        serve();
        if let Some(f) = auth.failure() {
            anyhow::bail!(f);
        }
        if let Err(e) = answer
            && reported.elapsed() >= Duration::from_secs(10)
        {
            tracing::warn!(client = what, error = %e, "Kafka not reachable yet; not ready");
            reported = Instant::now();
        }
        if stop.load(Ordering::Acquire) {
            return Ok(false);
        }
    }
}

/// Polls up to `max` messages: waits for the first, then takes what is already fetched. With
/// transactions, a rebalance served by a poll may have made earlier messages stale.
fn poll_batch(
    consumer: &BaseConsumer<SourceContext>,
    batch: &mut Vec<OwnedMessage>,
    max: usize,
    txn: Option<&Transactions>,
) -> anyhow::Result<()> {
    let mut timeout = Duration::from_millis(100);
    while batch.len() < max {
        let polled = consumer.poll(timeout);
        if let Some(t) = txn {
            t.drop_stale(batch);
        }
        match polled {
            None => break,
            Some(Ok(m)) => batch.push(m.detach()),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consumer error");
                break;
            }
        }
        timeout = Duration::ZERO;
    }
    Ok(())
}

/// Processes a batch: each partition's messages stay together and in order on one thread.
fn process_batch(
    batch: &[OwnedMessage],
    lanes: &mut [Lane<'_>],
    catalog: &Catalog,
    tracker: &Tracker,
    sink: &Sink,
    topic: &str,
    consumed_at: Instant,
) -> BatchCounts {
    let mut by_partition: BTreeMap<i32, Vec<&OwnedMessage>> = BTreeMap::new();
    for m in batch {
        by_partition.entry(m.partition()).or_default().push(m);
    }
    let groups: Vec<Vec<&OwnedMessage>> = by_partition.into_values().collect();
    if lanes.len() == 1 || groups.len() == 1 {
        let mut counts = BatchCounts::default();
        for g in &groups {
            counts.merge(process_partition(
                g,
                &mut lanes[0],
                catalog,
                tracker,
                sink,
                topic,
                consumed_at,
            ));
        }
        return counts;
    }
    let n = lanes.len();
    std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .iter_mut()
            .enumerate()
            .map(|(i, lane)| {
                let mine: Vec<&Vec<&OwnedMessage>> = groups.iter().skip(i).step_by(n).collect();
                s.spawn(move || {
                    let mut counts = BatchCounts::default();
                    for g in mine {
                        counts.merge(process_partition(
                            g,
                            lane,
                            catalog,
                            tracker,
                            sink,
                            topic,
                            consumed_at,
                        ));
                    }
                    counts
                })
            })
            .collect();
        let mut total = BatchCounts::default();
        for h in handles {
            total.merge(h.join().expect("processing thread panicked"));
        }
        total
    })
}

fn process_partition(
    msgs: &[&OwnedMessage],
    lane: &mut Lane<'_>,
    catalog: &Catalog,
    tracker: &Tracker,
    sink: &Sink,
    topic: &str,
    consumed_at: Instant,
) -> BatchCounts {
    let mut counts = BatchCounts::default();
    let Some(last) = msgs.last() else {
        return counts;
    };
    let chunk = tracker.open(last.partition(), last.offset(), consumed_at);
    let now = now_ms();
    let mut out = Vec::with_capacity(1024);
    for m in msgs {
        let payload = m.payload().unwrap_or_default();
        let origin = Origin {
            topic,
            partition: m.partition(),
            offset: m.offset(),
        };
        if let Some(l) = &mut lane.learner {
            counts.schema_sampled += u64::from(l.offer(payload, now));
        }
        match lane
            .processor
            .process(payload, catalog, now, &mut out, &mut counts.tally)
        {
            Outcome::Record => sink.record(m.key(), &out, origin, &chunk),
            Outcome::Rejected(r) => {
                *counts.rejected.entry(r.reason()).or_default() += 1;
                sink.dead_letter(m.key(), payload, &r, origin, &chunk);
            }
            Outcome::Filtered(t) => *counts.filtered.entry(t).or_default() += 1,
        }
        counts.processed += 1;
    }
    chunk.sealed();
    counts
}

fn fold(m: &Metrics, c: BatchCounts) {
    m.processed.inc_by(c.processed);
    m.schema_events_sampled.inc_by(c.schema_sampled);
    for (reason, n) in c.rejected {
        m.rejected.get_or_create(&ReasonLabel { reason }).inc_by(n);
    }
    for (event_type, n) in c.filtered {
        m.filtered
            .get_or_create(&EventTypeLabel { event_type })
            .inc_by(n);
    }
    m.add_tally(&c.tally);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test runs itself as a child that drops a deadline and then hangs, as a client that
    /// never closes would: the child must end with status 1 soon after the deadline.
    #[test]
    fn a_close_deadline_ends_a_process_held_up_after_it() {
        const CHILD: &str = "IMPRESSIONS_CLOSE_DEADLINE_CHILD";
        if std::env::var_os(CHILD).is_some() {
            drop(CloseDeadline(Duration::from_millis(200)));
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        let t0 = Instant::now();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "run::tests::a_close_deadline_ends_a_process_held_up_after_it",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .expect("run the test binary");
        let took = t0.elapsed();
        assert_eq!(
            out.status.code(),
            Some(1),
            "the held-up child ended by the deadline: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(took < Duration::from_secs(10), "ended after {took:?}");
    }
}
