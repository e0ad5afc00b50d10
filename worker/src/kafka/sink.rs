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
use sha2::{Digest, Sha256};

use super::{
    offsets::Chunk,
    producer::{LostOutput, OutputKind, ProduceFailure, SinkProducer},
};
use crate::{metrics::Metrics, reject::Reject};

/// Header names of dead letters.
pub mod headers {
    pub const REASON: &str = "impressions.reject.reason";
    pub const DETAIL: &str = "impressions.reject.detail";
    pub const SOURCE_TOPIC: &str = "impressions.source.topic";
    pub const SOURCE_PARTITION: &str = "impressions.source.partition";
    pub const SOURCE_OFFSET: &str = "impressions.source.offset";
    /// Only on a dead letter whose payload was cut to `deadLetter.maxPayloadBytes`: the
    /// original payload's size in bytes (decimal)…
    pub const ORIGINAL_SIZE: &str = "impressions.payload.original.size";
    /// …and its SHA-256 (64 lower-case hex digits).
    pub const ORIGINAL_SHA256: &str = "impressions.payload.original.sha256";
}

/// The longest dead-letter detail header, in bytes (a parse error can quote the input).
pub const MAX_DETAIL_BYTES: usize = 1024;

/// Where an event came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A cut dead-letter payload: what the original was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    pub original_size: usize,
    /// SHA-256 of the original payload, lower-case hex.
    pub sha256: String,
}

/// The payload a dead letter carries: the original bytes when they are at most `max` bytes,
/// else their first `max` bytes and what the original was. A dead letter is cut rather than
/// dropped, and cut before it is produced, so that neither the producer nor the broker refuses
/// it for its size.
pub fn dead_letter_payload(payload: &[u8], max: usize) -> (&[u8], Option<Truncated>) {
    if payload.len() <= max {
        return (payload, None);
    }
    let sha256 = Sha256::digest(payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (
        &payload[..max],
        Some(Truncated {
            original_size: payload.len(),
            sha256,
        }),
    )
}

/// A rejection's detail, cut to at most [`MAX_DETAIL_BYTES`] (on a character boundary) with
/// `…` appended when cut.
pub fn bounded_detail(mut detail: String) -> String {
    if detail.len() > MAX_DETAIL_BYTES {
        let mut end = MAX_DETAIL_BYTES - '…'.len_utf8();
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
        detail.push('…');
    }
    detail
}

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
            let size = t.original_size.to_string();
            hs = hs
                .insert(Header {
                    key: headers::ORIGINAL_SIZE,
                    value: Some(size.as_str()),
                })
                .insert(Header {
                    key: headers::ORIGINAL_SHA256,
                    value: Some(t.sha256.as_str()),
                });
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

    #[test]
    fn a_payload_within_the_limit_is_kept_whole() {
        let p = vec![7u8; 100];
        for max in [100, 101, 1 << 20] {
            let (bytes, cut) = dead_letter_payload(&p, max);
            assert_eq!((bytes, cut), (&p[..], None));
        }
        assert_eq!(dead_letter_payload(b"", 1), (&b""[..], None));
    }

    #[test]
    fn a_larger_payload_is_cut_with_its_size_and_hash() {
        let (bytes, cut) = dead_letter_payload(b"abc", 2);
        assert_eq!(bytes, b"ab");
        assert_eq!(
            cut,
            Some(Truncated {
                original_size: 3,
                // SHA-256("abc"), FIPS 180-2 appendix B.1.
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
            })
        );
        let big: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let (bytes, cut) = dead_letter_payload(&big, 256 * 1024);
        assert_eq!(bytes, &big[..256 * 1024], "the first bytes are kept");
        let cut = cut.unwrap();
        assert_eq!(cut.original_size, 2 * 1024 * 1024);
        assert_eq!(cut.sha256.len(), 64);
        assert!(
            cut.sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        // The hash is of the whole original: another tail, another hash.
        let mut other = big.clone();
        *other.last_mut().unwrap() ^= 1;
        assert_ne!(
            dead_letter_payload(&other, 256 * 1024).1.unwrap().sha256,
            cut.sha256
        );
    }

    #[test]
    fn a_long_detail_is_cut_on_a_character_boundary() {
        assert_eq!(bounded_detail("short".into()), "short");
        let exact = "x".repeat(MAX_DETAIL_BYTES);
        assert_eq!(bounded_detail(exact.clone()), exact);
        let long = "é".repeat(MAX_DETAIL_BYTES);
        let d = bounded_detail(long);
        assert!(d.len() <= MAX_DETAIL_BYTES, "{}", d.len());
        assert!(d.ends_with("é…"), "{d}");
    }

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
