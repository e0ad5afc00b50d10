//! The state every reconcile shares: the API client, the Event recorder, metrics, the policies'
//! cache, the operator's options and the evaluation and collection loops' latest results.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use impressions_crds::{ImpressionPipeline, ScalingPolicy};
use kube::{
    Client,
    runtime::{
        events::Recorder,
        reflector::{ObjectRef, Store},
    },
};

use crate::{
    autoscale::{archive::evaluator::ArchiveEvaluator, evaluator::Evaluator},
    metrics::Metrics,
    quality::evaluator::QualityEvaluator,
    reconcile::children::BuildOptions,
    schema::collector::SchemaCollector,
};

/// The operator's settings that reconciles need.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    pub region: String,
    pub field_manager: String,
    pub build: BuildOptions,
}

impl OperatorOptions {
    /// Whether this operator serves pipelines of `region` (empty means any region).
    pub fn serves(&self, region: &str) -> bool {
        region.is_empty() || region == self.region
    }
}

/// State shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub policies: Store<ScalingPolicy>,
    pub opts: OperatorOptions,
    pub scaler: Arc<Evaluator>,
    /// The archiver fleets' evaluation loop.
    pub archive: Arc<ArchiveEvaluator>,
    pub quality: Arc<QualityEvaluator>,
    pub schema: Arc<SchemaCollector>,
    /// What was last applied to each child, and the children's live versions.
    pub applied: crate::reconcile::applied::AppliedChildren,
    pub failures: Mutex<HashMap<ObjectRef<ImpressionPipeline>, u32>>,
    pub states: Mutex<HashMap<ObjectRef<ImpressionPipeline>, &'static str>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("opts", &self.opts).finish()
    }
}

impl Context {
    /// Records a pipeline's state for the `pipelines` gauge.
    pub fn record_state(&self, p: &ImpressionPipeline, state: &'static str) {
        self.states
            .lock()
            .expect("states lock")
            .insert(ObjectRef::from_obj(p), state);
        self.publish_states();
    }

    /// Forgets deleted pipelines: the evaluation loops' state and lag clients, the state and
    /// failure maps, and the per-pipeline series of the operator's metrics. `live` is every
    /// pipeline the watches know.
    pub fn forget_deleted(&self, live: &std::collections::HashSet<ObjectRef<ImpressionPipeline>>) {
        let gone = self.scaler.retain(live);
        self.archive.retain(live);
        self.quality.retain(live);
        self.schema.retain(live);
        self.failures
            .lock()
            .expect("failures lock")
            .retain(|k, _| live.contains(k));
        let removed: Vec<ObjectRef<ImpressionPipeline>> = {
            let mut states = self.states.lock().expect("states lock");
            let gone: Vec<_> = states
                .keys()
                .filter(|k| !live.contains(*k))
                .cloned()
                .collect();
            for k in &gone {
                states.remove(k);
            }
            gone
        };
        let mut all: Vec<_> = gone.into_iter().chain(removed).collect();
        all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        all.dedup();
        for k in &all {
            self.metrics
                .forget_pipeline(k.namespace.as_deref().unwrap_or_default(), &k.name);
            tracing::info!(pipeline = %k, "pipeline deleted: its state, clients and series are dropped");
        }
        if !all.is_empty() {
            self.publish_states();
        }
    }

    fn publish_states(&self) {
        let states = self.states.lock().expect("states lock");
        for s in crate::metrics::STATES {
            let n = states.values().filter(|v| **v == s).count() as i64;
            self.metrics
                .pipelines
                .get_or_create(&crate::metrics::StateLabel { state: s })
                .set(n);
        }
    }

    pub fn forget_failures(&self, p: &ImpressionPipeline) {
        self.failures
            .lock()
            .expect("failures lock")
            .remove(&ObjectRef::from_obj(p));
    }

    /// The number of failed reconciles of `p` in a row before this one.
    pub fn next_attempt(&self, p: &ImpressionPipeline) -> u32 {
        let mut f = self.failures.lock().expect("failures lock");
        let n = f.entry(ObjectRef::from_obj(p)).or_default();
        *n += 1;
        *n - 1
    }
}
