//! The worker's schema learner on the stack: generated traffic through the real worker binary
//! with a short window; `GET /schema` serves each window's observation with the pipeline, the
//! pod and the window; the windows of a pod are contiguous and together saw every consumed event
//! once (traffic sent before the first window ended and after it); the event types and known
//! field paths come out with their presence and types; windows keep coming after the traffic
//! ends, and `/schema/windows` serves the last ones; with learning disabled, `/schema` is 404.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use impressions_tests::{
    Stack, kafka, unique,
    worker::{WorkerProcess, config, topics},
};
use impressions_worker::{
    loadgen::Mix,
    schema::{Budget, JsonType, Observation},
    schema_report::SchemaReport,
};

/// The window of the test's worker, in seconds.
const WINDOW_SECONDS: i64 = 2;

/// How late the main loop may end a window after its boundary (a batch in hand, a loaded
/// machine).
const LATE_MS: i64 = 1500;

#[tokio::test(flavor = "multi_thread")]
async fn schema_windows_are_served_with_the_event_types_and_paths_of_the_traffic() {
    let stack = Stack::get();
    let t = topics(stack, "wk-schema", 2, 100).await;
    let mix = Mix {
        non_impression: 0.3,
        invalid: 0.0,
        mismatch: 0.0,
    };
    let mut sent = kafka::produce_generated(stack, &t.raw, 19, 6000, 100, mix).await;
    let pod = unique("schema-pod");
    let mut w = WorkerProcess::start_with_env(
        "schema",
        &config(
            stack,
            &t,
            &format!(
                "processing: {{threads: 2, maxBatch: 500}}\n\
                 schema: {{sampleOneIn: 10, windowSeconds: {WINDOW_SECONDS}}}"
            ),
        ),
        &[("POD_NAME".to_owned(), pod.clone())],
    );
    w.wait_ready(Duration::from_secs(30));

    // Every window served, by its start, until the windows hold every event sent and one more
    // (empty) window came after the traffic. Once a window with events is served, more traffic
    // is sent, for a later window.
    let mut windows: BTreeMap<i64, SchemaReport> = BTreeMap::new();
    let mut second_batch = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "windows {:?} (seen {}):\n{}",
            windows
                .values()
                .map(|r| (r.window, r.observation.events_seen))
                .collect::<Vec<_>>(),
            windows
                .values()
                .map(|r| r.observation.events_seen)
                .sum::<u64>(),
            w.log_tail()
        );
        match w.get("/schema") {
            Some((200, body)) => {
                let r: SchemaReport = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{e}: not a schema report:\n{body}"));
                windows.insert(r.window.start_ms, r);
            }
            Some((503, _)) => {}
            other => panic!("GET /schema: {other:?}"),
        }
        let seen: u64 = windows.values().map(|r| r.observation.events_seen).sum();
        assert!(seen <= sent.len() as u64, "an event offered twice: {seen}");
        if seen > 0 && !second_batch {
            second_batch = true;
            sent.extend(kafka::produce_generated(stack, &t.raw, 20, 3000, 100, mix).await);
            continue;
        }
        let after_traffic = windows
            .values()
            .next_back()
            .is_some_and(|r| r.observation.events_seen == 0);
        if seen == sent.len() as u64 && after_traffic && windows.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The reports: this pipeline and pod; contiguous windows ending at (or just after) the
    // multiples of the window length.
    let reports: Vec<&SchemaReport> = windows.values().collect();
    for r in &reports {
        assert_eq!(
            (r.pipeline.namespace.as_str(), r.pipeline.name.as_str()),
            ("tests", t.group.as_str())
        );
        assert_eq!(r.pod, pod);
        assert_eq!(r.sample_one_in, 10);
        assert_eq!(r.budget, Budget::default());
        assert!(r.window.start_ms < r.window.end_ms, "{:?}", r.window);
        let late = r.window.end_ms.rem_euclid(WINDOW_SECONDS * 1000);
        assert!(late < LATE_MS, "window ends {late} ms after its boundary");
    }
    for pair in reports.windows(2) {
        assert_eq!(
            pair[0].window.end_ms, pair[1].window.start_ms,
            "a pod's windows are contiguous"
        );
    }
    let with_events = reports
        .iter()
        .filter(|r| r.observation.events_seen > 0)
        .count();
    assert!(with_events >= 2, "the traffic came in two windows at least");
    eprintln!(
        "{} windows, {with_events} with events: {:?}",
        reports.len(),
        reports
            .iter()
            .map(|r| (
                r.window.end_ms - r.window.start_ms,
                r.observation.events_seen,
                r.observation.events_sampled
            ))
            .collect::<Vec<_>>()
    );
    let last = reports.last().unwrap();
    assert_eq!(last.observation, Observation::default(), "no traffic left");
    // /schema/windows serves the last windows, oldest first, the last one being /schema's.
    let (code, body) = w.get("/schema/windows").expect("GET /schema/windows");
    assert_eq!(code, 200, "{body}");
    let recent: Vec<SchemaReport> = serde_json::from_str(&body).unwrap();
    assert!(
        !recent.is_empty() && recent.len() <= 8,
        "{} windows",
        recent.len()
    );
    assert!(
        recent
            .windows(2)
            .all(|p| p[0].window.end_ms == p[1].window.start_ms)
    );
    // ?endAfterMs: only the windows that ended after it; another query is refused.
    let newest = recent.last().unwrap();
    let (code, body) = w
        .get(&format!(
            "/schema/windows?endAfterMs={}",
            newest.window.start_ms
        ))
        .expect("GET /schema/windows?endAfterMs");
    assert_eq!(code, 200, "{body}");
    let after: Vec<SchemaReport> = serde_json::from_str(&body).unwrap();
    assert!(
        !after.is_empty() && after.len() <= 2,
        "{} windows",
        after.len()
    );
    assert!(
        after
            .iter()
            .all(|r| r.window.end_ms > newest.window.start_ms)
    );
    assert_eq!(w.get("/schema/windows?since=1").map(|r| r.0), Some(400));
    for r in &recent {
        assert_eq!(r.window_seconds, WINDOW_SECONDS as u32);
        if let Some(seen) = windows.get(&r.window.start_ms) {
            assert_eq!(seen, r, "the same report at both endpoints");
        }
    }

    // The windows merged: every event offered once, about one in ten walked (9,000 events: 900
    // expected, a standard deviation of about 16).
    let all = Observation::merged(reports.iter().map(|r| &r.observation), &Budget::default());
    assert_eq!(all.events_seen, sent.len() as u64);
    assert_eq!(
        w.metric("impressions_worker_events_consumed_total"),
        sent.len() as f64
    );
    assert!(
        (750..=1050).contains(&all.events_sampled),
        "sampled {} of {}",
        all.events_sampled,
        all.events_seen
    );
    assert_eq!(
        w.metric("impressions_worker_schema_events_sampled_total"),
        all.events_sampled as f64
    );
    assert!(w.metric("impressions_worker_schema_windows_total") >= reports.len() as f64);
    assert_eq!(all.unparsed, 0);
    assert_eq!(all.event_types_overflow, 0);

    // The event types the generator sends, and known paths of impressions with their types.
    let types: BTreeSet<&str> = all.event_types.keys().map(String::as_str).collect();
    assert_eq!(
        types,
        BTreeSet::from([
            "heartbeat",
            "impression",
            "page_view",
            "playback_start",
            "playback_stop",
            "search"
        ])
    );
    let imp = &all.event_types["impression"];
    assert!(imp.events > 450, "{} impressions sampled", imp.events);
    assert_eq!(imp.paths_overflow, 0);
    for (path, t) in [
        ("eventId", JsonType::String),
        ("profileId", JsonType::String),
        ("timestamp", JsonType::Integer),
        ("presentation.viewport.w", JsonType::Integer),
        ("presentation.lazyLoaded", JsonType::Boolean),
        ("context", JsonType::Object),
        ("context.os", JsonType::String),
        ("context.subtitleLang", JsonType::Null),
        ("experiments.row_ranking_v7", JsonType::String),
        ("referrer.campaign", JsonType::Null),
    ] {
        let f = imp
            .fields
            .get(path)
            .unwrap_or_else(|| panic!("{path} not learned: {:?}", imp.fields.keys()));
        assert_eq!(imp.presence(path), 1.0, "{path}");
        assert_eq!(f.types, BTreeMap::from([(t, imp.events)]), "{path}");
    }
    let versions: Vec<&str> = imp.versions.names().collect();
    assert!(
        !versions.is_empty() && versions.iter().all(|v| v.starts_with("15.")),
        "{versions:?}"
    );
    assert!(all.event_types["search"].presence("presentation.viewport.h") == 1.0);

    let (ok, took) = w.terminate(Duration::from_secs(25));
    assert!(
        ok,
        "worker did not exit cleanly in {took:?}:\n{}",
        w.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_is_not_served_when_learning_is_disabled() {
    let stack = Stack::get();
    let t = topics(stack, "wk-schema-off", 1, 10).await;
    let mut w = WorkerProcess::start(
        "schema-off",
        &config(stack, &t, "schema: {enabled: false, windowSeconds: 1}"),
    );
    w.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    let (code, body) = w.get("/schema").expect("an answer");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("schema.enabled"), "{body}");
    assert_eq!(w.metric("impressions_worker_schema_windows_total"), 0.0);
    assert_eq!(
        w.metric("impressions_worker_schema_events_sampled_total"),
        0.0
    );
    w.terminate(Duration::from_secs(10));
}
