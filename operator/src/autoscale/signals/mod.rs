//! The autoscaler's inputs: consumer lag from Kafka and throughput from Prometheus.

pub mod busy;
pub mod fleet_query;
#[allow(unsafe_code)]
pub mod group_offsets;
pub mod kafka_lag;
pub mod prometheus;
