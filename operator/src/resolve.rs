//! Dereferencing: the objects a pipeline refers to, fetched before anything is built. A missing
//! reference is an error whose reason becomes the Ready condition, an Event and a metric label.

use impressions_crds::{
    ImpressionPipeline, ScalingPolicy, ScalingPolicySpec, enrichment::ConfigMapKeyRef,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};

use crate::{autoscale::kafka_lag::KafkaSettings, error::Error};

/// Everything a pipeline refers to, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub policy: ResolvedPolicy,
    /// Secrets (source, sink) that exist, by name.
    pub source_secret: Option<String>,
    pub sink_secret: Option<String>,
    /// The source Secret's librdkafka settings, for the operator's own client of the source
    /// cluster (consumer lag); empty without a source Secret.
    pub source_kafka: KafkaSettings,
    /// The catalog ConfigMap key, when the catalog comes from a ConfigMap that exists.
    pub catalog_config_map: Option<ConfigMapKeyRef>,
}

/// The ScalingPolicy that applies, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPolicy {
    /// The policy's name; `None` when built-in defaults apply (no policyRef, no region default).
    pub name: Option<String>,
    pub spec: ScalingPolicySpec,
}

/// The built-in defaults, as an SRE would read them in an empty ScalingPolicy.
pub fn default_policy() -> ScalingPolicySpec {
    serde_json::from_value(serde_json::json!({})).expect("every ScalingPolicy field has a default")
}

/// Picks the policy: the pipeline's policyRef, else the default of its region (exact region
/// before `*`), else built-in defaults. Pure, over the listed policies.
pub fn pick_policy(
    pipeline: &ImpressionPipeline,
    region: &str,
    policies: &[ScalingPolicy],
) -> Result<ResolvedPolicy, Error> {
    if let Some(name) = &pipeline.spec.scaling.policy_ref {
        return policies
            .iter()
            .find(|p| p.name_any() == *name)
            .map(|p| ResolvedPolicy {
                name: Some(name.clone()),
                spec: p.spec.clone(),
            })
            .ok_or_else(|| Error::PolicyMissing(name.clone()));
    }
    let region = if pipeline.spec.region.is_empty() {
        region
    } else {
        &pipeline.spec.region
    };
    let mut defaults: Vec<&ScalingPolicy> = policies
        .iter()
        .filter(
            |p| matches!(p.spec.default_for_region.as_deref(), Some(r) if r == region || r == "*"),
        )
        .collect();
    // An exact region match wins over "*"; ties broken by name for determinism.
    defaults.sort_by_key(|p| {
        (
            p.spec.default_for_region.as_deref() == Some("*"),
            p.name_any(),
        )
    });
    Ok(match defaults.first() {
        Some(p) => ResolvedPolicy {
            name: Some(p.name_any()),
            spec: p.spec.clone(),
        },
        None => ResolvedPolicy {
            name: None,
            spec: default_policy(),
        },
    })
}

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
    let sink_secret = match &pipeline.spec.sink.secret_ref {
        None => None,
        Some(r) => match secrets
            .get_metadata_opt(&r.name)
            .await
            .map_err(Error::Kube)?
        {
            Some(_) => Some(r.name.clone()),
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
        catalog_config_map,
    })
}
