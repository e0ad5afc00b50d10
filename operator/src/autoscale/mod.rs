//! Autoscaling: signals (Kafka lag, Prometheus throughput) → a pure decision → the replica count
//! applied by the reconcile, with every decision explained.

pub mod decision;
pub mod history;
pub mod kafka_lag;
pub mod policy;
pub mod prometheus;
pub mod rebuild;
pub mod scaler;

#[cfg(test)]
pub(crate) mod tests;
