//! The source consumer's context: rebalances (drain and commit, or end the open transaction,
//! before a partition is given away) and statistics (lag per partition).

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use rdkafka::{
    ClientContext, Offset, Statistics, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    producer::Producer,
};

use super::{
    auth::AuthWatch, offsets::Tracker, producer::SinkProducer, transactional::Transactions,
};
use crate::metrics::{Metrics, PartitionLabels};

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
    /// The partitions assigned, kept from the rebalances themselves: asking librdkafka
    /// (`rd_kafka_assignment`) from a rebalance callback waits without a deadline for its main
    /// thread, and a worker hung there after a broker came back from a hang (the chaos suite).
    assigned: Mutex<BTreeSet<i32>>,
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
            assigned: Mutex::new(BTreeSet::new()),
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
            let mut assigned = self.assigned.lock().expect("assignment lock");
            for p in &revoked {
                assigned.remove(p);
            }
            self.metrics.assigned_partitions.set(assigned.len() as i64);
            drop(assigned);
            for p in revoked {
                self.metrics.consumer_lag.remove(&PartitionLabels {
                    topic: self.topic.clone(),
                    partition: p.to_string(),
                });
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let added: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            let mut assigned = self.assigned.lock().expect("assignment lock");
            assigned.extend(&added);
            self.metrics.assigned_partitions.set(assigned.len() as i64);
            tracing::info!(?added, total = assigned.len(), "partitions assigned");
        }
    }
}
