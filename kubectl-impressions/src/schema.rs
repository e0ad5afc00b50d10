//! `kubectl impressions schema accept NAME`: accepts the pipeline's learned raw-event schema as
//! its baseline by setting the annotation `impressions.dev/schema-accept` (the current time,
//! RFC 3339) on its `RawEventSchema` (same name and namespace as the pipeline). The resource is
//! addressed by group, version, kind and plural, so the plugin works with any operator version
//! that serves it, and says so when the cluster does not.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::APIResourceList, jiff::Timestamp};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
};

use crate::{
    connect::{Cluster, is_not_found, within},
    error::Error,
};

/// The annotation the operator watches for a new value.
pub const ACCEPT_ANNOTATION: &str = "impressions.dev/schema-accept";
const PLURAL: &str = "raweventschemas";

/// The RawEventSchema resource of group `impressions.dev`, version `v1alpha1`.
pub fn resource() -> ApiResource {
    ApiResource {
        group: impressions_crds::GROUP.into(),
        version: impressions_crds::VERSION.into(),
        api_version: format!("{}/{}", impressions_crds::GROUP, impressions_crds::VERSION),
        kind: "RawEventSchema".into(),
        plural: PLURAL.into(),
    }
}

/// Whether the group version's discovery lists the resource.
pub fn served(list: &APIResourceList) -> bool {
    list.resources.iter().any(|r| r.name == PLURAL)
}

/// The merge patch that sets the annotation to `now`.
pub fn accept_patch(now: Timestamp) -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {ACCEPT_ANNOTATION: now.to_string()}}})
}

/// Sets the annotation; returns the line to print.
pub async fn accept(cluster: &Cluster, name: &str, now: Timestamp) -> Result<String, Error> {
    let ar = resource();
    let not_installed = Error::NotInstalled {
        resource: "raweventschemas.impressions.dev",
        hint: " of a version that has the RawEventSchema kind",
    };
    let discovery = within(
        cluster.deadline,
        format!("discovering {}", ar.api_version),
        cluster.client.list_api_group_resources(&ar.api_version),
    )
    .await;
    match discovery {
        Ok(list) if served(&list) => {}
        Ok(_) => return Err(not_installed),
        Err(e) if is_not_found(&e) => return Err(not_installed),
        Err(e) => return Err(e),
    }
    let ns = &cluster.namespace;
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), ns, &ar);
    let now = now.round(k8s_openapi::jiff::Unit::Second).unwrap_or(now);
    let patched = within(
        cluster.deadline,
        format!("annotating RawEventSchema {ns}/{name}"),
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&accept_patch(now)),
        ),
    )
    .await;
    match patched {
        Ok(_) => Ok(format!(
            "rawschema {ns}/{name}: {ACCEPT_ANNOTATION}={now} set; the operator takes the schema of the last window as the baseline"
        )),
        Err(e) if is_not_found(&e) => Err(Error::SchemaNotFound {
            namespace: ns.clone(),
            name: name.to_owned(),
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_sets_the_annotation_to_the_time() {
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        assert_eq!(
            accept_patch(now),
            serde_json::json!({"metadata": {"annotations": {"impressions.dev/schema-accept": "2026-12-01T12:00:00Z"}}})
        );
    }

    #[test]
    fn served_only_when_discovery_lists_raweventschemas() {
        let list = |names: &[&str]| -> APIResourceList {
            serde_json::from_value(serde_json::json!({
                "groupVersion": "impressions.dev/v1alpha1",
                "resources": names.iter().map(|n| serde_json::json!({
                    "name": n, "singularName": "", "namespaced": true, "kind": "K", "verbs": ["get"]
                })).collect::<Vec<_>>()
            }))
            .unwrap()
        };
        assert!(!served(&list(&["impressionpipelines", "scalingpolicies"])));
        assert!(served(&list(&["impressionpipelines", "raweventschemas"])));
        assert_eq!(resource().plural, "raweventschemas");
    }
}
