//! The metrics Service and the PodDisruptionBudget of a pipeline's workers.

use k8s_openapi::{
    api::{core::v1::Service, policy::v1::PodDisruptionBudget},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use serde_json::json;

use super::typed;
use crate::{error::Error, reconcile::labels};

/// A headless Service over the workers' metrics ports (one scrape target per pod).
pub fn service(name: &str, ns: &str, owner: &OwnerReference) -> Result<Service, Error> {
    typed(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": labels::child_name(name), "namespace": ns, "labels": labels::common(name), "ownerReferences": [owner] },
        "spec": {
            "clusterIP": "None",
            "selector": labels::selector(name),
            "ports": [{ "name": labels::METRICS_PORT_NAME, "port": labels::METRICS_PORT, "targetPort": labels::METRICS_PORT_NAME }],
        },
    }))
}

/// At most one worker voluntarily disrupted at a time: each disruption is a consumer-group
/// rebalance.
pub fn pdb(name: &str, ns: &str, owner: &OwnerReference) -> Result<PodDisruptionBudget, Error> {
    typed(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": { "name": labels::child_name(name), "namespace": ns, "labels": labels::common(name), "ownerReferences": [owner] },
        "spec": { "maxUnavailable": 1, "selector": { "matchLabels": labels::selector(name) } },
    }))
}
