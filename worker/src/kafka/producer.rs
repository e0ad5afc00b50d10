//! The sink producer's delivery reports: each acknowledges one output of a chunk (releasing
//! its offsets once the chunk is done), counts outputs and their latency. At-least-once, an
//! output that cannot be produced is fatal ([`ProduceFailure`]).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use rdkafka::{
    ClientContext, Message,
    error::KafkaError,
    producer::{DeliveryResult, ProducerContext},
};

use super::{auth::AuthWatch, offsets::Chunk, polled::PolledProducer};
use crate::metrics::{Metrics, OutputLabel};

/// What kind of output was lost (a metric label value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Record,
    DeadLetter,
}

impl OutputKind {
    /// Every value, for pre-registering metric series.
    pub const ALL: [OutputKind; 2] = [OutputKind::Record, OutputKind::DeadLetter];

    pub fn label(self) -> &'static str {
        match self {
            OutputKind::Record => "record",
            OutputKind::DeadLetter => "dead_letter",
        }
    }

    fn article(self) -> &'static str {
        match self {
            OutputKind::Record => "a record",
            OutputKind::DeadLetter => "a dead letter",
        }
    }
}

/// An output that cannot be produced: refused in its delivery report (librdkafka retries what
/// can be retried before it reports), or refused at once when it was handed to the producer.
#[derive(Debug)]
pub struct LostOutput<'a> {
    pub kind: OutputKind,
    pub topic: &'a str,
    /// The output's partition; `None` when it was refused before one was chosen.
    pub partition: Option<i32>,
    pub error: &'a KafkaError,
    /// Where its input came from; that partition cannot be committed past it.
    pub source_topic: &'a str,
    pub source_partition: i32,
    /// The input's offset, when known (its delivery report knows only the partition).
    pub source_offset: Option<i64>,
}

impl std::fmt::Display for LostOutput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} for topic {}, partition ",
            self.kind.article(),
            self.topic
        )?;
        match self.partition {
            Some(p) if p >= 0 => write!(f, "{p}")?,
            _ => f.write_str("not yet chosen")?,
        }
        write!(
            f,
            ", cannot be produced: {}; stopping so that partition {} of {} is not committed \
             past its input",
            self.error, self.source_partition, self.source_topic
        )?;
        if let Some(o) = self.source_offset {
            write!(f, " (offset {o})")?;
        }
        Ok(())
    }
}

/// At-least-once: the first output that cannot be produced. Its input's partition can never be
/// committed past it, so the worker stops (and is restarted, re-reading from the last commit)
/// instead of running on while that partition's offsets stand still.
#[derive(Debug, Default)]
pub struct ProduceFailure {
    failed: AtomicBool,
    first: Mutex<Option<String>>,
}

impl ProduceFailure {
    /// Records, logs and counts a lost output; the first one's message is kept.
    pub fn record(&self, lost: &LostOutput<'_>, metrics: &Metrics) {
        let message = lost.to_string();
        tracing::error!(
            topic = lost.topic,
            partition = lost.partition,
            error = %lost.error,
            "{message}"
        );
        metrics
            .fatal_produce_errors
            .get_or_create(&OutputLabel {
                output: lost.kind.label(),
            })
            .inc();
        let mut first = self.first.lock().expect("produce failure lock");
        if first.is_none() {
            *first = Some(message);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// Whether an output was lost.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The first lost output, described.
    pub fn message(&self) -> Option<String> {
        if !self.failed() {
            return None;
        }
        self.first.lock().expect("produce failure lock").clone()
    }
}

/// The producer's context: each delivery report acknowledges one output of a chunk.
#[derive(Debug)]
pub struct DeliveryContext {
    pub metrics: Arc<Metrics>,
    pub dead_letter_topic: String,
    /// The topic the chunks' events came from (named when an output is lost).
    pub source_topic: String,
    /// Records the first output the broker refused; the worker then stops without committing
    /// it. Not with ExactlyOnce: a refused output fails its transaction's commit, which aborts.
    pub failure: Arc<ProduceFailure>,
    pub transactional: bool,
    /// Where an authentication or TLS failure is recorded.
    pub auth: Arc<AuthWatch>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
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
                self.metrics.delivery_errors.inc();
                let kind = if m.topic() == self.dead_letter_topic {
                    OutputKind::DeadLetter
                } else {
                    OutputKind::Record
                };
                self.failure.record(
                    &LostOutput {
                        kind,
                        topic: m.topic(),
                        partition: Some(m.partition()),
                        error: e,
                        source_topic: &self.source_topic,
                        source_partition: chunk.partition,
                        source_offset: None,
                    },
                    &self.metrics,
                );
                chunk.output_acked(false);
            }
        }
    }
}

/// The sink producer type.
pub type SinkProducer = PolledProducer<DeliveryContext>;

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    #[test]
    fn a_lost_output_is_named_with_topic_partition_error_and_input() {
        let m = Metrics::default();
        let f = ProduceFailure::default();
        assert_eq!(f.message(), None);
        let error = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        f.record(
            &LostOutput {
                kind: OutputKind::DeadLetter,
                topic: "dlq",
                partition: None,
                error: &error,
                source_topic: "raw",
                source_partition: 3,
                source_offset: Some(41),
            },
            &m,
        );
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed);
        f.record(
            &LostOutput {
                kind: OutputKind::Record,
                topic: "out",
                partition: Some(2),
                error: &refused,
                source_topic: "raw",
                source_partition: 1,
                source_offset: None,
            },
            &m,
        );
        assert!(f.failed());
        let first = f.message().unwrap();
        assert!(
            first.starts_with(
                "a dead letter for topic dlq, partition not yet chosen, cannot be produced: "
            ),
            "{first}"
        );
        assert!(first.contains("Message size too large"), "{first}");
        assert!(
            first.ends_with("partition 3 of raw is not committed past its input (offset 41)"),
            "{first}"
        );
        for (output, n) in [("dead_letter", 1), ("record", 1)] {
            assert_eq!(
                m.fatal_produce_errors
                    .get_or_create(&OutputLabel { output })
                    .get(),
                n
            );
        }
    }

    #[test]
    fn output_kinds_are_the_metric_label_values() {
        assert_eq!(
            OutputKind::ALL.map(OutputKind::label),
            crate::metrics::OUTPUTS
        );
    }
}
