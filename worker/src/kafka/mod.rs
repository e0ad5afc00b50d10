//! Kafka IO: client settings, the offset tracker that makes commits at-least-once, the source
//! consumer's context (rebalance, statistics), the sink producer's (delivery reports) and its poll thread, the sink
//! and the catalog feed; exactly-once transactions; authentication and TLS failures.
//!
//! Imports go one way: `consumer` → `transactional` → `producer` → `polled`, `offsets`, `auth`; `sink` →
//! `producer`.

pub mod auth;
pub mod catalog_feed;
pub mod client;
pub mod consumer;
pub mod offsets;
pub mod polled;
pub mod producer;
pub mod sink;
pub mod transactional;
