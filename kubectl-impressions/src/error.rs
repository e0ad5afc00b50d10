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
    #[error("{what}: {source}")]
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
    #[error("--policy {}: {why}", .path.display())]
    PolicyFile { path: PathBuf, why: String },
    #[error("Prometheus {url}: {why}")]
    Prometheus { url: String, why: String },
    #[error("{0}")]
    Usage(String),
    #[error("writing {}: {why}", .path.display())]
    Write { path: PathBuf, why: String },
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
