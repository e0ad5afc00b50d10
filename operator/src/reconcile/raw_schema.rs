//! The reconcile's schema step (IO around [`crate::schema::judge`]): once the collection loop
//! has a closed window of the pipeline, the pipeline's `RawEventSchema` (same name, owned by the
//! pipeline, created by server-side apply when missing) is read, judged with the window and
//! its accept annotation, and its status written when it changed. Before the first window
//! nothing is read or written, and the condition says so.

use impressions_crds::{
    ImpressionPipeline, RawEventSchema,
    raw_schema::{ACCEPT_ANNOTATION, RawEventSchemaStatus},
};
use std::collections::BTreeMap;

use impressions_worker_core::schema::DriftKind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::ObjectRef,
};
use serde_json::json;

use super::labels;
use crate::{
    context::Context,
    error::Error,
    schema::judge::{DriftCondition, Judgement, judge, kind_name, thresholds},
};

/// What the schema step found.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaOutcome {
    /// No window of the pipeline's workers closed yet (since the operator started).
    NoWindow,
    Judged(Box<Judgement>),
    /// The RawEventSchema could not be read or written.
    Failed(String),
}

impl SchemaOutcome {
    /// Per kind label (`DriftKind::label()`), the drifts of the last window; `None` without a
    /// judgement against a baseline.
    pub fn drift_counts(&self) -> Option<BTreeMap<&'static str, i64>> {
        let SchemaOutcome::Judged(j) = self else {
            return None;
        };
        j.status.baseline.as_ref()?;
        let mut counts: BTreeMap<&'static str, i64> =
            DriftKind::ALL.iter().map(|k| (k.label(), 0)).collect();
        // The window's drifts when it was judged now (the status lists the first few only),
        // else the status's.
        if j.drifts.len() == j.status.drift_count as usize {
            for d in &j.drifts {
                *counts.entry(d.kind.label()).or_default() += 1;
            }
        } else {
            for d in &j.status.drifts {
                if let Some(k) = DriftKind::ALL.iter().find(|k| kind_name(**k) == d.kind) {
                    *counts.entry(k.label()).or_default() += 1;
                }
            }
        }
        Some(counts)
    }

    /// The `SchemaDrift` condition: from the judgement, else Unknown with why.
    pub fn condition(&self) -> DriftCondition {
        match self {
            SchemaOutcome::Judged(j) => j.condition.clone(),
            SchemaOutcome::NoWindow => DriftCondition {
                status: None,
                reason: "NoWindow".into(),
                message: "no schema window of the pipeline's workers read yet".into(),
            },
            SchemaOutcome::Failed(e) => DriftCondition {
                status: None,
                reason: "SchemaUnavailable".into(),
                message: e.clone(),
            },
        }
    }
}

/// The pipeline's RawEventSchema, judged with the last window; its status written if changed.
pub async fn sync(ctx: &Context, p: &ImpressionPipeline, ns: &str, now: &Time) -> SchemaOutcome {
    let Some(window) = ctx.schema.latest(&ObjectRef::from_obj(p)) else {
        return SchemaOutcome::NoWindow;
    };
    match judged(ctx, p, ns, &window, now).await {
        Ok(j) => SchemaOutcome::Judged(Box::new(j)),
        Err(e) => {
            tracing::warn!(error = %e, "the pipeline's RawEventSchema");
            SchemaOutcome::Failed(e.to_string())
        }
    }
}

async fn judged(
    ctx: &Context,
    p: &ImpressionPipeline,
    ns: &str,
    window: &crate::schema::windows::ClosedWindow,
    now: &Time,
) -> Result<Judgement, Error> {
    let api: Api<RawEventSchema> = Api::namespaced(ctx.client.clone(), ns);
    let name = p.name_any();
    let current = match api.get_opt(&name).await.map_err(Error::Kube)? {
        Some(s) if owned_by(&s, p) => s,
        _ => create(ctx, &api, p, ns).await?,
    };
    let accept = current
        .annotations()
        .get(ACCEPT_ANNOTATION)
        .map(String::as_str);
    let j = judge(
        current.status.as_ref(),
        accept,
        Some(window),
        &thresholds(&p.spec.schema.drift),
        now,
    );
    if current.status.as_ref() != Some(&j.status) {
        write_status(ctx, &api, &name, &j.status).await?;
    }
    Ok(j)
}

fn owned_by(s: &RawEventSchema, p: &ImpressionPipeline) -> bool {
    let uid = p.meta().uid.as_deref();
    s.owner_references()
        .iter()
        .any(|o| Some(o.uid.as_str()) == uid && o.controller == Some(true))
}

/// Creates (or takes over) the RawEventSchema: its labels, an empty spec and the pipeline as
/// its controlling owner, so that it is deleted with the pipeline.
async fn create(
    ctx: &Context,
    api: &Api<RawEventSchema>,
    p: &ImpressionPipeline,
    ns: &str,
) -> Result<RawEventSchema, Error> {
    let owner = p
        .controller_owner_ref(&())
        .ok_or_else(|| Error::Build("the pipeline has no uid".into()))?;
    let name = p.name_any();
    let body = json!({
        "apiVersion": "impressions.dev/v1alpha1",
        "kind": "RawEventSchema",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels::common(&name),
            "ownerReferences": [owner],
        },
        "spec": {},
    });
    api.patch(
        &name,
        &PatchParams::apply(&ctx.opts.field_manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| Error::from_apply("RawEventSchema", e))
}

async fn write_status(
    ctx: &Context,
    api: &Api<RawEventSchema>,
    name: &str,
    status: &RawEventSchemaStatus,
) -> Result<(), Error> {
    let body = json!({
        "apiVersion": "impressions.dev/v1alpha1",
        "kind": "RawEventSchema",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(&ctx.opts.field_manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}
