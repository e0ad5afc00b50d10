//! The archiver fleet's part of a reconcile: how many archivers to apply (the archive loop's
//! decision in Auto mode), what the loop needs to evaluate them, their removal when the
//! pipeline's archive goes, and their per-pipeline gauges.

use std::time::Duration;

use impressions_crds::{ImpressionPipeline, ImpressionPipelineStatus, pipeline::OffsetReset};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::ConfigMap},
    jiff::Timestamp,
};
use kube::{Api, ResourceExt, api::DeleteParams, runtime::reflector::ObjectRef};

use super::{children, labels, resolved::Resolved};
use crate::{
    autoscale::{
        archive::evaluator::{ArchiveEvaluation, ArchiveRegistration, applied_archivers},
        bounds::Bounds,
        effective::effective,
        signals::kafka_lag::LagTarget,
    },
    context::Context,
    error::Error,
    metrics::PipelineLabels,
};

/// The ScalingPolicy's own bounds: the archivers share the policy, not the pipeline's worker
/// bounds (`scaling.minReplicas`/`maxReplicas`); the sink's partitions bound them too.
fn policy_bounds(resolved: &Resolved) -> Bounds {
    let p = &resolved.policy.spec;
    Bounds {
        min: p.min_replicas,
        max: p.max_replicas.max(p.min_replicas),
        widened: Vec::new(),
    }
}

/// The archivers to apply now.
pub fn count(
    p: &ImpressionPipeline,
    resolved: &Resolved,
    latest: Option<&ArchiveEvaluation>,
) -> i32 {
    let b = policy_bounds(resolved);
    let last = p
        .status
        .as_ref()
        .and_then(|s| s.archive.as_ref())
        .and_then(|a| a.desired_replicas);
    applied_archivers(p.spec.scaling.mode, latest, last, b.min, b.max)
}

/// Tells the archive loop what it needs for this pipeline (every mode), or that it has no
/// archive.
pub fn register(
    ctx: &Context,
    p: &ImpressionPipeline,
    ns: &str,
    resolved: &Resolved,
    replicas: i32,
) {
    let key = ObjectRef::from_obj(p);
    let Some(archive) = &p.spec.archive else {
        ctx.archive.register(key, None);
        return;
    };
    let policy = &resolved.policy.spec;
    let minute = (Timestamp::now().as_second().rem_euclid(86_400) / 60) as u32;
    let kafka = if resolved.sink_secret.is_some() {
        resolved.sink_kafka.clone()
    } else {
        resolved.source_kafka.clone()
    };
    ctx.archive.register(
        key,
        Some(ArchiveRegistration {
            namespace: ns.to_owned(),
            name: p.name_any(),
            mode: p.spec.scaling.mode,
            lag: LagTarget {
                bootstrap: p
                    .spec
                    .sink
                    .bootstrap_servers
                    .clone()
                    .unwrap_or_else(|| p.spec.source.bootstrap_servers.clone()),
                topic: p.spec.sink.topic.clone(),
                group: children::archiver_consumer_group(p, ns),
                // an archiver without a table offset starts at the beginning
                reset: OffsetReset::Earliest,
                kafka,
            },
            rate_window: policy.queries.rate_window.clone(),
            policy: effective(&p.spec, policy, &policy_bounds(resolved), minute),
            interval: Duration::from_secs(u64::from(policy.evaluation_interval_seconds)),
            replicas,
            commit_interval_seconds: archive.commit_interval_seconds() as f64,
        }),
    );
}

/// Deletes the archiver's Deployment and ConfigMap of a pipeline whose archive was removed:
/// when the children's watches saw them, or the status still describes an archive (a 404 is
/// success). The table and its files stay.
pub async fn remove(ctx: &Context, p: &ImpressionPipeline, ns: &str) -> Result<bool, Error> {
    let name = labels::archiver_name(&p.name_any());
    let had = p.status.as_ref().is_some_and(|s| s.archive.is_some());
    let deployment = ("Deployment", ns.to_owned(), name.clone());
    let config_map = ("ConfigMap", ns.to_owned(), name.clone());
    if !(had || ctx.applied.is_live(&deployment) || ctx.applied.is_live(&config_map)) {
        return Ok(false);
    }
    let gone = |r: Result<_, kube::Error>| match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    };
    let dp = DeleteParams::background();
    gone(
        Api::<Deployment>::namespaced(ctx.client.clone(), ns)
            .delete(&name, &dp)
            .await
            .map(|_| ()),
    )?;
    gone(
        Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
            .delete(&name, &dp)
            .await
            .map(|_| ()),
    )?;
    ctx.applied.forget(ns, &name);
    tracing::info!(archiver = %name, "archive removed: the archiver's Deployment and ConfigMap deleted");
    Ok(true)
}

/// The archive's per-pipeline gauges (removed without an archive).
pub fn observe(ctx: &Context, ns: &str, p: &ImpressionPipeline, s: &ImpressionPipelineStatus) {
    let l = PipelineLabels {
        namespace: ns.to_owned(),
        pipeline: p.name_any(),
    };
    let m = &ctx.metrics;
    let Some(a) = &s.archive else {
        m.forget_archive(&l);
        return;
    };
    m.archive_desired_replicas
        .get_or_create(&l)
        .set(i64::from(a.desired_replicas.unwrap_or(0)));
    if let Some(lag) = a.lag {
        m.archive_lag_records.get_or_create(&l).set(lag);
    }
    if let Some(c) = &a.last_commit {
        m.archive_last_commit_timestamp
            .get_or_create(&l)
            .set(c.time.0.as_second());
    }
    let healthy = impressions_crds::conditions::get(
        &s.conditions,
        impressions_crds::conditions::ARCHIVE_HEALTHY,
    )
    .is_some_and(|c| c.status == "True");
    m.archive_healthy.get_or_create(&l).set(i64::from(healthy));
}
