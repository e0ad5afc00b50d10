//! The worker Deployment: pod template running `worker run` with the rendered config, probes,
//! a termination grace period above the drain timeout, and a locked-down security context.

use impressions_crds::ImpressionPipeline;
use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::OwnerReference};
use kube::ResourceExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    BuildOptions, typed,
    worker_config::{CATALOG_DIR, CONFIG_DIR, CONFIG_FILE},
};
use crate::{
    error::Error,
    reconcile::{labels, resolved::Resolved},
};

/// The Deployment of `replicas` workers.
pub fn deployment(
    p: &ImpressionPipeline,
    ns: &str,
    owner: &OwnerReference,
    resolved: &Resolved,
    replicas: i32,
    config_yaml: &str,
    opts: &BuildOptions,
) -> Result<Deployment, Error> {
    let name = p.name_any();
    let w = &p.spec.worker;
    let mut env = vec![json!({"name": "WORKER_LOG_FORMAT", "value": "json"})];
    env.extend(
        w.env
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null)),
    );
    // Secret keys are librdkafka properties; the prefix maps each to the worker's
    // source.kafka / sink.kafka settings (e.g. WORKER__SOURCE__KAFKA__sasl.password).
    let mut env_from = Vec::new();
    if let Some(s) = &resolved.source_secret {
        env_from.push(json!({"prefix": "WORKER__SOURCE__KAFKA__", "secretRef": {"name": s}}));
    }
    if let Some(s) = &resolved.sink_secret {
        env_from.push(json!({"prefix": "WORKER__SINK__KAFKA__", "secretRef": {"name": s}}));
    }
    let mut volumes =
        vec![json!({"name": "config", "configMap": {"name": labels::child_name(&name)}})];
    let mut mounts = vec![json!({"name": "config", "mountPath": CONFIG_DIR, "readOnly": true})];
    if let Some(cm) = &resolved.catalog_config_map {
        volumes.push(json!({"name": "catalog", "configMap": {"name": cm.name}}));
        mounts.push(json!({"name": "catalog", "mountPath": CATALOG_DIR, "readOnly": true}));
    }
    let resources = match &w.resources {
        Some(r) => serde_json::to_value(r).map_err(|e| Error::Build(e.to_string()))?,
        None => json!({"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}),
    };
    let mut pod_labels = labels::common(&name);
    pod_labels.insert("app.kubernetes.io/component".into(), "worker".into());
    typed(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": labels::child_name(&name), "namespace": ns, "labels": labels::common(&name), "ownerReferences": [owner] },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": labels::selector(&name) },
            // New workers join before old ones leave; incremental rebalancing (under either
            // group protocol) moves only the partitions that must move.
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 } },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": { labels::CONFIG_HASH: config_hash(config_yaml) },
                },
                "spec": {
                    "terminationGracePeriodSeconds": i64::from(w.drain_timeout_seconds) + 15,
                    "automountServiceAccountToken": false,
                    "securityContext": { "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [{
                        "name": "worker",
                        "image": w.image.clone().unwrap_or_else(|| opts.worker_image.clone()),
                        "command": ["worker"],
                        "args": ["run", "--config", format!("{CONFIG_DIR}/{CONFIG_FILE}")],
                        "env": env,
                        "envFrom": env_from,
                        "ports": [{ "name": labels::METRICS_PORT_NAME, "containerPort": labels::METRICS_PORT, "protocol": "TCP" }],
                        "readinessProbe": http_probe("/readyz", 5),
                        "livenessProbe": http_probe("/healthz", 10),
                        "resources": resources,
                        "volumeMounts": mounts,
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": { "drop": ["ALL"] },
                        },
                    }],
                    "volumes": volumes,
                },
            },
        },
    }))
}

/// A short, stable hash of a config: a change rolls the pods.
pub(super) fn config_hash(yaml: &str) -> String {
    let d = Sha256::digest(yaml.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// An HTTP probe of the metrics port (the worker's and the archiver's /readyz and /healthz).
pub fn http_probe(path: &str, period: i32) -> serde_json::Value {
    serde_json::json!({"httpGet": {"path": path, "port": labels::METRICS_PORT_NAME}, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": 3})
}
