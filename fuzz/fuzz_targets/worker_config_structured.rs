//! Worker configs built field by field: every section present or not, each value plausible, an
//! edge value (0, limits of a range ± 1, i64/u64 extremes, blank, duplicate spellings) or of
//! another type, with librdkafka properties that matter to ExactlyOnce and a few `WORKER__…`
//! overrides; serialized as YAML and checked as `worker_config` checks any text. Reaches the
//! semantic validation far more often than random text does.
#![no_main]

use arbitrary::Arbitrary;
use impressions_worker_core::invariants::check_config;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

/// A value: a pick from the field's edge list, a small number, another type, or anything.
#[derive(Debug, Arbitrary)]
enum V {
    Edge(u8),
    Small(u8),
    Int(i64),
    Str(String),
    Bool(bool),
    Null,
    List,
}

const NUMBERS: [i64; 20] = [
    0,
    1,
    -1,
    2,
    49,
    64,
    65,
    249,
    250,
    600,
    601,
    1000,
    999,
    100_000,
    100_001,
    900_000,
    900_001,
    3_153_600_000,
    3_153_600_001,
    i64::MAX,
];
const STRINGS: [&str; 14] = [
    "raw",
    "out",
    "dlq",
    "titles",
    "",
    " ",
    "raw events",
    ".",
    "..",
    "k:9092",
    "0.0.0.0:9464",
    "[::1]:0",
    "ExactlyOnce",
    "earliest",
];

fn value(v: V, edges: &[Value]) -> Value {
    match v {
        V::Edge(i) if !edges.is_empty() => edges[usize::from(i) % edges.len()].clone(),
        V::Edge(i) => json!(NUMBERS[usize::from(i) % NUMBERS.len()]),
        V::Small(n) => json!(n),
        V::Int(i) => json!(i),
        V::Str(s) => json!(s),
        V::Bool(b) => json!(b),
        V::Null => Value::Null,
        V::List => json!([1, "a"]),
    }
}

fn num(v: V) -> Value {
    let edges: Vec<Value> = NUMBERS.iter().map(|n| json!(n)).collect();
    value(v, &edges)
}

fn text(v: V) -> Value {
    let mut edges: Vec<Value> = STRINGS.iter().map(|s| json!(s)).collect();
    edges.push(json!("x".repeat(250)));
    edges.push(json!(u64::MAX));
    value(v, &edges)
}

const KAFKA_KEYS: [&str; 13] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "delivery.report.only.error",
    "request.required.acks",
    "message.max.bytes",
    "isolation.level",
    "enable.idempotence",
    "acks",
    "message.timeout.ms",
    "transactional.id",
    "transaction.timeout.ms",
    "sasl.password",
    "security.protocol",
];
const KAFKA_VALUES: [&str; 14] = [
    "true",
    "0",
    "200000",
    "false",
    " FALSE ",
    "read_committed",
    "read_uncommitted",
    "all",
    "-1",
    "1",
    "9000",
    "900001",
    "abc",
    "",
];

fn kafka(props: Vec<(u8, u8)>) -> Value {
    let m: Map<String, Value> = props
        .into_iter()
        .take(4)
        .map(|(k, v)| {
            (
                KAFKA_KEYS[usize::from(k) % KAFKA_KEYS.len()].to_owned(),
                json!(KAFKA_VALUES[usize::from(v) % KAFKA_VALUES.len()]),
            )
        })
        .collect();
    Value::Object(m)
}

#[derive(Debug, Arbitrary)]
struct Cfg {
    pipeline: Option<(V, V)>,
    source: Option<Source>,
    sink: Option<Sink>,
    /// (topic, file)
    catalog: Option<(Option<V>, Option<V>)>,
    locations: Option<Locations>,
    /// (maxEventBytes, maxAgeSecs, maxFutureSecs)
    limits: Option<(Option<V>, Option<V>, Option<V>)>,
    /// (threads, maxBatch, maxEventsPerSecond)
    processing: Option<(Option<V>, Option<V>, Option<V>)>,
    drain_timeout_secs: Option<V>,
    metrics: Option<V>,
    /// maxPayloadBytes
    dead_letter: Option<Option<V>>,
    unknown: Option<V>,
    overrides: Vec<(u8, V)>,
}

#[derive(Debug, Arbitrary)]
struct Locations {
    /// Page ids (numbers and other spellings) and names.
    pages: Vec<(V, V)>,
    rows: Vec<V>,
}

#[derive(Debug, Arbitrary)]
struct Source {
    bootstrap_servers: V,
    topic: V,
    consumer_group: V,
    offset_reset: Option<V>,
    kafka: Option<Vec<(u8, u8)>>,
}

#[derive(Debug, Arbitrary)]
struct Sink {
    bootstrap_servers: Option<V>,
    topic: V,
    dead_letter_topic: V,
    delivery_guarantee: Option<bool>,
    schema_id: Option<V>,
    transaction_interval_ms: Option<V>,
    transaction_max_events: Option<V>,
    transaction_timeout_ms: Option<V>,
    transactional_id: Option<V>,
    kafka: Option<Vec<(u8, u8)>>,
}

const OVERRIDES: [&str; 14] = [
    "WORKER__DEAD_LETTER__MAX_PAYLOAD_BYTES",
    "WORKER__SOURCE__KAFKA__ENABLE_AUTO_OFFSET_STORE",
    "WORKER__SINK__TOPIC",
    "WORKER__SINK__DEAD_LETTER_TOPIC",
    "WORKER__SINK__DELIVERY_GUARANTEE",
    "WORKER__SINK__TRANSACTION_TIMEOUT_MS",
    "WORKER__SINK__KAFKA__ACKS",
    "WORKER__SOURCE__KAFKA__ISOLATION_LEVEL",
    "WORKER__SOURCE__BOOTSTRAP_SERVERS",
    "WORKER__LIMITS__MAX_AGE_SECS",
    "WORKER__LIMITS__MAX_FUTURE_SECS",
    "WORKER__PROCESSING__THREADS",
    "WORKER__LOCATIONS__PAGES__7",
    "WORKER__CATALOG__FILE",
];

/// A value as a map key or an environment value: strings as they are, others as JSON.
fn plain(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn render(c: Cfg) -> (String, Vec<(String, String)>) {
    let mut doc = Map::new();
    let put = |m: &mut Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    if let Some((ns, name)) = c.pipeline {
        doc.insert(
            "pipeline".into(),
            json!({"namespace": text(ns), "name": text(name)}),
        );
    }
    if let Some(s) = c.source {
        let mut m = Map::new();
        put(&mut m, "bootstrapServers", Some(text(s.bootstrap_servers)));
        put(&mut m, "topic", Some(text(s.topic)));
        put(&mut m, "consumerGroup", Some(text(s.consumer_group)));
        put(&mut m, "offsetReset", s.offset_reset.map(text));
        put(&mut m, "kafka", s.kafka.map(kafka));
        doc.insert("source".into(), Value::Object(m));
    }
    if let Some(s) = c.sink {
        let mut m = Map::new();
        put(&mut m, "bootstrapServers", s.bootstrap_servers.map(text));
        put(&mut m, "topic", Some(text(s.topic)));
        put(&mut m, "deadLetterTopic", Some(text(s.dead_letter_topic)));
        put(
            &mut m,
            "deliveryGuarantee",
            s.delivery_guarantee
                .map(|e| json!(if e { "ExactlyOnce" } else { "AtLeastOnce" })),
        );
        put(&mut m, "schemaId", s.schema_id.map(num));
        put(
            &mut m,
            "transactionIntervalMs",
            s.transaction_interval_ms.map(num),
        );
        put(
            &mut m,
            "transactionMaxEvents",
            s.transaction_max_events.map(num),
        );
        put(
            &mut m,
            "transactionTimeoutMs",
            s.transaction_timeout_ms.map(num),
        );
        put(&mut m, "transactionalId", s.transactional_id.map(text));
        put(&mut m, "kafka", s.kafka.map(kafka));
        doc.insert("sink".into(), Value::Object(m));
    }
    if let Some((topic, file)) = c.catalog {
        let mut m = Map::new();
        put(&mut m, "topic", topic.map(text));
        put(&mut m, "file", file.map(text));
        doc.insert("catalog".into(), Value::Object(m));
    }
    if let Some(l) = c.locations {
        let page_ids: Vec<Value> = [
            "1",
            "+1",
            "01",
            "2",
            "-1",
            "x",
            "",
            " 1",
            "9223372036854775808",
        ]
        .iter()
        .map(|s| json!(s))
        .collect();
        let pages: Map<String, Value> = l
            .pages
            .into_iter()
            .take(4)
            .map(|(k, v)| (plain(value(k, &page_ids)), text(v)))
            .collect();
        let rows: Map<String, Value> = l
            .rows
            .into_iter()
            .take(4)
            .map(|r| (plain(text(r)), json!("Row")))
            .collect();
        doc.insert("locations".into(), json!({"pages": pages, "rows": rows}));
    }
    if let Some((bytes, age, future)) = c.limits {
        let mut m = Map::new();
        put(&mut m, "maxEventBytes", bytes.map(num));
        put(&mut m, "maxAgeSecs", age.map(num));
        put(&mut m, "maxFutureSecs", future.map(num));
        doc.insert("limits".into(), Value::Object(m));
    }
    if let Some(max) = c.dead_letter {
        let mut m = Map::new();
        put(&mut m, "maxPayloadBytes", max.map(num));
        doc.insert("deadLetter".into(), Value::Object(m));
    }
    if let Some((threads, batch, rate)) = c.processing {
        let mut m = Map::new();
        put(&mut m, "threads", threads.map(num));
        put(&mut m, "maxBatch", batch.map(num));
        put(&mut m, "maxEventsPerSecond", rate.map(num));
        doc.insert("processing".into(), Value::Object(m));
    }
    put(&mut doc, "drainTimeoutSecs", c.drain_timeout_secs.map(num));
    put(
        &mut doc,
        "metrics",
        c.metrics.map(|l| json!({"listen": text(l)})),
    );
    put(&mut doc, "unknownField", c.unknown.map(text));
    let yaml = serde_yaml::to_string(&Value::Object(doc)).expect("a JSON value is YAML");
    let env = c
        .overrides
        .into_iter()
        .take(3)
        .map(|(k, v)| {
            (
                OVERRIDES[usize::from(k) % OVERRIDES.len()].to_owned(),
                plain(text(v)),
            )
        })
        .collect();
    (yaml, env)
}

fuzz_target!(|c: Cfg| {
    let (yaml, env) = render(c);
    check_config(&yaml, &env);
});
