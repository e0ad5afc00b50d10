//! The autoscaler's inputs: consumer lag from Kafka and throughput from Prometheus.

pub mod kafka_lag;
pub mod prometheus;
