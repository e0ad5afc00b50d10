//! What serde cannot check: ranges, topic names, page ids, and settings that contradict the
//! delivery guarantee. Each error names the field.

use std::collections::BTreeMap;

use super::{ConfigError, DeliveryGuarantee, GroupProtocol, WorkerConfig, field};

/// The widest timestamp window limits may set on either side of now: 100 years.
const MAX_WINDOW_SECS: i64 = 100 * 365 * 24 * 3600;

/// The sparsest schema sampling: one event in a million.
const MAX_SAMPLE_ONE_IN: u32 = 1_000_000;

/// The longest schema window: an hour.
const MAX_WINDOW_SECONDS: u64 = 3600;

/// The largest schema budget: event types, paths per type, versions per path. At the largest,
/// a worker keeps at most 256 × 4096 paths per processing thread.
const MAX_EVENT_TYPES: usize = 256;
const MAX_PATHS: usize = 4096;
const MAX_VERSIONS: usize = 64;

/// librdkafka's default `message.max.bytes` of a producer.
const PRODUCER_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// What a dead letter needs besides its payload within `message.max.bytes`: its key, headers
/// and record overhead.
const DEAD_LETTER_HEADROOM: usize = 64 * 1024;

impl WorkerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        self.validate_group_protocol()?;
        self.validate_delivery()?;
        self.validate_dead_letter()?;
        self.validate_schema()?;
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
            return self.validate_at_least_once();
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

    /// The source's librdkafka settings must belong to `source.groupProtocol`: the consumer
    /// protocol (KIP-848) refuses the classic group settings, which the broker owns there, and
    /// the classic protocol has no remote assignor. The protocol itself is chosen by the field.
    fn validate_group_protocol(&self) -> Result<(), ConfigError> {
        let kafka = &self.source.kafka;
        if kafka.contains_key("group.protocol") {
            return Err(field(
                "source.kafka.group.protocol",
                "set source.groupProtocol instead (Consumer or Classic)",
            ));
        }
        let refused: &[(&str, &str)] = match self.source.group_protocol {
            GroupProtocol::Consumer => &[
                (
                    "session.timeout.ms",
                    "the broker's group.consumer.session.timeout.ms applies",
                ),
                (
                    "heartbeat.interval.ms",
                    "the broker's group.consumer.heartbeat.interval.ms applies",
                ),
                (
                    "partition.assignment.strategy",
                    "the broker assigns; set group.remote.assignor to choose its assignor",
                ),
                ("group.protocol.type", "the consumer protocol has none"),
            ],
            GroupProtocol::Classic => &[(
                "group.remote.assignor",
                "the classic protocol assigns on a member (cooperative-sticky)",
            )],
        };
        let protocol = match self.source.group_protocol {
            GroupProtocol::Consumer => "Consumer",
            GroupProtocol::Classic => "Classic",
        };
        for (key, why) in refused {
            if kafka.contains_key(*key) {
                return Err(field(
                    &format!("source.kafka.{key}"),
                    format!("is not supported with source.groupProtocol: {protocol}: {why}"),
                ));
            }
        }
        Ok(())
    }

    /// AtLeastOnce: an input's offset is stored once every output of it was acknowledged by
    /// every in-sync replica, and stored offsets are committed in the background. A pipeline's
    /// librdkafka settings (applied after the worker's own) must not undo that.
    fn validate_at_least_once(&self) -> Result<(), ConfigError> {
        let source = |k: &str| {
            self.source
                .kafka
                .get(k)
                .map(|v| v.trim().to_ascii_lowercase())
        };
        if source("enable.auto.offset.store").is_some_and(|v| bool_value(&v) != Some(false)) {
            return Err(field(
                "source.kafka.enable.auto.offset.store",
                "must be false with AtLeastOnce: an offset is stored only once its event's outputs \
                 are acknowledged",
            ));
        }
        if source("enable.auto.commit").is_some_and(|v| bool_value(&v) != Some(true)) {
            return Err(field(
                "source.kafka.enable.auto.commit",
                "must be true with AtLeastOnce: the stored offsets are committed in the background",
            ));
        }
        let (prefix, props) = self.sink_kafka();
        let sink = |k: &str| props.get(k).map(|v| v.trim().to_ascii_lowercase());
        for key in ["acks", "request.required.acks"] {
            if sink(key).is_some_and(|v| v != "all" && v != "-1") {
                return Err(field(
                    &format!("{prefix}.{key}"),
                    "must be all with AtLeastOnce: an input is committed once its outputs are \
                     acknowledged, which must mean written to every in-sync replica",
                ));
            }
        }
        if sink("enable.idempotence").is_some_and(|v| bool_value(&v) != Some(true)) {
            return Err(field(
                &format!("{prefix}.enable.idempotence"),
                "must be true with AtLeastOnce: a retried output must not be reordered or \
                 duplicated by the producer",
            ));
        }
        if sink("delivery.report.only.error").is_some_and(|v| bool_value(&v) != Some(false)) {
            return Err(field(
                &format!("{prefix}.delivery.report.only.error"),
                "must be false with AtLeastOnce: the report of each delivered output releases \
                 its input's offset",
            ));
        }
        Ok(())
    }

    /// Schema learning: the sampling and the window within reason, and a budget that keeps the
    /// learner's memory bounded (checked whether or not learning is enabled).
    fn validate_schema(&self) -> Result<(), ConfigError> {
        let s = &self.schema;
        if !(1..=MAX_SAMPLE_ONE_IN).contains(&s.sample_one_in) {
            return Err(field(
                "schema.sampleOneIn",
                format!("must be within 1..={MAX_SAMPLE_ONE_IN}"),
            ));
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&s.window_seconds) {
            return Err(field(
                "schema.windowSeconds",
                format!("must be within 1..={MAX_WINDOW_SECONDS}"),
            ));
        }
        for (name, n, max) in [
            (
                "schema.budget.maxEventTypes",
                s.budget.max_event_types,
                MAX_EVENT_TYPES,
            ),
            ("schema.budget.maxPaths", s.budget.max_paths, MAX_PATHS),
            (
                "schema.budget.maxVersions",
                s.budget.max_versions,
                MAX_VERSIONS,
            ),
        ] {
            if !(1..=max).contains(&n) {
                return Err(field(name, format!("must be within 1..={max}")));
            }
        }
        Ok(())
    }

    /// A dead letter cut to `deadLetter.maxPayloadBytes` must fit the producer's
    /// `message.max.bytes` with its key and headers.
    fn validate_dead_letter(&self) -> Result<(), ConfigError> {
        let (prefix, props) = self.sink_kafka();
        let (limit, from) = match props.get("message.max.bytes") {
            None => (
                PRODUCER_MESSAGE_MAX_BYTES,
                "the producer's default message.max.bytes".to_owned(),
            ),
            Some(v) => {
                let name = format!("{prefix}.message.max.bytes");
                let n = v
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| field(&name, "must be a number of bytes"))?;
                (n, name)
            }
        };
        let max = limit.saturating_sub(DEAD_LETTER_HEADROOM);
        let n = self.dead_letter.max_payload_bytes;
        if n == 0 || n > max {
            return Err(field(
                "deadLetter.maxPayloadBytes",
                format!(
                    "must be positive and at most {max}: {from} ({limit}) less \
                     {DEAD_LETTER_HEADROOM} bytes for the key and headers"
                ),
            ));
        }
        Ok(())
    }
}

/// A librdkafka boolean (`true`/`t`/`1`, `false`/`f`/`0`), lower-cased.
fn bool_value(v: &str) -> Option<bool> {
    match v {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
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

#[cfg(test)]
mod tests;
