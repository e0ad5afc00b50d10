//! The controller: what it watches, its shared context, and the retry policy.

use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use impressions_crds::{
    ImpressionPipeline, RawEventSchema, ScalingPolicy, raw_schema::ACCEPT_ANNOTATION,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Service},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef},
        watcher,
    },
};

pub use crate::context::{Context, OperatorOptions};
use crate::{
    autoscale::{archive::evaluator::ArchiveEvaluator, evaluator::Evaluator},
    error::Error,
    metrics::Metrics,
    quality::evaluator::QualityEvaluator,
    reconcile::{labels, reconcile},
    schema::collector::SchemaCollector,
};

/// A metadata-only watch of one kind of child (in `ns`, or all namespaces).
fn metadata<K>(
    client: &Client,
    ns: &Option<String>,
    cfg: &watcher::Config,
    ctx: Arc<Context>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    };
    let kind = crate::reconcile::applied::kind_of::<K>();
    watcher(api, cfg.clone())
        .default_backoff()
        // The live versions of the children: a child nobody changed since the operator's last
        // apply is not applied again.
        .inspect_ok(move |event| {
            let key = |o: &PartialObjectMeta<K>| {
                (
                    kind,
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default(),
                )
            };
            match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => ctx
                    .applied
                    .observe(key(o), o.metadata.resource_version.clone()),
                watcher::Event::Delete(o) => ctx.applied.observe(key(o), None),
                watcher::Event::Init | watcher::Event::InitDone => {}
            }
        })
        .touched_objects()
}

/// The RawEventSchemas whose accept annotation changed (the operator's own status writes do
/// not trigger a reconcile of their pipeline).
fn accepts(
    client: &Client,
    ns: &Option<String>,
    cfg: &watcher::Config,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<RawEventSchema>, watcher::Error>>
+ Send
+ 'static {
    let api: Api<PartialObjectMeta<RawEventSchema>> = match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    };
    let seen = Arc::new(Mutex::new(std::collections::HashMap::<
        (String, String),
        Option<String>,
    >::new()));
    watcher(api, cfg.clone())
        .default_backoff()
        .touched_objects()
        .try_filter(move |o| {
            let key = (o.namespace().unwrap_or_default(), o.name_any());
            let value = o.annotations().get(ACCEPT_ANNOTATION).cloned();
            let mut seen = seen.lock().expect("accepts lock");
            let changed = seen.get(&key) != Some(&value);
            seen.insert(key, value);
            futures::future::ready(changed)
        })
}

/// How often deleted pipelines are looked for.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Failed reconciles are retried with a per-pipeline growing backoff.
fn error_policy(p: Arc<ImpressionPipeline>, _e: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(Error::backoff(ctx.next_attempt(&p)))
}

/// The loops that evaluate pipelines apart from reconciles.
#[derive(Debug, Clone)]
pub struct Loops {
    pub scaler: Arc<Evaluator>,
    pub archive: Arc<ArchiveEvaluator>,
    pub quality: Arc<QualityEvaluator>,
    pub schema: Arc<SchemaCollector>,
}

/// Runs the controller for `namespaces` (all when empty) until `shutdown` resolves.
pub async fn run(
    client: Client,
    opts: OperatorOptions,
    metrics: Arc<Metrics>,
    namespaces: Vec<String>,
    identity: String,
    Loops {
        scaler,
        archive,
        quality,
        schema,
    }: Loops,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let reporter = Reporter {
        controller: "impressions-operator".into(),
        instance: Some(identity),
    };
    let (policies, writer) = reflector::store();
    let policy_feed = watcher(
        Api::<ScalingPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects()
    .for_each(|_| futures::future::ready(()));
    tokio::spawn(policy_feed);
    policies.wait_until_ready().await.ok();

    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        metrics,
        policies,
        opts,
        scaler: scaler.clone(),
        archive: archive.clone(),
        quality: quality.clone(),
        schema: schema.clone(),
        applied: Default::default(),
        failures: Mutex::default(),
        states: Mutex::default(),
    });
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    // Evaluations (scaling, data quality) and closed schema windows trigger reconciles (Kafka and Prometheus have no
    // watch).
    let (evaluated, _) = tokio::sync::broadcast::channel::<ObjectRef<ImpressionPipeline>>(1024);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(quality.run(tx.clone()));
    tokio::spawn(schema.run(tx.clone()));
    tokio::spawn(archive.run(tx.clone()));
    tokio::spawn(scaler.run(tx));
    let fanout = evaluated.clone();
    tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            let _ = fanout.send(r);
        }
    });
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    // Deleted pipelines are forgotten (state, lag clients, per-pipeline series): every few
    // seconds the pipelines the watches know are compared with what the loops keep.
    let stores = Arc::new(Mutex::new(
        Vec::<reflector::Store<ImpressionPipeline>>::new(),
    ));
    {
        let (stores, ctx) = (stores.clone(), ctx.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                let stores = stores.lock().expect("stores lock").clone();
                if stores.is_empty() {
                    continue;
                }
                let live: std::collections::HashSet<_> = stores
                    .iter()
                    .flat_map(|s| s.state())
                    .map(|p| ObjectRef::from_obj(&*p))
                    .collect();
                ctx.forget_deleted(&live);
            }
        });
    }
    let controllers = scopes.into_iter().map(|ns| {
        let api = |c: &Client| -> Api<ImpressionPipeline> {
            match &ns {
                Some(n) => Api::namespaced(c.clone(), n),
                None => Api::all(c.clone()),
            }
        };
        // Only the operator's own children are cached: the label selector keeps memory flat no
        // matter how many unrelated objects the cluster holds.
        let owned = watcher::Config::default()
            .labels(&format!("{}=impressions-operator", labels::MANAGED_BY));
        // The pipelines' cache drops managed fields (a large part of each object at scale).
        let (pipelines, writer) = reflector::store();
        stores.lock().expect("stores lock").push(pipelines.clone());
        let trigger = watcher(api(&client), watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(|p: &mut ImpressionPipeline| p.managed_fields_mut().clear())
            .reflect(writer)
            .applied_objects();
        // Children only trigger reconciles: their metadata is enough.
        // Bounded concurrency bounds peak memory and spares the API server; the queue dedupes.
        Controller::for_stream(trigger, pipelines.clone())
            .with_config(kube::runtime::controller::Config::default().concurrency(16))
            .owns_stream(metadata::<Deployment>(&client, &ns, &owned, ctx.clone()))
            .owns_stream(metadata::<ConfigMap>(&client, &ns, &owned, ctx.clone()))
            .owns_stream(metadata::<Service>(&client, &ns, &owned, ctx.clone()))
            .owns_stream(metadata::<PodDisruptionBudget>(
                &client,
                &ns,
                &owned,
                ctx.clone(),
            ))
            .owns_stream(accepts(&client, &ns, &owned))
            .watches(
                Api::<ScalingPolicy>::all(client.clone()),
                watcher::Config::default(),
                move |policy| {
                    // A policy change re-evaluates the pipelines that name it or may default to it.
                    let name = policy.name_any();
                    pipelines
                        .state()
                        .into_iter()
                        .filter(|p| {
                            p.spec
                                .scaling
                                .policy_ref
                                .as_deref()
                                .is_none_or(|r| r == name)
                        })
                        .map(|p| ObjectRef::from_obj(&*p))
                        .collect::<Vec<_>>()
                },
            )
            .reconcile_on(futures::stream::unfold(
                evaluated.subscribe(),
                |mut rx| async move {
                    loop {
                        match rx.recv().await {
                            Ok(r) => return Some((r, rx)),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(_) => return None,
                        }
                    }
                },
            ))
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|res| {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "controller");
                }
                futures::future::ready(())
            })
    });
    futures::future::join_all(controllers).await;
}
