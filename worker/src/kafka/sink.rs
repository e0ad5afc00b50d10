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

use super::{offsets::Chunk, producer::SinkProducer};
use crate::reject::Reject;

/// Header names of dead letters.
pub mod headers {
    pub const REASON: &str = "impressions.reject.reason";
    pub const DETAIL: &str = "impressions.reject.detail";
    pub const SOURCE_TOPIC: &str = "impressions.source.topic";
    pub const SOURCE_PARTITION: &str = "impressions.source.partition";
    pub const SOURCE_OFFSET: &str = "impressions.source.offset";
}

/// Where a rejected event came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// The sink: one producer, two topics.
#[derive(Clone)]
pub struct Sink {
    producer: Arc<SinkProducer>,
    topic: String,
    dead_letter_topic: String,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("topic", &self.topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .finish()
    }
}

impl Sink {
    pub fn new(producer: Arc<SinkProducer>, topic: String, dead_letter_topic: String) -> Self {
        Sink {
            producer,
            topic,
            dead_letter_topic,
        }
    }

    /// Sends an encoded record; its acknowledgement releases one output of `chunk`.
    pub fn record(&self, key: Option<&[u8]>, payload: &[u8], chunk: &Arc<Chunk>) {
        let mut rec = BaseRecord::with_opaque_to(&self.topic, chunk.clone()).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        self.send(rec, chunk);
    }

    /// Sends a rejected event's original bytes with the reason in its headers.
    pub fn dead_letter(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        reject: &Reject,
        origin: Origin<'_>,
        chunk: &Arc<Chunk>,
    ) {
        let detail = reject.to_string();
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let hs = OwnedHeaders::new_with_capacity(5)
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
        let mut rec = BaseRecord::with_opaque_to(&self.dead_letter_topic, chunk.clone())
            .payload(payload)
            .headers(hs);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        self.send(rec, chunk);
    }

    fn send(&self, mut rec: BaseRecord<'_, [u8], [u8], Arc<Chunk>>, chunk: &Arc<Chunk>) {
        chunk.output_sent();
        loop {
            match self.producer.send(rec) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    tracing::error!(error = %e, "cannot enqueue output");
                    chunk.output_acked(false);
                    return;
                }
            }
        }
    }
}
