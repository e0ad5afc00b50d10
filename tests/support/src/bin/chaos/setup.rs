//! The pipelines of a run: their manifests, creation and samplers.

use super::*;

pub(super) fn pipeline_manifest(
    stack: &Stack,
    ns: &str,
    name: &str,
    guarantee: &str,
    max: i32,
) -> serde_json::Value {
    let p = format!("{ns}-{name}");
    json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": name},
        "spec": {"region": "local",
                 "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": format!("{p}-raw"), "offsetReset": "Earliest"},
                 "sink": {"topic": format!("{p}-out"), "deadLetterTopic": format!("{p}-dlq"), "deliveryGuarantee": guarantee},
                 "enrichment": {"catalog": {"topic": format!("{p}-titles")}},
                 "worker": {"image": images::image("worker"), "threads": 1, "drainTimeoutSeconds": 5, "maxEventsPerSecond": CAP,
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "256Mi"}}},
                 "scaling": {"mode": "Auto", "policyRef": ns, "minReplicas": 1, "maxReplicas": max}}})
}

pub(super) async fn create_pipeline(run: &Run<'_>, name: &str, max: i32) -> anyhow::Result<()> {
    let manifest = pipeline_manifest(run.stack, &run.ns, name, &run.guarantee, max);
    Api::<ImpressionPipeline>::namespaced(run.client.clone(), &run.ns)
        .create(&PostParams::default(), &serde_json::from_value(manifest)?)
        .await?;
    Ok(())
}

pub(super) fn sampler(run: &Run<'_>, name: &str) -> Sampler {
    let p = format!("{}-{name}", run.ns);
    Sampler::with_clock(
        run.clock,
        run.client.clone(),
        &run.ns,
        &format!("{name}-worker"),
        &format!("{p}-raw"),
        &format!("{}.{name}", run.ns),
    )
}
