//! Labels and names of a pipeline's children.

use std::collections::BTreeMap;

/// The label naming the pipeline a child belongs to.
pub const PIPELINE: &str = "impressions.dev/pipeline";
/// The app name label of worker pods.
pub const APP_NAME: &str = "app.kubernetes.io/name";
/// Value of [`APP_NAME`] for workers.
pub const WORKER_APP: &str = "impressions-worker";
/// Value of [`APP_NAME`] for archivers.
pub const ARCHIVER_APP: &str = "impressions-archiver";
/// Who manages the children.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The pod-template annotation holding the hash of the worker config (a change rolls the pods).
pub const CONFIG_HASH: &str = "impressions.dev/config-hash";
/// The port name and number of worker metrics.
pub const METRICS_PORT_NAME: &str = "metrics";
pub const METRICS_PORT: i32 = 9464;

/// The selector labels of a pipeline's worker pods (immutable on the Deployment).
pub fn selector(pipeline: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_NAME.to_owned(), WORKER_APP.to_owned()),
        (PIPELINE.to_owned(), pipeline.to_owned()),
    ])
}

/// The selector as a string, for status.selector (the scale subresource).
pub fn selector_string(pipeline: &str) -> String {
    selector(pipeline)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of every child.
pub fn common(pipeline: &str) -> BTreeMap<String, String> {
    let mut l = selector(pipeline);
    l.insert(MANAGED_BY.to_owned(), "impressions-operator".to_owned());
    l.insert("app.kubernetes.io/instance".to_owned(), pipeline.to_owned());
    l
}

/// The name of a pipeline's Deployment, ConfigMap, Service and PodDisruptionBudget.
pub fn child_name(pipeline: &str) -> String {
    format!("{pipeline}-worker")
}

/// The selector labels of a pipeline's archiver pods.
pub fn archiver_selector(pipeline: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_NAME.to_owned(), ARCHIVER_APP.to_owned()),
        (PIPELINE.to_owned(), pipeline.to_owned()),
    ])
}

/// Labels of the archiver's children.
pub fn archiver_common(pipeline: &str) -> BTreeMap<String, String> {
    let mut l = archiver_selector(pipeline);
    l.insert(MANAGED_BY.to_owned(), "impressions-operator".to_owned());
    l.insert("app.kubernetes.io/instance".to_owned(), pipeline.to_owned());
    l
}

/// The name of a pipeline's archiver Deployment and ConfigMap.
pub fn archiver_name(pipeline: &str) -> String {
    format!("{pipeline}-archiver")
}
