//! Synthetic traffic: realistic raw client events with known shares of other event types,
//! invalid events and column mismatches, a matching title catalog, and rate traces. Used by the
//! `loadgen` binary, the benchmarks and the tests. Deterministic from a seed.

pub mod events;
pub mod trace;

pub use events::{Generator, Kind, Mix, Report};
pub use trace::Trace;
