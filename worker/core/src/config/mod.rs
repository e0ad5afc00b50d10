//! The worker's configuration: a YAML file (what the operator renders into a ConfigMap) plus
//! environment overrides (what the operator maps from Secrets). Unknown fields and wrong values
//! stop the worker at start with the field named.
//!
//! Overrides: `WORKER__A__B=value` sets field `a.b` (segments in SNAKE_CASE, e.g.
//! `WORKER__SINK__DEAD_LETTER_TOPIC`); under a `kafka` map the key is a librdkafka property
//! (`WORKER__SOURCE__KAFKA__SASL_PASSWORD` sets `sasl.password`).
//!
//! This file holds the schema and loading; [`env`] applies the overrides to the YAML document
//! before it is read, `validate` checks what serde cannot (ranges, topic names, settings that
//! contradict the delivery guarantee).

mod env;
mod validate;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::{
    process::{Limits, Locations},
    schema::{Budget, LearnerConfig},
};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerConfig {
    pub pipeline: PipelineId,
    pub source: SourceConfig,
    pub sink: SinkConfig,
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub locations: LocationsConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub processing: ProcessingConfig,
    /// Seconds a stopping worker may take to finish in-flight work, flush and commit.
    #[serde(default = "default_drain")]
    pub drain_timeout_secs: u64,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    #[serde(default)]
    pub schema: SchemaConfig,
}

/// Learning the raw events' schema (docs/raw-event-schema.md): the worker walks about one
/// consumed event in `sampleOneIn` and serves what it learned in each window of
/// `windowSeconds` at `GET /schema`, within `budget`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SchemaConfig {
    pub enabled: bool,
    /// One consumed event in this many is walked, on average (1: every event).
    pub sample_one_in: u32,
    /// The length of a window; windows end at multiples of it since the Unix epoch, so the
    /// windows of a pipeline's workers line up.
    pub window_seconds: u64,
    /// Event types, paths per type and client versions per path kept in a window.
    pub budget: Budget,
}

impl Default for SchemaConfig {
    fn default() -> Self {
        let l = LearnerConfig::default();
        SchemaConfig {
            enabled: true,
            sample_one_in: l.sample_one_in,
            window_seconds: 60,
            budget: l.budget,
        }
    }
}

/// Dead letters: a rejected event's bytes larger than `maxPayloadBytes` are cut to that size
/// before they are produced (with headers giving the original size and SHA-256), so that the
/// broker never refuses a dead letter for its size.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    pub max_payload_bytes: usize,
}

/// The default dead-letter payload limit: 256 KiB, well under the broker's default
/// `message.max.bytes` (1 MB) and librdkafka's producer default (1,000,000 bytes).
pub const DEFAULT_DEAD_LETTER_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            max_payload_bytes: DEFAULT_DEAD_LETTER_MAX_PAYLOAD_BYTES,
        }
    }
}

/// Which pipeline this worker belongs to (for logs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineId {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    pub consumer_group: String,
    #[serde(default)]
    pub offset_reset: OffsetReset,
    /// The consumer group protocol ([`GroupProtocol`]).
    #[serde(default)]
    pub group_protocol: GroupProtocol,
    /// Extra librdkafka properties (e.g. SASL/TLS settings).
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OffsetReset {
    Earliest,
    #[default]
    Latest,
}

/// How the workers' consumer group assigns partitions (librdkafka's `group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum GroupProtocol {
    /// KIP-848 (Kafka 4.0+ brokers): the group coordinator assigns partitions incrementally
    /// through heartbeats; only moved partitions stop, and no member waits for the others to
    /// rejoin. Session timeout and heartbeat interval are the broker's
    /// (`group.consumer.session.timeout.ms`, `group.consumer.heartbeat.interval.ms`).
    #[default]
    Consumer,
    /// JoinGroup/SyncGroup with the cooperative-sticky assignor run by a member; session timeout
    /// 10 s and heartbeat 1 s set by the worker. For brokers before 4.0.
    Classic,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SinkConfig {
    /// Defaults to the source's bootstrap servers.
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    pub topic: String,
    pub dead_letter_topic: String,
    #[serde(default)]
    pub delivery_guarantee: DeliveryGuarantee,
    /// Confluent wire format with this schema id; single-object encoding when absent.
    #[serde(default)]
    pub schema_id: Option<u32>,
    /// ExactlyOnce: a transaction is committed at least this often (default 100 ms)…
    #[serde(default)]
    pub transaction_interval_ms: Option<u64>,
    /// …or once it holds this many input events (default 50,000).
    #[serde(default)]
    pub transaction_max_events: Option<usize>,
    /// ExactlyOnce: librdkafka's `transaction.timeout.ms` (default 10 s): how long the broker
    /// keeps a dead instance's open transaction before aborting it.
    #[serde(default)]
    pub transaction_timeout_ms: Option<u64>,
    /// ExactlyOnce: the producer's `transactional.id`. Default `<consumerGroup>-<instance>`,
    /// the instance being `$POD_NAME`, else `$HOSTNAME`, else the kernel's host name.
    #[serde(default)]
    pub transactional_id: Option<String>,
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum DeliveryGuarantee {
    /// Offsets are committed after the outputs are acknowledged: duplicates after a crash.
    #[default]
    AtLeastOnce,
    /// Outputs and input offsets are committed in one Kafka transaction.
    ExactlyOnce,
}

/// The transaction settings of an ExactlyOnce worker, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSettings {
    pub interval_ms: u64,
    pub max_events: usize,
    pub timeout_ms: u64,
    /// Set explicitly; otherwise derived from the instance at start.
    pub transactional_id: Option<String>,
}

/// Where the title catalog comes from: exactly one of a compacted topic or a JSON-lines file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationsConfig {
    /// Page id (an integer, as a string key) → page name.
    #[serde(default)]
    pub pages: BTreeMap<String, String>,
    /// Row id → row name.
    #[serde(default)]
    pub rows: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_event_bytes: usize,
    pub max_age_secs: i64,
    pub max_future_secs: i64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_event_bytes: l.max_event_bytes,
            max_age_secs: l.max_age_ms / 1000,
            max_future_secs: l.max_future_ms / 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// Processing threads (partitions are spread over them).
    pub threads: usize,
    /// Most events handled per batch.
    pub max_batch: usize,
    /// Caps the processing rate (events/s), e.g. to emulate a CPU limit in tests.
    pub max_events_per_second: Option<u64>,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            threads: 1,
            max_batch: 2000,
            max_events_per_second: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where /metrics, /healthz and /readyz are served.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9464)),
        }
    }
}

fn default_drain() -> u64 {
    30
}

/// A configuration that cannot be used; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config is not valid YAML: {0}")]
    Yaml(String),
    #[error("config field {field}: {message}")]
    Field { field: String, message: String },
}

fn field(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl WorkerConfig {
    /// Reads the file, applies `WORKER__…` overrides from `env`, and validates.
    pub fn load(
        path: &std::path::Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, env)
    }

    /// Parses YAML text, applies overrides and validates.
    pub fn from_yaml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        for (k, v) in env {
            if let Some(path) = k.strip_prefix("WORKER__") {
                self::env::apply_override(&mut doc, path, &v).map_err(
                    |self::env::NotAMap { at }| {
                        field(&at, "cannot override inside a non-map value")
                    },
                )?;
            }
        }
        let cfg: WorkerConfig = serde_path_to_error::deserialize(doc).map_err(|e| {
            let path = field_path(e.path());
            field(&path, e.into_inner().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The transaction settings with defaults applied (meaningful for ExactlyOnce).
    pub fn transactions(&self) -> TransactionSettings {
        TransactionSettings {
            interval_ms: self.sink.transaction_interval_ms.unwrap_or(100),
            max_events: self.sink.transaction_max_events.unwrap_or(50_000),
            timeout_ms: self.sink.transaction_timeout_ms.unwrap_or(10_000),
            transactional_id: self.sink.transactional_id.clone(),
        }
    }

    /// The librdkafka properties the sink producer gets, and the field they come from: the
    /// sink's own map, else (same cluster, no sink map) the source's security settings.
    pub fn sink_kafka(&self) -> (&'static str, &BTreeMap<String, String>) {
        if self.sink.kafka.is_empty() && self.sink.bootstrap_servers.is_none() {
            ("source.kafka", &self.source.kafka)
        } else {
            ("sink.kafka", &self.sink.kafka)
        }
    }

    /// The per-event limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_event_bytes: self.limits.max_event_bytes,
            max_age_ms: self.limits.max_age_secs * 1000,
            max_future_ms: self.limits.max_future_secs * 1000,
        }
    }

    /// Page and row names, with page ids parsed (validated at load).
    pub fn locations(&self) -> Locations {
        Locations {
            pages: self
                .locations
                .pages
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.clone())))
                .collect(),
            rows: self
                .locations
                .rows
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The learner's settings, when schema learning is enabled. `lane` (a processing thread's
    /// index) varies the seed of the sampling gaps, so that the threads do not sample alike.
    pub fn learner(&self, lane: usize) -> Option<LearnerConfig> {
        let s = &self.schema;
        s.enabled.then(|| {
            let d = LearnerConfig::default();
            LearnerConfig {
                sample_one_in: s.sample_one_in,
                budget: s.budget,
                seed: d.seed ^ (lane as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ..d
            }
        })
    }

    /// The sink's bootstrap servers (its own, else the source's).
    pub fn sink_bootstrap(&self) -> &str {
        self.sink
            .bootstrap_servers
            .as_deref()
            .unwrap_or(&self.source.bootstrap_servers)
    }
}

/// A field's path as errors name it (`sink.kafka.acks`, `processing.threads`), with a key that
/// is empty, blank or padded quoted (`""`, `" "`) and the document itself as `(root)`.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        if !matches!(segment, Segment::Seq { .. }) && !out.is_empty() {
            out.push('.');
        }
        match segment {
            Segment::Map { key }
                if key.trim().len() != key.len()
                    || key.is_empty()
                    || key.contains(char::is_control) =>
            {
                out.push_str(&format!("{key:?}"))
            }
            s => out.push_str(&s.to_string()),
        }
    }
    if out.is_empty() {
        out.push_str("(root)");
    }
    out
}

#[cfg(test)]
pub(super) mod testing {
    use super::WorkerConfig;

    pub const BASE: &str = "
pipeline: {namespace: demo, name: impressions}
source: {bootstrapServers: 'k:9092', topic: raw, consumerGroup: demo.impressions}
sink: {topic: out, deadLetterTopic: dlq}
catalog: {topic: titles}
";

    /// The error message of loading `yaml` without overrides.
    pub fn err(yaml: &str) -> String {
        WorkerConfig::from_yaml(yaml, []).unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{
        WorkerConfig,
        testing::{BASE, err},
    };

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = WorkerConfig::from_yaml(BASE, []).unwrap();
        assert_eq!(c.processing.threads, 1);
        assert_eq!(c.sink_bootstrap(), "k:9092");
        assert_eq!(c.drain_timeout_secs, 30);
    }

    #[test]
    fn schema_learning_is_on_by_default_and_maps_to_the_learner() {
        let c = WorkerConfig::from_yaml(BASE, []).unwrap();
        assert!(c.schema.enabled);
        assert_eq!(c.schema.window_seconds, 60);
        let l = c.learner(0).unwrap();
        assert_eq!(l, crate::schema::LearnerConfig::default());
        assert_ne!(
            c.learner(1).unwrap().seed,
            l.seed,
            "each lane samples apart"
        );

        let c = WorkerConfig::from_yaml(
            &format!(
                "{BASE}schema: {{sampleOneIn: 10, windowSeconds: 2, budget: {{maxPaths: 64}}}}\n"
            ),
            [(
                "WORKER__SCHEMA__BUDGET__MAX_VERSIONS".to_owned(),
                "3".to_owned(),
            )],
        )
        .unwrap();
        assert_eq!(c.schema.window_seconds, 2);
        let l = c.learner(0).unwrap();
        assert_eq!(l.sample_one_in, 10);
        assert_eq!(
            l.budget,
            crate::schema::Budget {
                max_event_types: 32,
                max_paths: 64,
                max_versions: 3
            }
        );

        let off = WorkerConfig::from_yaml(&format!("{BASE}schema: {{enabled: false}}\n"), []);
        assert_eq!(off.unwrap().learner(0), None);
    }

    #[test]
    fn schema_fields_are_named_in_errors() {
        let e = err(&format!("{BASE}schema: {{sampleOneIn: 0}}\n"));
        assert!(e.starts_with("config field schema.sampleOneIn:"), "{e}");
        let e = err(&format!("{BASE}schema: {{windowSeconds: 0}}\n"));
        assert!(e.starts_with("config field schema.windowSeconds:"), "{e}");
        let e = err(&format!("{BASE}schema: {{budget: {{maxPaths: 0}}}}\n"));
        assert!(e.starts_with("config field schema.budget.maxPaths:"), "{e}");
        let e = err(&format!(
            "{BASE}schema: {{budget: {{maxEventTypes: 100000}}}}\n"
        ));
        assert!(
            e.starts_with("config field schema.budget.maxEventTypes:"),
            "{e}"
        );
        let e = err(&format!("{BASE}schema: {{budget: {{maxVersions: 0}}}}\n"));
        assert!(
            e.starts_with("config field schema.budget.maxVersions:"),
            "{e}"
        );
        let e = err(&format!("{BASE}schema: {{sampleOneIN: 5}}\n"));
        assert!(
            e.starts_with("config field schema.sampleOneIN: unknown field"),
            "{e}"
        );
        let e = err(&format!("{BASE}schema: {{budget: {{maxPath: 5}}}}\n"));
        assert!(
            e.starts_with("config field schema.budget.maxPath: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let e = err(&BASE.replace("topic: out,", "topic: out, deadLeterTopic: x,"));
        assert!(
            e.starts_with("config field sink.deadLeterTopic: unknown field `deadLeterTopic`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let e = err(&format!(
            "{BASE}processing: {{threads: many, maxBatch: 10}}\n"
        ));
        assert!(e.starts_with("config field processing.threads:"), "{e}");
    }

    #[test]
    fn an_empty_or_blank_key_is_named() {
        // Found by fuzzing: an unknown empty or blank key (in the file, or from an override
        // with an empty segment, `WORKER____X`) used to be named as an empty or blank field.
        let e = err(&format!("{BASE}'': 1\n"));
        assert!(e.starts_with("config field \"\": unknown field ``"), "{e}");
        let e = WorkerConfig::from_yaml(BASE, [("WORKER__SINK____X".to_owned(), "1".to_owned())])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config field sink.\"\": unknown field ``"),
            "{e}"
        );
        assert!(err("[1]").starts_with("config field (root):"));
        let e = err(&format!("{BASE}' ': 1\n"));
        assert!(
            e.starts_with("config field \" \": unknown field ` `"),
            "{e}"
        );
    }
}
