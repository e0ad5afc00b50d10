//! Exactly-once delivery (`sink.deliveryGuarantee: ExactlyOnce`), as Kafka Streams and Flink's
//! Kafka sink do it: one transactional producer per worker instance; the outputs of the events
//! consumed since the last commit and those events' offsets are committed in one Kafka
//! transaction, so a `read_committed` reader of the sink sees each input's outputs exactly once.
//!
//! - The `transactional.id` is stable per instance (`<consumerGroup>-<pod name>`): a restarted
//!   instance fences its predecessor and aborts its open transaction at `init_transactions`.
//!   Across rebalances the consumer's group metadata sent with the offsets fences zombies
//!   (KIP-447), so two instances never commit the same partition's offsets.
//! - A transaction is committed every `sink.transactionIntervalMs` or `transactionMaxEvents`
//!   input events, before partitions are revoked, and on stop. The per-event path is the
//!   at-least-once one, unchanged; only when offsets are committed differs.
//! - An abortable error, or an output not acknowledged, aborts the transaction and rewinds the
//!   consumer to where the transaction started (its first offset per partition: what the
//!   previous transaction committed); messages polled before a rewind or a revoke are dropped.
//!   A fatal error (fenced, unrecoverable) or five aborts in a row stop the worker with an error
//!   so that it restarts.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    error::KafkaError,
    message::OwnedMessage,
    producer::Producer,
};

use super::{offsets::Tracker, producer::SinkProducer};
use crate::{
    config::WorkerConfig,
    metrics::{Metrics, OutcomeLabel},
};

/// An error after which the worker must stop (and restart): the producer is fenced or in a
/// state it cannot leave, or a rewind failed.
#[derive(Debug, thiserror::Error)]
#[error("exactly-once: {0}")]
pub struct Fatal(String);

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// No transaction was open.
    Nothing,
    Committed,
    /// Aborted; the consumer was rewound to where it started.
    Aborted,
}

/// The transactional id of this instance: the configured one, else
/// `<consumerGroup>-<$POD_NAME | $HOSTNAME | kernel host name>`.
pub fn transactional_id(cfg: &WorkerConfig) -> Result<String, Fatal> {
    derive_id(
        &cfg.source.consumer_group,
        cfg.transactions().transactional_id.as_deref(),
        crate::instance::instance_name(),
    )
    .ok_or_else(|| {
        Fatal(
            "no instance name for the transactional id: set sink.transactionalId, POD_NAME or \
             HOSTNAME"
                .into(),
        )
    })
}

fn derive_id(group: &str, explicit: Option<&str>, instance: Option<String>) -> Option<String> {
    if let Some(id) = explicit {
        return Some(id.to_owned());
    }
    Some(format!("{group}-{}", instance?))
}

/// The open transaction's bookkeeping.
#[derive(Debug)]
struct OpenTxn {
    started: Instant,
    events: usize,
    /// Per partition, the first offset consumed in this transaction: where to rewind on abort.
    first: BTreeMap<i32, i64>,
    /// Per partition, one past the last offset consumed: what the transaction commits.
    next: BTreeMap<i32, i64>,
}

impl OpenTxn {
    fn new(started: Instant) -> Self {
        OpenTxn {
            started,
            events: 0,
            first: BTreeMap::new(),
            next: BTreeMap::new(),
        }
    }

    fn add(&mut self, partition: i32, offset: i64) {
        self.events += 1;
        self.first.entry(partition).or_insert(offset);
        let next = self.next.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    fn due(&self, now: Instant, interval: Duration, max_events: usize) -> bool {
        self.events >= max_events || now.duration_since(self.started) >= interval
    }

    fn offsets(&self, topic: &str) -> TopicPartitionList {
        tpl(topic, self.next.iter())
    }

    /// Where to seek after an abort: the transaction's partitions that are still assigned.
    fn rewind(&self, topic: &str, revoked: &[i32]) -> TopicPartitionList {
        tpl(
            topic,
            self.first.iter().filter(|(p, _)| !revoked.contains(p)),
        )
    }
}

fn tpl<'a>(topic: &str, offsets: impl Iterator<Item = (&'a i32, &'a i64)>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("a concrete offset is always representable");
    }
    tpl
}

#[derive(Debug, Default)]
struct State {
    open: Option<OpenTxn>,
    /// Partitions revoked or rewound by a rebalance: messages of theirs polled before must not
    /// be processed.
    stale: BTreeSet<i32>,
    /// A fatal error met in the rebalance callback, for the main loop to stop on.
    fatal: Option<String>,
    aborts_in_a_row: u32,
}

/// The instance's transactions.
pub struct Transactions {
    producer: Arc<SinkProducer>,
    tracker: Arc<Tracker>,
    metrics: Arc<Metrics>,
    topic: String,
    interval: Duration,
    max_events: usize,
    timeout: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("topic", &self.topic)
            .field("interval", &self.interval)
            .finish()
    }
}

/// Attempts of a call that failed with a retriable error.
const ATTEMPTS: usize = 3;

/// Aborts without a commit in between after which the worker stops.
const MAX_ABORTS_IN_A_ROW: u32 = 5;

fn retrying<T>(mut call: impl FnMut() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    let mut attempt = 1;
    loop {
        match call() {
            Err(KafkaError::Transaction(e))
                if e.is_retriable() && !e.is_fatal() && attempt < ATTEMPTS =>
            {
                tracing::warn!(error = %e, attempt, "retrying a transactional call");
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Why a transaction did not commit.
enum CommitError {
    /// An output was not acknowledged.
    Refused,
    Kafka(KafkaError),
}

/// Whether the transaction can be aborted and the work redone (rather than stopping).
fn requires_abort(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(r) => !r.is_fatal() && (r.txn_requires_abort() || r.is_retriable()),
        // The flush before the commit timed out: outputs undelivered, abort.
        KafkaError::Flush(_) => true,
        _ => false,
    }
}

impl Transactions {
    /// Initialises the producer's transactions: fences an earlier instance with the same id and
    /// aborts its open transaction.
    pub fn start(
        cfg: &WorkerConfig,
        producer: Arc<SinkProducer>,
        tracker: Arc<Tracker>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Fatal> {
        let t = cfg.transactions();
        let timeout = Duration::from_millis(t.timeout_ms);
        retrying(|| producer.init_transactions(timeout + Duration::from_secs(20)))
            .map_err(|e| Fatal(format!("init_transactions: {e}")))?;
        Ok(Transactions {
            producer,
            tracker,
            metrics,
            topic: cfg.source.topic.clone(),
            interval: Duration::from_millis(t.interval_ms),
            max_events: t.max_events,
            timeout,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("transactions lock")
    }

    /// A fatal error met in a rebalance callback.
    pub fn check(&self) -> Result<(), Fatal> {
        match &self.lock().fatal {
            Some(e) => Err(Fatal(e.clone())),
            None => Ok(()),
        }
    }

    /// After each poll: drops the messages polled before a rebalance revoked or rewound their
    /// partition (a revoked one is its new owner's; a rewound one will be fetched again).
    pub fn drop_stale(&self, batch: &mut Vec<OwnedMessage>) {
        let stale = std::mem::take(&mut self.lock().stale);
        if !stale.is_empty() && !batch.is_empty() {
            let before = batch.len();
            batch.retain(|m| !stale.contains(&m.partition()));
            tracing::debug!(
                dropped = before - batch.len(),
                "messages polled before a rebalance"
            );
        }
    }

    /// The batch is about to be processed: opens a transaction if none is open and adds the
    /// batch's offsets to it.
    pub fn begin(&self, batch: &[OwnedMessage]) -> Result<(), Fatal> {
        let mut st = self.lock();
        let open = match &mut st.open {
            Some(open) => open,
            None => {
                self.producer
                    .begin_transaction()
                    .map_err(|e| Fatal(format!("begin_transaction: {e}")))?;
                tracing::trace!("transaction begun");
                st.open.insert(OpenTxn::new(Instant::now()))
            }
        };
        for m in batch {
            open.add(m.partition(), m.offset());
        }
        Ok(())
    }

    /// Commits the open transaction if it is old or large enough, or ends it at once when an
    /// output failed (it can only abort; the sooner, the less work is redone).
    pub fn commit_if_due<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
    ) -> Result<Ended, Fatal> {
        let mut st = self.lock();
        let due = st.open.as_ref().is_some_and(|o| {
            o.due(Instant::now(), self.interval, self.max_events) || self.tracker.any_failed()
        });
        if !due {
            return Ok(Ended::Nothing);
        }
        self.end(consumer, &mut st, &[])
    }

    /// Commits the open transaction now (on stop).
    pub fn commit<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> Result<Ended, Fatal> {
        let mut st = self.lock();
        self.end(consumer, &mut st, &[])
    }

    /// From the rebalance callback, before `revoked` are given away: commits the open
    /// transaction (aborts it if the assignment was lost: the offsets would be refused).
    pub fn on_revoke<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, revoked: &[i32]) {
        let mut st = self.lock();
        let result = if consumer.assignment_lost() {
            match st.open.take() {
                Some(open) => {
                    tracing::warn!("assignment lost: aborting the open transaction");
                    self.abort(consumer, &mut st, &open, revoked)
                }
                None => Ok(Ended::Nothing),
            }
        } else {
            self.end(consumer, &mut st, revoked)
        };
        st.stale.extend(revoked);
        match result {
            Ok(ended) => tracing::info!(?revoked, ?ended, "transaction ended before revoke"),
            Err(e) => {
                tracing::error!(error = %e, "ending the transaction before revoke");
                st.fatal = Some(e.0);
            }
        }
    }

    /// Sends the offsets and commits; aborts and rewinds if the transaction cannot commit.
    fn end<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        st: &mut State,
        revoked: &[i32],
    ) -> Result<Ended, Fatal> {
        let Some(open) = st.open.take() else {
            return Ok(Ended::Nothing);
        };
        let t0 = Instant::now();
        let meta = consumer
            .group_metadata()
            .ok_or_else(|| Fatal("the consumer has no group metadata".into()))?;
        let offsets = open.offsets(&self.topic);
        // The offsets travel to the coordinator while the last outputs are still in flight.
        let _ = self.producer.flush(Duration::ZERO);
        let result = retrying(|| {
            self.producer
                .send_offsets_to_transaction(&offsets, &meta, self.timeout)
        })
        .map_err(CommitError::Kafka)
        .and_then(|()| {
            self.await_outputs(t0 + self.timeout);
            if self.tracker.any_failed() {
                return Err(CommitError::Refused);
            }
            retrying(|| self.producer.commit_transaction(self.timeout)).map_err(CommitError::Kafka)
        });
        match result {
            Ok(()) => {
                st.aborts_in_a_row = 0;
                tracing::debug!(
                    events = open.events,
                    open_ms = open.started.elapsed().as_millis() as u64,
                    commit_ms = t0.elapsed().as_millis() as u64,
                    "transaction committed"
                );
                self.tracker.clear();
                let m = &self.metrics;
                m.transactions
                    .get_or_create(&OutcomeLabel {
                        outcome: "committed",
                    })
                    .inc();
                m.events_committed.inc_by(open.events as u64);
                m.commits.inc();
                m.transaction_commit_seconds
                    .0
                    .observe(t0.elapsed().as_secs_f64());
                Ok(Ended::Committed)
            }
            Err(CommitError::Refused) => {
                // An output the producer refused at once (not a transaction error) or whose
                // delivery failed: committing would commit its input without it.
                tracing::warn!(
                    events = open.events,
                    "an output was not acknowledged: aborting the transaction and rewinding"
                );
                self.abort(consumer, st, &open, revoked)
            }
            Err(CommitError::Kafka(e)) if requires_abort(&e) => {
                tracing::warn!(error = %e, events = open.events, "transaction cannot commit: aborting it and rewinding");
                self.abort(consumer, st, &open, revoked)
            }
            Err(CommitError::Kafka(e)) => Err(Fatal(format!("committing a transaction: {e}"))),
        }
    }

    /// Waits until every output sent is acknowledged (or `deadline`). `commit_transaction`
    /// flushes too, but rdkafka's flush waits in 100 ms polls whose events the threaded
    /// producer's own thread takes, so it would sleep ~100 ms per commit; here the wait ends
    /// within a millisecond of the last acknowledgement.
    fn await_outputs(&self, deadline: Instant) {
        // A zero-timeout flush only tells librdkafka to send what lingers now.
        let _ = self.producer.flush(Duration::ZERO);
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Aborts and seeks the still-assigned partitions back to where the transaction started.
    fn abort<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        st: &mut State,
        open: &OpenTxn,
        revoked: &[i32],
    ) -> Result<Ended, Fatal> {
        retrying(|| self.producer.abort_transaction(self.timeout))
            .map_err(|e| Fatal(format!("abort_transaction: {e}")))?;
        self.tracker.clear();
        self.metrics
            .transactions
            .get_or_create(&OutcomeLabel { outcome: "aborted" })
            .inc();
        st.aborts_in_a_row += 1;
        if st.aborts_in_a_row >= MAX_ABORTS_IN_A_ROW {
            // The same input fails again and again (e.g. an output the sink refuses): stop, so
            // that the restarts show, rather than loop.
            return Err(Fatal(format!(
                "{} transactions in a row aborted; the input is not committed",
                st.aborts_in_a_row
            )));
        }
        let rewind = open.rewind(&self.topic, revoked);
        if rewind.count() == 0 {
            return Ok(Ended::Aborted);
        }
        let done = consumer
            .seek_partitions(rewind, self.timeout)
            .map_err(|e| Fatal(format!("rewinding after an abort: {e}")))?;
        for e in done.elements() {
            if let Err(err) = e.error() {
                return Err(Fatal(format!(
                    "rewinding partition {} after an abort: {err}",
                    e.partition()
                )));
            }
            st.stale.insert(e.partition());
        }
        tracing::info!(rewound = ?open.first, "consumer rewound to the aborted transaction's start");
        Ok(Ended::Aborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_commits_one_past_the_last_offset_and_rewinds_to_the_first() {
        let mut t = OpenTxn::new(Instant::now());
        for (p, o) in [(0, 10), (1, 5), (0, 11), (0, 14), (1, 6)] {
            t.add(p, o);
        }
        assert_eq!(t.events, 5);
        assert_eq!(t.next, BTreeMap::from([(0, 15), (1, 7)]));
        assert_eq!(t.first, BTreeMap::from([(0, 10), (1, 5)]));
        let rewind = t.rewind("raw", &[1]);
        let got: Vec<(i32, Offset)> = rewind
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        assert_eq!(
            got,
            vec![(0, Offset::Offset(10))],
            "revoked partitions are not rewound"
        );
        assert_eq!(t.offsets("raw").count(), 2);
    }

    #[test]
    fn a_transaction_is_due_by_age_or_size() {
        let t0 = Instant::now();
        let mut t = OpenTxn::new(t0);
        let ms = Duration::from_millis;
        assert!(!t.due(t0 + ms(50), ms(100), 3));
        assert!(t.due(t0 + ms(100), ms(100), 3));
        for o in 0..3 {
            t.add(0, o);
        }
        assert!(t.due(t0, ms(100), 3));
    }

    #[test]
    fn the_transactional_id_is_the_configured_one_or_group_and_instance() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            derive_id("g", Some("explicit"), some("pod")).as_deref(),
            Some("explicit")
        );
        assert_eq!(
            derive_id("g", None, some("host")).as_deref(),
            Some("g-host")
        );
        assert_eq!(derive_id("g", None, None), None);
    }
}
