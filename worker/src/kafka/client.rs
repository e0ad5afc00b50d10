//! librdkafka settings of the worker's clients. Explicit settings come first; the pipeline's
//! `kafka` maps (SASL/TLS etc.) are applied last and may override them.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use crate::config::{DeliveryGuarantee, GroupProtocol, OffsetReset, WorkerConfig};

/// The source consumer: incremental assignment (a scale change moves only the partitions that
/// must move), offsets stored only after outputs are acknowledged, committed in the background
/// and synchronously on revoke and shutdown. ExactlyOnce: the consumer commits nothing itself;
/// offsets go into the sink producer's transactions. The group protocol
/// (`source.groupProtocol`) decides who assigns: the broker (Consumer, KIP-848; its session
/// timeout and heartbeat interval are the broker's) or a member with the cooperative-sticky
/// assignor (Classic; session and heartbeat set here).
pub fn consumer(cfg: &WorkerConfig) -> ClientConfig {
    let auto_commit = cfg.sink.delivery_guarantee == DeliveryGuarantee::AtLeastOnce;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.source.bootstrap_servers)
        .set("group.id", &cfg.source.consumer_group)
        .set(
            "client.id",
            format!("impressions-worker-{}", std::process::id()),
        )
        .set("enable.auto.commit", auto_commit.to_string())
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match cfg.source.offset_reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
            },
        )
        .set("statistics.interval.ms", "5000")
        // A fetch waits for 1 MiB (or 250 ms): with librdkafka's default of one byte, a worker
        // at a few hundred events/s fetched each producer batch on its own, and the requests
        // cost it 3× the CPU per event it spends saturated (108 vs 33 µs per event at 500/s,
        // docs/benchmarks.md). With 64 KiB a worker at 70 % of its saturated rate under a 50m
        // limit still used 86-90 % of the limit; with 1 MiB 69-72 %, so its CPU is nearly
        // proportional to its events and the operator's estimate (events / CPU fraction) reads
        // its capacity 1-22 % low instead of 24-39 %. Busy partitions fill 1 MiB at once; an event waits at most
        // 250 ms more on a quiet one.
        .set("fetch.min.bytes", "1048576")
        .set("fetch.wait.max.ms", "250")
        .set("queued.max.messages.kbytes", "65536")
        // When the local queue is full librdkafka pauses fetching for this long (1 s by
        // default), which idles a worker that is only slightly slower than its fetcher.
        .set("fetch.queue.backoff.ms", "10")
        .set("isolation.level", "read_committed");
    match cfg.source.group_protocol {
        // librdkafka refuses the classic group settings with this protocol.
        GroupProtocol::Consumer => c.set("group.protocol", "consumer"),
        GroupProtocol::Classic => c
            .set("group.protocol", "classic")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000"),
    };
    extra(&mut c, &cfg.source.kafka);
    c
}

/// The sink producer: idempotent, batched and compressed; one producer for records and dead
/// letters.
pub fn producer(cfg: &WorkerConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", cfg.sink_bootstrap())
        .set(
            "client.id",
            format!("impressions-worker-{}", std::process::id()),
        )
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Fuller produce batches for the same reason as the consumer's fetch size: fewer
        // requests per event at part load; at most 50 ms more latency.
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", "120000");
    // Without a sink secret of its own, the sink shares the source's security settings.
    extra(&mut c, cfg.sink_kafka().1);
    c
}

/// The ExactlyOnce sink producer: the same settings plus `transactional.id` and
/// `transaction.timeout.ms`. librdkafka bounds `message.timeout.ms` and `socket.timeout.ms` by
/// the transaction timeout itself unless they are set explicitly, so the at-least-once
/// `message.timeout.ms` is dropped (a pipeline's own value stays: validated to fit).
pub fn transactional_producer(cfg: &WorkerConfig, transactional_id: &str) -> ClientConfig {
    let mut c = producer(cfg);
    c.set("transactional.id", transactional_id).set(
        "transaction.timeout.ms",
        cfg.transactions().timeout_ms.to_string(),
    );
    if !cfg.sink_kafka().1.contains_key("message.timeout.ms") {
        c.remove("message.timeout.ms");
    }
    c
}

/// A reader of the catalog topic: assigned (no group), from the beginning.
pub fn catalog_reader(cfg: &WorkerConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.source.bootstrap_servers)
        .set("group.id", format!("{}.catalog", cfg.source.consumer_group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "200");
    extra(&mut c, &cfg.source.kafka);
    c
}

fn extra(c: &mut ClientConfig, props: &BTreeMap<String, String>) {
    for (k, v) in props {
        c.set(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "
pipeline: {namespace: demo, name: impressions}
source: {bootstrapServers: 'k:9093', topic: raw, consumerGroup: demo.impressions}
sink: {topic: out, deadLetterTopic: dlq}
catalog: {topic: titles}
";
    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    /// The environment a pod gets from a Secret through `envFrom` with `prefix`.
    fn secret_env(prefix: &str, password: &str) -> Vec<(String, String)> {
        [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "impressions"),
            ("sasl.password", password),
            ("ssl.ca.pem", CA),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.to_owned()))
        .collect()
    }

    fn sasl(c: &ClientConfig, password: &str) {
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("impressions"));
        assert_eq!(c.get("sasl.password"), Some(password));
        assert_eq!(
            c.get("ssl.ca.pem"),
            Some(CA),
            "a multi-line value is kept whole"
        );
    }

    #[test]
    fn every_client_takes_the_source_secret_and_the_sink_inherits_it() {
        // A password YAML would read as a number or a boolean stays a string.
        let cfg =
            WorkerConfig::from_yaml(BASE, secret_env("WORKER__SOURCE__KAFKA__", "0123")).unwrap();
        sasl(&consumer(&cfg), "0123");
        sasl(&catalog_reader(&cfg), "0123");
        sasl(&producer(&cfg), "0123");
        let eos = WorkerConfig::from_yaml(
            &BASE.replace("dlq}", "dlq, deliveryGuarantee: ExactlyOnce}"),
            secret_env("WORKER__SOURCE__KAFKA__", "true"),
        )
        .unwrap();
        sasl(&transactional_producer(&eos, "demo.impressions-0"), "true");
    }

    /// librdkafka itself checks a consumer's settings against its group protocol when the client
    /// is created (no broker needed): both protocols' settings, with a pipeline's own settings
    /// of that protocol, make a consumer.
    #[test]
    fn each_group_protocol_gets_settings_librdkafka_accepts() {
        use rdkafka::consumer::BaseConsumer;
        for (protocol, kafka, want) in [
            ("Consumer", "{group.remote.assignor: range}", "consumer"),
            ("Classic", "{session.timeout.ms: '30000'}", "classic"),
        ] {
            let cfg = WorkerConfig::from_yaml(
                &BASE.replace(
                    "consumerGroup: demo.impressions}",
                    &format!(
                        "consumerGroup: demo.impressions, groupProtocol: {protocol}, \
                         kafka: {kafka}}}"
                    ),
                ),
                Vec::<(String, String)>::new(),
            )
            .unwrap();
            let c = consumer(&cfg);
            assert_eq!(c.get("group.protocol"), Some(want));
            assert_eq!(
                c.get("partition.assignment.strategy").is_some(),
                protocol == "Classic"
            );
            c.create::<BaseConsumer>()
                .unwrap_or_else(|e| panic!("{protocol}: librdkafka refused the settings: {e}"));
        }
    }

    #[test]
    fn fetches_wait_for_1_mib_and_batches_linger_unless_the_pipeline_says_otherwise() {
        let cfg = WorkerConfig::from_yaml(BASE, Vec::<(String, String)>::new()).unwrap();
        assert_eq!(consumer(&cfg).get("fetch.min.bytes"), Some("1048576"));
        assert_eq!(consumer(&cfg).get("fetch.wait.max.ms"), Some("250"));
        assert_eq!(producer(&cfg).get("linger.ms"), Some("50"));
        let own = WorkerConfig::from_yaml(
            &BASE.replace(
                "consumerGroup: demo.impressions}",
                "consumerGroup: demo.impressions, kafka: {fetch.min.bytes: '1', linger.ms: '5'}}",
            ),
            Vec::<(String, String)>::new(),
        )
        .unwrap();
        assert_eq!(consumer(&own).get("fetch.min.bytes"), Some("1"));
        assert_eq!(producer(&own).get("linger.ms"), Some("5"));
    }

    #[test]
    fn a_sink_secret_is_the_producers_alone() {
        let mut env = secret_env("WORKER__SOURCE__KAFKA__", "source");
        env.extend(secret_env("WORKER__SINK__KAFKA__", "sink"));
        let cfg = WorkerConfig::from_yaml(BASE, env).unwrap();
        sasl(&consumer(&cfg), "source");
        sasl(&catalog_reader(&cfg), "source");
        sasl(&producer(&cfg), "sink");
        sasl(&transactional_producer(&cfg, "t"), "sink");
    }
}
