//! The real worker binary against the real Kafka broker: generated events in, exactly the valid
//! ones out (decoded and checked) plus the invalid ones dead-lettered with their reason, offsets
//! committed; kill -9 and restart loses nothing; SIGTERM commits exactly what was produced; a
//! catalog update is used without restart; /metrics matches what was sent and passes promtool;
//! a 2 MB event is dead-lettered cut to the limit (size and hash in headers) and the partition
//! keeps committing; an output the broker refuses stops the worker, non-zero, naming it.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use apache_avro::types::Value;
use impressions_tests::{
    Stack,
    kafka::{self, Sent},
    worker::{Topics, WorkerProcess, config, decode, event_id, expected, topics, wait_committed},
};
use impressions_worker::{
    kafka::sink::headers,
    loadgen::{Kind, Mix},
};
use rdkafka::{
    ClientConfig, Message,
    producer::{FutureProducer, FutureRecord},
};

#[tokio::test(flavor = "multi_thread")]
async fn valid_events_out_invalid_dead_lettered_offsets_committed_metrics_match() {
    let stack = Stack::get();
    let t = topics(stack, "wk-basic", 4, 200).await;
    let mix = Mix {
        non_impression: 0.2,
        invalid: 0.06,
        mismatch: 0.1,
    };
    let sent = kafka::produce_generated(stack, &t.raw, 3, 6000, 200, mix).await;
    let (want_records, want_dead) = expected(&sent);

    let mut w = WorkerProcess::start(
        "basic",
        &config(stack, &t, "processing: {threads: 2, maxBatch: 500}"),
    );
    w.wait_ready(Duration::from_secs(30));

    let out = kafka::read_topic(stack, &t.out, want_records.len(), Duration::from_secs(60));
    let dlq = kafka::read_topic(stack, &t.dlq, want_dead.len(), Duration::from_secs(30));
    let got: HashSet<String> = out.iter().map(event_id).collect();
    assert_eq!(
        out.len(),
        want_records.len(),
        "records out (duplicates or missing):\n{}",
        w.log_tail()
    );
    assert_eq!(got, want_records, "exactly the valid impressions come out");

    // Values: enrichment, corrections and flags as the generator intended.
    let kinds: HashMap<&str, Kind> = sent.iter().map(|s| (s.event_id.as_str(), s.kind)).collect();
    for m in &out {
        let r = decode(m.payload().unwrap());
        let Value::String(id) = &r["eventId"] else {
            panic!()
        };
        let Value::Record(title) = &r["title"] else {
            panic!()
        };
        assert!(
            matches!(&title[0].1, Value::String(n) if n.starts_with("Title ")),
            "{title:?}"
        );
        let flagged = matches!(&r["mismatches"], Value::Array(a) if !a.is_empty());
        assert_eq!(
            flagged,
            kinds[id.as_str()] == Kind::UncorrectableMismatch,
            "{id}"
        );
        if kinds[id.as_str()] == Kind::MissingEntity {
            let Value::Long(v) = r["videoId"] else {
                panic!()
            };
            assert_eq!(r["entityId"], Value::String(format!("title:{v}")));
        }
    }

    // Dead letters: original bytes, reason header, source coordinates.
    let originals: HashMap<&str, &Sent> = sent.iter().map(|s| (s.event_id.as_str(), s)).collect();
    assert_eq!(dlq.len(), want_dead.len());
    for m in &dlq {
        let key = std::str::from_utf8(m.key().unwrap()).unwrap();
        assert_eq!(
            m.payload().unwrap(),
            originals[key].payload.as_slice(),
            "original bytes kept"
        );
        assert_eq!(
            kafka::header(m, headers::REASON).as_deref(),
            Some(want_dead[key]),
            "{key}"
        );
        assert!(kafka::header(m, headers::DETAIL).is_some_and(|d| !d.is_empty()));
        assert_eq!(
            kafka::header(m, headers::SOURCE_TOPIC).as_deref(),
            Some(t.raw.as_str())
        );
    }

    // Offsets: everything consumed is committed.
    let high = kafka::high_watermarks(stack, &t.raw);
    let committed = wait_committed(stack, &t, Duration::from_secs(15)).await;
    assert_eq!(
        committed,
        high.into_iter()
            .filter(|(_, h)| *h > 0)
            .collect::<HashMap<_, _>>()
    );

    // /metrics agrees with what was sent.
    let mut by_reason: BTreeMap<&str, f64> = BTreeMap::new();
    for r in want_dead.values() {
        *by_reason.entry(r).or_default() += 1.0;
    }
    assert_eq!(
        w.metric("impressions_worker_events_processed_total"),
        sent.len() as f64
    );
    assert_eq!(
        w.metric("impressions_worker_records_produced_total"),
        want_records.len() as f64
    );
    assert_eq!(
        w.metric("impressions_worker_dead_letters_produced_total"),
        want_dead.len() as f64
    );
    for (reason, n) in by_reason {
        assert_eq!(
            w.metric(&format!(
                "impressions_worker_events_rejected_total{{reason=\"{reason}\"}}"
            )),
            n,
            "{reason}"
        );
    }
    let filtered: f64 = sent
        .iter()
        .filter(|s| s.kind == Kind::NonImpression)
        .count() as f64;
    let metrics = w.metrics();
    let filtered_metric: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("impressions_worker_events_filtered_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(filtered_metric, filtered);
    let correctable = sent
        .iter()
        .filter(|s| s.kind == Kind::CorrectableMismatch)
        .count() as f64;
    assert_eq!(w.metric("impressions_worker_column_mismatches_total{pair=\"entityId/videoId\",corrected=\"true\"}"), correctable);
    assert!(w.metric("impressions_worker_busy_seconds_total") > 0.0);
    let (ok, took) = w.terminate(Duration::from_secs(25));
    assert!(
        ok,
        "worker did not exit cleanly in {took:?}:\n{}",
        w.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_check() {
    let stack = Stack::get();
    let t = topics(stack, "wk-promtool", 1, 10).await;
    let mut w = WorkerProcess::start("promtool", &config(stack, &t, ""));
    w.wait_ready(Duration::from_secs(30));
    let text = w.metrics();
    assert!(
        text.contains("impressions_worker_busy_seconds_total"),
        "{text}"
    );
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) on PATH");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    w.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_then_restart_loses_no_valid_event() {
    let stack = Stack::get();
    let t = topics(stack, "wk-kill", 4, 100).await;
    let sent = kafka::produce_generated(stack, &t.raw, 5, 12_000, 100, Mix::default()).await;
    let (want_records, _) = expected(&sent);
    // Capped at 3000/s so the kill lands mid-stream.
    let cfg = config(
        stack,
        &t,
        "processing: {threads: 1, maxBatch: 200, maxEventsPerSecond: 3000}",
    );
    let mut w = WorkerProcess::start("kill", &cfg);
    w.wait_ready(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = w.metric("impressions_worker_records_produced_total");
    assert!(
        before > 0.0 && before < want_records.len() as f64,
        "the kill must land mid-stream ({before})"
    );
    w.kill9();
    w.restart("kill");
    w.wait_ready(Duration::from_secs(30));

    let out = kafka::read_topic(
        stack,
        &t.out,
        want_records.len() * 2,
        Duration::from_secs(45),
    );
    let got: HashSet<String> = out.iter().map(event_id).collect();
    let missing: Vec<_> = want_records.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "valid events lost after kill -9: {missing:?}"
    );
    println!(
        "kill -9: {} records for {} valid events ({} duplicates)",
        out.len(),
        want_records.len(),
        out.len() - got.len()
    );
    w.terminate(Duration::from_secs(25));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_commits_exactly_what_was_produced() {
    let stack = Stack::get();
    let t = topics(stack, "wk-term", 3, 100).await;
    let sent = kafka::produce_generated(stack, &t.raw, 9, 9_000, 100, Mix::default()).await;
    let cfg = config(
        stack,
        &t,
        "processing: {threads: 2, maxBatch: 300, maxEventsPerSecond: 3000}",
    );
    let mut w = WorkerProcess::start("term", &cfg);
    w.wait_ready(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, took) = w.terminate(Duration::from_secs(25));
    assert!(ok, "exit after SIGTERM was not clean:\n{}", w.log_tail());
    assert!(
        took < Duration::from_secs(20),
        "drain took {took:?}, above the drain timeout"
    );

    // Map every event to its source coordinates.
    let raw = kafka::read_topic(stack, &t.raw, sent.len(), Duration::from_secs(30));
    let source: HashMap<String, (i32, i64)> = raw
        .iter()
        .map(|m| {
            (
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                (m.partition(), m.offset()),
            )
        })
        .collect();
    let kinds: HashMap<&str, Kind> = sent.iter().map(|s| (s.event_id.as_str(), s.kind)).collect();
    let committed = kafka::committed(stack, &t.group, &t.raw);
    assert!(!committed.is_empty(), "nothing committed");
    let total_committed: i64 = committed.values().sum();
    assert!(
        total_committed < sent.len() as i64,
        "the stop must land mid-stream"
    );

    let out = kafka::read_topic(stack, &t.out, sent.len(), Duration::from_secs(5));
    let dlq = kafka::read_topic(stack, &t.dlq, sent.len(), Duration::from_secs(3));
    let produced: HashSet<String> = out
        .iter()
        .map(event_id)
        .chain(
            dlq.iter()
                .map(|m| String::from_utf8(m.key().unwrap().to_vec()).unwrap()),
        )
        .collect();
    // Every output's input is below the committed offset (nothing produced is left uncommitted)…
    for id in &produced {
        let (p, o) = source[id];
        assert!(
            o < committed.get(&p).copied().unwrap_or(0),
            "{id} at {p}/{o} was produced but not committed"
        );
    }
    // …and every committed input has its output (nothing committed without output).
    for (id, (p, o)) in &source {
        let k = kinds[id.as_str()];
        if *o < committed.get(p).copied().unwrap_or(0) && k != Kind::NonImpression {
            assert!(
                produced.contains(id),
                "{id} ({k:?}) committed at {p}/{o} without output"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_update_is_used_without_restart() {
    let stack = Stack::get();
    let t = topics(stack, "wk-catalog", 1, 50).await;
    let mut w = WorkerProcess::start("catalog", &config(stack, &t, ""));
    w.wait_ready(Duration::from_secs(30));
    let new_title = impressions_worker::loadgen::events::FIRST_VIDEO_ID + 500;
    let now = impressions_worker::now_ms();
    let event = |id: &str| {
        format!(
            r#"{{"eventType":"impression","eventId":"{id}","timestamp":{now},"profileId":"P9","videoId":{new_title},"entityId":"title:{new_title}"}}"#
        )
    };
    let p = kafka::producer(stack);
    p.send(
        FutureRecord::to(&t.raw)
            .key("before")
            .payload(&event("before")),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let dlq = kafka::read_topic(stack, &t.dlq, 1, Duration::from_secs(20));
    assert_eq!(
        dlq.len(),
        1,
        "unknown title is dead-lettered:\n{}",
        w.log_tail()
    );
    assert_eq!(
        kafka::header(&dlq[0], headers::REASON).as_deref(),
        Some("unknown_title")
    );

    let title = serde_json::json!({"videoId": new_title, "name": "Brand New", "kind": "MOVIE", "genres": ["drama"]});
    p.send(
        FutureRecord::to(&t.titles)
            .key(&new_title.to_string())
            .payload(&title.to_string()),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while w.metric("impressions_worker_catalog_updates_total") < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "catalog update not applied:\n{}",
            w.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.send(
        FutureRecord::to(&t.raw)
            .key("after")
            .payload(&event("after")),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let out = kafka::read_topic(stack, &t.out, 1, Duration::from_secs(20));
    assert_eq!(out.len(), 1);
    let r = decode(out[0].payload().unwrap());
    assert_eq!(r["eventId"], Value::String("after".into()));
    let Value::Record(title) = &r["title"] else {
        panic!()
    };
    assert_eq!(title[0].1, Value::String("Brand New".into()));
    w.terminate(Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_metrics_match_the_loadgen_report() {
    let stack = Stack::get();
    let t = topics(stack, "wk-loadgen", 2, 0).await;
    let loadgen = impressions_tests::worker::binary("loadgen");
    let out = std::process::Command::new(&loadgen)
        .args([
            "catalog",
            "--bootstrap",
            &stack.kafka_bootstrap,
            "--topic",
            &t.titles,
            "--titles",
            "300",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loadgen catalog: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report_path = std::env::temp_dir().join(format!("{}-report.json", t.group));
    let out = std::process::Command::new(&loadgen)
        .args([
            "produce",
            "--bootstrap",
            &stack.kafka_bootstrap,
            "--topic",
            &t.raw,
            "--titles",
            "300",
            "--seed",
            "77",
        ])
        .args([
            "--trace",
            "step:1000:4000:1",
            "--duration",
            "3",
            "--invalid",
            "0.05",
            "--mismatch",
            "0.1",
        ])
        .arg("--report")
        .arg(&report_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loadgen produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let total = report["total"].as_f64().unwrap();
    assert!(total > 3000.0, "the step trace sent {total}");
    assert_eq!(report["failed"], 0);

    let mut w = WorkerProcess::start("loadgen", &config(stack, &t, ""));
    w.wait_ready(Duration::from_secs(30));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while w.metric("impressions_worker_events_processed_total") < total
        || w.metric("impressions_worker_records_produced_total")
            + w.metric("impressions_worker_dead_letters_produced_total")
            < report["records_expected"].as_f64().unwrap()
                + report["dead_letters_expected"].as_f64().unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "worker did not catch up:\n{}",
            w.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(w.metric("impressions_worker_events_processed_total"), total);
    assert_eq!(
        w.metric("impressions_worker_records_produced_total"),
        report["records_expected"].as_f64().unwrap()
    );
    assert_eq!(
        w.metric("impressions_worker_dead_letters_produced_total"),
        report["dead_letters_expected"].as_f64().unwrap()
    );
    let filtered: f64 = w
        .metrics()
        .lines()
        .filter(|l| l.starts_with("impressions_worker_events_filtered_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(filtered, report["filtered_expected"].as_f64().unwrap());
    w.terminate(Duration::from_secs(20));
}

/// One partition each of raw, out, dead-letter and catalog topics, with topic configs for the
/// raw and dead-letter topics, and a catalog of 50 titles.
async fn topics_with(
    stack: &Stack,
    prefix: &str,
    raw: &[(&str, &str)],
    dlq: &[(&str, &str)],
) -> Topics {
    let id = impressions_tests::unique(prefix);
    let t = Topics {
        raw: format!("{id}-raw"),
        out: format!("{id}-out"),
        dlq: format!("{id}-dlq"),
        titles: format!("{id}-titles"),
        group: format!("{id}-group"),
    };
    kafka::create_topic_with(stack, &t.raw, 1, raw).await;
    kafka::create_topic(stack, &t.out, 1, false).await;
    kafka::create_topic_with(stack, &t.dlq, 1, dlq).await;
    kafka::create_topic(stack, &t.titles, 1, true).await;
    kafka::fill_catalog(stack, &t.titles, 50).await;
    t
}

/// Produces one message with a producer that takes messages up to 4 MiB; returns its offset.
async fn produce_one(stack: &Stack, topic: &str, key: &str, payload: &[u8]) -> i64 {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("message.max.bytes", "4194304")
        .create()
        .expect("producer");
    p.send(
        FutureRecord::to(topic).key(key).payload(payload),
        Duration::from_secs(30),
    )
    .await
    .map_err(|(e, _)| e)
    .expect("delivered")
    .offset
}

/// SHA-256 of `bytes` in hex, by coreutils' sha256sum (independent of the worker's hashing).
fn sha256sum(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils) on PATH");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2mb_event_is_dead_lettered_cut_with_its_size_and_hash_and_later_offsets_commit() {
    let stack = Stack::get();
    // The raw topic takes the 2 MB event; the dead-letter topic keeps the broker's default.
    let t = topics_with(stack, "wk-big", &[("max.message.bytes", "4194304")], &[]).await;
    let mix = Mix::default();
    let mut sent = kafka::produce_generated(stack, &t.raw, 21, 300, 50, mix).await;
    let mut big = br#"{"eventType":"impression","eventId":"big","profileId":"P1","x":""#.to_vec();
    big.resize(2 * 1024 * 1024, b'x');
    let big_offset = produce_one(stack, &t.raw, "big", &big).await;
    sent.extend(kafka::produce_generated(stack, &t.raw, 22, 300, 50, mix).await);
    let (want_records, want_dead) = expected(&sent);

    let mut w = WorkerProcess::start("big", &config(stack, &t, ""));
    w.wait_ready(Duration::from_secs(30));

    // Every later event's offset is committed: the committed offset reaches the end.
    let high = kafka::high_watermarks(stack, &t.raw);
    assert_eq!(high[&0], sent.len() as i64 + 1);
    let committed = wait_committed(stack, &t, Duration::from_secs(60)).await;
    assert_eq!(
        committed.get(&0),
        Some(&high[&0]),
        "the partition is committed to its end, past the big event at {big_offset}:\n{}",
        w.log_tail()
    );

    let out = kafka::read_topic(stack, &t.out, want_records.len(), Duration::from_secs(30));
    assert_eq!(
        out.iter().map(event_id).collect::<HashSet<_>>(),
        want_records
    );
    let dlq = kafka::read_topic(stack, &t.dlq, want_dead.len() + 1, Duration::from_secs(30));
    assert_eq!(dlq.len(), want_dead.len() + 1, "{}", w.log_tail());
    let mut cut = 0;
    for m in &dlq {
        let key = std::str::from_utf8(m.key().unwrap()).unwrap();
        if key != "big" {
            assert_eq!(kafka::header(m, headers::ORIGINAL_SIZE), None, "{key}");
            assert_eq!(kafka::header(m, headers::ORIGINAL_SHA256), None, "{key}");
            continue;
        }
        cut += 1;
        let payload = m.payload().unwrap();
        assert_eq!(payload.len(), 256 * 1024, "cut to the default limit");
        assert_eq!(payload, &big[..256 * 1024], "the first bytes are kept");
        assert_eq!(
            kafka::header(m, headers::REASON).as_deref(),
            Some("oversize")
        );
        assert_eq!(
            kafka::header(m, headers::ORIGINAL_SIZE).as_deref(),
            Some("2097152")
        );
        assert_eq!(
            kafka::header(m, headers::ORIGINAL_SHA256),
            Some(sha256sum(&big))
        );
        assert_eq!(
            kafka::header(m, headers::SOURCE_OFFSET),
            Some(big_offset.to_string())
        );
    }
    assert_eq!(cut, 1, "one cut dead letter");
    assert_eq!(
        w.metric("impressions_worker_dead_letters_truncated_total"),
        1.0
    );
    assert_eq!(
        w.metric("impressions_worker_fatal_produce_errors_total{output=\"dead_letter\"}"),
        0.0
    );
    let (ok, took) = w.terminate(Duration::from_secs(25));
    assert!(ok, "not a clean exit in {took:?}:\n{}", w.log_tail());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_the_broker_refuses_stops_the_worker_non_zero_naming_topic_partition_error() {
    let stack = Stack::get();
    // The dead-letter topic refuses batches above 2 KB: the incompressible 8 KB event's dead
    // letter (within deadLetter.maxPayloadBytes) is refused by the broker, for good.
    let t = topics_with(stack, "wk-refused", &[], &[("max.message.bytes", "2048")]).await;
    let valid = Mix {
        non_impression: 0.0,
        invalid: 0.0,
        mismatch: 0.0,
    };
    kafka::produce_generated(stack, &t.raw, 31, 20, 50, valid).await;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let poison: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let poison_offset = produce_one(stack, &t.raw, "poison", &poison).await;
    kafka::produce_generated(stack, &t.raw, 32, 20, 50, valid).await;

    let mut w = WorkerProcess::start("refused", &config(stack, &t, ""));
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker kept running after the broker refused an output:\n{}",
            w.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert!(!status.success(), "exit {status}:\n{log}");
    let named = format!(
        "a dead letter for topic {}, partition 0, cannot be produced: ",
        t.dlq
    );
    // What the process ended with (anyhow's `Error: …`, perhaps followed by a backtrace).
    let last = log
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error at exit:\n{log}"));
    assert!(
        last.contains(&named),
        "the exit names the output's topic and partition:\n{log}"
    );
    assert!(
        last.contains("Message size too large"),
        "the exit names the error:\n{log}"
    );
    assert!(
        last.contains(&format!(
            "partition 0 of {} is not committed past its input",
            t.raw
        )),
        "{log}"
    );
    let committed = kafka::committed(stack, &t.group, &t.raw);
    assert!(
        committed.get(&0).is_none_or(|c| *c <= poison_offset),
        "committed {committed:?} past the lost dead letter's input at {poison_offset}"
    );
}
