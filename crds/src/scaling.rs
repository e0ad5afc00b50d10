//! The pipeline's scaling section: mode, bounds, policy and narrowing overrides.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the pipeline's replica count is chosen.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas"
).message("scaling.minReplicas must not exceed scaling.maxReplicas"))]
pub struct ScalingSpec {
    /// Auto: the operator applies its decisions. Recommend: decisions go to status only.
    /// Manual: spec.replicas is applied as is. External: another autoscaler (HPA, KEDA) drives
    /// spec.replicas through the scale subresource.
    #[serde(default)]
    pub mode: ScalingMode,

    /// The lowest replica count; must lie within the policy's bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: Option<i32>,

    /// The highest replica count; must lie within the policy's bounds. The partition count of the
    /// source topic caps it as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: Option<i32>,

    /// The ScalingPolicy to scale within. Defaults to the region's default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(crate::OBJECT_NAME_RULE).message(crate::OBJECT_NAME_MESSAGE))]
    #[schemars(length(min = 1, max = 253))]
    pub policy_ref: Option<String>,

    /// Settings that may only narrow what the policy allows; a wider value is reported as a
    /// condition and not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<ScalingOverrides>,

    /// Surges the SREs expect (a regional evacuation, a launch): from a pod's start and a
    /// rebalance before `start` until `end`, the pipeline runs at least `factor` × the replicas
    /// it ran when the pre-scale began (in Auto mode; Recommend reports it). The ordinary
    /// rules still scale above that. `kubectl impressions prescale` writes one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub planned_surges: Vec<PlannedSurge>,
}

/// One expected surge: a time window and the factor of load expected in it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("self.end > self.start")
    .field_path(".end")
    .message("a planned surge must end after it starts"))]
#[x_kube(validation = kube::core::Rule::new("self.end - self.start <= duration('168h')")
    .field_path(".end")
    .message("a planned surge lasts at most 7 days (168h)"))]
pub struct PlannedSurge {
    /// When the surge starts (RFC 3339, e.g. 2026-12-24T18:00:00Z).
    pub start: Time,
    /// When it ends (RFC 3339): after it, the ordinary rules scale down.
    pub end: Time,
    /// The load expected over the usual: the replicas are multiplied by it, in (1, 100].
    #[x_kube(validation = kube::core::Rule::new("self > 1.0 && self <= 100.0")
        .message("factor must be in (1, 100]"))]
    pub factor: f64,
}

/// Who chooses the replica count.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScalingMode {
    /// The operator scales from lag and throughput.
    #[default]
    Auto,
    /// The operator computes and explains decisions in status but does not apply them.
    Recommend,
    /// spec.replicas is applied as is.
    Manual,
    /// An external autoscaler sets spec.replicas through the scale subresource.
    External,
}

/// Per-pipeline settings that narrow the policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingOverrides {
    /// A lower target utilization than the policy's (more headroom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self > 0.0 && self <= 1.0")
        .message("targetUtilization must be in (0, 1]"))]
    pub target_utilization: Option<f64>,

    /// A tighter lag SLO than the policy's, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub lag_slo_seconds: Option<u32>,

    /// A shorter catch-up time than the policy's, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub catch_up_seconds: Option<u32>,

    /// A longer scale-down stabilization window than the policy's, in seconds, at most an hour
    /// (the operator keeps an hour of recommendations; a longer window would never hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: Option<u32>,
}
