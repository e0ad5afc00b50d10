//! The worker's pure part: the per-event path ([`process`]: bytes → parse → validate → resolve
//! the title → enrich → quality → Avro), the title catalog, the worker's config, synthetic
//! traffic ([`loadgen`]) and, with feature `fuzzing`, the invariants the fuzz targets check.
//! Nothing here does IO on Kafka or runs an async runtime, so that the fuzz targets and the
//! benchmarks build without librdkafka. `impressions-worker` re-exports every module under the
//! same path.

pub mod agree;
pub mod avro;
pub mod catalog;
pub mod config;
pub mod dead_letter;
pub mod event;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod loadgen;
pub mod process;
pub mod quality;
pub mod ratecap;
pub mod record;
pub mod reject;
pub mod schema;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
