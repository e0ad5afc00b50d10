//! The archiver: the pipeline's Avro output topic into an Apache Iceberg table, exactly once
//! (docs/archive.md). Pure parts: [`schema`] (the table's shape from `impression.avsc`),
//! [`rows`] (payloads to Arrow batches), [`offsets`] (what the table holds, fencing), [`roll`]
//! (when to flush and commit), [`mark`] (what a commit tells the group), [`config`]. IO: [`catalog`], [`writer`], [`source`], [`dead_letter`], [`run`],
//! [`http`].

pub mod catalog;
pub mod config;
pub mod dead_letter;
pub mod error;
pub mod http;
pub mod mark;
pub mod metrics;
pub mod offsets;
pub mod roll;
pub mod rows;
pub mod run;
pub mod schema;
pub mod source;
pub mod writer;
