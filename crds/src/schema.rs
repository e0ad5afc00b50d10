//! The pipeline's raw events' schema section: when a difference from the accepted baseline is a
//! drift (`spec.schema.drift`). The operator judges each window of the workers with these
//! thresholds (docs/raw-event-schema.md#drift).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// How the raw events' schema learned from the workers is watched.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSpec {
    /// When a difference of a window from the accepted baseline is reported as a drift.
    #[serde(default)]
    pub drift: DriftSpec,
}

/// The drift thresholds. A difference is a drift when it is large enough (the shares below) and
/// too large to be chance (`minZ`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.typeAbsentShare < self.typeSentShare")
    .message("schema.drift.typeAbsentShare must be below schema.drift.typeSentShare"))]
// The API server checks a fractional `minimum` against an integer value truncated (0 passes
// 0.001): the rule says it for any number.
#[x_kube(validation = kube::core::Rule::new("self.presenceMinChange >= 0.001")
    .message("schema.drift.presenceMinChange must be at least 0.001"))]
pub struct DriftSpec {
    /// Sampled events an event type needs in the baseline and in a window before its fields
    /// are compared (and the first window that becomes the baseline by itself needs in all).
    #[serde(default = "default_min_events")]
    #[schemars(range(min = 1, max = 100000000))]
    pub min_events: u64,

    /// The z-score (a two-proportion test on the sampled counts) a change must reach.
    #[serde(default = "default_min_z")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub min_z: f64,

    /// A new field (or event type) is a drift once present in at least this share of the
    /// events of its type (of all events).
    #[serde(default = "default_new_min_share")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub new_min_share: f64,

    /// A field's presence must move by at least this much (absolute) to be a drift
    /// (PresenceDropped, PresenceJumped).
    #[serde(default = "default_presence_min_change")]
    #[schemars(range(min = 0.001, max = 1.0))]
    pub presence_min_change: f64,

    /// A field of the baseline no longer sent is a drift (FieldGone) if it was present in at
    /// least this share of the baseline's events.
    #[serde(default = "default_gone_min_presence")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub gone_min_presence: f64,

    /// A JSON type is sent with a field when it is in at least this share of the field's
    /// presences (TypeChanged compares what is sent)…
    #[serde(default = "default_type_sent_share")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub type_sent_share: f64,

    /// …and not sent below this share; in between, a type neither appears nor disappears.
    #[serde(default = "default_type_absent_share")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub type_absent_share: f64,
}

impl Default for DriftSpec {
    fn default() -> Self {
        DriftSpec {
            min_events: default_min_events(),
            min_z: default_min_z(),
            new_min_share: default_new_min_share(),
            presence_min_change: default_presence_min_change(),
            gone_min_presence: default_gone_min_presence(),
            type_sent_share: default_type_sent_share(),
            type_absent_share: default_type_absent_share(),
        }
    }
}

fn default_min_events() -> u64 {
    100
}
fn default_min_z() -> f64 {
    4.0
}
fn default_new_min_share() -> f64 {
    0.01
}
fn default_presence_min_change() -> f64 {
    0.10
}
fn default_gone_min_presence() -> f64 {
    0.02
}
fn default_type_sent_share() -> f64 {
    0.05
}
fn default_type_absent_share() -> f64 {
    0.01
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_is_every_default_and_a_field_overrides_one() {
        let s: SchemaSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(s.drift, DriftSpec::default());
        let s: SchemaSpec = serde_json::from_str(r#"{"drift": {"minEvents": 500}}"#).unwrap();
        assert_eq!(
            s.drift,
            DriftSpec {
                min_events: 500,
                ..DriftSpec::default()
            }
        );
    }
}
