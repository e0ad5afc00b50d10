//! The impression worker: consumes raw client events from Kafka, keeps the impressions, rejects
//! invalid events to a dead-letter topic, enriches and checks the valid ones, and produces Avro
//! records to the source-of-truth topic, with column-level quality metrics.
//!
//! The per-event path ([`process`]) is pure and benchmarked on its own; Kafka, HTTP and the
//! clock live in [`kafka`], [`http`] and [`run`].

pub mod agree;
pub mod avro;
pub mod catalog;
pub mod config;
pub mod event;
pub mod http;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod kafka;
pub mod loadgen;
pub mod metrics;
pub mod process;
pub mod quality;
pub mod ratecap;
pub mod record;
pub mod reject;
pub mod run;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
