//! What a pipeline's references resolved to (the policy that applies, the Secrets and the
//! catalog ConfigMap that exist), and the pure choice of its ScalingPolicy. The fetching is in
//! [`super::dereference`]; the children are built from this.

use impressions_crds::{
    ImpressionPipeline, ScalingPolicy, ScalingPolicySpec, enrichment::ConfigMapKeyRef,
};
use kube::ResourceExt;

use crate::{error::Error, kafka_settings::KafkaSettings};

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
    /// The sink Secret's librdkafka settings (the worker's config is checked with them).
    pub sink_kafka: KafkaSettings,
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
            spec: ScalingPolicySpec::builtin(),
        },
    })
}
