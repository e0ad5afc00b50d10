//! The sink producer's delivery reports: each acknowledges one output of a chunk (releasing
//! its offsets once the chunk is done), counts outputs and their latency; a refused output is
//! fatal at-least-once.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use rdkafka::{
    ClientContext, Message,
    producer::{DeliveryResult, ProducerContext, ThreadedProducer},
};

use super::{auth::AuthWatch, offsets::Chunk};
use crate::metrics::Metrics;

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
