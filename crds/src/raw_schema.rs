//! `RawEventSchema`: the shape of a pipeline's raw events as the operator learned it from the
//! workers, the baseline its owner accepted, and the drift of the last window from it. One per
//! pipeline, named after it and owned by it; written only by the operator (status), except the
//! accept annotation ([`ACCEPT_ANNOTATION`]) its owner sets.

// The printcolumn(...) attributes repeat `type_`; clippy reads that as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The annotation that accepts the learned schema as the baseline: any new value (a timestamp,
/// a counter) accepts the schema of the last window once; the operator records the value it
/// applied in `status.baseline.accepted`. `kubectl impressions schema accept NAME` sets it.
pub const ACCEPT_ANNOTATION: &str = "impressions.dev/schema-accept";

/// `status.baseline.accepted` of a baseline the operator took by itself: the first learned
/// schema of a pipeline.
pub const INITIAL_BASELINE: &str = "initial";

/// Nothing to set: the operator creates the resource (same name and namespace as its pipeline,
/// owned by it) and writes its status. Accept the current schema as the baseline with
/// `kubectl annotate rawschema NAME impressions.dev/schema-accept=$(date +%s) --overwrite`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "impressions.dev",
    version = "v1alpha1",
    kind = "RawEventSchema",
    namespaced,
    shortname = "rawschema",
    category = "impressions",
    doc = "The raw events' schema of an ImpressionPipeline: learned by its workers, the accepted baseline and the drift from it. Created and written by the operator; accept the current schema with the impressions.dev/schema-accept annotation.",
    status = "RawEventSchemaStatus",
    printcolumn(
        name = "Event types",
        type_ = "integer",
        json_path = ".status.eventTypeCount"
    ),
    printcolumn(name = "Drifts", type_ = "integer", json_path = ".status.driftCount"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.baseline.accepted"
    ),
    printcolumn(name = "Last window", type_ = "date", json_path = ".status.window.end"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RawEventSchemaSpec {}

/// What the operator learned and judged.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RawEventSchemaStatus {
    /// The last window of the workers merged into the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<SchemaWindow>,

    /// The number of event types in `eventTypes` (for `kubectl get`).
    #[serde(default)]
    pub event_type_count: u32,

    /// Per event type (the raw events' `eventType`), its shape.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_types: BTreeMap<String, LearnedEventType>,

    /// The schema the pipeline's owner accepted, which drift is measured from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,

    /// The number of drifts in `drifts` (for `kubectl get`).
    #[serde(default)]
    pub drift_count: u32,

    /// The last window's differences from the baseline (the first 64; `driftCount` counts
    /// them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drifts: Vec<SchemaDriftStatus>,

    /// What the last window had beyond the status's budget (a fixed number of event types and
    /// field paths, names of bounded length) or the workers' budget; absent when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<SchemaOverflow>,
}

/// What was left out of the learned schema to keep it bounded.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaOverflow {
    /// Event types of the last window not kept in `eventTypes`.
    #[serde(default)]
    pub event_types: u64,
    /// Field paths of the last window not kept in `eventTypes.*.fields` (all event types).
    #[serde(default)]
    pub fields: u64,
    /// Presences (one per event and path) of paths beyond the workers' path budget.
    #[serde(default)]
    pub worker_paths: u64,
    /// Sampled events of event types beyond the workers' event type budget.
    #[serde(default)]
    pub worker_event_types: u64,
}

/// One window of the workers, merged.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaWindow {
    pub start: Time,
    pub end: Time,
    /// Worker pods whose report of the window was merged.
    pub pods: u32,
    /// Raw events the workers offered to their learners in the window.
    pub events_seen: u64,
    /// Raw events the learners walked (the counts of the schema are of these).
    pub events_sampled: u64,
}

/// The shape of one event type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LearnedEventType {
    /// Sampled events of this type in the last window (0 when it was not seen there).
    pub events: u64,
    pub first_seen: Time,
    pub last_seen: Time,
    /// The newest client versions (`appVersion`) sending it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_versions: Vec<String>,
    /// The event type as JSON Schema (draft 2020-12), learned over the last window, of the
    /// fields kept (the learned numbers are in `fields`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub json_schema: Option<serde_json::Value>,
    /// Per field path (`a.b`, `items[].id`), what was learned of it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, LearnedField>,
    /// Field paths of the last window not kept in `fields` (beyond the status's budget).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fields_overflow: u64,
    /// Presences of paths beyond the workers' path budget in the last window.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub worker_paths_overflow: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What was learned of one field path.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LearnedField {
    /// The JSON types it was sent with in the last window (`string`, `integer`, `number`,
    /// `boolean`, `object`, `array`, `null`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// The share of the event type's sampled events of the last window it was present in.
    pub presence: f64,
    pub first_seen: Time,
    pub last_seen: Time,
    /// The newest client versions sending it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_versions: Vec<String>,
}

/// The accepted schema.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// The value of the accept annotation applied, or `initial` for the first learned schema.
    pub accepted: String,
    pub accepted_at: Time,
    /// The window that became the baseline.
    pub window: SchemaWindow,
    /// The window's merged counts that drift is measured against: the worker core's
    /// `schema::Observation` as compact JSON text (one field for the API server to track, not
    /// one per count).
    pub observation: String,
}

/// One difference of the last window from the baseline.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaDriftStatus {
    /// NewEventType, NewField, FieldGone, TypeChanged, PresenceDropped or PresenceJumped.
    pub kind: String,
    pub event_type: String,
    /// The field path (absent for NewEventType).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The drift with its numbers and the client versions sending it.
    pub message: String,
}

/// A JSON object kept as it is (no structural schema below it).
fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn the_crd_is_namespaced_with_a_status_subresource_and_a_free_form_json_schema() {
        let crd = RawEventSchema::crd();
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("raweventschemas.impressions.dev")
        );
        let v = &crd.spec.versions[0];
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let schema = serde_json::to_value(&v.schema).unwrap();
        let status = &schema["openAPIV3Schema"]["properties"]["status"]["properties"];
        let baseline = &status["baseline"]["properties"]["observation"];
        assert_eq!(baseline["type"], "string");
        let ty = &status["eventTypes"]["additionalProperties"]["properties"]["jsonSchema"];
        assert_eq!(ty["x-kubernetes-preserve-unknown-fields"], true);
    }
}
