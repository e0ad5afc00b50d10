//! The reconcile's writes: server-side apply of the children under the operator's field
//! manager, the status (only when it changed) and Events.

use impressions_crds::{ImpressionPipeline, ImpressionPipelineStatus};
use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{applied::desired_hash, events::Note};
use crate::{context::Context, error::Error};

/// Server-side apply under the operator's field manager, unless the child is known to be as
/// desired already (its desired form unchanged and nobody changed it since the operator's last
/// apply): then the object of that apply is returned and nothing is sent. A refusal by the API
/// server's validation is [`Error::ChildRejected`] (a problem of the spec, shown as a condition).
pub async fn apply<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let kind = crate::reconcile::applied::kind_of::<K>();
    let key = (kind, ns.to_owned(), obj.name_any());
    let desired = serde_json::to_value(obj).map_err(|e| Error::Build(e.to_string()))?;
    let hash = desired_hash(&desired);
    if let Some(current) = ctx.applied.unchanged(&key, hash)
        && let Ok(current) = serde_json::from_str::<K>(&current)
    {
        return Ok(current);
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let applied = api
        .patch(
            &obj.name_any(),
            &PatchParams::apply(&ctx.opts.field_manager).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(|e| Error::from_apply(kind, e))?;
    let mut kept = applied.clone();
    kept.meta_mut().managed_fields = None;
    if let (Some(rv), Ok(text)) = (applied.resource_version(), serde_json::to_string(&kept)) {
        ctx.applied.record(key, hash, rv, text);
    }
    Ok(applied)
}

/// Writes the status through the status subresource, only if it differs from the current one.
pub async fn write_status_if_changed(
    ctx: &Context,
    p: &ImpressionPipeline,
    next: ImpressionPipelineStatus,
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

/// Publishes an Event about `p` (a failure to publish is logged, not returned).
pub async fn publish(ctx: &Context, p: &ImpressionPipeline, n: &Note) {
    let ev = Event {
        type_: if n.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: n.reason.clone(),
        note: Some(n.note.clone()),
        action: n.action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &p.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an Event");
    }
}
