//! Pure build functions: a pipeline and what it refers to → the desired children. No IO; the
//! apply layer sends them with server-side apply.

mod archiver;
mod deployment;
mod service;
mod worker_config;

use impressions_crds::ImpressionPipeline;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Service},
    policy::v1::PodDisruptionBudget,
};
use kube::{Resource, ResourceExt};

pub use archiver::{consumer_group as archiver_consumer_group, render as render_archiver_config};
use deployment::{config_hash, http_probe};
pub use worker_config::{CONFIG_DIR, CONFIG_FILE, render as render_worker_config};

use crate::{error::Error, reconcile::resolved::Resolved};

/// Settings of the operator that shape the children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// The worker image when the pipeline names none.
    pub worker_image: String,
    /// The archiver image (pipelines with an archive).
    pub archiver_image: String,
}

/// A pipeline's desired children.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
    pub pdb: PodDisruptionBudget,
    /// The archiver's ConfigMap and Deployment, when the pipeline has an archive.
    pub archiver: Option<(ConfigMap, Deployment)>,
}

/// Builds every child of `pipeline` with `replicas` workers and `archivers` archivers.
pub fn children(
    pipeline: &ImpressionPipeline,
    resolved: &Resolved,
    replicas: i32,
    archivers: i32,
    opts: &BuildOptions,
) -> Result<Children, Error> {
    let ns = pipeline.namespace().ok_or(Error::NoNamespace)?;
    let owner = pipeline
        .controller_owner_ref(&())
        .ok_or_else(|| Error::Build("pipeline without uid".into()))?;
    let name = pipeline.name_any();
    let config_yaml = worker_config::render(pipeline, &ns, resolved)?;
    let config_map = worker_config::config_map(&name, &ns, &owner, &config_yaml)?;
    let deployment = deployment::deployment(
        pipeline,
        &ns,
        &owner,
        resolved,
        replicas,
        &config_yaml,
        opts,
    )?;
    let service = service::service(&name, &ns, &owner)?;
    let pdb = service::pdb(&name, &ns, &owner)?;
    let archiver = match &pipeline.spec.archive {
        None => None,
        Some(archive) => {
            let yaml = archiver::render(pipeline, &ns, archive)?;
            Some((
                archiver::config_map(&name, &ns, &owner, &yaml)?,
                archiver::deployment(pipeline, &ns, &owner, resolved, archivers, &yaml, opts)?,
            ))
        }
    };
    Ok(Children {
        config_map,
        deployment,
        service,
        pdb,
        archiver,
    })
}

/// Deserializes a JSON literal into a typed object (the shape is checked by the type).
fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::Build(e.to_string()))
}

#[cfg(test)]
mod tests;
