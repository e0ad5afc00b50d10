//! One reconcile of one pipeline, as a fixed sequence: dereference → bounds → build (pure) →
//! apply (server-side apply) → status (written only if changed) → events on transitions.

use std::{sync::Arc, time::Duration};

use impressions_crds::{
    ImpressionPipeline,
    conditions::{self, DATA_QUALITY, DEGRADED, READY},
    scaling::ScalingMode,
};
use k8s_openapi::{
    NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
        reflector::ObjectRef,
    },
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    autoscale::{
        kafka_lag::LagTarget,
        policy::effective,
        scaler::{Registration, applied_replicas},
    },
    bounds, build,
    controller::Context,
    error::Error,
    quality::{
        assess::{Reading, event},
        monitor::QualityRegistration,
    },
    resolve,
    status::{self, Observed},
};

/// Reconciles one pipeline.
#[tracing::instrument(skip_all, fields(namespace = p.namespace().unwrap_or_default(), name = p.name_any()))]
pub async fn reconcile(p: Arc<ImpressionPipeline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.duration_timer();
    ctx.metrics.reconciles.inc();
    if !ctx.opts.serves(&p.spec.region) {
        ctx.record_state(&p, "other_region");
        return Ok(Action::await_change());
    }
    match apply_pipeline(&p, &ctx).await {
        Ok(action) => {
            ctx.forget_failures(&p);
            Ok(action)
        }
        Err(e) => {
            ctx.metrics
                .failures
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: e.reason().to_owned(),
                })
                .inc();
            ctx.record_state(&p, "not_ready");
            tracing::warn!(reason = e.reason(), error = %e, "reconcile failed");
            if e.is_spec_problem() {
                let next = status::next(&p, &Observed::Failed(&e), &now());
                write_status_if_changed(&ctx, &p, next).await?;
                if status::is_true(p.status.as_ref(), READY) != Some(false) {
                    publish(
                        &ctx,
                        &p,
                        EventType::Warning,
                        e.reason(),
                        "Reconcile",
                        e.to_string(),
                    )
                    .await;
                }
            }
            Err(e)
        }
    }
}

async fn apply_pipeline(p: &ImpressionPipeline, ctx: &Context) -> Result<Action, Error> {
    let ns = p.namespace().ok_or(Error::NoNamespace)?;
    let policies: Vec<_> = ctx.policies.state().iter().map(|p| (**p).clone()).collect();
    let resolved = resolve::resolve(&ctx.client, p, &ctx.opts.region, &policies).await?;
    let b = bounds::bounds(&p.spec, &resolved.policy.spec);
    let last = p.status.as_ref().and_then(|s| s.desired_replicas);
    let base = bounds::base_replicas(&p.spec, &b, last);
    let key = ObjectRef::from_obj(p);
    let evaluation = ctx.scaler.latest(&key);
    let replicas = applied_replicas(p.spec.scaling.mode, evaluation.as_ref(), base, b.min, b.max);
    let children = build::children(p, &resolved, replicas, &ctx.opts.build)?;

    let first = p
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_none();
    apply(ctx, &ns, &children.config_map).await?;
    apply(ctx, &ns, &children.service).await?;
    apply(ctx, &ns, &children.pdb).await?;
    let deployment = apply(ctx, &ns, &children.deployment).await?;

    let observed = Observed::Applied {
        deployment: &deployment,
        desired: replicas,
        bounds: &b,
        policy: resolved.policy.name.as_deref(),
    };
    let now = now();
    let mut next = status::next(p, &observed, &now);
    if let Some(e) = &evaluation {
        status::with_evaluation(&mut next, p.metadata.generation, e, &now);
    }
    let quality = ctx.quality.latest(&key);
    if let Some(r) = &quality {
        status::with_quality(&mut next, p.metadata.generation, r, &now);
    }
    register_for_scaling(ctx, p, &ns, &resolved, &b, replicas);
    register_for_quality(ctx, p, &ns, &resolved);
    observe(ctx, p, &ns, &next, evaluation.as_ref(), quality.as_ref());
    let was_ready = status::is_true(p.status.as_ref(), READY);
    let was_degraded = status::is_true(p.status.as_ref(), DEGRADED);
    let degraded = status::is_true(Some(&next), DEGRADED) == Some(true);
    let degraded_msg =
        impressions_crds::conditions::get(&next.conditions, DEGRADED).map(|c| c.message.clone());
    write_status_if_changed(ctx, p, next).await?;
    ctx.record_state(p, "ready");

    if first {
        let note = format!(
            "worker Deployment, ConfigMap, Service and PodDisruptionBudget applied with {replicas} replicas"
        );
        publish(ctx, p, EventType::Normal, "ChildrenCreated", "Apply", note).await;
    }
    if was_ready == Some(false) {
        publish(
            ctx,
            p,
            EventType::Normal,
            "Recovered",
            "Reconcile",
            "references resolved; workers applied".into(),
        )
        .await;
    }
    if replicas != base && p.spec.scaling.mode == ScalingMode::Auto {
        let note = evaluation
            .as_ref()
            .map(|e| e.decision.message.clone())
            .unwrap_or_default();
        let reason = evaluation.as_ref().map_or("Scaled", |e| e.decision.reason);
        publish(
            ctx,
            p,
            EventType::Normal,
            reason,
            "Scale",
            format!("{base} → {replicas}: {note}"),
        )
        .await;
    }
    if let Some(r) = &quality {
        let text = r.condition();
        let previous = p
            .status
            .as_ref()
            .and_then(|s| conditions::get(&s.conditions, DATA_QUALITY))
            .map(|c| c.reason.as_str());
        if let Some(ev) = event(previous, &text) {
            let type_ = if ev.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish(ctx, p, type_, ev.reason, "DataQuality", text.message).await;
        }
    }
    if degraded && was_degraded != Some(true) {
        publish(
            ctx,
            p,
            EventType::Warning,
            "Degraded",
            "Reconcile",
            degraded_msg.unwrap_or_default(),
        )
        .await;
    }
    // Periodic resync for drift; changes to the pipeline, its children and its policy trigger
    // a reconcile earlier.
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Per-pipeline gauges: desired vs current replicas, lag, rates and data quality; a counter of
/// new decisions.
fn observe(
    ctx: &Context,
    p: &ImpressionPipeline,
    ns: &str,
    next: &impressions_crds::ImpressionPipelineStatus,
    e: Option<&crate::autoscale::scaler::Evaluation>,
    quality: Option<&Reading>,
) {
    use crate::metrics::{DecisionLabels, PipelineLabels};
    let l = PipelineLabels {
        namespace: ns.to_owned(),
        pipeline: p.name_any(),
    };
    let m = &ctx.metrics;
    m.desired_replicas
        .get_or_create(&l)
        .set(i64::from(next.desired_replicas.unwrap_or(0)));
    m.current_replicas
        .get_or_create(&l)
        .set(i64::from(next.replicas));
    if let Some(lag) = &next.lag {
        m.lag_events.get_or_create(&l).set(lag.total);
    }
    if let Some(t) = &next.throughput {
        m.input_rate.get_or_create(&l).set(t.input_per_second);
        m.processed_rate
            .get_or_create(&l)
            .set(t.processed_per_second);
    }
    match quality.and_then(Reading::level) {
        Some(level) => {
            m.data_quality.get_or_create(&l).set(level.gauge());
        }
        None => {
            m.data_quality.remove(&l);
        }
    }
    let new_decision = next
        .last_decision
        .as_ref()
        .filter(|d| p.status.as_ref().and_then(|s| s.last_decision.as_ref()) != Some(*d));
    if let (Some(d), Some(_)) = (new_decision, e) {
        m.scaling_decisions
            .get_or_create(&DecisionLabels {
                namespace: l.namespace,
                pipeline: l.pipeline,
                reason: d.reason.clone(),
            })
            .inc();
    }
}

/// Tells the evaluation loop what it needs for this pipeline (Auto and Recommend modes only).
fn register_for_scaling(
    ctx: &Context,
    p: &ImpressionPipeline,
    ns: &str,
    resolved: &resolve::Resolved,
    b: &bounds::Bounds,
    replicas: i32,
) {
    let key = ObjectRef::from_obj(p);
    let mode = p.spec.scaling.mode;
    if !matches!(mode, ScalingMode::Auto | ScalingMode::Recommend) {
        ctx.scaler.register(key, None);
        return;
    }
    let minute = (Timestamp::now().as_second().rem_euclid(86_400) / 60) as u32;
    let policy = &resolved.policy.spec;
    ctx.scaler.register(
        key,
        Some(Registration {
            namespace: ns.to_owned(),
            name: p.name_any(),
            mode,
            lag: LagTarget {
                bootstrap: p.spec.source.bootstrap_servers.clone(),
                topic: p.spec.source.topic.clone(),
                group: p.spec.consumer_group(ns, &p.name_any()),
                reset: p.spec.source.offset_reset,
                kafka: resolved.source_kafka.clone(),
            },
            queries: policy.queries.clone(),
            policy: effective(&p.spec, policy, b, minute),
            interval: Duration::from_secs(u64::from(policy.evaluation_interval_seconds)),
            replicas,
        }),
    );
}

/// Tells the data-quality loop what it needs for this pipeline (every mode), evaluated every
/// policy interval.
fn register_for_quality(
    ctx: &Context,
    p: &ImpressionPipeline,
    ns: &str,
    resolved: &resolve::Resolved,
) {
    let interval = resolved.policy.spec.evaluation_interval_seconds;
    ctx.quality.register(
        ObjectRef::from_obj(p),
        Some(QualityRegistration {
            namespace: ns.to_owned(),
            name: p.name_any(),
            spec: p.spec.quality.clone(),
            interval: Duration::from_secs(u64::from(interval)),
        }),
    );
}

/// Server-side apply under the operator's field manager.
async fn apply<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(&ctx.opts.field_manager).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(Error::Kube)
}

/// Writes the status through the status subresource, only if it differs from the current one.
async fn write_status_if_changed(
    ctx: &Context,
    p: &ImpressionPipeline,
    next: impressions_crds::ImpressionPipelineStatus,
) -> Result<(), Error> {
    if p.status.as_ref() == Some(&next) {
        return Ok(());
    }
    let api: Api<ImpressionPipeline> =
        Api::namespaced(ctx.client.clone(), &p.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": "impressions.dev/v1alpha1",
        "kind": "ImpressionPipeline",
        "status": next,
    });
    api.patch_status(
        &p.name_any(),
        &PatchParams::apply(&ctx.opts.field_manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

async fn publish(
    ctx: &Context,
    p: &ImpressionPipeline,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &p.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an Event");
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}
