//! `ImpressionPipeline`: one filter/enrich pipeline, its Kafka source and sink.

// The printcolumn(...) attributes repeat `type_`; clippy reads that as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    enrichment::EnrichmentSpec, quality::QualitySpec, scaling::ScalingSpec,
    status::ImpressionPipelineStatus, worker::WorkerSpec,
};

/// An impression pipeline: consumes raw client events from a Kafka topic, keeps the impression
/// events, enriches and checks them, and writes Avro records to a source-of-truth topic. The
/// operator of the pipeline's region runs it as a fleet of worker replicas and scales the fleet.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "impressions.dev",
    version = "v1alpha1",
    kind = "ImpressionPipeline",
    namespaced,
    shortname = "ipl",
    category = "impressions",
    doc = "An impression pipeline: raw client events in, validated and enriched Avro impressions out, run and scaled by the operator of its region.",
    status = "ImpressionPipelineStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.scaling.mode"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredReplicas"
    ),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.lag.total"),
    printcolumn(
        name = "In/s",
        type_ = "number",
        json_path = ".status.throughput.inputPerSecond"
    ),
    printcolumn(
        name = "Quality",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"DataQuality\")].reason"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = kube::core::Rule::new(crate::PIPELINE_NAME_LENGTH_RULE)
        .message(crate::PIPELINE_NAME_LENGTH_MESSAGE),
    validation = kube::core::Rule::new(crate::PIPELINE_NAME_RULE)
        .message(crate::PIPELINE_NAME_MESSAGE)
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "self.scaling.mode != 'Manual' || has(self.replicas)"
).message("spec.replicas is required when spec.scaling.mode is Manual"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.replicas) || !has(self.scaling.minReplicas) || self.replicas >= self.scaling.minReplicas"
).message("spec.replicas must not be below spec.scaling.minReplicas"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.replicas) || !has(self.scaling.maxReplicas) || self.replicas <= self.scaling.maxReplicas"
).message("spec.replicas must not be above spec.scaling.maxReplicas"))]
#[x_kube(validation = kube::core::Rule::new(
    "self.sink.topic != self.source.topic && self.sink.deadLetterTopic != self.source.topic"
).message("the sink and dead-letter topics must differ from the source topic"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.enrichment.catalog.topic) || self.enrichment.catalog.topic != self.source.topic"
).field_path(".enrichment.catalog.topic")
    .message("enrichment.catalog.topic must differ from source.topic: the worker would read raw events as titles"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.enrichment.catalog.topic) || (has(self.sink.bootstrapServers) && self.sink.bootstrapServers != self.source.bootstrapServers) || (self.enrichment.catalog.topic != self.sink.topic && self.enrichment.catalog.topic != self.sink.deadLetterTopic)"
).field_path(".enrichment.catalog.topic")
    .message("enrichment.catalog.topic must differ from sink.topic and sink.deadLetterTopic when the sink is on the source's cluster: the worker would write into its own catalog"))]
#[x_kube(validation = kube::core::Rule::new(
    "self.sink.deliveryGuarantee != 'ExactlyOnce' || !has(self.sink.bootstrapServers) || self.sink.bootstrapServers == self.source.bootstrapServers"
).field_path(".sink.bootstrapServers")
    .message("sink.bootstrapServers must be the source's with deliveryGuarantee ExactlyOnce: the consumed offsets are committed in the sink producer's transaction"))]
pub struct ImpressionPipelineSpec {
    /// The region whose operator runs this pipeline. Empty means the operator of any region.
    /// A label value: at most 63 letters, digits, '-', '_' and '.'.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new(crate::LABEL_VALUE_RULE).message(crate::LABEL_VALUE_MESSAGE))]
    #[schemars(length(max = 63))]
    pub region: String,

    /// Where raw client events are read from.
    pub source: SourceSpec,

    /// Where validated Avro records and dead letters are written to.
    pub sink: SinkSpec,

    /// Title details and page/row names added to each impression.
    pub enrichment: EnrichmentSpec,

    /// Which columns are checked and when data quality turns Warning or Critical.
    #[serde(default)]
    pub quality: QualitySpec,

    /// How each worker replica runs.
    #[serde(default)]
    pub worker: WorkerSpec,

    /// How the raw events' schema learned from the workers is watched for drift.
    #[serde(default)]
    pub schema: crate::schema::SchemaSpec,

    /// How the replica count is chosen.
    #[serde(default)]
    pub scaling: ScalingSpec,

    /// Archive the records in an Apache Iceberg table (an archiver fleet beside the workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<crate::archive::ArchiveSpec>,

    /// The replica count in Manual and External modes (what `kubectl scale ipl` and an external
    /// autoscaler set through the scale subresource). Ignored in Auto and Recommend modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
}

/// The Kafka topic raw client events are consumed from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// Kafka bootstrap servers as a comma-separated `host:port` list.
    #[x_kube(validation = kube::core::Rule::new(
        crate::BOOTSTRAP_RULE
    ).message(crate::BOOTSTRAP_MESSAGE))]
    #[schemars(length(min = 1, max = 1024))]
    pub bootstrap_servers: String,

    /// The topic of raw client events (all event types; only impressions are kept).
    #[x_kube(validation = kube::core::Rule::new(crate::TOPIC_RULE).message(crate::TOPIC_MESSAGE))]
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,

    /// The consumer group of the workers. Defaults to `<namespace>.<name>` of the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.trim() != ''").message("must not be blank"))]
    #[schemars(length(min = 1, max = 255))]
    pub consumer_group: Option<String>,

    /// Where a consumer group without a committed offset starts: Earliest or Latest.
    #[serde(default)]
    pub offset_reset: OffsetReset,

    /// How the workers' consumer group assigns partitions: Consumer (KIP-848, Kafka 4.0+
    /// brokers; the broker assigns incrementally and owns the session timeout and heartbeat
    /// interval) or Classic (a member assigns, cooperative-sticky). A Secret's settings of the
    /// other protocol are refused.
    #[serde(default)]
    pub group_protocol: GroupProtocol,

    /// A Secret in the pipeline's namespace whose keys are librdkafka client settings for
    /// SASL/TLS (e.g. `security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`,
    /// `ssl.ca.pem`). Applied to the source and, unless the sink names its own, to the sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectRef>,
}

/// Where a consumer group without a committed offset starts reading.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// The oldest retained offset.
    Earliest,
    /// The end of the partition: only events produced from now on.
    #[default]
    Latest,
}

/// The consumer group protocol of the workers (librdkafka's `group.protocol`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupProtocol {
    /// KIP-848: the broker assigns partitions incrementally; only moved partitions pause during
    /// a scaling action. Needs Kafka 4.0 or later.
    #[default]
    Consumer,
    /// JoinGroup/SyncGroup with the cooperative-sticky assignor; for brokers before 4.0.
    Classic,
}

/// The topics validated records and dead letters are written to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.topic != self.deadLetterTopic")
    .message("sink.topic and sink.deadLetterTopic must differ"))]
pub struct SinkSpec {
    /// The source-of-truth topic of enriched Avro impression records.
    #[x_kube(validation = kube::core::Rule::new(crate::TOPIC_RULE).message(crate::TOPIC_MESSAGE))]
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,

    /// The topic of rejected events: the original bytes with the reason in a header.
    #[x_kube(validation = kube::core::Rule::new(crate::TOPIC_RULE).message(crate::TOPIC_MESSAGE))]
    #[schemars(length(min = 1, max = 249))]
    pub dead_letter_topic: String,

    /// Bootstrap servers of the sink cluster, when it is not the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(
        crate::BOOTSTRAP_RULE
    ).message(crate::BOOTSTRAP_MESSAGE))]
    #[schemars(length(min = 1, max = 1024))]
    pub bootstrap_servers: Option<String>,

    /// A Secret with librdkafka client settings for the sink cluster (see source.secretRef).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectRef>,

    /// AtLeastOnce (default): an input offset is committed only after its outputs were
    /// acknowledged. ExactlyOnce: outputs and offsets are committed in one Kafka transaction.
    #[serde(default)]
    pub delivery_guarantee: DeliveryGuarantee,

    /// When set, records use the Confluent wire format (magic byte + this schema id) instead of
    /// Avro single-object encoding. Schema Registry ids start at 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub schema_id: Option<i32>,

    /// A dead letter's payload is cut to this many bytes (headers then give the original size
    /// and its SHA-256), so that an oversize event is dead-lettered, never refused by the
    /// broker. Default 256 KiB. It must fit the sink producer's `message.max.bytes` (from the
    /// sink Secret, default 1,000,000) less 64 KiB for the key and headers: the operator checks
    /// it with the worker's own validation and shows a refusal as Ready=False.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 104857600))]
    pub dead_letter_max_payload_bytes: Option<u32>,
}

/// The delivery guarantee between the raw topic and the sink topic.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// Every input reaches the sink at least once; duplicates are possible after a crash.
    #[default]
    AtLeastOnce,
    /// Kafka transactions: read_committed consumers see every input exactly once.
    ExactlyOnce,
}

pub use crate::object_ref::LocalObjectRef;

impl ImpressionPipelineSpec {
    /// The consumer group the workers use: the configured one, else `<namespace>.<name>`.
    pub fn consumer_group(&self, namespace: &str, name: &str) -> String {
        self.source
            .consumer_group
            .clone()
            .unwrap_or_else(|| format!("{namespace}.{name}"))
    }
}
