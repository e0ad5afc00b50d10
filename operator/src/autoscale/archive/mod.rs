//! The archiver fleet's autoscaling, with the workers' estimate and decision
//! ([`super::estimate`], [`super::decide`]) on the archivers' own signals, within the same
//! ScalingPolicy: the lag of the archivers' consumer group on the sink topic, their processed
//! records and busy time from Prometheus; at most one archiver per sink partition.
//!
//! - [`mark`] (pure): the last commit as the archivers write it into their group's offsets;
//! - [`signals`] (pure): the readings → the [`super::model::Signals`] the decision reads;
//! - [`health`] (pure): whether commits progress while records wait;
//! - [`prometheus`]: the archivers' throughput (one query per pipeline, with a deadline);
//! - [`evaluator`]: the loop (samples, decides, triggers reconciles), apart from the workers'.

pub mod evaluator;
pub mod health;
pub mod mark;
pub mod prometheus;
pub mod signals;

#[cfg(test)]
mod tests;
