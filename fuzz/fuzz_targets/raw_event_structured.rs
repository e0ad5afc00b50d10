//! Events built field by field from loadgen-like values (ids of titles in and out of the
//! catalog, agreeing or not, each field absent, null, ill-typed or an edge value), serialized as
//! JSON and checked as `raw_event` checks any payload. Reaches the title agreement, enrichment
//! and encoding paths far more often than raw bytes do.
#![no_main]

use std::cell::RefCell;

use arbitrary::Arbitrary;
use impressions_worker_core::{
    invariants::{EventCheck, NOW_MS},
    loadgen::events::FIRST_VIDEO_ID,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

/// A field: absent, null, a plausible value, or a value of another type.
#[derive(Debug, Arbitrary)]
enum F<T> {
    Absent,
    Null,
    Good(T),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array,
    Object,
}

#[derive(Debug, Arbitrary)]
enum EventType {
    Impression,
    Known(u8),
    Any(String),
}

#[derive(Debug, Arbitrary)]
struct Event {
    event_type: F<EventType>,
    event_id: F<String>,
    /// Seconds from now.
    timestamp: F<i32>,
    profile_id: F<String>,
    account_id: F<String>,
    device_id: F<String>,
    device_type: F<u8>,
    country: F<u8>,
    /// A title index (beyond the catalog for some values).
    video_id: F<u8>,
    /// (with the `title:` prefix, title index)
    entity_id: F<(bool, u8)>,
    /// (title index, variant)
    image_id: F<(u8, u8)>,
    show_id: F<u8>,
    page_id: F<i8>,
    row_id: F<u8>,
    row_index: F<i16>,
    column_index: F<i16>,
    extra: Vec<(String, String)>,
}

const TYPES: [&str; 7] = [
    "impression",
    "playback_start",
    "search",
    "page_view",
    "heartbeat",
    "other",
    "Impression",
];
const DEVICES: [&str; 4] = ["tv", "mobile", "", "web"];
const COUNTRIES: [&str; 3] = ["US", "BR", ""];
const ROWS: [&str; 3] = ["trending", "top10", ""];

/// The videoId of title `i`: in the check's catalog below `CATALOG_TITLES` (100), unknown above.
fn title(i: u8) -> i64 {
    FIRST_VIDEO_ID + i64::from(i)
}

fn value<T>(f: F<T>, good: impl FnOnce(T) -> Value) -> Option<Value> {
    Some(match f {
        F::Absent => return None,
        F::Null => Value::Null,
        F::Good(t) => good(t),
        F::Str(s) => Value::String(s),
        F::Int(i) => json!(i),
        F::Float(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
        F::Bool(b) => Value::Bool(b),
        F::Array => json!([1, "x", null]),
        F::Object => json!({"a": {"b": []}}),
    })
}

fn render(e: Event) -> Vec<u8> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    put(
        "eventType",
        value(e.event_type, |t| match t {
            EventType::Impression => json!("impression"),
            EventType::Known(i) => json!(TYPES[usize::from(i) % TYPES.len()]),
            EventType::Any(s) => json!(s),
        }),
    );
    put("eventId", value(e.event_id, Value::String));
    put(
        "timestamp",
        value(e.timestamp, |s| json!(NOW_MS + i64::from(s) * 1000)),
    );
    put("profileId", value(e.profile_id, Value::String));
    put("accountId", value(e.account_id, Value::String));
    put("deviceId", value(e.device_id, Value::String));
    put(
        "deviceType",
        value(e.device_type, |i| {
            json!(DEVICES[usize::from(i) % DEVICES.len()])
        }),
    );
    put(
        "country",
        value(e.country, |i| {
            json!(COUNTRIES[usize::from(i) % COUNTRIES.len()])
        }),
    );
    put("videoId", value(e.video_id, |i| json!(title(i))));
    put(
        "entityId",
        value(e.entity_id, |(prefix, i)| {
            let id = title(i);
            json!(if prefix {
                format!("title:{id}")
            } else {
                id.to_string()
            })
        }),
    );
    put(
        "imageId",
        value(e.image_id, |(i, v)| json!(format!("img-{}-{v}", title(i)))),
    );
    put(
        "showId",
        value(e.show_id, |i| json!(70_000_000 + i64::from(i) / 10)),
    );
    put("pageId", value(e.page_id, |i| json!(i)));
    put(
        "rowId",
        value(e.row_id, |i| json!(ROWS[usize::from(i) % ROWS.len()])),
    );
    put("rowIndex", value(e.row_index, |i| json!(i)));
    put("columnIndex", value(e.column_index, |i| json!(i)));
    for (k, v) in e.extra.into_iter().take(4) {
        m.entry(k).or_insert(Value::String(v));
    }
    serde_json::to_vec(&Value::Object(m)).expect("a JSON value serializes")
}

thread_local! {
    static CHECK: RefCell<EventCheck> = RefCell::new(EventCheck::new());
}

fuzz_target!(|event: Event| {
    let payload = render(event);
    CHECK.with_borrow_mut(|c| {
        c.check(&payload);
    });
});
