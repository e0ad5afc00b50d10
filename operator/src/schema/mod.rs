//! The raw events' schema of each pipeline, learned from its workers and watched for drift
//! (docs/raw-event-schema.md). The workers learn and serve their windows (`GET /schema/windows`);
//! the operator reads them, merges them per window and judges the last one against the
//! baseline its owner accepted; the reconcile writes the result (`reconcile/raw_schema.rs`).
//!
//! | concept | module |
//! |---|---|
//! | Reading the workers' reports (IO: the worker Service's EndpointSlices, HTTP with deadlines, bounded concurrency) | [`source`] |
//! | From reports to one merged observation per window: dedupe, group, close (pure) | [`windows`] |
//! | The collection loop (registrations, cadence, the last window, reconcile triggers) | [`collector`] |
//! | The learned schema of the status: a window folded in (pure) | [`learned`] |
//! | Baseline, accept and drift: the next status and the `SchemaDrift` condition (pure) | [`judge`] |

pub mod collector;
pub mod judge;
pub mod learned;
pub mod source;
pub mod windows;
