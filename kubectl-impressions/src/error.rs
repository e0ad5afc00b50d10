//! What can go wrong, each saying what the user can do about it.

use std::{path::PathBuf, time::Duration};

/// An error of a subcommand; `main` prints it and exits with [`Error::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no kubeconfig: {0}. Set KUBECONFIG, pass --kubeconfig FILE, or create ~/.kube/config")]
    NoKubeconfig(String),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("{what}: no answer within {} s (--request-timeout)", .deadline.as_secs_f64())]
    Timeout { what: String, deadline: Duration },
    #[error("{what}: {}", describe(.source))]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the resource {resource} is not installed in this cluster (install the impressions-operator chart's CRDs{hint})"
    )]
    NotInstalled {
        resource: &'static str,
        hint: &'static str,
    },
    #[error("ImpressionPipeline {name} not found in namespace {namespace}")]
    PipelineNotFound { namespace: String, name: String },
    #[error(
        "RawEventSchema {name} not found in namespace {namespace} (the operator creates it once the pipeline's workers report their first schema window)"
    )]
    SchemaNotFound { namespace: String, name: String },
    #[error("the current ScalingPolicy of ImpressionPipeline {namespace}/{name}: {why}")]
    CurrentPolicy {
        namespace: String,
        name: String,
        why: String,
    },
    #[error("--policy {}: {why}", .path.display())]
    PolicyFile { path: PathBuf, why: String },
    #[error("Prometheus {url}: {why}")]
    Prometheus { url: String, why: String },
    #[error("{0}")]
    Usage(String),
    #[error("writing {}: {why}", .path.display())]
    Write { path: PathBuf, why: String },
}

/// The API server's own message for its refusals; for a failure to reach it, each cause in
/// turn (`client error (Connect): tcp connect error: Connection refused`).
fn describe(e: &kube::Error) -> String {
    if let kube::Error::Api(s) = e {
        return format!("{} ({} {})", s.message, s.code, s.reason);
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        cause = c.source();
    }
    text
}

impl Error {
    /// 2 for a wrong invocation or input file, 1 for everything else (as kubectl).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::PolicyFile { .. } => 2,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_server_s_refusal_is_its_message() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "impressionpipelines.impressions.dev is forbidden: User \"dev\" cannot list resource \"impressionpipelines\" in API group \"impressions.dev\" at the cluster scope"
        }))
        .unwrap();
        let e = Error::Api {
            what: "listing ImpressionPipelines in all namespaces".into(),
            source: kube::Error::Api(Box::new(status)),
        };
        assert_eq!(
            e.to_string(),
            "listing ImpressionPipelines in all namespaces: impressionpipelines.impressions.dev is forbidden: User \"dev\" cannot list resource \"impressionpipelines\" in API group \"impressions.dev\" at the cluster scope (403 Forbidden)"
        );
    }
}
