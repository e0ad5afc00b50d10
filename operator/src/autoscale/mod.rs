//! Autoscaling: signals (Kafka lag, Prometheus throughput) → a pure decision → the replica count
//! applied by the reconcile, with every decision explained.

pub mod decision;
pub mod history;

pub mod policy;

#[cfg(test)]
mod tests;
