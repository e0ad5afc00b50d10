use crate::config::{
    DeliveryGuarantee, GroupProtocol, WorkerConfig,
    testing::{BASE, err},
};

#[test]
fn semantic_errors_name_the_field() {
    assert!(err(&BASE.replace("dlq", "out")).starts_with("config field sink.deadLetterTopic:"));
    assert!(
        err(&BASE.replace("topic: raw", "topic: 'raw events'"))
            .starts_with("config field source.topic:")
    );
    assert!(
        err(&BASE.replace("catalog: {topic: titles}", "catalog: {}"))
            .starts_with("config field catalog:")
    );
    assert!(
        err(&format!("{BASE}processing: {{threads: 0, maxBatch: 10}}\n"))
            .starts_with("config field processing.threads:")
    );
    assert!(
        err(&format!("{BASE}locations: {{pages: {{home: Home}}}}\n"))
            .starts_with("config field locations.pages.home:")
    );
    assert!(
        err(&format!("{BASE}metrics: {{listen: nowhere}}\n"))
            .starts_with("config field metrics.listen:")
    );
}

#[test]
fn exactly_once_defaults_and_incompatible_settings_name_the_field() {
    let eos = BASE.replace(
        "deadLetterTopic: dlq",
        "deadLetterTopic: dlq, deliveryGuarantee: ExactlyOnce",
    );
    let c = WorkerConfig::from_yaml(&eos, []).unwrap();
    assert_eq!(c.sink.delivery_guarantee, DeliveryGuarantee::ExactlyOnce);
    let t = c.transactions();
    assert_eq!(
        (t.interval_ms, t.max_events, t.timeout_ms),
        (100, 50_000, 10_000)
    );
    let with = |sink_extra: &str, rest: &str| {
        err(&format!(
            "{}{rest}",
            eos.replace("ExactlyOnce", &format!("ExactlyOnce, {sink_extra}"))
        ))
    };
    for (sink_extra, rest, field) in [
        (
            "bootstrapServers: 'other:9092'",
            "",
            "sink.bootstrapServers",
        ),
        (
            "transactionIntervalMs: 6000",
            "",
            "sink.transactionIntervalMs",
        ),
        ("transactionIntervalMs: 0", "", "sink.transactionIntervalMs"),
        ("transactionTimeoutMs: 500", "", "sink.transactionTimeoutMs"),
        ("transactionMaxEvents: 0", "", "sink.transactionMaxEvents"),
        ("transactionalId: ''", "", "sink.transactionalId"),
        (
            "kafka: {transactional.id: x}",
            "",
            "sink.kafka.transactional.id",
        ),
        (
            "kafka: {enable.idempotence: 'false'}",
            "",
            "sink.kafka.enable.idempotence",
        ),
        ("kafka: {acks: '1'}", "", "sink.kafka.acks"),
        (
            "kafka: {message.timeout.ms: '120000'}",
            "",
            "sink.kafka.message.timeout.ms",
        ),
    ] {
        let e = with(sink_extra, rest);
        assert!(
            e.starts_with(&format!("config field {field}:")),
            "{sink_extra}: {e}"
        );
    }
    let with_source = |kafka: &str| {
        err(&eos.replace(
            "consumerGroup: demo.impressions}",
            &format!("consumerGroup: demo.impressions, kafka: {{{kafka}}}}}"),
        ))
    };
    // Without a sink map of its own the sink producer gets the source's map.
    for (kafka, field) in [
        (
            "enable.auto.commit: 'true'",
            "source.kafka.enable.auto.commit",
        ),
        (
            "isolation.level: read_uncommitted",
            "source.kafka.isolation.level",
        ),
        (
            "transaction.timeout.ms: '5000'",
            "source.kafka.transaction.timeout.ms",
        ),
    ] {
        let e = with_source(kafka);
        assert!(
            e.starts_with(&format!("config field {field}:")),
            "{kafka}: {e}"
        );
    }
    // The same cluster, spelled the same, is fine; so are settings that fit.
    let ok = eos.replace(
        "ExactlyOnce",
        "ExactlyOnce, bootstrapServers: 'k:9092', transactionIntervalMs: 250, \
         transactionalId: w-0, kafka: {message.timeout.ms: '8000', acks: all}",
    );
    WorkerConfig::from_yaml(&ok, []).unwrap();
}

#[test]
fn transaction_settings_are_refused_without_exactly_once() {
    let e = err(&BASE.replace(
        "deadLetterTopic: dlq",
        "deadLetterTopic: dlq, transactionIntervalMs: 100",
    ));
    assert!(
        e.starts_with("config field sink.transactionIntervalMs: only applies with"),
        "{e}"
    );
}

#[test]
fn timestamp_window_and_sink_servers_are_bounded() {
    // Found by the fuzz harness: windows near i64::MAX seconds overflowed when turned into
    // milliseconds and added to the clock; a blank sink bootstrap list was accepted.
    for (limits, f) in [
        ("{maxAgeSecs: 9223372036854775807}", "limits.maxAgeSecs"),
        ("{maxFutureSecs: 9223372036854775}", "limits.maxFutureSecs"),
        ("{maxFutureSecs: -1}", "limits.maxFutureSecs"),
        ("{maxAgeSecs: 0}", "limits.maxAgeSecs"),
        ("{maxEventBytes: 0}", "limits.maxEventBytes"),
    ] {
        let e = err(&format!("{BASE}limits: {limits}\n"));
        assert!(
            e.starts_with(&format!("config field {f}:")),
            "{limits}: {e}"
        );
    }
    let c = WorkerConfig::from_yaml(
        &format!("{BASE}limits: {{maxAgeSecs: 3153600000, maxFutureSecs: 3153600000}}\n"),
        [],
    )
    .unwrap();
    let l = c.limits();
    assert_eq!(
        (l.max_age_ms, l.max_future_ms),
        (3_153_600_000_000, 3_153_600_000_000)
    );
    let e = err(&BASE.replace("{topic: out,", "{bootstrapServers: ' ', topic: out,"));
    assert!(e.starts_with("config field sink.bootstrapServers:"), "{e}");
}

#[test]
fn a_page_id_given_twice_is_refused() {
    // Found by the fuzz harness: `1` and `+1` (or `01`) are one page id; one name was
    // silently dropped.
    let e = err(&format!(
        "{BASE}locations: {{pages: {{'1': Home, '+1': Other}}}}\n"
    ));
    assert_eq!(
        e,
        "config field locations.pages.1: page id 1 is also given as \"+1\""
    );
}

#[test]
fn source_settings_of_the_other_group_protocol_are_refused_with_their_field() {
    let with = |protocol: &str, kafka: &str| {
        err(&BASE.replace(
            "consumerGroup: demo.impressions}",
            &format!(
                "consumerGroup: demo.impressions, groupProtocol: {protocol}, \
                 kafka: {{{kafka}}}}}"
            ),
        ))
    };
    for (protocol, key) in [
        ("Consumer", "session.timeout.ms"),
        ("Consumer", "heartbeat.interval.ms"),
        ("Consumer", "partition.assignment.strategy"),
        ("Consumer", "group.protocol.type"),
        ("Classic", "group.remote.assignor"),
    ] {
        let e = with(protocol, &format!("{key}: x"));
        assert_eq!(
            e.split(": is not").next().unwrap(),
            format!("config field source.kafka.{key}"),
            "{e}"
        );
        assert!(
            e.contains(&format!("source.groupProtocol: {protocol}")),
            "{e}"
        );
    }
    // Each is accepted by its own protocol; the default is Consumer.
    let ok = |yaml: String| WorkerConfig::from_yaml(&yaml, Vec::new()).unwrap();
    let classic = ok(BASE.replace(
        "consumerGroup: demo.impressions}",
        "consumerGroup: demo.impressions, groupProtocol: Classic, \
         kafka: {session.timeout.ms: '30000'}}",
    ));
    assert_eq!(classic.source.group_protocol, GroupProtocol::Classic);
    let consumer = ok(BASE.replace(
        "consumerGroup: demo.impressions}",
        "consumerGroup: demo.impressions, kafka: {group.remote.assignor: range}}",
    ));
    assert_eq!(consumer.source.group_protocol, GroupProtocol::Consumer);
    let e = with("Classic", "group.protocol: consumer");
    assert!(
        e.starts_with("config field source.kafka.group.protocol: set source.groupProtocol"),
        "{e}"
    );
    let e = err(&BASE.replace(
        "consumerGroup: demo.impressions}",
        "consumerGroup: demo.impressions, groupProtocol: Eager}",
    ));
    assert!(e.contains("groupProtocol") || e.contains("Eager"), "{e}");
}

#[test]
fn at_least_once_settings_the_worker_depends_on_are_refused() {
    let with_source = |kafka: &str| {
        err(&BASE.replace(
            "consumerGroup: demo.impressions}",
            &format!("consumerGroup: demo.impressions, kafka: {{{kafka}}}}}"),
        ))
    };
    let with_sink = |kafka: &str| {
        err(&BASE.replace(
            "deadLetterTopic: dlq}",
            &format!("deadLetterTopic: dlq, kafka: {{{kafka}}}}}"),
        ))
    };
    for (e, field) in [
        (
            with_source("enable.auto.offset.store: 'true'"),
            "source.kafka.enable.auto.offset.store",
        ),
        (
            with_source("enable.auto.offset.store: 'yes'"),
            "source.kafka.enable.auto.offset.store",
        ),
        (
            with_source("enable.auto.commit: 'false'"),
            "source.kafka.enable.auto.commit",
        ),
        (with_sink("acks: '1'"), "sink.kafka.acks"),
        (with_sink("acks: '0'"), "sink.kafka.acks"),
        (
            with_sink("request.required.acks: '1'"),
            "sink.kafka.request.required.acks",
        ),
        (
            with_sink("enable.idempotence: 'false'"),
            "sink.kafka.enable.idempotence",
        ),
        (
            with_sink("delivery.report.only.error: 'true'"),
            "sink.kafka.delivery.report.only.error",
        ),
        // Without a sink map of its own the sink producer gets the source's map.
        (with_source("acks: '1'"), "source.kafka.acks"),
        (
            with_source("enable.idempotence: 'false'"),
            "source.kafka.enable.idempotence",
        ),
    ] {
        assert!(
            e.starts_with(&format!("config field {field}: must ")),
            "{e}"
        );
    }
    assert!(
        with_sink("acks: '1'").contains("with AtLeastOnce"),
        "the guarantee is named"
    );

    // From a Secret, through the environment, the same.
    let e = WorkerConfig::from_yaml(
        BASE,
        [(
            "WORKER__SOURCE__KAFKA__ENABLE_AUTO_OFFSET_STORE".to_owned(),
            "true".to_owned(),
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("config field source.kafka.enable.auto.offset.store:"),
        "{e}"
    );

    // The worker's own values, in any librdkafka spelling, are fine.
    let ok = BASE
        .replace(
            "consumerGroup: demo.impressions}",
            "consumerGroup: demo.impressions, kafka: {enable.auto.offset.store: 'False', \
             enable.auto.commit: '1'}}",
        )
        .replace(
            "deadLetterTopic: dlq}",
            "deadLetterTopic: dlq, kafka: {acks: '-1', enable.idempotence: 'true', \
             delivery.report.only.error: 'false', linger.ms: '20'}}",
        );
    WorkerConfig::from_yaml(&ok, []).unwrap();
}

#[test]
fn dead_letter_payload_limit_fits_the_producer() {
    let c = WorkerConfig::from_yaml(BASE, []).unwrap();
    assert_eq!(c.dead_letter.max_payload_bytes, 256 * 1024);
    let c = WorkerConfig::from_yaml(
        &format!("{BASE}deadLetter: {{maxPayloadBytes: 1000}}\n"),
        [],
    )
    .unwrap();
    assert_eq!(c.dead_letter.max_payload_bytes, 1000);
    for (yaml, f) in [
        (
            format!("{BASE}deadLetter: {{maxPayloadBytes: 0}}\n"),
            "deadLetter.maxPayloadBytes",
        ),
        // Above librdkafka's default message.max.bytes less the headroom.
        (
            format!("{BASE}deadLetter: {{maxPayloadBytes: 2097152}}\n"),
            "deadLetter.maxPayloadBytes",
        ),
        (
            format!("{BASE}deadLetter: {{maxPayloadBytes: 1000000}}\n"),
            "deadLetter.maxPayloadBytes",
        ),
        (
            format!("{BASE}deadLetter: {{maxPayloadByte: 10}}\n"),
            "deadLetter.maxPayloadByte",
        ),
        // A smaller message.max.bytes of the producer lowers the bound.
        (
            BASE.replace(
                "deadLetterTopic: dlq}",
                "deadLetterTopic: dlq, kafka: {message.max.bytes: '200000'}}",
            ),
            "deadLetter.maxPayloadBytes",
        ),
        (
            BASE.replace(
                "deadLetterTopic: dlq}",
                "deadLetterTopic: dlq, kafka: {message.max.bytes: lots}}",
            ),
            "sink.kafka.message.max.bytes",
        ),
    ] {
        let e = err(&yaml);
        assert!(e.starts_with(&format!("config field {f}:")), "{yaml}: {e}");
    }
    let e = err(&format!("{BASE}deadLetter: {{maxPayloadBytes: 2097152}}\n"));
    assert!(e.contains("at most 934464"), "{e}");
    let small = BASE.replace(
        "deadLetterTopic: dlq}",
        "deadLetterTopic: dlq, kafka: {message.max.bytes: '200000'}}",
    );
    let c = WorkerConfig::from_yaml(
        &format!("{small}deadLetter: {{maxPayloadBytes: 100000}}\n"),
        [],
    )
    .unwrap();
    assert_eq!(c.dead_letter.max_payload_bytes, 100_000);
}
