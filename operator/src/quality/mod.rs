//! Data quality: each pipeline's thresholds (`spec.quality`) judged against its workers' column
//! counters in Prometheus, folded into the DataQuality condition by the reconcile, with an Event
//! when the level changes and the `pipeline_data_quality` gauge.
//!
//! - [`assess`]: counts over a window → ratios → level and worst offender (pure, table-tested);
//! - [`signals`]: the counts from Prometheus, one set of queries per window for all pipelines;
//! - [`evaluator`]: the evaluation loop, which triggers a reconcile when a condition would change.

pub mod assess;
pub mod evaluator;
pub mod signals;
