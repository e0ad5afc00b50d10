//! The raw client event as it arrives on the raw topic: unschematized JSON, parsed into a typed
//! view that borrows from the input and keeps identifying fields loose, so that an ill-typed
//! value becomes a validation finding instead of a parse error.

use std::borrow::Cow;

use serde::{
    Deserialize, Deserializer,
    de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor},
};

/// The fields of a raw event the worker reads; every other field is skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawEvent<'a> {
    #[serde(borrow)]
    pub event_type: Option<Loose<'a>>,
    #[serde(borrow)]
    pub event_id: Option<Loose<'a>>,
    pub timestamp: Option<Loose<'a>>,
    #[serde(borrow)]
    pub profile_id: Option<Loose<'a>>,
    #[serde(borrow)]
    pub account_id: Option<Loose<'a>>,
    #[serde(borrow)]
    pub device_id: Option<Loose<'a>>,
    #[serde(borrow)]
    pub device_type: Option<Loose<'a>>,
    #[serde(borrow)]
    pub country: Option<Loose<'a>>,
    #[serde(borrow)]
    pub entity_id: Option<Loose<'a>>,
    pub video_id: Option<Loose<'a>>,
    #[serde(borrow)]
    pub image_id: Option<Loose<'a>>,
    pub show_id: Option<Loose<'a>>,
    pub page_id: Option<Loose<'a>>,
    #[serde(borrow)]
    pub row_id: Option<Loose<'a>>,
    pub row_index: Option<Loose<'a>>,
    pub column_index: Option<Loose<'a>>,
}

/// A JSON value of any type, kept only as far as the worker needs it. `null` and an absent
/// field are both `None` in the `Option` around it.
#[derive(Debug, Clone, PartialEq)]
pub enum Loose<'a> {
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    /// An object or an array (skipped, not kept).
    Compound,
}

impl<'a> Loose<'a> {
    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer, if it is one (floats with no fraction count too).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Loose::Int(i) => Some(i),
            Loose::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v)
            .map(Loose::Int)
            .unwrap_or(Loose::Float(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Loose::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Compound)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Compound)
    }
}

/// Parses a raw event from UTF-8 JSON text.
pub fn parse(text: &str) -> Result<RawEvent<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ill_typed_identifiers_as_findings() {
        let ev = parse(
            r#"{"eventType":"impression","videoId":"80100172","profileId":7,"rowIndex":[1]}"#,
        )
        .unwrap();
        assert_eq!(ev.video_id, Some(Loose::Str("80100172".into())));
        assert_eq!(ev.profile_id, Some(Loose::Int(7)));
        assert_eq!(ev.row_index, Some(Loose::Compound));
    }

    #[test]
    fn null_and_absent_are_none_and_unknown_fields_are_skipped() {
        let ev = parse(r#"{"videoId":null,"experiments":{"a":[1,2,{"b":null}]},"eventId":"e1"}"#)
            .unwrap();
        assert_eq!(ev.video_id, None);
        assert_eq!(ev.image_id, None);
        assert_eq!(ev.event_id.unwrap().as_str(), Some("e1"));
    }

    #[test]
    fn escaped_strings_are_owned_plain_ones_borrowed() {
        let ev = parse(r#"{"profileId":"P\u0031","country":"US"}"#).unwrap();
        assert!(matches!(ev.profile_id, Some(Loose::Str(Cow::Owned(ref s))) if s == "P1"));
        assert!(matches!(ev.country, Some(Loose::Str(Cow::Borrowed("US")))));
    }
}
