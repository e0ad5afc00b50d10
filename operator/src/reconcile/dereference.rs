//! Dereferencing: the objects a pipeline refers to, fetched before anything is built. A missing
//! reference is an error whose reason becomes the Ready condition, an Event and a metric label.

use impressions_crds::{ImpressionPipeline, ScalingPolicy};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};

use super::resolved::{Resolved, pick_policy};
use crate::{error::Error, kafka_settings::KafkaSettings};

/// Fetches what the pipeline refers to.
pub async fn resolve(
    client: &Client,
    pipeline: &ImpressionPipeline,
    region: &str,
    policies: &[ScalingPolicy],
) -> Result<Resolved, Error> {
    let ns = pipeline.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let policy = pick_policy(pipeline, region, policies)?;

    // The source Secret is read whole: its settings are the lag client's too. Of the sink
    // Secret only the existence matters (the operator never writes to the sink).
    let (source_secret, source_kafka) = match &pipeline.spec.source.secret_ref {
        None => (None, KafkaSettings::default()),
        Some(r) => match secrets.get_opt(&r.name).await.map_err(Error::Kube)? {
            Some(secret) => (Some(r.name.clone()), KafkaSettings::from_secret(&secret)),
            None => return Err(Error::SecretMissing(r.name.clone())),
        },
    };
    let (sink_secret, sink_kafka) = match &pipeline.spec.sink.secret_ref {
        None => (None, KafkaSettings::default()),
        Some(r) => match secrets.get_opt(&r.name).await.map_err(Error::Kube)? {
            Some(secret) => (Some(r.name.clone()), KafkaSettings::from_secret(&secret)),
            None => return Err(Error::SecretMissing(r.name.clone())),
        },
    };

    let catalog_config_map = match &pipeline.spec.enrichment.catalog.config_map_ref {
        None => None,
        Some(r) => {
            let cm = config_maps
                .get_opt(&r.name)
                .await
                .map_err(Error::Kube)?
                .ok_or_else(|| Error::CatalogMissing(r.name.clone()))?;
            let has_key = cm.data.as_ref().is_some_and(|d| d.contains_key(&r.key));
            if !has_key {
                return Err(Error::CatalogKeyMissing {
                    name: r.name.clone(),
                    key: r.key.clone(),
                });
            }
            Some(r.clone())
        }
    };
    Ok(Resolved {
        policy,
        source_secret,
        sink_secret,
        source_kafka,
        sink_kafka,
        catalog_config_map,
    })
}
