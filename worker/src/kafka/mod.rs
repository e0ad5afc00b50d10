//! Kafka IO: client settings, the offset tracker that makes commits at-least-once, the
//! consumer/producer contexts (rebalance, statistics, delivery reports), the sink and the
//! catalog feed; exactly-once transactions; authentication and TLS failures.

pub mod auth;
pub mod catalog_feed;
pub mod client;
pub mod context;
pub mod offsets;
pub mod sink;
pub mod transactional;
