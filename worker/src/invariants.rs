//! What must hold for any input, whatever its bytes: checked by the fuzz targets (`fuzz/`) and,
//! over the committed corpus, by this module's tests.
//!
//! - Any Kafka payload ends as exactly one of: an output record that decodes with the schema
//!   (apache-avro, independent of the encoder), a filtered event of another type, or a dead
//!   letter with a non-empty reason from [`Reject::REASONS`]; the same bytes give the same
//!   outcome and the same record in either framing; nothing panics.
//! - Any config text with any `WORKER__…` overrides is either a validated config whose derived
//!   settings the worker can use, or an error that names a field (or says the YAML is invalid).
//!
//! Each check panics with a message on a violation (which is what a fuzzer reports).

use std::{collections::HashMap, sync::LazyLock};

use apache_avro::{Schema as AvroSchema, types::Value};

use crate::{
    avro::{self, Encoder, Framing},
    catalog::Catalog,
    config::{ConfigError, WorkerConfig},
    loadgen::{Generator, Mix, events},
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

const YEAR_2500_MS: i64 = 16_725_225_600_000;

static ENCODER_SCHEMA: LazyLock<serde_avro_fast::Schema> = LazyLock::new(avro::schema);

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

/// Most overrides read from one config input.
pub const MAX_OVERRIDES: usize = 8;

/// Splits a config input into the YAML text (all of it) and its overrides: each line
/// `#env KEY=VALUE` (a YAML comment) adds the override `KEY=VALUE`, at most [`MAX_OVERRIDES`].
pub fn config_input(text: &str) -> (&str, Vec<(String, String)>) {
    let env = text
        .lines()
        .filter_map(|l| l.strip_prefix("#env "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .take(MAX_OVERRIDES)
        .collect();
    (text, env)
}

/// Loads a config from YAML text and overrides and checks the result; panics on a violation.
/// Returns the validated config, if it is one.
pub fn check_config(yaml: &str, env: &[(String, String)]) -> Option<WorkerConfig> {
    match WorkerConfig::from_yaml(yaml, env.iter().cloned()) {
        Err(e) => {
            let message = e.to_string();
            match &e {
                ConfigError::Field { field, message: m } => {
                    assert!(
                        !field.trim().is_empty(),
                        "error names no field: {message:?}"
                    );
                    assert!(!m.trim().is_empty(), "error says nothing: {message:?}");
                }
                ConfigError::Yaml(m) => assert!(!m.trim().is_empty(), "empty YAML error"),
                ConfigError::Read { .. } => panic!("no file is read: {message}"),
            }
            None
        }
        Ok(cfg) => {
            check_valid_config(&cfg);
            let again = WorkerConfig::from_yaml(yaml, env.iter().cloned())
                .expect("the same input loads again");
            assert_eq!(cfg, again, "loading is deterministic");
            Some(cfg)
        }
    }
}

/// Everything the worker derives from a validated config at start, and one valid event
/// processed with its limits and locations.
fn check_valid_config(cfg: &WorkerConfig) {
    let limits = cfg.limits();
    assert!(limits.max_event_bytes > 0 && limits.max_age_ms > 0 && limits.max_future_ms >= 0);
    let locations = cfg.locations();
    assert_eq!(
        locations.pages.len(),
        cfg.locations.pages.len(),
        "a page id was dropped"
    );
    let t = cfg.transactions();
    assert!(t.interval_ms > 0 && t.max_events > 0 && t.timeout_ms > 0);
    let (prefix, _) = cfg.sink_kafka();
    assert!(prefix == "source.kafka" || prefix == "sink.kafka");
    assert!(
        !cfg.sink_bootstrap().trim().is_empty(),
        "the sink has no bootstrap servers"
    );
    assert!((1..=64).contains(&cfg.processing.threads));
    assert!((1..=100_000).contains(&cfg.processing.max_batch));
    if let Some(rate) = cfg.processing.max_events_per_second {
        let cap = crate::ratecap::RateCap::new(rate);
        let _ = cap.hold(cfg.processing.max_batch, std::time::Duration::ZERO);
    }
    let _ = std::time::Duration::from_secs(cfg.drain_timeout_secs);

    // Clocks the worker could see: now, a clock before the epoch (read as 0), a far future.
    let mut p = Processor::new(
        Encoder::new(&ENCODER_SCHEMA, Framing::SingleObject),
        limits,
        locations,
    );
    let mut g = Generator::new(
        1,
        CATALOG_TITLES,
        Mix {
            non_impression: 0.0,
            invalid: 0.0,
            mismatch: 0.0,
        },
    );
    let cat = catalog();
    let (mut out, mut tally) = (Vec::new(), Tally::default());
    for now in [NOW_MS, 0, YEAR_2500_MS] {
        let e = g.next_event(now);
        match p.process(&e.payload, &cat, now, &mut out, &mut tally) {
            Outcome::Record => {}
            Outcome::Rejected(Reject::Oversize { .. })
                if e.payload.len() > limits.max_event_bytes => {}
            // Generated events are up to 5 s old.
            Outcome::Rejected(Reject::TimestampOutOfRange {
                timestamp_ms,
                min_ms,
                ..
            }) if timestamp_ms < min_ms && min_ms == now - limits.max_age_ms => {}
            o => panic!("a valid event at {now} became {o:?} with {limits:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect()
    }

    #[test]
    fn raw_event_corpus_replays() {
        let mut check = EventCheck::new();
        let files = corpus("raw_event");
        assert!(!files.is_empty());
        let mut verdicts = std::collections::HashSet::new();
        for (path, bytes) in &files {
            let v = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check.check(bytes)))
                .unwrap_or_else(|_| panic!("{} fails the check", path.display()));
            verdicts.insert(match v {
                Verdict::Record => "record",
                Verdict::Filtered(_) => "filtered",
                Verdict::DeadLetter(r) => r,
            });
        }
        // The corpus reaches every outcome.
        for v in ["record", "filtered"].iter().chain(Reject::REASONS.iter()) {
            assert!(
                verdicts.contains(v),
                "no corpus input ends as {v}: {verdicts:?}"
            );
        }
    }

    #[test]
    fn worker_config_corpus_replays() {
        let files = corpus("worker_config");
        assert!(!files.is_empty());
        let mut valid = 0;
        for (path, bytes) in &files {
            let text = String::from_utf8_lossy(bytes);
            let (yaml, env) = config_input(&text);
            let r = std::panic::catch_unwind(|| check_config(yaml, &env))
                .unwrap_or_else(|_| panic!("{} fails the check", path.display()));
            valid += usize::from(r.is_some());
        }
        assert!(valid > 0, "no valid config in the corpus");
    }

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

    /// Builds the seed corpora: into a temporary folder in every test run, into `fuzz/corpus`
    /// when `IMPRESSIONS_WRITE_SEEDS=1` (then minimize with `make fuzz-cmin`).
    #[test]
    fn write_seed_corpus() {
        let root = if std::env::var_os("IMPRESSIONS_WRITE_SEEDS").is_some() {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
        } else {
            std::env::temp_dir().join(format!("impressions-seeds-{}", std::process::id()))
        };
        let write = |target: &str, name: &str, bytes: &[u8]| {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        // One generated event of each kind, in full and cut down to the fields the worker reads.
        let mut g = Generator::new(
            5,
            CATALOG_TITLES,
            Mix {
                non_impression: 0.2,
                invalid: 0.4,
                mismatch: 0.3,
            },
        );
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < 11 {
            let e = g.next_event(NOW_MS);
            if !seen.insert(e.kind) {
                continue;
            }
            let name = format!("{:?}", e.kind).to_lowercase();
            write("raw_event", &format!("gen-{name}.json"), &e.payload);
            let Ok(serde_json::Value::Object(full)) = serde_json::from_slice(&e.payload) else {
                continue;
            };
            let keep = [
                "eventType",
                "eventId",
                "timestamp",
                "profileId",
                "accountId",
                "deviceId",
                "deviceType",
                "country",
                "entityId",
                "videoId",
                "imageId",
                "showId",
                "pageId",
                "rowId",
                "rowIndex",
                "columnIndex",
            ];
            let small: serde_json::Map<_, _> = full
                .into_iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .collect();
            write(
                "raw_event",
                &format!("small-{name}.json"),
                &serde_json::to_vec(&small).unwrap(),
            );
        }
        for (name, bytes) in [
            ("empty", &b""[..]),
            ("array", b"[1,2]"),
            ("object", b"{}"),
            ("type-number", br#"{"eventType":7}"#),
            ("type-null", br#"{"eventType":null}"#),
            (
                "duplicate",
                br#"{"eventType":"impression","eventType":"search"}"#,
            ),
            (
                "escaped",
                br#"{"event\u0054ype":"impression","eventId":"\ud83d\ude00","profileId":"P\n","timestamp":1.79e12,"videoId":80000001}"#,
            ),
            (
                "float-ts",
                br#"{"eventType":"impression","eventId":"e","profileId":"p","timestamp":1789999999999.0,"entityId":"80000002"}"#,
            ),
            (
                "image-only",
                br#"{"eventType":"impression","eventId":"e","profileId":"p","timestamp":1789999999000,"imageId":"img-80000003-1","pageId":2,"rowId":"trending"}"#,
            ),
            ("deep", b"{\"x\":[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]}"),
            ("bad-utf8", b"{\"eventType\":\"imp\xc3\x28\"}"),
            ("bom", b"\xef\xbb\xbf{\"eventType\":\"search\"}"),
        ] {
            write("raw_event", &format!("hand-{name}.json"), bytes);
        }
        write(
            "raw_event",
            "hand-oversize.json",
            &vec![b' '; MAX_EVENT_BYTES + 1],
        );

        let base = "pipeline: {namespace: demo, name: impressions}
source: {bootstrapServers: 'k:9092', topic: raw, consumerGroup: demo.impressions}
sink: {topic: out, deadLetterTopic: dlq}
catalog: {topic: titles}
";
        let full = "pipeline:
  namespace: demo
  name: impressions
source:
  bootstrapServers: kafka-0:9092,kafka-1:9092
  topic: raw-events
  consumerGroup: demo.impressions
  offsetReset: earliest
  kafka:
    security.protocol: SASL_SSL
    sasl.mechanism: SCRAM-SHA-512
sink:
  topic: impressions.v1
  deadLetterTopic: impressions.dlq
  schemaId: 12
  kafka: {linger.ms: '5'}
catalog:
  file: /etc/impressions/catalog/titles.jsonl
locations:
  pages: {'1': Home, '2': Movies}
  rows: {trending: Trending Now}
limits: {maxEventBytes: 65536, maxAgeSecs: 604800, maxFutureSecs: 3600}
processing: {threads: 2, maxBatch: 500, maxEventsPerSecond: 20000}
drainTimeoutSecs: 20
metrics: {listen: '0.0.0.0:9464'}
";
        let eos = "pipeline: {namespace: demo, name: eos}
source: {bootstrapServers: 'k:9092', topic: raw, consumerGroup: g, kafka: {isolation.level: read_committed}}
sink: {topic: out, deadLetterTopic: dlq, deliveryGuarantee: ExactlyOnce, transactionIntervalMs: 200,
  transactionMaxEvents: 1000, transactionTimeoutMs: 10000, transactionalId: w-0,
  kafka: {acks: all, message.timeout.ms: '9000'}}
catalog: {topic: titles}
";
        let configs: Vec<(&str, String)> = vec![
            ("base", base.to_owned()),
            ("full", full.to_owned()),
            ("exactly-once", eos.to_owned()),
            (
                "env",
                format!(
                    "{base}#env WORKER__SINK__DEAD_LETTER_TOPIC=dead
#env WORKER__SOURCE__KAFKA__SASL_PASSWORD=s3cret
#env WORKER__PROCESSING__MAX_EVENTS_PER_SECOND=500
#env WORKER__LIMITS__MAX_AGE_SECS=60
#env OTHER=1
"
                ),
            ),
            (
                "env-only",
                "#env WORKER__PIPELINE__NAME=x\n#env WORKER__SOURCE=1\n".to_owned(),
            ),
            (
                "unknown-field",
                base.replace("topic: out,", "topic: out, deadLeterTopic: x,"),
            ),
            (
                "wrong-type",
                format!("{base}processing: {{threads: many}}\n"),
            ),
            (
                "bad-topic",
                base.replace("topic: raw", "topic: 'raw events'"),
            ),
            (
                "pages",
                format!("{base}locations: {{pages: {{home: Home}}}}\n"),
            ),
            ("listen", format!("{base}metrics: {{listen: nowhere}}\n")),
            ("scalar", "42\n".to_owned()),
            ("list", "- a\n- b\n".to_owned()),
            ("syntax", "pipeline: {namespace: [\n".to_owned()),
            (
                "anchors",
                format!("{base}limits: &l {{maxAgeSecs: 10}}\nx: *l\n"),
            ),
            (
                "merge",
                format!("{base}processing:\n  <<: {{threads: 3}}\n"),
            ),
            ("tag", format!("{base}drainTimeoutSecs: !!str 5\n")),
            (
                "limits-edge",
                format!(
                    "{base}limits: {{maxAgeSecs: 3153600000, maxFutureSecs: 9223372036854775}}\n"
                ),
            ),
            (
                "pages-twice",
                format!("{base}locations: {{pages: {{'1': Home, '+1': Other}}}}\n"),
            ),
            (
                "sink-blank",
                base.replace("{topic: out,", "{bootstrapServers: ' ', topic: out,"),
            ),
        ];
        for (name, text) in configs {
            write("worker_config", &format!("{name}.yaml"), text.as_bytes());
        }
    }

    #[test]
    fn overrides_come_from_env_comment_lines() {
        let (yaml, env) = config_input("a: 1\n#env WORKER__SINK__TOPIC=x=y\n#envX=1\n");
        assert_eq!(yaml, "a: 1\n#env WORKER__SINK__TOPIC=x=y\n#envX=1\n");
        assert_eq!(env, [("WORKER__SINK__TOPIC".to_owned(), "x=y".to_owned())]);
    }
}
