//! The impression worker: consumes raw client events from Kafka, keeps the impressions, rejects
//! invalid events to a dead-letter topic, enriches and checks the valid ones, and produces Avro
//! records to the source-of-truth topic, with column-level quality metrics.
//!
//! The per-event path ([`process`]) is pure and benchmarked on its own; it lives with the config,
//! the catalog and the synthetic traffic in `impressions-worker-core` (no Kafka, no async
//! runtime), re-exported here under the same paths. Kafka, HTTP and the clock live in [`kafka`],
//! [`http`] and [`run`]; the windows of the schema learner and what `GET /schema` serves in
//! [`schema_report`].

#[cfg(feature = "fuzzing")]
pub use impressions_worker_core::invariants;
pub use impressions_worker_core::{
    agree, avro, catalog, config, dead_letter, event, loadgen, now_ms, process, quality, ratecap,
    record, reject, schema,
};

pub mod cpu;
pub mod http;
pub mod idle_cpu;
pub mod instance;
pub mod kafka;
pub mod metrics;
pub mod run;
pub mod schema_report;
