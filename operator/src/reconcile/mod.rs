//! One reconcile of one pipeline, as a fixed sequence, readable top to bottom:
//!
//! 1. [`dereference`]: fetch what the pipeline refers to (its ScalingPolicy, Secrets, catalog
//!    ConfigMap) into [`resolved::Resolved`];
//! 2. bounds: the policy's replica bounds narrowed by the pipeline ([`crate::autoscale::bounds`])
//!    and the replica count to apply (the latest evaluation's, in Auto mode);
//! 3. [`children`] (pure): the Deployment, ConfigMap, Service and PodDisruptionBudget, and the
//!    archiver's ConfigMap and Deployment when the pipeline has an archive (as many archivers as
//!    [`archiver::count`] says: the archive loop's decision in Auto mode);
//! 4. [`apply`]: server-side apply of each child; the archiver's children deleted when the
//!    archive was removed ([`archiver::remove`]);
//! 5. [`raw_schema`]: the pipeline's `RawEventSchema` judged with the last schema window of its
//!    workers (the judgement is pure, [`crate::schema::judge`]), its status written if changed;
//! 6. [`status`] (pure): the next status in one pass, written only when it changed;
//! 7. [`events`] (pure): the Events the transition deserves, published.
//!
//! A failure at any step shows as Ready=False with its reason (and Degraded when the spec is at
//! fault), an Event, and the `reconcile_failures_total` label.

pub mod applied;
pub mod apply;
pub mod archive_status;
pub mod archiver;
pub mod children;
pub mod dereference;
pub mod events;
pub mod labels;
pub mod raw_schema;
pub mod resolved;
pub mod status;

#[cfg(test)]
mod tests;

use std::{sync::Arc, time::Duration};

use impressions_crds::{ImpressionPipeline, scaling::ScalingMode};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    ResourceExt,
    runtime::{controller::Action, reflector::ObjectRef},
};

use self::{
    apply::{apply, publish, write_status_if_changed},
    resolved::Resolved,
    status::Observed,
};
use crate::{
    autoscale::{
        bounds::{self, Bounds},
        effective::effective,
        evaluator::{Registration, applied_replicas},
        model::Evaluation,
        signals::kafka_lag::LagTarget,
    },
    context::Context,
    error::Error,
    quality::{assess::Reading, evaluator::QualityRegistration},
    schema::collector::SchemaRegistration,
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
    match reconcile_served(&p, &ctx).await {
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
                let next = status::compute(&p, &Observed::Failed(&e), None, None, &now());
                write_status_if_changed(&ctx, &p, next).await?;
            }
            if let Some(note) = events::on_failed(p.status.as_ref(), &e) {
                publish(&ctx, &p, &note).await;
            }
            Err(e)
        }
    }
}

/// The sequence for a pipeline of this operator's region.
async fn reconcile_served(p: &ImpressionPipeline, ctx: &Context) -> Result<Action, Error> {
    let ns = p.namespace().ok_or(Error::NoNamespace)?;
    // 1. Dereference.
    let policies: Vec<_> = ctx.policies.state().iter().map(|p| (**p).clone()).collect();
    let resolved = dereference::resolve(&ctx.client, p, &ctx.opts.region, &policies).await?;
    // 2. Bounds and the replica count.
    let b = bounds::bounds(&p.spec, &resolved.policy.spec);
    let last = p.status.as_ref().and_then(|s| s.desired_replicas);
    let base = bounds::base_replicas(&p.spec, &b, last);
    let key = ObjectRef::from_obj(p);
    let evaluation = ctx.scaler.latest(&key);
    let replicas = applied_replicas(p.spec.scaling.mode, evaluation.as_ref(), base, b.min, b.max);
    if last != Some(replicas) {
        tracing::info!(
            from = ?last,
            to = replicas,
            source = if evaluation.is_some() { "evaluation" } else { "base" },
            "worker replicas"
        );
    }
    let archive_evaluation = ctx.archive.latest(&key);
    let archivers_wanted = archiver::count(p, &resolved, archive_evaluation.as_ref());
    // 3. Children.
    let children = children::children(p, &resolved, replicas, archivers_wanted, &ctx.opts.build)?;
    // 4. Apply.
    apply(ctx, &ns, &children.config_map).await?;
    apply(ctx, &ns, &children.service).await?;
    apply(ctx, &ns, &children.pdb).await?;
    let deployment = apply(ctx, &ns, &children.deployment).await?;
    let archivers = match &children.archiver {
        Some((config_map, archivers)) => {
            apply(ctx, &ns, config_map).await?;
            Some(apply(ctx, &ns, archivers).await?)
        }
        None => {
            archiver::remove(ctx, p, &ns).await?;
            None
        }
    };
    // 5. The raw events' schema.
    let schema = raw_schema::sync(ctx, p, &ns, &now()).await;
    // 6. Status.
    let quality = ctx.quality.latest(&key);
    let observed = Observed::Applied {
        deployment: &deployment,
        desired: replicas,
        bounds: &b,
        policy: resolved.policy.name.as_deref(),
    };
    let mut next = status::compute(p, &observed, evaluation.as_ref(), quality.as_ref(), &now());
    status::with_schema(&mut next, p.metadata.generation, &schema, &now());
    let archive_view = archivers.as_ref().map(|d| archive_status::ArchiveView {
        archivers: d,
        desired: archivers_wanted,
        mode: p.spec.scaling.mode,
        evaluation: archive_evaluation.as_ref(),
    });
    archive_status::with_archive(&mut next, p.metadata.generation, archive_view, &now());
    register_for_scaling(ctx, p, &ns, &resolved, &b, replicas);
    archiver::register(ctx, p, &ns, &resolved, archivers_wanted);
    register_for_quality(ctx, p, &ns, &resolved);
    register_for_schema(ctx, p, &ns);
    observe(ctx, p, &ns, &next, evaluation.as_ref(), quality.as_ref());
    observe_schema(ctx, &ns, &p.name_any(), &schema);
    archiver::observe(ctx, &ns, p, &next);
    let mut notes = events::on_applied(&events::Applied {
        before: p.status.as_ref(),
        after: &next,
        mode: p.spec.scaling.mode,
        base,
        replicas,
        evaluation: evaluation.as_ref(),
        quality: quality.as_ref(),
    });
    notes.extend(events::on_schema(p.status.as_ref(), &schema));
    notes.extend(archive_status::events(
        p.status.as_ref(),
        &next,
        p.spec.scaling.mode,
    ));
    write_status_if_changed(ctx, p, next).await?;
    ctx.record_state(p, "ready");
    // 7. Events.
    for note in &notes {
        publish(ctx, p, note).await;
    }
    // Periodic resync for drift; changes to the pipeline, its children and its policy trigger
    // a reconcile earlier.
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// The lag and rates the gauges show: an evaluation's own numbers (the status keeps them only
/// when they move by [`status::RATE_TOLERANCE`], to spare the API server), else the status's (a
/// reconcile of a spec change evaluates nothing).
#[derive(Debug, Default, PartialEq)]
struct Measured {
    lag: Option<i64>,
    input: Option<f64>,
    processed: Option<f64>,
}

impl Measured {
    fn of(status: &impressions_crds::ImpressionPipelineStatus, e: Option<&Evaluation>) -> Measured {
        match e {
            Some(e) => Measured {
                lag: e.lag.as_ref().map(|l| l.total),
                input: e.decision.arrival_rate,
                processed: e.processed_rate,
            },
            None => Measured {
                lag: status.lag.as_ref().map(|l| l.total),
                input: status.throughput.as_ref().map(|t| t.input_per_second),
                processed: status.throughput.as_ref().map(|t| t.processed_per_second),
            },
        }
    }
}

/// Per-pipeline gauges: desired vs current replicas, lag, rates and data quality; a counter of
/// new decisions.
fn observe(
    ctx: &Context,
    p: &ImpressionPipeline,
    ns: &str,
    next: &impressions_crds::ImpressionPipelineStatus,
    e: Option<&Evaluation>,
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
    let now = Measured::of(next, e);
    if let Some(lag) = now.lag {
        m.lag_events.get_or_create(&l).set(lag);
    }
    if let Some(input) = now.input {
        m.input_rate.get_or_create(&l).set(input);
    }
    if let Some(processed) = now.processed {
        m.processed_rate.get_or_create(&l).set(processed);
    }
    // Set by evaluations only (a reconcile of a spec change has none and leaves it).
    if let Some(e) = e {
        match e.decision.capacity_per_replica {
            Some(c) => {
                m.capacity_per_replica.get_or_create(&l).set(c);
            }
            None => {
                m.capacity_per_replica.remove(&l);
            }
        }
    }
    match e.and_then(|e| e.forecast.as_ref()) {
        Some(f) => {
            match f.arrival {
                Some(a) => {
                    m.forecast_input_rate.get_or_create(&l).set(a);
                }
                None => {
                    m.forecast_input_rate.remove(&l);
                }
            }
            match f.recent_error {
                Some(err) => {
                    m.forecast_error.get_or_create(&l).set(err);
                }
                None => {
                    m.forecast_error.remove(&l);
                }
            }
        }
        None => {
            m.forecast_input_rate.remove(&l);
            m.forecast_error.remove(&l);
        }
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
        m.count_decision(DecisionLabels {
            namespace: l.namespace,
            pipeline: l.pipeline,
            reason: d.reason.clone(),
        });
    }
}

/// The drift gauges of a pipeline judged against its baseline (every kind, 0 included).
fn observe_schema(ctx: &Context, ns: &str, name: &str, outcome: &raw_schema::SchemaOutcome) {
    if let Some(counts) = outcome.drift_counts() {
        ctx.metrics
            .set_schema_drifts(ns, name, |k| counts.get(k).copied().unwrap_or(0));
    }
}

/// Tells the schema collection loop where the pipeline's workers are (every mode).
fn register_for_schema(ctx: &Context, p: &ImpressionPipeline, ns: &str) {
    ctx.schema.register(
        ObjectRef::from_obj(p),
        Some(SchemaRegistration {
            namespace: ns.to_owned(),
            service: labels::child_name(&p.name_any()),
        }),
    );
}

/// Tells the evaluation loop what it needs for this pipeline (Auto and Recommend modes only).
fn register_for_scaling(
    ctx: &Context,
    p: &ImpressionPipeline,
    ns: &str,
    resolved: &Resolved,
    b: &Bounds,
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
            predictive: crate::autoscale::forecast::Settings::of(&policy.predictive),
            surges: p
                .spec
                .scaling
                .planned_surges
                .iter()
                .map(crate::autoscale::planned::Surge::of)
                .collect(),
        }),
    );
}

/// Tells the data-quality loop what it needs for this pipeline (every mode), evaluated every
/// policy interval.
fn register_for_quality(ctx: &Context, p: &ImpressionPipeline, ns: &str, resolved: &Resolved) {
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

fn now() -> Time {
    Time(Timestamp::now())
}
