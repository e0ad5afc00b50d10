//! Sending outputs: records to the sink topic, rejected events with their reason to the
//! dead-letter topic. A full producer queue is backpressure: the sender waits (and that wait is
//! part of the worker's busy time).

use std::{sync::Arc, time::Duration};

use rdkafka::{
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::BaseRecord,
    types::RDKafkaErrorCode,
};

use super::{
    offsets::Chunk,
    producer::{LostOutput, OutputKind, ProduceFailure, SinkProducer},
};
use crate::{metrics::Metrics, reject::Reject};

pub use impressions_worker_core::dead_letter::{
    MAX_DETAIL_BYTES, Origin, Truncated, bounded_detail, dead_letter_payload, headers,
};

/// The sink: one producer, two topics.
#[derive(Clone)]
pub struct Sink {
    producer: Arc<SinkProducer>,
    topic: String,
    dead_letter_topic: String,
    max_dead_letter_payload: usize,
    metrics: Arc<Metrics>,
    /// At-least-once: where an output the producer refuses at once is recorded (fatal).
    /// ExactlyOnce (`None`): the refused output's chunk fails, which aborts its transaction.
    failure: Option<Arc<ProduceFailure>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("topic", &self.topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("max_dead_letter_payload", &self.max_dead_letter_payload)
            .finish()
    }
}

/// What a [`Sink`] sends where.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub topic: String,
    pub dead_letter_topic: String,
    /// `deadLetter.maxPayloadBytes`.
    pub max_dead_letter_payload: usize,
}

impl Sink {
    pub fn new(
        producer: Arc<SinkProducer>,
        settings: SinkSettings,
        metrics: Arc<Metrics>,
        failure: Option<Arc<ProduceFailure>>,
    ) -> Self {
        Sink {
            producer,
            topic: settings.topic,
            dead_letter_topic: settings.dead_letter_topic,
            max_dead_letter_payload: settings.max_dead_letter_payload,
            metrics,
            failure,
        }
    }

    /// Sends an encoded record of the event at `origin`; its acknowledgement releases one
    /// output of `chunk`.
    pub fn record(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        origin: Origin<'_>,
        chunk: &Arc<Chunk>,
    ) {
        let mut rec = BaseRecord::with_opaque_to(&self.topic, chunk.clone()).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        self.send(rec, OutputKind::Record, origin, chunk);
    }

    /// Sends a rejected event's original bytes (cut to the dead-letter payload limit) with the
    /// reason in its headers.
    pub fn dead_letter(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        reject: &Reject,
        origin: Origin<'_>,
        chunk: &Arc<Chunk>,
    ) {
        let (payload, truncated) = dead_letter_payload(payload, self.max_dead_letter_payload);
        let detail = bounded_detail(reject.to_string());
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let mut hs = OwnedHeaders::new_with_capacity(7)
            .insert(Header {
                key: headers::REASON,
                value: Some(reject.reason()),
            })
            .insert(Header {
                key: headers::DETAIL,
                value: Some(detail.as_str()),
            })
            .insert(Header {
                key: headers::SOURCE_TOPIC,
                value: Some(origin.topic),
            })
            .insert(Header {
                key: headers::SOURCE_PARTITION,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: headers::SOURCE_OFFSET,
                value: Some(offset.as_str()),
            });
        if let Some(t) = &truncated {
            self.metrics.dead_letters_truncated.inc();
            for (key, value) in t.headers() {
                hs = hs.insert(Header {
                    key,
                    value: Some(value.as_str()),
                });
            }
        }
        let mut rec = BaseRecord::with_opaque_to(&self.dead_letter_topic, chunk.clone())
            .payload(payload)
            .headers(hs);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        self.send(rec, OutputKind::DeadLetter, origin, chunk);
    }

    fn send(
        &self,
        mut rec: BaseRecord<'_, [u8], [u8], Arc<Chunk>>,
        kind: OutputKind,
        origin: Origin<'_>,
        chunk: &Arc<Chunk>,
    ) {
        chunk.output_sent();
        loop {
            match self.producer.send(rec) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, back)) => {
                    match &self.failure {
                        Some(failure) => failure.record(
                            &LostOutput {
                                kind,
                                topic: back.topic,
                                partition: back.partition,
                                error: &e,
                                source_topic: origin.topic,
                                source_partition: origin.partition,
                                source_offset: Some(origin.offset),
                            },
                            &self.metrics,
                        ),
                        None => {
                            tracing::error!(error = %e, topic = back.topic, "cannot enqueue output")
                        }
                    }
                    chunk.output_acked(false);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink whose producer (no broker needed) refuses messages above 1000 bytes at once.
    fn small_sink(
        max_dead_letter_payload: usize,
        failure: Option<Arc<ProduceFailure>>,
    ) -> (Sink, Arc<Metrics>) {
        use super::super::{auth::AuthWatch, producer::DeliveryContext};
        let metrics = Arc::new(Metrics::default());
        let producer: SinkProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.max.bytes", "1000")
            .set("compression.type", "none")
            .create_with_context(DeliveryContext {
                metrics: Arc::new(Metrics::default()),
                dead_letter_topic: "dlq".into(),
                source_topic: "raw".into(),
                failure: Arc::new(ProduceFailure::default()),
                transactional: false,
                auth: Arc::new(AuthWatch::default()),
            })
            .unwrap();
        let settings = SinkSettings {
            topic: "out".into(),
            dead_letter_topic: "dlq".into(),
            max_dead_letter_payload,
        };
        (
            Sink::new(Arc::new(producer), settings, metrics.clone(), failure),
            metrics,
        )
    }

    #[test]
    fn an_output_the_producer_refuses_at_once_is_fatal_at_least_once() {
        let origin = Origin {
            topic: "raw",
            partition: 2,
            offset: 7,
        };
        let reject = Reject::Oversize {
            size: 5000,
            limit: 4000,
        };
        let payload = vec![b'x'; 5000];
        let chunk = |t: &crate::kafka::offsets::Tracker| {
            let c = t.open(2, 7, std::time::Instant::now());
            c.sealed();
            c
        };
        let tracker = crate::kafka::offsets::Tracker::default();

        // At-least-once: recorded with topic, partition and error, counted, the chunk failed.
        let failure = Arc::new(ProduceFailure::default());
        let (sink, metrics) = small_sink(100_000, Some(failure.clone()));
        let c = chunk(&tracker);
        sink.dead_letter(Some(b"k"), &payload, &reject, origin, &c);
        assert!(c.failed());
        let message = failure.message().expect("recorded");
        assert!(
            message.starts_with(
                "a dead letter for topic dlq, partition not yet chosen, cannot be produced: "
            ),
            "{message}"
        );
        assert!(message.contains("MessageSizeTooLarge"), "{message}");
        assert!(
            message.ends_with("partition 2 of raw is not committed past its input (offset 7)"),
            "{message}"
        );
        let fatal = |output| {
            metrics
                .fatal_produce_errors
                .get_or_create(&crate::metrics::OutputLabel { output })
                .get()
        };
        assert_eq!((fatal("dead_letter"), fatal("record")), (1, 0));
        let c = chunk(&tracker);
        sink.record(None, &payload, origin, &c);
        assert!(c.failed());
        assert_eq!(fatal("record"), 1);

        // Cut to the limit, the same dead letter is taken.
        let failure = Arc::new(ProduceFailure::default());
        let (sink, metrics) = small_sink(500, Some(failure.clone()));
        let c = chunk(&tracker);
        sink.dead_letter(Some(b"k"), &payload, &reject, origin, &c);
        assert!(!c.failed());
        assert_eq!(failure.message(), None);
        assert_eq!(metrics.dead_letters_truncated.get(), 1);

        // ExactlyOnce: the chunk fails (its transaction aborts); nothing is recorded.
        let (sink, metrics) = small_sink(100_000, None);
        let c = chunk(&tracker);
        sink.record(None, &payload, origin, &c);
        assert!(c.failed());
        assert_eq!(
            metrics
                .fatal_produce_errors
                .get_or_create(&crate::metrics::OutputLabel { output: "record" })
                .get(),
            0
        );
    }
}
