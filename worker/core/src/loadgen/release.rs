//! A client release: for a share of the generated events, the changes a new client version
//! would make to their shape: a field renamed, a field sent with another type, a field no
//! longer sent, a field added, an event type added. The raw events' schema learner and its
//! drift detection are tested against it (`tests/schema_drift.rs`).
//!
//! Released events carry the release's client version (`appVersion`). Changing a field the
//! worker reads (e.g. `profileId`) changes what becomes of the event, and the generator's
//! the generator's kind no longer predicts it; the event type is changed only for events of another type
//! than impression, which the worker filters either way.

use serde_json::{Map, Value};

/// The changes of one client release. Paths are object keys joined by `.`
/// (`presentation.visibleMs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The share of the events sent by the new client, in [0, 1].
    pub share: f64,
    /// The new client's version.
    pub version: String,
    /// A field renamed: its path and its new key.
    pub rename: Option<(String, String)>,
    /// A field sent with another type: a number, boolean, object or array as a string (its
    /// JSON), a string as a number (its value if it reads as one, else its length).
    pub retype: Option<String>,
    /// A field no longer sent.
    pub drop: Option<String>,
    /// A field added, with its value.
    pub add: Option<(String, Value)>,
    /// The event type of the events of another type than impression.
    pub event_type: Option<String>,
}

impl Default for Release {
    fn default() -> Self {
        Release {
            share: 0.0,
            version: "16.0.0".into(),
            rename: None,
            retype: None,
            drop: None,
            add: None,
            event_type: None,
        }
    }
}

impl Release {
    /// The payload as the new client sends it (unchanged if it is not a JSON object);
    /// `non_impression`: the event is of another type than impression (only those get the
    /// release's new event type).
    pub fn apply(&self, payload: Vec<u8>, non_impression: bool) -> Vec<u8> {
        let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(&payload) else {
            return payload;
        };
        event.insert("appVersion".into(), self.version.clone().into());
        if let Some((path, to)) = &self.rename
            && let Some((parent, key)) = parent_of(&mut event, path)
            && let Some(v) = parent.remove(key)
        {
            parent.insert(to.clone(), v);
        }
        if let Some(path) = &self.retype
            && let Some((parent, key)) = parent_of(&mut event, path)
            && let Some(v) = parent.get_mut(key)
        {
            *v = retyped(v);
        }
        if let Some(path) = &self.drop
            && let Some((parent, key)) = parent_of(&mut event, path)
        {
            parent.remove(key);
        }
        if let Some((path, value)) = &self.add
            && let Some((parent, key)) = parent_of(&mut event, path)
        {
            parent.insert(key.to_owned(), value.clone());
        }
        if let Some(t) = &self.event_type
            && non_impression
        {
            event.insert("eventType".into(), t.clone().into());
        }
        serde_json::to_vec(&Value::Object(event)).unwrap_or(payload)
    }
}

/// The object holding the last key of `path`, and that key (`None` if a parent is missing or
/// not an object).
fn parent_of<'a, 'p>(
    event: &'a mut Map<String, Value>,
    path: &'p str,
) -> Option<(&'a mut Map<String, Value>, &'p str)> {
    let (parents, key) = match path.rsplit_once('.') {
        Some((p, k)) => (Some(p), k),
        None => (None, path),
    };
    let mut obj = event;
    for k in parents.into_iter().flat_map(|p| p.split('.')) {
        obj = obj.get_mut(k)?.as_object_mut()?;
    }
    Some((obj, key))
}

fn retyped(v: &Value) -> Value {
    match v {
        Value::String(s) => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(s.len())),
        Value::Null => Value::Null,
        other => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(r: &Release, event: Value, non_impression: bool) -> Value {
        serde_json::from_slice(&r.apply(serde_json::to_vec(&event).unwrap(), non_impression))
            .unwrap()
    }

    #[test]
    fn each_change_on_a_nested_event() {
        let event = json!({"eventType": "search", "appVersion": "15.1.1", "rowIndex": 3,
            "pageId": 2, "rowId": "top10", "presentation": {"visibleMs": 10, "renderMs": 4}});
        let r = Release {
            share: 1.0,
            rename: Some(("presentation.visibleMs".into(), "visibleMillis".into())),
            retype: Some("pageId".into()),
            drop: Some("rowIndex".into()),
            add: Some(("presentation.hints".into(), json!({"reducedMotion": true}))),
            event_type: Some("search_v2".into()),
            ..Release::default()
        };
        assert_eq!(
            apply(&r, event.clone(), true),
            json!({"eventType": "search_v2", "appVersion": "16.0.0", "pageId": "2",
                "rowId": "top10", "presentation": {"visibleMillis": 10, "renderMs": 4,
                "hints": {"reducedMotion": true}}})
        );
        // Impressions keep their type; a string becomes a number.
        let r = Release {
            retype: Some("rowId".into()),
            event_type: Some("search_v2".into()),
            ..Release::default()
        };
        let out = apply(&r, event, false);
        assert_eq!(out["eventType"], "search");
        assert_eq!(out["rowId"], 5);
    }

    #[test]
    fn missing_paths_and_broken_payloads_are_left_alone() {
        let r = Release {
            rename: Some(("a.b.c".into(), "d".into())),
            drop: Some("x.y".into()),
            ..Release::default()
        };
        assert_eq!(
            apply(&r, json!({"a": 1}), false),
            json!({"a": 1, "appVersion": "16.0.0"})
        );
        assert_eq!(r.apply(b"{\"a\":".to_vec(), false), b"{\"a\":");
    }
}
