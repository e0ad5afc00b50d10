//! The per-event check: any payload through the per-event path, in both framings, against an
//! independent Avro decoder and JSON parser.

use std::{collections::HashMap, sync::LazyLock};

use apache_avro::{Schema as AvroSchema, types::Value};

use crate::{
    avro::{self, Encoder, Framing},
    catalog::Catalog,
    loadgen::events,
    process::{FILTERED_TYPES, Limits, Locations, Outcome, Processor},
    quality::Tally,
    reject::Reject,
};

/// The clock value of every check (events of the seed corpus are stamped around it).
pub const NOW_MS: i64 = 1_790_000_000_000;

/// The event size limit of the event check (generated events are about 1.2 KB), small so that
/// oversize inputs are within the fuzzers' default input length.
pub const MAX_EVENT_BYTES: usize = 2048;

/// Titles in the check's catalog (videoIds from [`events::FIRST_VIDEO_ID`]).
pub const CATALOG_TITLES: u32 = 100;

pub(super) static ENCODER_SCHEMA: LazyLock<serde_avro_fast::Schema> = LazyLock::new(avro::schema);

/// What became of an input, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Record,
    Filtered(&'static str),
    DeadLetter(&'static str),
}

/// The per-event path with a small catalog, fixed limits and locations, in both framings.
#[derive(Debug)]
pub struct EventCheck {
    single: Processor<'static>,
    confluent: Processor<'static>,
    catalog: Catalog,
    limits: Limits,
    avro_schema: AvroSchema,
    fingerprint: [u8; 8],
    out: Vec<u8>,
    again: Vec<u8>,
}

const SCHEMA_ID: u32 = 7;

impl Default for EventCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl EventCheck {
    pub fn new() -> Self {
        let limits = Limits {
            max_event_bytes: MAX_EVENT_BYTES,
            ..Limits::default()
        };
        let processor =
            |framing| Processor::new(Encoder::new(&ENCODER_SCHEMA, framing), limits, locations());
        let avro_schema = AvroSchema::parse_str(avro::IMPRESSION_SCHEMA)
            .expect("the schema parses with apache-avro");
        EventCheck {
            single: processor(Framing::SingleObject),
            confluent: processor(Framing::Confluent {
                schema_id: SCHEMA_ID,
            }),
            catalog: catalog(),
            limits,
            fingerprint: spec_fingerprint(&avro_schema),
            avro_schema,
            out: Vec::new(),
            again: Vec::new(),
        }
    }

    /// Runs `payload` through the per-event path and checks the outcome; panics on a violation.
    pub fn check(&mut self, payload: &[u8]) -> Verdict {
        let mut tally = Tally::default();
        let outcome =
            self.single
                .process(payload, &self.catalog, NOW_MS, &mut self.out, &mut tally);

        // The same bytes give the same outcome, whatever the buffer held, in either framing.
        self.again.clear();
        self.again
            .extend_from_slice(b"left over from the previous event");
        let mut tally2 = Tally::default();
        let outcome2 =
            self.confluent
                .process(payload, &self.catalog, NOW_MS, &mut self.again, &mut tally2);
        assert_eq!(outcome, outcome2, "framing changed the outcome");
        assert_eq!(tally, tally2, "framing changed the quality tally");

        let json = serde_json::from_slice::<serde_json::Value>(payload).ok();
        let event_type = json
            .as_ref()
            .and_then(|j| j.get("eventType"))
            .and_then(|t| t.as_str());
        match outcome {
            Outcome::Record => {
                assert!(
                    self.out.len() > 10 && self.out[..2] == [0xC3, 0x01],
                    "single-object marker missing"
                );
                assert_eq!(self.out[2..10], self.fingerprint, "schema fingerprint");
                assert_eq!(
                    self.again[..5],
                    [0, 0, 0, 0, SCHEMA_ID as u8],
                    "Confluent header"
                );
                assert_eq!(
                    self.out[10..],
                    self.again[5..],
                    "datum differs between framings"
                );
                let record = decode(&self.avro_schema, &self.out[10..]);
                self.check_record(&record, json.as_ref());
                if json.is_some() {
                    assert_eq!(event_type, Some("impression"), "a record from another type");
                }
                Verdict::Record
            }
            Outcome::Filtered(label) => {
                assert!(
                    FILTERED_TYPES.contains(&label),
                    "unknown filter label {label}"
                );
                assert_eq!(
                    tally,
                    Tally::default(),
                    "a filtered event counted in quality"
                );
                if json.is_some() {
                    let t = event_type.expect("filtered without a string eventType");
                    assert_ne!(t, "impression", "an impression filtered");
                    let expected = FILTERED_TYPES.iter().find(|f| **f == t).unwrap_or(&"other");
                    assert_eq!(label, *expected, "filter label for eventType {t:?}");
                }
                Verdict::Filtered(label)
            }
            Outcome::Rejected(r) => {
                self.check_reject(&r, payload, &tally);
                Verdict::DeadLetter(r.reason())
            }
        }
    }

    fn check_reject(&self, r: &Reject, payload: &[u8], tally: &Tally) {
        let reason = r.reason();
        assert!(Reject::REASONS.contains(&reason), "unknown reason {reason}");
        let detail = r.to_string();
        assert!(!detail.trim().is_empty(), "empty dead-letter detail");
        let oversize = payload.len() > self.limits.max_event_bytes;
        assert_eq!(
            matches!(r, Reject::Oversize { .. }),
            oversize,
            "oversize iff above the limit: {r}"
        );
        if oversize {
            return;
        }
        match (r, std::str::from_utf8(payload)) {
            (Reject::InvalidUtf8 { at }, Err(e)) => {
                assert_eq!(*at, e.valid_up_to(), "first bad byte")
            }
            (Reject::InvalidUtf8 { .. }, Ok(_)) => panic!("valid UTF-8 rejected as invalid"),
            (_, Err(_)) => panic!("invalid UTF-8 not rejected as such: {r}"),
            _ => {}
        }
        if matches!(r, Reject::InvalidUtf8 { .. } | Reject::InvalidJson { .. }) {
            assert_eq!(
                *tally,
                Tally::default(),
                "unparsed event counted in quality"
            );
        }
        if let Reject::InvalidField { field, .. } = r {
            assert_ne!(*field, "record", "a valid impression failed to encode: {r}");
        }
    }

    fn check_record(&self, r: &HashMap<String, Value>, json: Option<&serde_json::Value>) {
        let string = |k: &str| match &r[k] {
            Value::String(s) => s.clone(),
            v => panic!("{k} is not a string: {v:?}"),
        };
        let (event_id, profile_id, entity_id) =
            (string("eventId"), string("profileId"), string("entityId"));
        assert!(!event_id.is_empty() && !profile_id.is_empty() && !entity_id.is_empty());
        let Value::Long(video_id) = r["videoId"] else {
            panic!("videoId is not a long: {:?}", r["videoId"]);
        };
        let title = self
            .catalog
            .get(video_id)
            .expect("a record's videoId is in the catalog");
        let Value::TimestampMillis(ts) = r["timestamp"] else {
            panic!("timestamp: {:?}", r["timestamp"]);
        };
        assert!(
            (NOW_MS - self.limits.max_age_ms..=NOW_MS + self.limits.max_future_ms).contains(&ts),
            "timestamp {ts} outside the window"
        );
        assert_eq!(r["processedAt"], Value::TimestampMillis(NOW_MS));
        let Value::Record(t) = &r["title"] else {
            panic!("title: {:?}", r["title"]);
        };
        assert!(
            t.iter()
                .any(|(k, v)| k == "name" && *v == Value::String(title.name.clone())),
            "title name is the catalog's"
        );
        let Value::Record(loc) = &r["location"] else {
            panic!("location: {:?}", r["location"]);
        };
        for (k, v) in loc {
            if let Value::Union(_, inner) = v
                && let Value::Int(n) = **inner
            {
                assert!(n >= 0, "location.{k} is negative: {n}");
            }
        }
        // The record carries what the input said (an independent JSON parser's reading).
        if let Some(j) = json {
            assert_eq!(j["eventId"].as_str(), Some(event_id.as_str()), "eventId");
            assert_eq!(
                j["profileId"].as_str(),
                Some(profile_id.as_str()),
                "profileId"
            );
            let sent = &j["timestamp"];
            let sent = sent.as_i64().or_else(|| sent.as_f64().map(|f| f as i64));
            assert_eq!(sent, Some(ts), "timestamp");
        }
    }
}

/// The catalog of the checks: [`CATALOG_TITLES`] generated titles.
pub fn catalog() -> Catalog {
    Catalog::default().with_updates(
        events::catalog(CATALOG_TITLES)
            .into_iter()
            .map(|t| (t.video_id, Some(t))),
    )
}

fn locations() -> Locations {
    Locations {
        pages: HashMap::from([(1, "Home".to_owned()), (2, "Movies".to_owned())]),
        rows: HashMap::from([("trending".to_owned(), "Trending Now".to_owned())]),
    }
}

/// Decodes one datum with apache-avro; the whole body must be one record.
fn decode(schema: &AvroSchema, body: &[u8]) -> HashMap<String, Value> {
    let mut reader = body;
    let value = apache_avro::from_avro_datum(schema, &mut reader, None)
        .unwrap_or_else(|e| panic!("the record does not decode with the schema: {e}"));
    assert!(reader.is_empty(), "trailing bytes after the record");
    assert!(
        value.validate(schema),
        "decoded value does not match the schema"
    );
    match value {
        Value::Record(fields) => fields.into_iter().collect(),
        other => panic!("not a record: {other:?}"),
    }
}

/// The schema's CRC-64-AVRO fingerprint over its Parsing Canonical Form, little-endian, as the
/// Avro specification defines it (apache-avro 0.21's canonical form keeps logical-type
/// primitives as `{"type":"long"}`; that one rewrite is applied here).
pub fn spec_fingerprint(schema: &AvroSchema) -> [u8; 8] {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    let table: Vec<u64> = (0..256u64)
        .map(|i| (0..8).fold(i, |fp, _| (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg())))
        .collect();
    let mut pcf = schema.canonical_form();
    for p in ["long", "int", "string", "bytes"] {
        pcf = pcf.replace(&format!("{{\"type\":\"{p}\"}}"), &format!("\"{p}\""));
    }
    let fp = pcf.bytes().fold(EMPTY, |fp, b| {
        (fp >> 8) ^ table[((fp ^ u64::from(b)) & 0xff) as usize]
    });
    fp.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::{Generator, Mix};

    #[test]
    fn generated_traffic_passes_the_event_check() {
        let mut check = EventCheck::new();
        let mut g = Generator::new(
            3,
            CATALOG_TITLES,
            Mix {
                non_impression: 0.2,
                invalid: 0.3,
                mismatch: 0.3,
            },
        );
        for _ in 0..500 {
            check.check(&g.next_event(NOW_MS).payload);
        }
    }
}
