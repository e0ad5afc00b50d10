//! The archiver fleet of a pipeline with an archive (`spec.archive`): the archiver's config file
//! (its own format, docs/archive.md), its ConfigMap and its Deployment. The archiver reads the
//! pipeline's sink topic with a consumer group of its own; the SQL catalog's URI comes from a
//! Secret when the spec names one (`ARCHIVER_CATALOG_URI`), the sink cluster's client settings
//! from the sink's (else the source's) Secret (`ARCHIVER__SOURCE__KAFKA__…`). Records it cannot
//! archive go to the pipeline's dead-letter topic (`sink.deadLetterTopic`, cut to
//! `sink.deadLetterMaxPayloadBytes`), where the workers' rejected events go.

use impressions_crds::{
    ImpressionPipeline,
    archive::{ArchivePartitioning, ArchiveSpec},
};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::ConfigMap},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::ResourceExt;
use serde_json::json;

use super::{BuildOptions, typed};
use crate::{
    error::Error,
    reconcile::{labels, resolved::Resolved},
};

/// Where the config is mounted in the archiver container.
pub const CONFIG_DIR: &str = "/etc/impressions";
pub const CONFIG_FILE: &str = "archiver.yaml";

/// The archivers' consumer group: the workers' group with `.archiver` appended.
pub fn consumer_group(p: &ImpressionPipeline, ns: &str) -> String {
    format!("{}.archiver", p.spec.consumer_group(ns, &p.name_any()))
}

/// The archiver config YAML of `archive`.
pub fn render(p: &ImpressionPipeline, ns: &str, archive: &ArchiveSpec) -> Result<String, Error> {
    let s = &p.spec;
    let (kind, uri) = match (&archive.catalog.sql, &archive.catalog.rest) {
        (Some(sql), None) => ("sql", sql.uri.clone().unwrap_or_default()),
        (None, Some(rest)) => ("rest", rest.uri.clone()),
        _ => {
            return Err(Error::Build(
                "archive.catalog: exactly one of sql and rest".into(),
            ));
        }
    };
    let mut doc = json!({
        "pipeline": { "namespace": ns, "name": p.name_any() },
        "source": {
            "bootstrapServers": s.sink.bootstrap_servers.clone().unwrap_or_else(|| s.source.bootstrap_servers.clone()),
            "topic": s.sink.topic,
            "consumerGroup": consumer_group(p, ns),
        },
        "catalog": { "kind": kind, "uri": uri, "warehouse": archive.warehouse },
        "table": {
            "namespace": archive.namespace,
            "name": archive.table,
            "partitioning": match archive.partitioning {
                ArchivePartitioning::Hour => "hour",
                ArchivePartitioning::Day => "day",
                ArchivePartitioning::None => "none",
            },
            "targetFileSizeBytes": archive.target_file_size_bytes(),
        },
        // the pipeline's own dead-letter topic, beside the sink topic the archiver reads
        "deadLetter": { "topic": s.sink.dead_letter_topic },
        "commitIntervalSeconds": archive.commit_interval_seconds(),
        "metrics": { "listen": format!("0.0.0.0:{}", labels::METRICS_PORT) },
    });
    if let Some(n) = s.sink.dead_letter_max_payload_bytes {
        doc["deadLetter"]["maxPayloadBytes"] = json!(n);
    }
    if let Some(cap) = archive.max_records_per_second {
        doc["maxRecordsPerSecond"] = json!(cap);
    }
    serde_yaml::to_string(&doc).map_err(|e| Error::Build(e.to_string()))
}

/// The ConfigMap holding the archiver config.
pub fn config_map(
    pipeline: &str,
    ns: &str,
    owner: &OwnerReference,
    yaml: &str,
) -> Result<ConfigMap, Error> {
    typed(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": labels::archiver_name(pipeline), "namespace": ns, "labels": labels::archiver_common(pipeline), "ownerReferences": [owner] },
        "data": { CONFIG_FILE: yaml },
    }))
}

/// The Deployment of `replicas` archivers.
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
    let archive = p
        .spec
        .archive
        .as_ref()
        .ok_or_else(|| Error::Build("no spec.archive".into()))?;
    // /metrics on the pod's IP (the node agent runs pods on one host, each with its own IP)
    let mut env = vec![
        json!({"name": "ARCHIVER_LOG_FORMAT", "value": "json"}),
        json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
        json!({"name": "ARCHIVER__METRICS__LISTEN", "value": format!("$(POD_IP):{}", labels::METRICS_PORT)}),
    ];
    if let Some(r) = archive
        .catalog
        .sql
        .as_ref()
        .and_then(|s| s.uri_secret_ref.as_ref())
    {
        env.push(json!({"name": "ARCHIVER_CATALOG_URI", "valueFrom": {"secretKeyRef": {"name": r.name, "key": r.key}}}));
    }
    let kafka_secret = resolved
        .sink_secret
        .as_ref()
        .or(resolved.source_secret.as_ref());
    let catalog_secret = archive
        .catalog
        .rest
        .as_ref()
        .and_then(|r| r.properties_secret_ref.as_ref());
    let env_from: Vec<_> = kafka_secret
        .map(|s| json!({"prefix": "ARCHIVER__SOURCE__KAFKA__", "secretRef": {"name": s}}))
        .into_iter()
        .chain(catalog_secret.map(
            |s| json!({"prefix": "ARCHIVER__CATALOG__PROPERTIES__", "secretRef": {"name": s.name}}),
        ))
        .collect();
    let mut pod_labels = labels::archiver_common(&name);
    pod_labels.insert("app.kubernetes.io/component".into(), "archiver".into());
    typed(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": labels::archiver_name(&name), "namespace": ns, "labels": labels::archiver_common(&name), "ownerReferences": [owner] },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": labels::archiver_selector(&name) },
            // An archiver leaves before its successor joins: uncommitted records are re-read
            // from the table's offsets either way, and fewer rebalances drop less work.
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 0, "maxUnavailable": 1 } },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": { labels::CONFIG_HASH: super::config_hash(config_yaml) },
                },
                "spec": {
                    // a stopping archiver commits what is pending (within the catalog deadline)
                    "terminationGracePeriodSeconds": 60,
                    "automountServiceAccountToken": false,
                    "securityContext": { "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [{
                        "name": "archiver",
                        "image": opts.archiver_image,
                        "command": ["archiver"],
                        "args": ["--config", format!("{CONFIG_DIR}/{CONFIG_FILE}")],
                        "env": env,
                        "envFrom": env_from,
                        "ports": [{ "name": labels::METRICS_PORT_NAME, "containerPort": labels::METRICS_PORT, "protocol": "TCP" }],
                        "readinessProbe": super::http_probe("/readyz", 5),
                        "livenessProbe": super::http_probe("/healthz", 10),
                        "resources": {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": true}],
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": { "drop": ["ALL"] },
                        },
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": labels::archiver_name(&name)}}],
                },
            },
        },
    }))
}
