//! The worker's configuration file, rendered from the pipeline spec (the worker's own config
//! format; secrets reach it as `WORKER__…` environment variables, never through this file).

use impressions_crds::{
    ImpressionPipeline,
    pipeline::{DeliveryGuarantee, GroupProtocol, OffsetReset},
};
use k8s_openapi::{api::core::v1::ConfigMap, apimachinery::pkg::apis::meta::v1::OwnerReference};
use kube::ResourceExt;
use serde_json::json;

use super::typed;
use crate::{
    error::Error,
    reconcile::{labels, resolved::Resolved},
};

/// Where the config and the catalog are mounted in the worker container.
pub const CONFIG_DIR: &str = "/etc/impressions";
pub const CONFIG_FILE: &str = "worker.yaml";
pub const CATALOG_DIR: &str = "/etc/impressions/catalog";

/// The worker config YAML.
pub fn render(p: &ImpressionPipeline, ns: &str, resolved: &Resolved) -> Result<String, Error> {
    let s = &p.spec;
    let mut sink = json!({
        "topic": s.sink.topic,
        "deadLetterTopic": s.sink.dead_letter_topic,
        "deliveryGuarantee": match s.sink.delivery_guarantee {
            DeliveryGuarantee::AtLeastOnce => "AtLeastOnce",
            DeliveryGuarantee::ExactlyOnce => "ExactlyOnce",
        },
    });
    if let Some(b) = &s.sink.bootstrap_servers {
        sink["bootstrapServers"] = json!(b);
    }
    if let Some(id) = s.sink.schema_id {
        sink["schemaId"] = json!(id);
    }
    let catalog = match (&s.enrichment.catalog.topic, &resolved.catalog_config_map) {
        (Some(t), _) => json!({ "topic": t }),
        (None, Some(cm)) => json!({ "file": format!("{CATALOG_DIR}/{}", cm.key) }),
        (None, None) => return Err(Error::Build("no catalog source".into())),
    };
    let mut processing = json!({ "threads": s.worker.threads });
    if let Some(cap) = s.worker.max_events_per_second {
        processing["maxEventsPerSecond"] = json!(cap);
    }
    let mut doc = json!({
        "pipeline": { "namespace": ns, "name": p.name_any() },
        "source": {
            "bootstrapServers": s.source.bootstrap_servers,
            "topic": s.source.topic,
            "consumerGroup": s.consumer_group(ns, &p.name_any()),
            "offsetReset": match s.source.offset_reset { OffsetReset::Earliest => "earliest", OffsetReset::Latest => "latest" },
            "groupProtocol": match s.source.group_protocol { GroupProtocol::Consumer => "Consumer", GroupProtocol::Classic => "Classic" },
        },
        "sink": sink,
        "catalog": catalog,
        "locations": { "pages": s.enrichment.locations.pages, "rows": s.enrichment.locations.rows },
        "processing": processing,
        "drainTimeoutSecs": s.worker.drain_timeout_seconds,
        "metrics": { "listen": format!("0.0.0.0:{}", labels::METRICS_PORT) },
    });
    if let Some(n) = s.sink.dead_letter_max_payload_bytes {
        doc["deadLetter"] = json!({ "maxPayloadBytes": n });
    }
    let yaml = serde_yaml::to_string(&doc).map_err(|e| Error::Build(e.to_string()))?;
    check(&yaml, resolved)?;
    Ok(yaml)
}

/// Validates the rendered config as the worker will at start, with the Secrets' settings as
/// the worker gets them: a config the worker would refuse (e.g. a dead-letter size above the
/// sink producer's message limit) is a spec problem shown on the pipeline, with the worker's
/// field mapped to the pipeline's, instead of a crash-looping pod.
fn check(yaml: &str, resolved: &Resolved) -> Result<(), Error> {
    let env = [
        ("WORKER__SOURCE__KAFKA__", &resolved.source_kafka),
        ("WORKER__SINK__KAFKA__", &resolved.sink_kafka),
    ]
    .into_iter()
    .flat_map(|(prefix, settings)| {
        settings
            .iter()
            .map(move |(k, v)| (format!("{prefix}{k}"), v.clone()))
    });
    impressions_worker_core::config::WorkerConfig::from_yaml(yaml, env)
        .map(|_| ())
        .map_err(|e| Error::WorkerConfig(pipeline_fields(&e.to_string())))
}

/// The worker's config fields named in a message, as the pipeline's fields.
fn pipeline_fields(message: &str) -> String {
    const FIELDS: [(&str, &str); 4] = [
        (
            "deadLetter.maxPayloadBytes",
            "spec.sink.deadLetterMaxPayloadBytes",
        ),
        ("source.groupProtocol", "spec.source.groupProtocol"),
        ("sink.kafka.", "the sink Secret's "),
        ("source.kafka.", "the source Secret's "),
    ];
    FIELDS
        .iter()
        .fold(message.to_owned(), |m, (worker, pipeline)| {
            m.replace(worker, pipeline)
        })
}

/// The ConfigMap holding the rendered config.
pub fn config_map(
    name: &str,
    ns: &str,
    owner: &OwnerReference,
    yaml: &str,
) -> Result<ConfigMap, Error> {
    typed(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": labels::child_name(name),
            "namespace": ns,
            "labels": labels::common(name),
            "ownerReferences": [owner],
        },
        "data": { CONFIG_FILE: yaml },
    }))
}
