//! librdkafka callbacks: delivery reports (release offsets, count outputs, latency) and
//! consumer rebalances (drain and commit before a partition is given away) and statistics
//! (lag per partition).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    ClientContext, Message, Offset, Statistics, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer},
};

use super::{
    auth::AuthWatch,
    offsets::{Chunk, Tracker},
    transactional::Transactions,
};
use crate::metrics::{Metrics, PartitionLabels};

/// The producer's context: each delivery report acknowledges one output of a chunk.
#[derive(Debug)]
pub struct DeliveryContext {
    pub metrics: Arc<Metrics>,
    pub dead_letter_topic: String,
    /// Set on the first output the broker refused; the worker then stops without committing it.
    /// Not with ExactlyOnce: a refused output fails its transaction's commit, which aborts.
    pub fatal: Arc<AtomicBool>,
    pub transactional: bool,
    /// Where an authentication or TLS failure is recorded.
    pub auth: Arc<AuthWatch>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.auth.on_error("sink producer", error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<Chunk>;

    fn delivery(&self, result: &DeliveryResult<'_>, chunk: Arc<Chunk>) {
        match result {
            Ok(m) => {
                if m.topic() == self.dead_letter_topic {
                    self.metrics.dead_letters_produced.inc();
                } else {
                    self.metrics.records_produced.inc();
                }
                self.metrics
                    .latency
                    .0
                    .observe(chunk.consumed_at.elapsed().as_secs_f64());
                chunk.output_acked(true);
            }
            Err((e, m)) if self.transactional => {
                // Also every output purged by an abort: the abort is logged once.
                tracing::debug!(error = %e, topic = m.topic(), "output not acknowledged");
                self.metrics.delivery_errors.inc();
                chunk.output_acked(false);
            }
            Err((e, m)) => {
                tracing::error!(error = %e, topic = m.topic(), "output not acknowledged; stopping without committing its input");
                self.metrics.delivery_errors.inc();
                self.fatal.store(true, Ordering::Release);
                chunk.output_acked(false);
            }
        }
    }
}

/// The sink producer type.
pub type SinkProducer = ThreadedProducer<DeliveryContext>;

/// The consumer's context.
pub struct SourceContext {
    pub metrics: Arc<Metrics>,
    pub tracker: Arc<Tracker>,
    pub producer: Arc<SinkProducer>,
    pub topic: String,
    pub drain_timeout: Duration,
    /// ExactlyOnce: the transactions that commit the offsets.
    pub transactions: Option<Arc<Transactions>>,
    /// Where an authentication or TLS failure is recorded.
    pub auth: Arc<AuthWatch>,
    /// Partitions whose lag gauge is set, to clear on revoke.
    lag_partitions: Mutex<Vec<i32>>,
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("topic", &self.topic)
            .finish()
    }
}

impl SourceContext {
    pub fn new(
        metrics: Arc<Metrics>,
        tracker: Arc<Tracker>,
        producer: Arc<SinkProducer>,
        topic: String,
        drain_timeout: Duration,
        auth: Arc<AuthWatch>,
    ) -> Self {
        SourceContext {
            metrics,
            tracker,
            producer,
            topic,
            drain_timeout,
            transactions: None,
            auth,
            lag_partitions: Mutex::new(Vec::new()),
        }
    }

    /// Waits for every in-flight output, then stores the offsets they release. Returns false
    /// if the drain timed out or an output failed (nothing beyond it is stored).
    pub fn drain_and_store(&self, consumer: &BaseConsumer<SourceContext>) -> bool {
        let flushed = self.producer.flush(self.drain_timeout).is_ok();
        self.store_done(consumer);
        flushed && !self.tracker.any_failed()
    }

    /// Stores the offsets released by acknowledged chunks (committed by auto-commit or by a
    /// synchronous commit).
    pub fn store_done(&self, consumer: &BaseConsumer<SourceContext>) {
        let done = self.tracker.take_committable();
        if done.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, next) in done {
            let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(next));
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            // A partition revoked meanwhile cannot be stored; its new owner re-reads from the
            // last commit (at-least-once).
            tracing::debug!(error = %e, "storing offsets");
        }
    }

    /// Commits stored offsets now.
    pub fn commit_now(&self, consumer: &BaseConsumer<SourceContext>) {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {
                self.metrics.commits.inc();
            }
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => tracing::warn!(error = %e, "committing offsets"),
        }
    }
}

impl ClientContext for SourceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.auth.on_error("source consumer", error, reason);
    }

    fn stats(&self, stats: Statistics) {
        let Some(topic) = stats.topics.get(&self.topic) else {
            return;
        };
        let mut seen = self.lag_partitions.lock().expect("lag lock");
        seen.clear();
        for (p, ps) in &topic.partitions {
            if *p < 0 || ps.consumer_lag < 0 {
                continue;
            }
            seen.push(*p);
            self.metrics
                .consumer_lag
                .get_or_create(&PartitionLabels {
                    topic: self.topic.clone(),
                    partition: p.to_string(),
                })
                .set(ps.consumer_lag);
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            if let Some(t) = &self.transactions {
                tracing::info!(?revoked, "partitions revoked: ending the open transaction");
                t.on_revoke(consumer, &revoked);
            } else {
                tracing::info!(
                    ?revoked,
                    "partitions revoked: draining in-flight outputs and committing"
                );
                if !self.drain_and_store(consumer) {
                    tracing::warn!(
                        "drain before revoke incomplete; uncommitted events will be re-read by the new owner"
                    );
                }
                self.commit_now(consumer);
            }
            self.tracker.forget(&revoked);
            for p in revoked {
                self.metrics.consumer_lag.remove(&PartitionLabels {
                    topic: self.topic.clone(),
                    partition: p.to_string(),
                });
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Ok(a) = consumer.assignment() {
            self.metrics.assigned_partitions.set(a.count() as i64);
            if let Rebalance::Assign(tpl) = rebalance {
                let added: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?added, total = a.count(), "partitions assigned");
            }
        }
    }
}
