//! The dead-letter topic (IO): a record the archiver cannot archive (not decodable with
//! `impression.avsc`, or a row the table's schema does not take) is sent there with its reason,
//! as the worker sends the raw events it rejects: the original bytes (cut to
//! `deadLetter.maxPayloadBytes`) and key, the reason and its detail, the source topic, partition
//! and offset in the headers (the names of [`impressions_worker_core::dead_letter::headers`]).
//!
//! Nothing is lost: a commit covers a dead letter's offset only once the broker acknowledged it
//! ([`DeadLetters::settle`] before every catalog commit); a dead letter that is not acknowledged
//! fails the commit, which rewinds to the table's offsets and reads the record again. The table
//! holds each record once; the dead-letter topic holds each bad record at least once (a rewind or
//! a rebalance after it was sent sends it again: the source headers tell the copies apart).

use std::{sync::Arc, time::Duration};

use impressions_worker_core::dead_letter::{bounded_detail, dead_letter_payload, headers};
use rdkafka::{
    ClientConfig,
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
};

use crate::{
    config::ArchiverConfig,
    metrics::{Metrics, ReasonLabel},
    rows::{Raw, RowError},
};

/// The dead-letter producer and the dead letters not yet acknowledged.
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
    max_payload: usize,
    in_flight: Vec<DeliveryFuture>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

impl DeadLetters {
    /// An idempotent producer on the source's cluster with the source's client settings; a
    /// dead letter not acknowledged within `kafkaTimeoutSeconds` fails.
    pub fn new(config: &ArchiverConfig, metrics: Arc<Metrics>) -> Result<Self, KafkaError> {
        let mut cc = ClientConfig::new();
        for (k, v) in &config.source.kafka {
            cc.set(k, v);
        }
        // the consumer's own settings (session, heartbeat…) are not the producer's
        cc.set_log_level(rdkafka::config::RDKafkaLogLevel::Error);
        cc.set("bootstrap.servers", &config.source.bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                (config.kafka_timeout_seconds * 1000).to_string(),
            );
        Ok(DeadLetters {
            producer: cc.create()?,
            topic: config.dead_letter.topic.clone(),
            source_topic: config.source.topic.clone(),
            max_payload: config.dead_letter.max_payload_bytes,
            in_flight: Vec::new(),
            metrics,
        })
    }

    /// Sends `raw` with `error` as its reason (counted by reason); the broker's
    /// acknowledgement is awaited by [`Self::settle`]. A full producer queue waits.
    pub fn send(&mut self, raw: &Raw, error: &RowError) -> Result<(), String> {
        let (payload, truncated) = dead_letter_payload(&raw.payload, self.max_payload);
        let detail = bounded_detail(error.to_string());
        let (partition, offset) = (raw.partition.to_string(), raw.offset.to_string());
        let mut hs = OwnedHeaders::new_with_capacity(7);
        for (key, value) in [
            (headers::REASON, error.reason()),
            (headers::DETAIL, detail.as_str()),
            (headers::SOURCE_TOPIC, self.source_topic.as_str()),
            (headers::SOURCE_PARTITION, partition.as_str()),
            (headers::SOURCE_OFFSET, offset.as_str()),
        ] {
            hs = hs.insert(Header {
                key,
                value: Some(value),
            });
        }
        if let Some(t) = &truncated {
            self.metrics.dead_letters_truncated.inc();
            for (key, value) in t.headers() {
                hs = hs.insert(Header {
                    key,
                    value: Some(value.as_str()),
                });
            }
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(payload)
            .headers(hs);
        if let Some(k) = &raw.key {
            record = record.key(k.as_slice());
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("dead letter to {}: {e}", self.topic)),
            }
        }
        self.metrics
            .dead_lettered
            .get_or_create(&ReasonLabel {
                reason: error.reason(),
            })
            .inc();
        tracing::warn!(
            partition = raw.partition,
            offset = raw.offset,
            reason = error.reason(),
            error = %error,
            topic = %self.topic,
            "record sent to the dead-letter topic"
        );
        Ok(())
    }

    /// Waits (at most `timeout`) until the broker acknowledged every dead letter sent; the
    /// first that it did not fails the whole (the commit that would cover them must not go in).
    pub async fn settle(&mut self, timeout: Duration) -> Result<usize, String> {
        let pending = std::mem::take(&mut self.in_flight);
        let n = pending.len();
        if n == 0 {
            return Ok(0);
        }
        let all = futures::future::join_all(pending);
        let results = tokio::time::timeout(timeout, all)
            .await
            .map_err(|_| format!("{n} dead letters not acknowledged within {timeout:?}"))?;
        for r in results {
            match r {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(format!("dead letter to {}: {e}", self.topic)),
                Err(_) => return Err("the dead-letter producer went away".into()),
            }
        }
        Ok(n)
    }
}
