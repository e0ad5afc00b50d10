//! The archiver's configuration: a YAML file (what the operator renders into a ConfigMap).
//! Unknown fields and wrong values stop the archiver at start with the field named. Environment
//! overrides (what the operator maps from Secrets): `ARCHIVER_CATALOG_URI` replaces
//! `catalog.uri`; `ARCHIVER__SOURCE__KAFKA__<property>` sets the librdkafka property
//! `<property>` of `source.kafka` (e.g. `ARCHIVER__SOURCE__KAFKA__sasl.password`);
//! `ARCHIVER__METRICS__LISTEN` replaces `metrics.listen` (the pod's IP and port).

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;

use crate::{roll::RollPolicy, schema::Partitioning};

/// The environment variable that replaces `catalog.uri`.
pub const CATALOG_URI_ENV: &str = "ARCHIVER_CATALOG_URI";
/// The environment variable that replaces `metrics.listen`.
pub const METRICS_LISTEN_ENV: &str = "ARCHIVER__METRICS__LISTEN";
/// The prefix of environment variables that set `source.kafka` properties.
pub const SOURCE_KAFKA_ENV_PREFIX: &str = "ARCHIVER__SOURCE__KAFKA__";
/// The prefix of environment variables that set `catalog.properties` (a REST catalog's
/// `credential`, `token`, `oauth2-server-uri`, `scope`, `header.*`: from a Secret, as the
/// operator mounts `archive.catalog.rest.propertiesSecretRef`).
pub const CATALOG_PROPERTIES_ENV_PREFIX: &str = "ARCHIVER__CATALOG__PROPERTIES__";
/// Catalog properties the archiver sets from their own fields.
pub const FIXED_CATALOG_PROPERTIES: [&str; 2] = ["uri", "warehouse"];

/// What the environment overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub catalog_uri: Option<String>,
    pub metrics_listen: Option<String>,
    pub source_kafka: BTreeMap<String, String>,
    pub catalog_properties: BTreeMap<String, String>,
}

impl Overrides {
    /// The overrides among `vars` (the process's environment).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut o = Overrides::default();
        for (k, v) in vars {
            if k == CATALOG_URI_ENV {
                o.catalog_uri = Some(v);
            } else if k == METRICS_LISTEN_ENV {
                o.metrics_listen = Some(v);
            } else if let Some(property) = k.strip_prefix(SOURCE_KAFKA_ENV_PREFIX) {
                o.source_kafka.insert(property.to_string(), v);
            } else if let Some(property) = k.strip_prefix(CATALOG_PROPERTIES_ENV_PREFIX) {
                o.catalog_properties.insert(property.to_string(), v);
            }
        }
        o
    }
}

/// librdkafka settings the archiver sets itself (exactly once depends on them); the config's
/// `source.kafka` cannot override them.
pub const FIXED_KAFKA_SETTINGS: [&str; 6] = [
    "group.id",
    "bootstrap.servers",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "partition.assignment.strategy",
    "auto.offset.reset",
];

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchiverConfig {
    /// The pipeline this archiver serves (metric labels, logs).
    pub pipeline: PipelineId,
    pub source: SourceConfig,
    pub catalog: CatalogConfig,
    pub table: TableConfig,
    /// Where records that cannot be archived go, with their reason.
    pub dead_letter: DeadLetterConfig,
    /// Seconds between commits (the oldest uncommitted record waits at most this long).
    #[serde(default = "default_commit_interval")]
    pub commit_interval_seconds: u64,
    /// Payload bytes taken since the last commit that make a commit due before the interval.
    #[serde(default = "default_max_pending_bytes")]
    pub max_pending_bytes: u64,
    /// Rows buffered before they are encoded into the open Parquet files.
    #[serde(default = "default_flush_rows")]
    pub flush_rows: usize,
    /// Deadline of every catalog call (load, commit) and of every data file operation.
    #[serde(default = "default_catalog_timeout")]
    pub catalog_timeout_seconds: u64,
    /// Deadline of Kafka calls that block (seek, commit of the group's offsets, watermarks).
    #[serde(default = "default_kafka_timeout")]
    pub kafka_timeout_seconds: u64,
    /// Caps each archiver's rate (records/s), each record costing `1 / rate` seconds of busy
    /// time, e.g. to emulate a CPU limit in tests (the worker's `maxEventsPerSecond`).
    #[serde(default)]
    pub max_records_per_second: Option<u64>,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineId {
    pub namespace: String,
    pub name: String,
}

/// The pipeline's Avro output topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    pub consumer_group: String,
    /// Extra librdkafka properties (e.g. SASL/TLS settings).
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
}

/// The dead-letter topic, on the source's cluster (the pipeline's `sink.deadLetterTopic`, next
/// to the Avro topic), written with the source's client settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadLetterConfig {
    pub topic: String,
    /// A dead letter's payload is cut to this many bytes (headers then give the original size
    /// and its SHA-256), as the worker's are (`sink.deadLetterMaxPayloadBytes`).
    #[serde(default = "default_dead_letter_max_payload")]
    pub max_payload_bytes: usize,
}

fn default_dead_letter_max_payload() -> usize {
    256 * 1024
}

/// Which Iceberg catalog holds the table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    /// A SQL catalog (`sqlite:` or `postgres:` URI).
    Sql,
    /// An Iceberg REST catalog.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogConfig {
    pub kind: CatalogKind,
    /// The catalog's name (the SQL catalog's `catalog_name` column).
    #[serde(default = "default_catalog_name")]
    pub name: String,
    pub uri: String,
    /// Where table files go (`file:///…`: the local-filesystem storage built into the archiver).
    pub warehouse: String,
    /// More properties of a REST catalog's client (`credential` for OAuth2 client credentials,
    /// `token`, `oauth2-server-uri`, `scope`, `header.<name>`); not `uri` or `warehouse`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableConfig {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub partitioning: Partitioning,
    /// A data file rolls over to a new one at about this size.
    #[serde(default = "default_target_file_size")]
    pub target_file_size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: ([0, 0, 0, 0], 9102).into(),
        }
    }
}

fn default_commit_interval() -> u64 {
    300
}
fn default_max_pending_bytes() -> u64 {
    512 * 1024 * 1024
}
fn default_flush_rows() -> usize {
    8192
}
fn default_catalog_timeout() -> u64 {
    30
}
fn default_kafka_timeout() -> u64 {
    10
}
fn default_catalog_name() -> String {
    "impressions".into()
}
fn default_target_file_size() -> u64 {
    128 * 1024 * 1024
}

/// A configuration that cannot run, with the field it is about.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("{0}")]
    Parse(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl ArchiverConfig {
    /// Reads, parses and validates a config file, with the environment's overrides applied.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_yaml(&text, Overrides::from_vars(std::env::vars()))
    }

    /// Parses and validates YAML text with `overrides` applied.
    pub fn from_yaml(text: &str, overrides: Overrides) -> Result<Self, ConfigError> {
        // serde_yaml's messages name the field's path (`table.partitioning: unknown variant …`)
        let mut config: ArchiverConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(uri) = overrides.catalog_uri {
            config.catalog.uri = uri;
        }
        config.source.kafka.extend(overrides.source_kafka);
        config
            .catalog
            .properties
            .extend(overrides.catalog_properties);
        if let Some(listen) = overrides.metrics_listen {
            config.metrics.listen = listen.parse().map_err(|e| {
                invalid(
                    "metrics.listen",
                    format!("{METRICS_LISTEN_ENV}=`{listen}` is not an address: {e}"),
                )
            })?;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let non_empty = |field, v: &str| {
            if v.trim().is_empty() {
                Err(invalid(field, "must not be empty"))
            } else {
                Ok(())
            }
        };
        non_empty("pipeline.namespace", &self.pipeline.namespace)?;
        non_empty("pipeline.name", &self.pipeline.name)?;
        non_empty("source.bootstrapServers", &self.source.bootstrap_servers)?;
        non_empty("source.topic", &self.source.topic)?;
        non_empty("source.consumerGroup", &self.source.consumer_group)?;
        non_empty("catalog.name", &self.catalog.name)?;
        non_empty("table.namespace", &self.table.namespace)?;
        non_empty("table.name", &self.table.name)?;
        non_empty("deadLetter.topic", &self.dead_letter.topic)?;
        if self.dead_letter.topic == self.source.topic {
            return Err(invalid(
                "deadLetter.topic",
                "must differ from source.topic (the archiver would read its own dead letters)",
            ));
        }
        if self.dead_letter.max_payload_bytes < 1024 {
            return Err(invalid(
                "deadLetter.maxPayloadBytes",
                "must be at least 1024",
            ));
        }
        for key in FIXED_KAFKA_SETTINGS {
            if self.source.kafka.contains_key(key) {
                return Err(invalid(
                    "source.kafka",
                    format!("`{key}` is set by the archiver and cannot be overridden"),
                ));
            }
        }
        if !self.catalog.properties.is_empty() && self.catalog.kind != CatalogKind::Rest {
            return Err(invalid(
                "catalog.properties",
                "only a rest catalog takes client properties",
            ));
        }
        for key in FIXED_CATALOG_PROPERTIES {
            if self.catalog.properties.contains_key(key) {
                return Err(invalid(
                    "catalog.properties",
                    format!("`{key}` is set by catalog.{key}, not as a property"),
                ));
            }
        }
        let uri = &self.catalog.uri;
        match self.catalog.kind {
            CatalogKind::Sql if !(uri.starts_with("sqlite:") || uri.starts_with("postgres")) => {
                return Err(invalid(
                    "catalog.uri",
                    format!("a sql catalog needs a sqlite: or postgres:// URI, got `{uri}`"),
                ));
            }
            CatalogKind::Rest if !(uri.starts_with("http://") || uri.starts_with("https://")) => {
                return Err(invalid(
                    "catalog.uri",
                    format!("a rest catalog needs an http(s):// URI, got `{uri}`"),
                ));
            }
            _ => {}
        }
        if !(self.catalog.warehouse.starts_with("file:/")) {
            return Err(invalid(
                "catalog.warehouse",
                format!(
                    "only file:/// warehouses are supported (the local-filesystem storage), got `{}`",
                    self.catalog.warehouse
                ),
            ));
        }
        if !(1..=86_400).contains(&self.commit_interval_seconds) {
            return Err(invalid("commitIntervalSeconds", "must be within 1..=86400"));
        }
        if self.table.target_file_size_bytes < 1024 * 1024 {
            return Err(invalid(
                "table.targetFileSizeBytes",
                "must be at least 1 MiB (1048576)",
            ));
        }
        if self.flush_rows == 0 {
            return Err(invalid("flushRows", "must be at least 1"));
        }
        if self.max_pending_bytes == 0 {
            return Err(invalid("maxPendingBytes", "must be at least 1"));
        }
        if self.catalog_timeout_seconds == 0 {
            return Err(invalid("catalogTimeoutSeconds", "must be at least 1"));
        }
        if self.kafka_timeout_seconds == 0 {
            return Err(invalid("kafkaTimeoutSeconds", "must be at least 1"));
        }
        if self.max_records_per_second == Some(0) {
            return Err(invalid("maxRecordsPerSecond", "must be at least 1"));
        }
        Ok(())
    }

    pub fn roll_policy(&self) -> RollPolicy {
        RollPolicy {
            commit_interval: Duration::from_secs(self.commit_interval_seconds),
            flush_rows: self.flush_rows,
            max_pending_bytes: self.max_pending_bytes,
        }
    }

    pub fn catalog_timeout(&self) -> Duration {
        Duration::from_secs(self.catalog_timeout_seconds)
    }

    pub fn kafka_timeout(&self) -> Duration {
        Duration::from_secs(self.kafka_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
pipeline: {namespace: ns, name: eu}
source: {bootstrapServers: "127.0.0.1:9092", topic: impressions.avro, consumerGroup: archiver-eu}
catalog: {kind: sql, uri: "sqlite:///tmp/c.db", warehouse: "file:///tmp/wh"}
table: {namespace: impressions, name: eu}
deadLetter: {topic: impressions.dlq}
"#;

    fn err(text: &str) -> String {
        ArchiverConfig::from_yaml(text, Overrides::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults() {
        let c = ArchiverConfig::from_yaml(MINIMAL, Overrides::default()).unwrap();
        assert_eq!(c.commit_interval_seconds, 300);
        assert_eq!(c.table.partitioning, Partitioning::Hour);
        assert_eq!(c.table.target_file_size_bytes, 128 * 1024 * 1024);
        assert_eq!(c.catalog.name, "impressions");
        assert_eq!(c.metrics.listen.port(), 9102);
        assert_eq!(c.max_records_per_second, None);
        assert_eq!(c.dead_letter.topic, "impressions.dlq");
        assert_eq!(c.dead_letter.max_payload_bytes, 256 * 1024);
    }

    #[test]
    fn env_replaces_the_catalog_uri_and_sets_kafka_properties() {
        let o = Overrides::from_vars([
            (
                "ARCHIVER_CATALOG_URI".to_string(),
                "postgres://u:p@db/cat".to_string(),
            ),
            (
                "ARCHIVER__SOURCE__KAFKA__sasl.password".to_string(),
                "s3cret".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
            (
                "ARCHIVER__METRICS__LISTEN".to_string(),
                "127.70.0.3:9464".to_string(),
            ),
        ]);
        let c = ArchiverConfig::from_yaml(MINIMAL, o).unwrap();
        assert_eq!(c.metrics.listen.to_string(), "127.70.0.3:9464");
        assert_eq!(c.catalog.uri, "postgres://u:p@db/cat");
        assert_eq!(
            c.source.kafka.get("sasl.password").map(String::as_str),
            Some("s3cret")
        );
        let o = Overrides::from_vars([(
            "ARCHIVER__METRICS__LISTEN".to_string(),
            "pod:9464".to_string(),
        )]);
        let e = ArchiverConfig::from_yaml(MINIMAL, o)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("metrics.listen:"), "{e}");
        // an override cannot set what the archiver fixes
        let o = Overrides::from_vars([(
            "ARCHIVER__SOURCE__KAFKA__group.id".to_string(),
            "x".to_string(),
        )]);
        let e = ArchiverConfig::from_yaml(MINIMAL, o)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("source.kafka:"), "{e}");
    }

    #[test]
    fn env_sets_a_rest_catalog_s_client_properties_and_nothing_else_takes_them() {
        let rest = MINIMAL.replace(
            r#"kind: sql, uri: "sqlite:///tmp/c.db""#,
            r#"kind: rest, uri: "https://catalog.example""#,
        );
        assert!(rest.contains("kind: rest"), "{rest}");
        let vars = |k: &str, v: &str| {
            Overrides::from_vars([(format!("ARCHIVER__CATALOG__PROPERTIES__{k}"), v.to_string())])
        };
        let c = ArchiverConfig::from_yaml(&rest, vars("credential", "id:secret")).unwrap();
        assert_eq!(
            c.catalog.properties.get("credential").map(String::as_str),
            Some("id:secret")
        );
        // the URI and the warehouse come from their own fields
        let e = ArchiverConfig::from_yaml(&rest, vars("uri", "http://other"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("catalog.properties:") && e.contains("`uri`"),
            "{e}"
        );
        // a SQL catalog takes none
        let e = ArchiverConfig::from_yaml(MINIMAL, vars("token", "t"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("catalog.properties:"), "{e}");
    }

    #[test]
    fn unknown_and_wrong_fields_are_named() {
        let e = err(&format!("{MINIMAL}commitIntervalSecs: 5\n"));
        assert!(e.contains("commitIntervalSecs"), "{e}");
        let e = err(&MINIMAL.replace(
            "impressions, name: eu}",
            "impressions, name: eu, partitioning: minute}",
        ));
        assert!(e.contains("table.partitioning"), "{e}");
        let e = err(&format!("{MINIMAL}commitIntervalSeconds: 0\n"));
        assert!(e.starts_with("commitIntervalSeconds:"), "{e}");
        let e = err(&MINIMAL.replace("sqlite:///tmp/c.db", "mysql://x"));
        assert!(e.starts_with("catalog.uri:"), "{e}");
        let e = err(&MINIMAL.replace("file:///tmp/wh", "s3://bucket/wh"));
        assert!(e.starts_with("catalog.warehouse:"), "{e}");
        let e = err(&MINIMAL.replace("topic: impressions.avro", "topic: ''"));
        assert!(e.starts_with("source.topic:"), "{e}");
        let e = err(&MINIMAL.replace("topic: impressions.dlq", "topic: impressions.avro"));
        assert!(e.starts_with("deadLetter.topic:"), "{e}");
        let e = err(&MINIMAL.replace("deadLetter: {topic: impressions.dlq}\n", ""));
        assert!(e.contains("deadLetter"), "{e}");
        let e = err(&MINIMAL.replace(
            "consumerGroup: archiver-eu",
            "consumerGroup: g, kafka: {group.id: x}",
        ));
        assert!(e.starts_with("source.kafka:"), "{e}");
        let e = err(&format!("{MINIMAL}\ntableX: 1\n"));
        assert!(e.contains("tableX"), "{e}");
        let e = err(&MINIMAL.replace(
            "impressions, name: eu}",
            "impressions, name: eu, targetFileSizeBytes: 10}",
        ));
        assert!(e.starts_with("table.targetFileSizeBytes:"), "{e}");
        let e = err(&format!("{MINIMAL}maxRecordsPerSecond: 0\n"));
        assert!(e.starts_with("maxRecordsPerSecond:"), "{e}");
    }
}
