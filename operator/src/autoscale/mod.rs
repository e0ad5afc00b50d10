//! Autoscaling: signals (Kafka lag, Prometheus throughput) → an estimate of demand and capacity
//! → a decision within the policy's limits → the replica count applied by the reconcile, with
//! every decision explained.
//!
//! - [`model`]: the shared types (signals, limits, estimate, decision, evaluation);
//! - [`estimate`] (pure): arrival, capacity per replica, backlog → the recommended count;
//! - [`decide`] (pure): the recommendation within stabilization windows, steps, cooldowns;
//! - [`history`]: a pipeline's recent evaluations; [`rebuild`]: it rebuilt from Prometheus;
//! - [`bounds`], [`effective`] (pure): the policy narrowed by the pipeline, as [`model::Limits`];
//! - [`forecast`]: the arrival forecast (augurs' MSTL) from the pipeline's own history;
//!   [`planned`] (pure): planned surges' floors; [`ahead`] (pure): the decision raised by both;
//! - [`signals`]: the Kafka and Prometheus adapters; [`evaluator`]: the evaluation loop;
//! - [`archive`]: the same estimate and decision for a pipeline's archiver fleet, its loop.

pub mod ahead;
pub mod archive;
pub mod bounds;
pub mod decide;
pub mod effective;
pub mod estimate;
pub mod evaluator;
pub mod forecast;
pub mod history;
pub mod model;
pub mod planned;
pub mod rebuild;
pub mod signals;

#[cfg(test)]
pub(crate) mod tests;
