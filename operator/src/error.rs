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
    #[error("the worker would refuse its config: {0}")]
    WorkerConfig(String),
    #[error("the API server refused the worker {kind}: {message}{}", from.map(|f| format!(" (set by {f})")).unwrap_or_default())]
    ChildRejected {
        kind: &'static str,
        message: String,
        /// The pipeline field the refused value came from, when known.
        from: Option<&'static str>,
    },
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
}

/// Where the fields of a child come from in the pipeline's spec: (prefix in the child, field of
/// the pipeline). The first match wins.
const FIELD_ORIGINS: [(&str, &str); 8] = [
    (
        "spec.template.spec.containers[0].resources",
        "spec.worker.resources",
    ),
    ("spec.template.spec.containers[0].env", "spec.worker.env"),
    (
        "spec.template.spec.containers[0].image",
        "spec.worker.image",
    ),
    ("spec.template.spec.containers[0]", "spec.worker"),
    ("spec.template", "spec.worker"),
    ("spec.replicas", "spec.scaling"),
    ("metadata.name", "metadata.name"),
    ("metadata.labels", "spec.region"),
];

/// The pipeline field a refused child field came from.
pub fn field_origin(child_field: &str) -> Option<&'static str> {
    FIELD_ORIGINS
        .iter()
        .find(|(prefix, _)| child_field.starts_with(prefix))
        .map(|(_, origin)| *origin)
}

impl Error {
    /// An apply of a child: a refusal by the API server's validation (422, 400) is a problem of
    /// the spec, shown as a condition; any other failure is the operator's (retried).
    pub fn from_apply(kind: &'static str, e: kube::Error) -> Error {
        match e {
            kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
                let field = s
                    .details
                    .as_ref()
                    .and_then(|d| d.causes.first().map(|c| c.field.clone()))
                    .unwrap_or_default();
                Error::ChildRejected {
                    kind,
                    message: s.message.clone(),
                    from: field_origin(&field),
                }
            }
            other => Error::Kube(other),
        }
    }
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
            Error::WorkerConfig(_) => "WorkerConfigInvalid",
            Error::ChildRejected { .. } => "ChildRejected",
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
    fn a_refused_child_names_the_pipeline_field_it_came_from() {
        assert_eq!(
            field_origin("spec.template.spec.containers[0].resources.limits.cpu"),
            Some("spec.worker.resources")
        );
        assert_eq!(
            field_origin("spec.template.spec.containers[0].env[2].name"),
            Some("spec.worker.env")
        );
        assert_eq!(field_origin("spec.ports[0].port"), None);
        let e = Error::ChildRejected {
            kind: "Deployment",
            message: "Deployment.apps \"p-worker\" is invalid: cpu: bad".into(),
            from: Some("spec.worker.resources"),
        };
        assert!(e.is_spec_problem());
        assert!(
            e.to_string().ends_with("(set by spec.worker.resources)"),
            "{e}"
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(Error::backoff(0), Duration::from_secs(5));
        assert_eq!(Error::backoff(2), Duration::from_secs(20));
        assert_eq!(Error::backoff(30), Duration::from_secs(300));
    }
}
