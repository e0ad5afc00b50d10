//! Why the archiver stops. Each variant has a reason (log field, Event reason).

use crate::{catalog::CatalogError, config::ConfigError, schema::SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: {0}")]
    Config(#[from] ConfigError),
    #[error("table schema: {0}")]
    Schema(#[from] SchemaError),
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("writing data files: {0}")]
    Write(String),
    #[error("consumer: {0}")]
    Consumer(String),
    #[error("{0}")]
    DeadLetter(String),
    #[error("serving metrics: {0}")]
    Http(#[from] std::io::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Config(_) => "InvalidConfig",
            Error::Schema(_) => "SchemaMismatch",
            Error::Catalog(e) => e.reason(),
            Error::Kafka(_) => "KafkaError",
            Error::Write(_) => "WriteFailed",
            Error::Consumer(_) => "ConsumerFailed",
            Error::DeadLetter(_) => "DeadLetterFailed",
            Error::Http(_) => "HttpFailed",
        }
    }
}
