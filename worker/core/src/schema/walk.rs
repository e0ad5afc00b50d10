//! One pass over a raw event's JSON without building a tree: every value's path and type into
//! reusable buffers, and the two top-level strings the learner keys on (the event type and the
//! client version). Bounded per event: nesting deeper than `max_depth` is recorded as the
//! container's type and skipped, arrays are walked over their first `max_items` items, and no
//! more than `max_values` values are kept.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{
    path::{push_items, push_key},
    types::JsonType,
};

/// Bounds of one walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkLimits {
    /// Values nested deeper than this many segments are not walked into.
    pub max_depth: usize,
    /// Items of an array walked (the rest are skipped).
    pub max_items: usize,
    /// Values kept per event (the rest are counted in [`Walk::truncated`]).
    pub max_values: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            max_depth: 8,
            max_items: 8,
            max_values: 512,
        }
    }
}

/// The top-level keys whose string values the walk keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFields {
    pub event_type: String,
    pub client_version: String,
}

/// The result of walking one event; buffers are reused from one event to the next.
#[derive(Debug, Default)]
pub struct Walk {
    /// Every kept value's path, one after another.
    paths: String,
    /// (end of the path in `paths`, type); a value's path starts where the previous one ends.
    values: Vec<(u32, JsonType)>,
    /// The path being walked.
    cur: String,
    /// The captured strings (buffers reused; `None` when not captured in this event).
    event_type: (String, bool),
    client_version: (String, bool),
    /// Values not kept because of `max_values`.
    pub truncated: u64,
    max_values: usize,
}

impl Walk {
    /// Walks `text`, which must hold a JSON object; on error the walk's content is unspecified.
    pub fn run(
        &mut self,
        text: &str,
        keys: &KeyFields,
        limits: &WalkLimits,
    ) -> Result<(), serde_json::Error> {
        self.paths.clear();
        self.values.clear();
        self.cur.clear();
        self.event_type.1 = false;
        self.client_version.1 = false;
        self.truncated = 0;
        self.max_values = limits.max_values;
        let mut de = serde_json::Deserializer::from_str(text);
        Root {
            walk: self,
            keys,
            limits,
        }
        .deserialize(&mut de)?;
        de.end()
    }

    /// The kept values: path and type, in document order.
    pub fn values(&self) -> impl Iterator<Item = (&str, JsonType)> {
        let mut start = 0usize;
        self.values.iter().map(move |&(end, t)| {
            let p = &self.paths[start..end as usize];
            start = end as usize;
            (p, t)
        })
    }

    /// The top-level event type, if it is a string.
    pub fn event_type(&self) -> Option<&str> {
        let (s, set) = &self.event_type;
        set.then_some(s.as_str())
    }

    /// The top-level client version, if it is a string.
    pub fn client_version(&self) -> Option<&str> {
        let (s, set) = &self.client_version;
        set.then_some(s.as_str())
    }

    fn record(&mut self, t: JsonType) {
        if self.values.len() >= self.max_values {
            self.truncated += 1;
            return;
        }
        self.paths.push_str(&self.cur);
        self.values.push((self.paths.len() as u32, t));
    }
}

/// The walk over the root object.
struct Root<'w> {
    walk: &'w mut Walk,
    keys: &'w KeyFields,
    limits: &'w WalkLimits,
}

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Root { walk, keys, limits } = self;
        while map
            .next_key_seed(Key {
                path: &mut walk.cur,
                at_root: true,
            })?
            .is_some()
        {
            // The key is unescaped only if it needed no escape: compare the path to the names.
            let slot = if walk.cur == keys.event_type {
                Some(Capture::EventType)
            } else if walk.cur == keys.client_version {
                Some(Capture::ClientVersion)
            } else {
                None
            };
            map.next_value_seed(Node {
                walk,
                limits,
                depth: 1,
                capture: slot,
            })?;
            walk.cur.clear();
        }
        Ok(())
    }
}

/// Which top-level string a value is.
#[derive(Debug, Clone, Copy)]
enum Capture {
    EventType,
    ClientVersion,
}

/// Appends a key to the current path.
struct Key<'p> {
    path: &'p mut String,
    at_root: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        push_key(self.path, v, self.at_root);
        Ok(())
    }
}

/// A value below the root, at the current path.
struct Node<'w> {
    walk: &'w mut Walk,
    limits: &'w WalkLimits,
    depth: usize,
    capture: Option<Capture>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.walk.record(JsonType::Null);
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.walk.record(JsonType::Boolean);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.walk.record(JsonType::Integer);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.walk.record(JsonType::Integer);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.walk.record(JsonType::Number);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.walk.record(JsonType::String);
        let slot = match self.capture {
            Some(Capture::EventType) => &mut self.walk.event_type,
            Some(Capture::ClientVersion) => &mut self.walk.client_version,
            None => return Ok(()),
        };
        slot.0.clear();
        slot.0.push_str(v);
        slot.1 = true;
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Node {
            walk,
            limits,
            depth,
            ..
        } = self;
        walk.record(JsonType::Object);
        if depth >= limits.max_depth {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let base = walk.cur.len();
        while map
            .next_key_seed(Key {
                path: &mut walk.cur,
                at_root: false,
            })?
            .is_some()
        {
            map.next_value_seed(Node {
                walk: &mut *walk,
                limits,
                depth: depth + 1,
                capture: None,
            })?;
            walk.cur.truncate(base);
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Node {
            walk,
            limits,
            depth,
            ..
        } = self;
        walk.record(JsonType::Array);
        if depth >= limits.max_depth {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let base = walk.cur.len();
        push_items(&mut walk.cur);
        let mut n = 0;
        while n < limits.max_items {
            let item = Node {
                walk: &mut *walk,
                limits,
                depth: depth + 1,
                capture: None,
            };
            if seq.next_element_seed(item)?.is_none() {
                break;
            }
            n += 1;
        }
        walk.cur.truncate(base);
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeyFields {
        KeyFields {
            event_type: "eventType".into(),
            client_version: "appVersion".into(),
        }
    }

    fn walk(text: &str, limits: WalkLimits) -> (Vec<(String, JsonType)>, Walk) {
        let mut w = Walk::default();
        w.run(text, &keys(), &limits).unwrap();
        let v = w.values().map(|(p, t)| (p.to_owned(), t)).collect();
        (v, w)
    }

    #[test]
    fn every_value_with_its_path_and_type() {
        use JsonType::*;
        let (v, w) = walk(
            r#"{"eventType":"impression","appVersion":"15.2.1","n":null,"b":true,"i":-3,"f":1.5,
               "o":{"x":{"y":"s"}},"a":[1,"two",{"k":[]}],"we.ird":{"\u0041":1}}"#,
            WalkLimits::default(),
        );
        let want: Vec<(std::string::String, JsonType)> = [
            ("eventType", String),
            ("appVersion", String),
            ("n", Null),
            ("b", Boolean),
            ("i", Integer),
            ("f", Number),
            ("o", Object),
            ("o.x", Object),
            ("o.x.y", String),
            ("a", Array),
            ("a[]", Integer),
            ("a[]", String),
            ("a[]", Object),
            ("a[].k", Array),
            ("we\\.ird", Object),
            ("we\\.ird.A", Integer),
        ]
        .into_iter()
        .map(|(p, t)| (p.to_owned(), t))
        .collect();
        assert_eq!(v, want);
        assert_eq!(w.event_type(), Some("impression"));
        assert_eq!(w.client_version(), Some("15.2.1"));
    }

    #[test]
    fn nested_keys_named_like_the_key_fields_are_not_captured() {
        let (_, w) = walk(
            r#"{"ctx":{"eventType":"x","appVersion":"9"},"eventType":7}"#,
            WalkLimits::default(),
        );
        assert_eq!(w.event_type(), None);
        assert_eq!(w.client_version(), None);
    }

    #[test]
    fn depth_items_and_values_are_bounded() {
        let limits = WalkLimits {
            max_depth: 2,
            max_items: 2,
            max_values: 6,
        };
        let (v, w) = walk(
            r#"{"a":{"b":{"c":1}},"l":[1,2,3,4,[5]],"z":1,"y":2}"#,
            limits,
        );
        let paths: Vec<&str> = v.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["a", "a.b", "l", "l[]", "l[]", "z"]);
        assert_eq!(w.truncated, 1);
    }

    #[test]
    fn a_non_object_or_broken_text_is_an_error() {
        let mut w = Walk::default();
        let l = WalkLimits::default();
        assert!(w.run("[1]", &keys(), &l).is_err());
        assert!(w.run(r#"{"a":1"#, &keys(), &l).is_err());
        assert!(w.run(r#"{"a":1} x"#, &keys(), &l).is_err());
        assert!(w.run(r#"{"a":1}"#, &keys(), &l).is_ok());
    }
}
