//! How each worker replica runs.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// How each worker replica runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// The worker container image. Defaults to the operator's configured worker image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// CPU and memory requests and limits of each worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Processing threads per worker.
    #[serde(default = "default_threads")]
    #[schemars(range(min = 1, max = 64))]
    pub threads: u32,

    /// Extra environment variables of the worker container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub env: Vec<EnvVar>,

    /// How long a stopping worker may take to finish in-flight events, flush and commit. The pod's
    /// termination grace period is set above it.
    #[serde(default = "default_drain_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub drain_timeout_seconds: u32,

    /// Caps each worker's processing rate (events/s), e.g. to emulate a CPU limit in tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_events_per_second: Option<u64>,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            image: None,
            resources: None,
            threads: default_threads(),
            env: Vec::new(),
            drain_timeout_seconds: default_drain_timeout(),
            max_events_per_second: None,
        }
    }
}

fn default_threads() -> u32 {
    2
}
fn default_drain_timeout() -> u32 {
    30
}
