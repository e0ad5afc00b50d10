//! The observed state of an ImpressionPipeline, written by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a pipeline. Written only by the operator, through the status
/// subresource, and only when a value changed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImpressionPipelineStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Scaling, MetricsAvailable, DataQuality, SchemaDrift, ArchiveHealthy and Degraded (see `conditions` in this crate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Worker replicas that exist (from the Deployment).
    #[serde(default)]
    pub replicas: i32,

    /// Worker replicas that are ready.
    #[serde(default)]
    pub ready_replicas: i32,

    /// The replica count the operator wants now (applied in Auto mode, recommended otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,

    /// The label selector of the worker pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Partitions of the source topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,

    /// Consumer lag of the pipeline's group on the source topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<LagStatus>,

    /// Rates measured over the last evaluation window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputStatus>,

    /// The last scaling decision and why it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<ScalingDecisionStatus>,

    /// The arrival forecast (policy `predictive.mode` ForecastOnly or Scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastStatus>,
    /// The archiver fleet of a pipeline with `spec.archive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveStatus>,
}

/// The arrival rate forecast one lead time ahead, and whether it can be trusted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ForecastStatus {
    /// Learning (not enough history yet), Ready (the forecast is trusted), ErrorTooHigh (its
    /// recent error is above maxForecastError: reactive scaling only), Unavailable (no history
    /// could be read or fitted).
    pub state: String,
    /// Events/s expected one lead time ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_per_second: Option<f64>,
    /// The lead time, in seconds: a pod's start + the rebalance + one evaluation.
    pub lead_seconds: i32,
    /// The replicas the forecast calls for (what Scale mode raises the count to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The forecast's recent mean relative error (|forecast − actual| / actual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_error: Option<f64>,
    /// Hours of history the forecast was fitted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_hours: Option<f64>,
    /// What the forecast says, in words.
    pub message: String,
}

/// Consumer lag of the pipeline's group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LagStatus {
    /// Events not yet consumed, summed over partitions.
    pub total: i64,
    /// The largest lag of one partition.
    pub max_partition: i64,
    /// How long the backlog takes to drain at the current processing rate, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_seconds: Option<f64>,
}

/// Rates of the pipeline, in events per second.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThroughputStatus {
    /// Events arriving on the source topic.
    pub input_per_second: f64,
    /// Events processed by all workers.
    pub processed_per_second: f64,
    /// What one worker can process when fully busy (processed rate / busy fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_per_replica: Option<f64>,
}

/// One scaling decision, explained.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingDecisionStatus {
    /// Replicas before the decision.
    pub from: i32,
    /// Replicas after the decision (or recommended, in Recommend mode).
    pub to: i32,
    /// A CamelCase reason (e.g. ScaleUpForBacklog, HoldStabilizing, HoldMetricsMissing).
    pub reason: String,
    /// The inputs, the computed target and the rule or clamp that applied.
    pub message: String,
    /// When the decision was made.
    pub time: Time,
}

/// The archiver fleet as the operator last saw it (`status.archive`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveStatus {
    /// Archivers that exist (from their Deployment).
    #[serde(default)]
    pub replicas: i32,
    /// Archivers that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The archiver count the operator applies (its decision in Auto mode; in Recommend mode
    /// the recommendation is `lastDecision.to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// Partitions of the sink topic (the archivers' bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Records of the sink topic not yet in the table: the archivers' consumer group behind the
    /// topic's end, summed over partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// The sum of the offsets committed to the table (as the archivers' group holds them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_offsets: Option<i64>,
    /// The last commit to the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit: Option<ArchiveCommitStatus>,
    /// Commits that failed (dropped and rewound; not counting `stale` ones, the fencing after a
    /// rebalance) over the policy's rate window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_commits: Option<i64>,
    /// The last scaling decision of the archiver fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<ScalingDecisionStatus>,
}

/// One commit of data files to the table.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveCommitStatus {
    /// The snapshot the commit made.
    pub snapshot_id: i64,
    /// When the catalog accepted it.
    pub time: Time,
    /// Records, data files and their bytes in the commit.
    pub records: i64,
    pub files: i64,
    pub bytes: i64,
    /// Seconds from closing the data files to the catalog accepting the snapshot.
    pub latency_seconds: f64,
}
