//! The state every reconcile shares: the API client, the Event recorder, metrics, the policies'
//! cache, the operator's options and the evaluation loops' latest results.

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
    autoscale::evaluator::Evaluator, metrics::Metrics, quality::evaluator::QualityEvaluator,
    reconcile::children::BuildOptions,
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
    pub quality: Arc<QualityEvaluator>,
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
        let mut states = self.states.lock().expect("states lock");
        states.insert(ObjectRef::from_obj(p), state);
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
