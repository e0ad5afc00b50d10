//! The worker's configuration: a YAML file (what the operator renders into a ConfigMap) plus
//! environment overrides (what the operator maps from Secrets). Unknown fields and wrong values
//! stop the worker at start with the field named.
//!
//! Overrides: `WORKER__A__B=value` sets field `a.b` (segments in SNAKE_CASE, e.g.
//! `WORKER__SINK__DEAD_LETTER_TOPIC`); under a `kafka` map the key is a librdkafka property
//! (`WORKER__SOURCE__KAFKA__SASL_PASSWORD` sets `sasl.password`).

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::process::{Limits, Locations};

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

/// The widest timestamp window limits may set on either side of now: 100 years.
const MAX_WINDOW_SECS: i64 = 100 * 365 * 24 * 3600;

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
                apply_override(&mut doc, path, &v)?;
            }
        }
        let cfg: WorkerConfig = serde_path_to_error::deserialize(doc).map_err(|e| {
            let path = field_path(e.path());
            field(&path, e.into_inner().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        topic("source.topic", &self.source.topic)?;
        topic("sink.topic", &self.sink.topic)?;
        topic("sink.deadLetterTopic", &self.sink.dead_letter_topic)?;
        if self.source.bootstrap_servers.trim().is_empty() {
            return Err(field("source.bootstrapServers", "must not be empty"));
        }
        if self.source.consumer_group.trim().is_empty() {
            return Err(field("source.consumerGroup", "must not be empty"));
        }
        if self.sink.topic == self.sink.dead_letter_topic {
            return Err(field("sink.deadLetterTopic", "must differ from sink.topic"));
        }
        if self.sink.topic == self.source.topic || self.sink.dead_letter_topic == self.source.topic
        {
            return Err(field(
                "sink.topic",
                "the sink and dead-letter topics must differ from source.topic",
            ));
        }
        match (&self.catalog.topic, &self.catalog.file) {
            (Some(t), None) => topic("catalog.topic", t)?,
            (None, Some(_)) => {}
            _ => {
                return Err(field(
                    "catalog",
                    "exactly one of catalog.topic and catalog.file must be set",
                ));
            }
        }
        let mut pages = BTreeMap::new();
        for k in self.locations.pages.keys() {
            let id = k
                .parse::<i64>()
                .map_err(|_| field(&format!("locations.pages.{k}"), "page ids must be integers"))?;
            if let Some(other) = pages.insert(id, k) {
                return Err(field(
                    &format!("locations.pages.{k}"),
                    format!("page id {id} is also given as {other:?}"),
                ));
            }
        }
        if !(1..=64).contains(&self.processing.threads) {
            return Err(field("processing.threads", "must be within 1..=64"));
        }
        if !(1..=100_000).contains(&self.processing.max_batch) {
            return Err(field("processing.maxBatch", "must be within 1..=100000"));
        }
        if self.processing.max_events_per_second == Some(0) {
            return Err(field(
                "processing.maxEventsPerSecond",
                "must be positive when set",
            ));
        }
        if !(1..=600).contains(&self.drain_timeout_secs) {
            return Err(field("drainTimeoutSecs", "must be within 1..=600"));
        }
        self.validate_delivery()?;
        if self.limits.max_event_bytes == 0 {
            return Err(field("limits.maxEventBytes", "must be positive"));
        }
        // Bounded so that now ± the window stays far inside the range of epoch milliseconds.
        if !(1..=MAX_WINDOW_SECS).contains(&self.limits.max_age_secs) {
            return Err(field(
                "limits.maxAgeSecs",
                format!("must be within 1..={MAX_WINDOW_SECS} (100 years)"),
            ));
        }
        if !(0..=MAX_WINDOW_SECS).contains(&self.limits.max_future_secs) {
            return Err(field(
                "limits.maxFutureSecs",
                format!("must be within 0..={MAX_WINDOW_SECS} (100 years)"),
            ));
        }
        if let Some(b) = &self.sink.bootstrap_servers
            && b.trim().is_empty()
        {
            return Err(field(
                "sink.bootstrapServers",
                "must not be empty when set (leave it out to use source.bootstrapServers)",
            ));
        }
        Ok(())
    }

    /// The transaction settings: only for ExactlyOnce, checked against every setting that would
    /// break it (the consumed offsets are committed through the sink producer's transaction, so
    /// the sink must be the source's cluster; offsets are never committed by the consumer).
    fn validate_delivery(&self) -> Result<(), ConfigError> {
        let s = &self.sink;
        if s.delivery_guarantee == DeliveryGuarantee::AtLeastOnce {
            for (name, set) in [
                (
                    "sink.transactionIntervalMs",
                    s.transaction_interval_ms.is_some(),
                ),
                (
                    "sink.transactionMaxEvents",
                    s.transaction_max_events.is_some(),
                ),
                (
                    "sink.transactionTimeoutMs",
                    s.transaction_timeout_ms.is_some(),
                ),
                ("sink.transactionalId", s.transactional_id.is_some()),
            ] {
                if set {
                    return Err(field(
                        name,
                        "only applies with sink.deliveryGuarantee: ExactlyOnce",
                    ));
                }
            }
            return Ok(());
        }
        let t = self.transactions();
        if !(1_000..=900_000).contains(&t.timeout_ms) {
            return Err(field(
                "sink.transactionTimeoutMs",
                "must be within 1000..=900000 (the broker's default transaction.max.timeout.ms)",
            ));
        }
        if t.interval_ms == 0 || t.interval_ms > t.timeout_ms / 2 {
            return Err(field(
                "sink.transactionIntervalMs",
                format!(
                    "must be positive and at most half of sink.transactionTimeoutMs ({} ms)",
                    t.timeout_ms
                ),
            ));
        }
        if t.max_events == 0 {
            return Err(field("sink.transactionMaxEvents", "must be positive"));
        }
        if let Some(id) = &t.transactional_id
            && (id.trim().is_empty() || id.len() > 249)
        {
            return Err(field(
                "sink.transactionalId",
                "must be non-empty and at most 249 characters",
            ));
        }
        if let Some(b) = &s.bootstrap_servers
            && b.trim() != self.source.bootstrap_servers.trim()
        {
            return Err(field(
                "sink.bootstrapServers",
                "ExactlyOnce needs the sink on the source's cluster: the consumed offsets are \
                 committed in the sink producer's transaction",
            ));
        }
        let source = |k: &str| {
            self.source
                .kafka
                .get(k)
                .map(|v| v.trim().to_ascii_lowercase())
        };
        if source("enable.auto.commit").is_some_and(|v| v != "false") {
            return Err(field(
                "source.kafka.enable.auto.commit",
                "must be false with ExactlyOnce: offsets are committed in the transaction",
            ));
        }
        if source("isolation.level").is_some_and(|v| v != "read_committed") {
            return Err(field(
                "source.kafka.isolation.level",
                "must be read_committed with ExactlyOnce: an aborted input must not reach the sink",
            ));
        }
        let (prefix, props) = self.sink_kafka();
        let sink = |k: &str| props.get(k).map(|v| v.trim().to_ascii_lowercase());
        for (key, instead) in [
            ("transactional.id", "sink.transactionalId"),
            ("transaction.timeout.ms", "sink.transactionTimeoutMs"),
        ] {
            if props.contains_key(key) {
                return Err(field(
                    &format!("{prefix}.{key}"),
                    format!("set {instead} instead"),
                ));
            }
        }
        if sink("enable.idempotence").is_some_and(|v| v != "true") {
            return Err(field(
                &format!("{prefix}.enable.idempotence"),
                "must be true with ExactlyOnce (a transactional producer is idempotent)",
            ));
        }
        if sink("acks").is_some_and(|v| v != "all" && v != "-1") {
            return Err(field(
                &format!("{prefix}.acks"),
                "must be all with ExactlyOnce",
            ));
        }
        if let Some(v) = sink("message.timeout.ms")
            && v.parse::<u64>().map_or(true, |ms| ms > t.timeout_ms)
        {
            return Err(field(
                &format!("{prefix}.message.timeout.ms"),
                format!(
                    "must be a number of ms at most sink.transactionTimeoutMs ({})",
                    t.timeout_ms
                ),
            ));
        }
        Ok(())
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

fn topic(name: &str, t: &str) -> Result<(), ConfigError> {
    let ok = !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(field(
            name,
            format!("{t:?} is not a valid Kafka topic name"),
        ))
    }
}

fn apply_override(doc: &mut serde_yaml::Value, path: &str, value: &str) -> Result<(), ConfigError> {
    let segments: Vec<&str> = path.split("__").collect();
    let mut node = doc;
    let mut in_kafka = false;
    // The keys walked so far, as fields are named in errors.
    let mut walked: Vec<String> = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let key = if in_kafka {
            seg.to_ascii_lowercase().replace('_', ".")
        } else {
            camel(seg)
        };
        in_kafka = key == "kafka";
        let map = match node {
            serde_yaml::Value::Mapping(m) => m,
            v @ serde_yaml::Value::Null => {
                *v = serde_yaml::Value::Mapping(Default::default());
                let serde_yaml::Value::Mapping(m) = v else {
                    unreachable!()
                };
                m
            }
            _ => {
                let at = if walked.is_empty() {
                    "(root)".to_owned()
                } else {
                    walked.join(".")
                };
                return Err(field(&at, "cannot override inside a non-map value"));
            }
        };
        walked.push(key.clone());
        let k = serde_yaml::Value::String(key);
        if i + 1 == segments.len() {
            let parsed = if in_kafka_value(&segments, i) {
                serde_yaml::Value::String(value.to_owned())
            } else {
                serde_yaml::from_str(value)
                    .unwrap_or_else(|_| serde_yaml::Value::String(value.to_owned()))
            };
            map.insert(k, parsed);
            return Ok(());
        }
        node = map.entry(k).or_insert(serde_yaml::Value::Null);
    }
    Ok(())
}

/// Whether the last segment is a key of a `kafka` map (values stay strings).
fn in_kafka_value(segments: &[&str], last: usize) -> bool {
    last > 0 && segments[last - 1].eq_ignore_ascii_case("kafka")
}

/// `DEAD_LETTER_TOPIC` → `deadLetterTopic`.
fn camel(seg: &str) -> String {
    let mut out = String::new();
    for (i, part) in seg.split('_').enumerate() {
        let lower = part.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut c = lower.chars();
            if let Some(f) = c.next() {
                out.push(f.to_ascii_uppercase());
                out.extend(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "
pipeline: {namespace: demo, name: impressions}
source: {bootstrapServers: 'k:9092', topic: raw, consumerGroup: demo.impressions}
sink: {topic: out, deadLetterTopic: dlq}
catalog: {topic: titles}
";

    fn err(yaml: &str) -> String {
        WorkerConfig::from_yaml(yaml, []).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = WorkerConfig::from_yaml(BASE, []).unwrap();
        assert_eq!(c.processing.threads, 1);
        assert_eq!(c.sink_bootstrap(), "k:9092");
        assert_eq!(c.drain_timeout_secs, 30);
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
    fn semantic_errors_name_the_field() {
        assert!(err(&BASE.replace("dlq", "out")).starts_with("config field sink.deadLetterTopic:"));
        assert!(
            err(&BASE.replace("topic: raw", "topic: 'raw events'"))
                .starts_with("config field source.topic:")
        );
        assert!(
            err(&BASE.replace("catalog: {topic: titles}", "catalog: {}"))
                .starts_with("config field catalog:")
        );
        assert!(
            err(&format!("{BASE}processing: {{threads: 0, maxBatch: 10}}\n"))
                .starts_with("config field processing.threads:")
        );
        assert!(
            err(&format!("{BASE}locations: {{pages: {{home: Home}}}}\n"))
                .starts_with("config field locations.pages.home:")
        );
        assert!(
            err(&format!("{BASE}metrics: {{listen: nowhere}}\n"))
                .starts_with("config field metrics.listen:")
        );
    }

    #[test]
    fn exactly_once_defaults_and_incompatible_settings_name_the_field() {
        let eos = BASE.replace(
            "deadLetterTopic: dlq",
            "deadLetterTopic: dlq, deliveryGuarantee: ExactlyOnce",
        );
        let c = WorkerConfig::from_yaml(&eos, []).unwrap();
        assert_eq!(c.sink.delivery_guarantee, DeliveryGuarantee::ExactlyOnce);
        let t = c.transactions();
        assert_eq!(
            (t.interval_ms, t.max_events, t.timeout_ms),
            (100, 50_000, 10_000)
        );
        let with = |sink_extra: &str, rest: &str| {
            err(&format!(
                "{}{rest}",
                eos.replace("ExactlyOnce", &format!("ExactlyOnce, {sink_extra}"))
            ))
        };
        for (sink_extra, rest, field) in [
            (
                "bootstrapServers: 'other:9092'",
                "",
                "sink.bootstrapServers",
            ),
            (
                "transactionIntervalMs: 6000",
                "",
                "sink.transactionIntervalMs",
            ),
            ("transactionIntervalMs: 0", "", "sink.transactionIntervalMs"),
            ("transactionTimeoutMs: 500", "", "sink.transactionTimeoutMs"),
            ("transactionMaxEvents: 0", "", "sink.transactionMaxEvents"),
            ("transactionalId: ''", "", "sink.transactionalId"),
            (
                "kafka: {transactional.id: x}",
                "",
                "sink.kafka.transactional.id",
            ),
            (
                "kafka: {enable.idempotence: 'false'}",
                "",
                "sink.kafka.enable.idempotence",
            ),
            ("kafka: {acks: '1'}", "", "sink.kafka.acks"),
            (
                "kafka: {message.timeout.ms: '120000'}",
                "",
                "sink.kafka.message.timeout.ms",
            ),
        ] {
            let e = with(sink_extra, rest);
            assert!(
                e.starts_with(&format!("config field {field}:")),
                "{sink_extra}: {e}"
            );
        }
        let with_source = |kafka: &str| {
            err(&eos.replace(
                "consumerGroup: demo.impressions}",
                &format!("consumerGroup: demo.impressions, kafka: {{{kafka}}}}}"),
            ))
        };
        // Without a sink map of its own the sink producer gets the source's map.
        for (kafka, field) in [
            (
                "enable.auto.commit: 'true'",
                "source.kafka.enable.auto.commit",
            ),
            (
                "isolation.level: read_uncommitted",
                "source.kafka.isolation.level",
            ),
            (
                "transaction.timeout.ms: '5000'",
                "source.kafka.transaction.timeout.ms",
            ),
        ] {
            let e = with_source(kafka);
            assert!(
                e.starts_with(&format!("config field {field}:")),
                "{kafka}: {e}"
            );
        }
        // The same cluster, spelled the same, is fine; so are settings that fit.
        let ok = eos.replace(
            "ExactlyOnce",
            "ExactlyOnce, bootstrapServers: 'k:9092', transactionIntervalMs: 250, \
             transactionalId: w-0, kafka: {message.timeout.ms: '8000', acks: all}",
        );
        WorkerConfig::from_yaml(&ok, []).unwrap();
    }

    #[test]
    fn transaction_settings_are_refused_without_exactly_once() {
        let e = err(&BASE.replace(
            "deadLetterTopic: dlq",
            "deadLetterTopic: dlq, transactionIntervalMs: 100",
        ));
        assert!(
            e.starts_with("config field sink.transactionIntervalMs: only applies with"),
            "{e}"
        );
    }

    #[test]
    fn environment_overrides_fields_and_kafka_properties() {
        let env = [
            (
                "WORKER__SINK__DEAD_LETTER_TOPIC".to_owned(),
                "dead".to_owned(),
            ),
            (
                "WORKER__SOURCE__KAFKA__SASL_PASSWORD".to_owned(),
                "s3cret".to_owned(),
            ),
            (
                "WORKER__PROCESSING__MAX_EVENTS_PER_SECOND".to_owned(),
                "500".to_owned(),
            ),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let c = WorkerConfig::from_yaml(BASE, env).unwrap();
        assert_eq!(c.sink.dead_letter_topic, "dead");
        assert_eq!(c.source.kafka["sasl.password"], "s3cret");
        assert_eq!(c.processing.max_events_per_second, Some(500));
    }

    #[test]
    fn timestamp_window_and_sink_servers_are_bounded() {
        // Found by the fuzz harness: windows near i64::MAX seconds overflowed when turned into
        // milliseconds and added to the clock; a blank sink bootstrap list was accepted.
        for (limits, f) in [
            ("{maxAgeSecs: 9223372036854775807}", "limits.maxAgeSecs"),
            ("{maxFutureSecs: 9223372036854775}", "limits.maxFutureSecs"),
            ("{maxFutureSecs: -1}", "limits.maxFutureSecs"),
            ("{maxAgeSecs: 0}", "limits.maxAgeSecs"),
            ("{maxEventBytes: 0}", "limits.maxEventBytes"),
        ] {
            let e = err(&format!("{BASE}limits: {limits}\n"));
            assert!(
                e.starts_with(&format!("config field {f}:")),
                "{limits}: {e}"
            );
        }
        let c = WorkerConfig::from_yaml(
            &format!("{BASE}limits: {{maxAgeSecs: 3153600000, maxFutureSecs: 3153600000}}\n"),
            [],
        )
        .unwrap();
        let l = c.limits();
        assert_eq!(
            (l.max_age_ms, l.max_future_ms),
            (3_153_600_000_000, 3_153_600_000_000)
        );
        let e = err(&BASE.replace("{topic: out,", "{bootstrapServers: ' ', topic: out,"));
        assert!(e.starts_with("config field sink.bootstrapServers:"), "{e}");
    }

    #[test]
    fn a_page_id_given_twice_is_refused() {
        // Found by the fuzz harness: `1` and `+1` (or `01`) are one page id; one name was
        // silently dropped.
        let e = err(&format!(
            "{BASE}locations: {{pages: {{'1': Home, '+1': Other}}}}\n"
        ));
        assert_eq!(
            e,
            "config field locations.pages.1: page id 1 is also given as \"+1\""
        );
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

    #[test]
    fn override_inside_a_scalar_names_the_field() {
        let over = |k: &str| [(k.to_owned(), "x".to_owned())];
        // Found by fuzzing: the root itself used to be named as the empty field.
        let e = WorkerConfig::from_yaml("just text", over("WORKER__SOURCE__TOPIC")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config field (root): cannot override inside a non-map value"
        );
        let e = WorkerConfig::from_yaml(
            &format!("{BASE}drainTimeoutSecs: 5\n"),
            over("WORKER__DRAIN_TIMEOUT_SECS__X"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config field drainTimeoutSecs: cannot override inside a non-map value"
        );
    }
}
