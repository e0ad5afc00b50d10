//! What must hold for any input, whatever its bytes: checked by the fuzz targets (`fuzz/`) and,
//! over the committed corpus, by this module's tests.
//!
//! - Any Kafka payload ends as exactly one of: an output record that decodes with the schema
//!   (apache-avro, independent of the encoder), a filtered event of another type, or a dead
//!   letter with a non-empty reason from [`Reject::REASONS`](crate::reject::Reject::REASONS); the same bytes give the same
//!   outcome and the same record in either framing; nothing panics.
//! - Any config text with any `WORKER__…` overrides is either a validated config whose derived
//!   settings the worker can use, or an error that names a field (or says the YAML is invalid).
//!
//! Each check panics with a message on a violation (which is what a fuzzer reports).
//!
//! The event check is in `event.rs`, the config check in `config.rs`; the seed corpora's replay
//! and the seed builder are this module's tests.

mod config;
mod event;

pub use config::{MAX_OVERRIDES, check_config, config_input};
pub use event::{
    CATALOG_TITLES, EventCheck, MAX_EVENT_BYTES, NOW_MS, Verdict, catalog, spec_fingerprint,
};

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{
        loadgen::{Generator, Mix},
        reject::Reject,
    };

    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
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

    /// Builds the seed corpora: into a temporary folder in every test run, into `fuzz/corpus`
    /// when `IMPRESSIONS_WRITE_SEEDS=1` (then minimize with `make fuzz-cmin`).
    #[test]
    fn write_seed_corpus() {
        let root = if std::env::var_os("IMPRESSIONS_WRITE_SEEDS").is_some() {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
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
            (
                "dead-letter",
                format!(
                    "{}deadLetter: {{maxPayloadBytes: 100000}}\n",
                    base.replace(
                        "deadLetterTopic: dlq}",
                        "deadLetterTopic: dlq, kafka: {message.max.bytes: '200000'}}"
                    )
                ),
            ),
            (
                "at-least-once-acks",
                format!("{base}#env WORKER__SINK__KAFKA__ACKS=1\n"),
            ),
        ];
        for (name, text) in configs {
            write("worker_config", &format!("{name}.yaml"), text.as_bytes());
        }
        for target in ["raw_event", "worker_config"] {
            let n = std::fs::read_dir(root.join(target)).unwrap().count();
            assert!(n > 10, "{target}: only {n} seeds written");
        }
        // A run that only checks the corpus can be built leaves nothing behind.
        if std::env::var_os("IMPRESSIONS_WRITE_SEEDS").is_none() {
            std::fs::remove_dir_all(&root).unwrap();
        }
    }
}
