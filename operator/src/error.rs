//! The reconcile error. Each variant's [`Error::reason`] is the Event reason, the Ready
//! condition's reason and the `reason` label of the failure counter.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ScalingPolicy {0:?} named by spec.scaling.policyRef does not exist")]
    PolicyMissing(String),
    #[error("Secret {0:?} named by the pipeline does not exist in its namespace")]
    SecretMissing(String),
    #[error(
        "ConfigMap {0:?} named by spec.enrichment.catalog.configMapRef does not exist in the pipeline's namespace"
    )]
    CatalogMissing(String),
    #[error("ConfigMap {name:?} has no key {key:?} for the catalog")]
    CatalogKeyMissing { name: String, key: String },
    #[error("the pipeline has no namespace")]
    NoNamespace,
    #[error("building the children: {0}")]
    Build(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
}

impl Error {
    /// The CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::PolicyMissing(_) => "PolicyMissing",
            Error::SecretMissing(_) => "SecretMissing",
            Error::CatalogMissing(_) => "CatalogMissing",
            Error::CatalogKeyMissing { .. } => "CatalogKeyMissing",
            Error::NoNamespace => "NoNamespace",
            Error::Build(_) => "BuildFailed",
            Error::Kube(_) => "KubernetesApiError",
        }
    }

    /// Whether the pipeline's spec or its references must change (shown to users), as opposed
    /// to a transient failure of the operator.
    pub fn is_spec_problem(&self) -> bool {
        !matches!(self, Error::Kube(_))
    }

    /// How long to wait before retrying, growing with consecutive failures (5 s doubling, at
    /// most 5 min).
    pub fn backoff(attempt: u32) -> Duration {
        Duration::from_secs(5u64.saturating_mul(1 << attempt.min(6)).min(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(Error::backoff(0), Duration::from_secs(5));
        assert_eq!(Error::backoff(2), Duration::from_secs(20));
        assert_eq!(Error::backoff(30), Duration::from_secs(300));
    }
}
