//! Synthetic traffic: realistic raw client events with known shares of other event types,
//! invalid events and column mismatches, a matching title catalog, rate traces, and client
//! releases that change the events' shape for a share of them. Used by the `loadgen` binary,
//! the benchmarks and the tests. Deterministic from a seed.

pub mod events;
pub mod release;
pub mod sample;
pub mod trace;

pub use events::{Generator, Kind, Mix, Report};
pub use release::Release;
pub use trace::Trace;
