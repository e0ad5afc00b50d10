//! A learned schema as JSON Schema (draft 2020-12): per event type an object schema whose
//! properties nest as the paths do, each with the types seen (`integer` folded into `number`
//! when both are), the object properties present in (nearly) every event of their parent as
//! `required`, and the learned numbers as annotations: `x-presence` (share of the event type's
//! events), `x-firstSeenMs`, `x-lastSeenMs`, `x-clientVersions` (the newest).
//!
//! Under an array, presence is counted per event, not per item, so no `required` is given there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    observation::{EventTypeShape, FieldShape, Observation, ratio},
    path::{Segment, segments},
    types::JsonType,
};

/// The JSON Schema dialect written.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// How a learned schema is rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RenderOptions {
    /// A property is required when present in at least this share of its parent's presences.
    pub required_presence: f64,
    /// The field naming the event type, given as a `const` in each event type's schema (so that
    /// the `oneOf` of [`observation_schema`] picks one); empty for none.
    pub event_type_field: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            required_presence: 0.999,
            event_type_field: "eventType".into(),
        }
    }
}

/// The schema of every event type: each under `$defs`, and a `oneOf` of them.
pub fn observation_schema(o: &Observation, opts: &RenderOptions) -> Value {
    let defs: Map<String, Value> = o
        .event_types
        .iter()
        .map(|(name, shape)| (name.clone(), event_type_body(name, shape, opts)))
        .collect();
    let one_of: Vec<Value> = o
        .event_types
        .keys()
        .map(|name| json!({"$ref": format!("#/$defs/{}", pointer_token(name))}))
        .collect();
    json!({
        "$schema": DIALECT,
        "$defs": defs,
        "oneOf": one_of,
    })
}

/// The schema of one event type (with `$schema`).
pub fn event_type_schema(name: &str, shape: &EventTypeShape, opts: &RenderOptions) -> Value {
    let mut v = event_type_body(name, shape, opts);
    if let Value::Object(m) = &mut v {
        m.insert("$schema".into(), DIALECT.into());
    }
    v
}

/// A node of the tree of paths.
#[derive(Default)]
struct Node<'a> {
    field: Option<&'a FieldShape>,
    properties: BTreeMap<String, Node<'a>>,
    items: Option<Box<Node<'a>>>,
}

fn event_type_body(name: &str, shape: &EventTypeShape, opts: &RenderOptions) -> Value {
    let mut root = Node::default();
    for (path, field) in &shape.fields {
        let mut node = &mut root;
        for seg in segments(path) {
            node = match seg {
                Segment::Key(k) => node.properties.entry(k).or_default(),
                Segment::Items => node.items.get_or_insert_with(Box::default),
            };
        }
        node.field = Some(field);
    }
    let mut v = render(&root, shape.events, shape.events, false, opts);
    if let Value::Object(m) = &mut v {
        m.insert("title".into(), name.into());
        m.insert("type".into(), "object".into());
        m.insert("x-events".into(), shape.events.into());
        m.insert("x-firstSeenMs".into(), shape.first_seen_ms.into());
        m.insert("x-lastSeenMs".into(), shape.last_seen_ms.into());
        if !opts.event_type_field.is_empty()
            && let Some(Value::Object(p)) = m
                .get_mut("properties")
                .and_then(|p| p.get_mut(&opts.event_type_field))
        {
            p.insert("const".into(), name.into());
        }
    }
    v
}

/// Renders a node whose parent was present `parent_present` times, of `events` events.
fn render(
    node: &Node,
    parent_present: u64,
    events: u64,
    in_array: bool,
    o: &RenderOptions,
) -> Value {
    let mut m = Map::new();
    let present = node.field.map_or(parent_present, |f| f.present);
    if let Some(f) = node.field {
        let mut types: Vec<JsonType> = f.types.keys().copied().collect();
        if types.contains(&JsonType::Number) {
            types.retain(|t| *t != JsonType::Integer);
        }
        let names: Vec<Value> = types.iter().map(|t| t.name().into()).collect();
        m.insert(
            "type".into(),
            match names.len() {
                1 => names[0].clone(),
                _ => Value::Array(names),
            },
        );
        m.insert("x-presence".into(), json!(ratio(f.present, events)));
        m.insert("x-firstSeenMs".into(), f.first_seen_ms.into());
        m.insert("x-lastSeenMs".into(), f.last_seen_ms.into());
        let versions: Vec<&str> = f.versions.names().collect();
        if !versions.is_empty() {
            m.insert("x-clientVersions".into(), json!(versions));
        }
    }
    if !node.properties.is_empty() {
        let props: Map<String, Value> = node
            .properties
            .iter()
            .map(|(k, child)| (k.clone(), render(child, present, events, in_array, o)))
            .collect();
        m.insert("properties".into(), Value::Object(props));
        if !in_array {
            let required: Vec<Value> = node
                .properties
                .iter()
                .filter(|(_, c)| {
                    c.field
                        .is_some_and(|f| ratio(f.present, present) >= o.required_presence)
                })
                .map(|(k, _)| Value::from(k.as_str()))
                .collect();
            if !required.is_empty() {
                m.insert("required".into(), Value::Array(required));
            }
        }
    }
    if let Some(items) = &node.items {
        m.insert("items".into(), render(items, present, events, true, o));
    }
    Value::Object(m)
}

/// A name as one token of a JSON Pointer in a URI fragment (`~` and `/` escaped, then
/// percent-encoded but for unreserved characters).
fn pointer_token(name: &str) -> String {
    let escaped = name.replace('~', "~0").replace('/', "~1");
    let mut out = String::with_capacity(escaped.len());
    for b in escaped.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Learner, LearnerConfig};

    fn learned(events: &[&str]) -> Observation {
        let mut l = Learner::new(&LearnerConfig {
            sample_one_in: 1,
            ..LearnerConfig::default()
        });
        for (i, e) in events.iter().enumerate() {
            l.offer(e.as_bytes(), 100 + i as i64);
        }
        l.take()
    }

    #[test]
    fn nested_objects_arrays_types_required_and_annotations() {
        let o = learned(&[
            r#"{"eventType":"imp","appVersion":"2.0","id":1,"ctx":{"os":"tv","mem":1.5},"tags":[{"k":"a"}]}"#,
            r#"{"eventType":"imp","appVersion":"1.0","id":2,"ctx":{"os":"tv","mem":2},"tags":[]}"#,
            r#"{"eventType":"imp","appVersion":"1.0","id":3,"ctx":{"os":null}}"#,
        ]);
        let s = event_type_schema("imp", &o.event_types["imp"], &RenderOptions::default());
        let want = json!({
            "$schema": DIALECT,
            "title": "imp",
            "type": "object",
            "x-events": 3, "x-firstSeenMs": 100, "x-lastSeenMs": 102,
            "required": ["appVersion", "ctx", "eventType", "id"],
            "properties": {
                "appVersion": {"type": "string", "x-presence": 1.0, "x-firstSeenMs": 100,
                    "x-lastSeenMs": 102, "x-clientVersions": ["2.0", "1.0"]},
                "eventType": {"type": "string", "const": "imp", "x-presence": 1.0,
                    "x-firstSeenMs": 100, "x-lastSeenMs": 102, "x-clientVersions": ["2.0", "1.0"]},
                "id": {"type": "integer", "x-presence": 1.0, "x-firstSeenMs": 100,
                    "x-lastSeenMs": 102, "x-clientVersions": ["2.0", "1.0"]},
                "ctx": {
                    "type": "object", "x-presence": 1.0, "x-firstSeenMs": 100,
                    "x-lastSeenMs": 102, "x-clientVersions": ["2.0", "1.0"],
                    "required": ["os"],
                    "properties": {
                        "os": {"type": ["null", "string"], "x-presence": 1.0, "x-firstSeenMs": 100,
                            "x-lastSeenMs": 102, "x-clientVersions": ["2.0", "1.0"]},
                        "mem": {"type": "number", "x-presence": 2.0 / 3.0, "x-firstSeenMs": 100,
                            "x-lastSeenMs": 101, "x-clientVersions": ["2.0", "1.0"]}
                    }
                },
                "tags": {
                    "type": "array", "x-presence": 2.0 / 3.0, "x-firstSeenMs": 100,
                    "x-lastSeenMs": 101, "x-clientVersions": ["2.0", "1.0"],
                    "items": {
                        "type": "object", "x-presence": 1.0 / 3.0, "x-firstSeenMs": 100,
                        "x-lastSeenMs": 100, "x-clientVersions": ["2.0"],
                        "properties": {
                            "k": {"type": "string", "x-presence": 1.0 / 3.0, "x-firstSeenMs": 100,
                                "x-lastSeenMs": 100, "x-clientVersions": ["2.0"]}
                        }
                    }
                }
            }
        });
        assert_eq!(s, want, "{}", serde_json::to_string_pretty(&s).unwrap());
    }

    #[test]
    fn every_event_type_under_defs_with_a_one_of() {
        let o = learned(&[r#"{"eventType":"a/b c"}"#, r#"{"eventType":"x"}"#]);
        let s = observation_schema(&o, &RenderOptions::default());
        assert_eq!(s["$schema"], DIALECT);
        assert_eq!(
            s["oneOf"],
            json!([{"$ref": "#/$defs/a~1b%20c"}, {"$ref": "#/$defs/x"}])
        );
        assert_eq!(
            s["$defs"]["a/b c"]["properties"]["eventType"]["const"],
            "a/b c"
        );
        assert_eq!(s["$defs"]["x"]["title"], "x");
    }
}
