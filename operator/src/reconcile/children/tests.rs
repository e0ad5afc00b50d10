//! Fixtures for the pure builders.

use impressions_crds::ImpressionPipeline;
use kube::Resource;

use super::*;
use crate::reconcile::resolved::{Resolved, ResolvedPolicy};

fn pipeline(extra: serde_json::Value) -> ImpressionPipeline {
    let mut spec = serde_json::json!({
        "region": "eu",
        "source": {"bootstrapServers": "kafka:9092", "topic": "raw", "secretRef": {"name": "kafka-creds"}},
        "sink": {"topic": "out", "deadLetterTopic": "dlq"},
        "enrichment": {"catalog": {"topic": "titles"}, "locations": {"pages": {"1": "Home"}}},
        "worker": {"drainTimeoutSeconds": 20, "threads": 3}
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let mut p = ImpressionPipeline::new("imp", serde_json::from_value(spec).unwrap());
    p.meta_mut().namespace = Some("team".into());
    p.meta_mut().uid = Some("uid-1".into());
    p
}

fn resolved() -> Resolved {
    Resolved {
        policy: ResolvedPolicy {
            name: None,
            spec: impressions_crds::ScalingPolicySpec::builtin(),
        },
        source_secret: Some("kafka-creds".into()),
        sink_secret: None,
        source_kafka: Default::default(),
        sink_kafka: Default::default(),
        catalog_config_map: None,
    }
}

fn opts() -> BuildOptions {
    BuildOptions {
        worker_image: "impressions/worker:dev".into(),
        archiver_image: "archiver:test".into(),
    }
}

#[test]
fn children_are_owned_and_labelled() {
    let c = children(&pipeline(serde_json::json!({})), &resolved(), 3, 1, &opts()).unwrap();
    for meta in [
        &c.config_map.metadata,
        &c.deployment.metadata,
        &c.service.metadata,
        &c.pdb.metadata,
    ] {
        assert_eq!(meta.name.as_deref(), Some("imp-worker"));
        assert_eq!(meta.namespace.as_deref(), Some("team"));
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ImpressionPipeline", "uid-1", Some(true))
        );
        assert_eq!(
            meta.labels.as_ref().unwrap()["impressions.dev/pipeline"],
            "imp"
        );
    }
}

#[test]
fn pod_template_runs_the_worker_safely() {
    let c = children(&pipeline(serde_json::json!({})), &resolved(), 3, 1, &opts()).unwrap();
    let spec = c.deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(35),
        "above the 20 s drain timeout"
    );
    let ctr = &pod.containers[0];
    assert_eq!(ctr.image.as_deref(), Some("impressions/worker:dev"));
    assert_eq!(
        ctr.args.as_ref().unwrap(),
        &["run", "--config", "/etc/impressions/worker.yaml"]
    );
    let sc = ctr.security_context.as_ref().unwrap();
    assert_eq!(
        (sc.read_only_root_filesystem, sc.allow_privilege_escalation),
        (Some(true), Some(false))
    );
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
        &["ALL"]
    );
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    assert_eq!(
        ctr.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    let env_from = ctr.env_from.as_ref().unwrap();
    assert_eq!(
        env_from[0].prefix.as_deref(),
        Some("WORKER__SOURCE__KAFKA__")
    );
}

#[test]
fn a_spec_change_changes_the_pod_template() {
    let a = children(&pipeline(serde_json::json!({})), &resolved(), 2, 1, &opts()).unwrap();
    let b = children(
        &pipeline(serde_json::json!({"sink": {"topic": "out2", "deadLetterTopic": "dlq"}})),
        &resolved(),
        2,
        1,
        &opts(),
    )
    .unwrap();
    let hash = |c: &Children| {
        c.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()["impressions.dev/config-hash"]
            .clone()
    };
    assert_ne!(hash(&a), hash(&b));
    // Replicas alone do not roll the pods.
    let c = children(&pipeline(serde_json::json!({})), &resolved(), 5, 1, &opts()).unwrap();
    assert_eq!(hash(&a), hash(&c));
}

#[test]
fn rendered_config_is_accepted_by_the_worker() {
    let p = pipeline(
        serde_json::json!({"sink": {"topic": "out", "deadLetterTopic": "dlq", "schemaId": 7}}),
    );
    let yaml = render_worker_config(&p, "team", &resolved()).unwrap();
    let cfg = impressions_worker::config::WorkerConfig::from_yaml(&yaml, []).unwrap();
    assert_eq!(cfg.source.consumer_group, "team.imp");
    assert_eq!(cfg.sink.schema_id, Some(7));
    assert_eq!(cfg.processing.threads, 3);
    assert_eq!(cfg.drain_timeout_secs, 20);
    assert_eq!(cfg.locations().pages[&1], "Home");
}

#[test]
fn catalog_from_a_config_map_is_mounted_and_configured() {
    let p = pipeline(
        serde_json::json!({"enrichment": {"catalog": {"configMapRef": {"name": "titles", "key": "t.jsonl"}}}}),
    );
    let mut r = resolved();
    r.catalog_config_map = p.spec.enrichment.catalog.config_map_ref.clone();
    let yaml = render_worker_config(&p, "team", &r).unwrap();
    let cfg = impressions_worker::config::WorkerConfig::from_yaml(&yaml, []).unwrap();
    assert_eq!(
        cfg.catalog.file.unwrap().to_str(),
        Some("/etc/impressions/catalog/t.jsonl")
    );
    let c = children(&p, &r, 1, 1, &opts()).unwrap();
    let vols = c
        .deployment
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .volumes
        .unwrap();
    assert!(
        vols.iter()
            .any(|v| v.config_map.as_ref().is_some_and(|c| c.name == "titles"))
    );
}

#[test]
fn the_dead_letter_size_reaches_the_worker_and_one_it_would_refuse_is_a_spec_problem() {
    let sink = |n: u32| {
        serde_json::json!({"sink": {"topic": "out", "deadLetterTopic": "dlq",
            "deadLetterMaxPayloadBytes": n}})
    };
    let c = children(&pipeline(sink(100_000)), &resolved(), 1, 1, &opts()).unwrap();
    let yaml = &c.config_map.data.as_ref().unwrap()["worker.yaml"];
    let cfg = impressions_worker_core::config::WorkerConfig::from_yaml(yaml, []).unwrap();
    assert_eq!(cfg.dead_letter.max_payload_bytes, 100_000);

    // 990,000 does not fit the producer's default 1,000,000 less the headers' room.
    let e = children(&pipeline(sink(990_000)), &resolved(), 1, 1, &opts()).unwrap_err();
    assert_eq!(e.reason(), "WorkerConfigInvalid");
    let text = e.to_string();
    assert!(
        text.contains("spec.sink.deadLetterMaxPayloadBytes") && text.contains("at most 934464"),
        "{text}"
    );
    assert!(e.is_spec_problem());

    // The sink Secret raises the producer's limit: then it fits.
    let mut r = resolved();
    r.sink_secret = Some("sink-creds".into());
    r.sink_kafka = crate::kafka_settings::KafkaSettings::from_pairs([(
        "message.max.bytes".to_owned(),
        "2000000".to_owned(),
    )]);
    let p = pipeline(
        serde_json::json!({"sink": {"topic": "out", "deadLetterTopic": "dlq",
        "bootstrapServers": "sink:9092", "secretRef": {"name": "sink-creds"},
        "deadLetterMaxPayloadBytes": 990_000}}),
    );
    children(&p, &r, 1, 1, &opts()).expect("fits the sink Secret's message.max.bytes");
}

#[test]
fn the_group_protocol_reaches_the_worker_and_a_secret_setting_it_refuses_is_a_spec_problem() {
    use impressions_worker_core::config::{GroupProtocol, WorkerConfig};
    let source = |protocol: Option<&str>| {
        let mut s = serde_json::json!({"bootstrapServers": "kafka:9092", "topic": "raw",
            "secretRef": {"name": "kafka-creds"}});
        if let Some(p) = protocol {
            s["groupProtocol"] = p.into();
        }
        pipeline(serde_json::json!({ "source": s }))
    };
    for (protocol, want) in [
        (None, GroupProtocol::Consumer),
        (Some("Consumer"), GroupProtocol::Consumer),
        (Some("Classic"), GroupProtocol::Classic),
    ] {
        let yaml = render_worker_config(&source(protocol), "team", &resolved()).unwrap();
        let cfg = WorkerConfig::from_yaml(&yaml, []).unwrap();
        assert_eq!(cfg.source.group_protocol, want, "{protocol:?}");
    }

    // The broker owns the session timeout under the consumer protocol: the source Secret's
    // setting is refused with the pipeline's field named; the classic protocol takes it.
    let mut r = resolved();
    r.source_kafka = crate::kafka_settings::KafkaSettings::from_pairs([(
        "session.timeout.ms".to_owned(),
        "30000".to_owned(),
    )]);
    let e = render_worker_config(&source(None), "team", &r).unwrap_err();
    assert_eq!(e.reason(), "WorkerConfigInvalid");
    let text = e.to_string();
    assert!(
        text.contains("the source Secret's session.timeout.ms")
            && text.contains("spec.source.groupProtocol: Consumer"),
        "{text}"
    );
    render_worker_config(&source(Some("Classic")), "team", &r).expect("classic takes it");
}

fn with_archive(catalog: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"archive": {
        "catalog": catalog,
        "warehouse": "file:///var/lib/warehouse",
        "namespace": "impressions",
        "table": "eu",
        "partitioning": "Day",
        "targetFileSizeBytes": 67108864,
        "commitIntervalSeconds": 60,
        "maxRecordsPerSecond": 400
    }})
}

#[test]
fn no_archive_no_archiver() {
    let c = children(&pipeline(serde_json::json!({})), &resolved(), 3, 1, &opts()).unwrap();
    assert!(c.archiver.is_none());
}

#[test]
fn archiver_config_carries_every_archive_field() {
    let p = pipeline(with_archive(
        serde_json::json!({"sql": {"uri": "sqlite:///c.db"}}),
    ));
    let c = children(&p, &resolved(), 3, 2, &opts()).unwrap();
    let (cm, deployment) = c.archiver.unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some("imp-archiver"));
    let yaml = &cm.data.unwrap()["archiver.yaml"];
    let doc: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(
        doc["source"]["topic"], "out",
        "the archiver reads the sink topic"
    );
    assert_eq!(doc["source"]["bootstrapServers"], "kafka:9092");
    assert_eq!(doc["source"]["consumerGroup"], "team.imp.archiver");
    assert_eq!(
        doc["catalog"],
        serde_json::json!({"kind": "sql", "uri": "sqlite:///c.db", "warehouse": "file:///var/lib/warehouse"})
    );
    assert_eq!(
        doc["table"],
        serde_json::json!({"namespace": "impressions", "name": "eu", "partitioning": "day", "targetFileSizeBytes": 67108864})
    );
    assert_eq!(doc["commitIntervalSeconds"], 60);
    assert_eq!(doc["maxRecordsPerSecond"], 400);
    assert_eq!(
        doc["deadLetter"],
        serde_json::json!({"topic": "dlq"}),
        "the pipeline's dead-letter topic"
    );
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        spec.selector.match_labels.unwrap()["app.kubernetes.io/name"],
        "impressions-archiver",
        "a selector apart from the workers'"
    );
    let ctr = &spec.template.spec.unwrap().containers[0];
    assert_eq!(ctr.command.as_deref(), Some(&["archiver".to_string()][..]));
    assert_eq!(ctr.image.as_deref(), Some("archiver:test"));
    let env_from = ctr.env_from.as_ref().unwrap();
    assert_eq!(
        env_from[0].prefix.as_deref(),
        Some("ARCHIVER__SOURCE__KAFKA__")
    );
    assert_eq!(env_from[0].secret_ref.as_ref().unwrap().name, "kafka-creds");
}

#[test]
fn archiver_defaults_and_secret_uri() {
    let mut archive =
        with_archive(serde_json::json!({"sql": {"uriSecretRef": {"name": "pg", "key": "uri"}}}));
    let a = archive["archive"].as_object_mut().unwrap();
    a.remove("partitioning");
    a.remove("targetFileSizeBytes");
    a.remove("commitIntervalSeconds");
    a.remove("maxRecordsPerSecond");
    let c = children(&pipeline(archive), &resolved(), 3, 1, &opts()).unwrap();
    let (cm, deployment) = c.archiver.unwrap();
    let doc: serde_json::Value = serde_yaml::from_str(&cm.data.unwrap()["archiver.yaml"]).unwrap();
    assert_eq!(doc["table"]["partitioning"], "hour");
    assert_eq!(doc["table"]["targetFileSizeBytes"], 134217728);
    assert_eq!(doc["commitIntervalSeconds"], 300);
    assert!(doc.get("maxRecordsPerSecond").is_none(), "no cap");
    let ctr = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let uri = ctr
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "ARCHIVER_CATALOG_URI")
        .unwrap();
    let key = uri
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!((key.name.as_str(), key.key.as_str()), ("pg", "uri"));
}

#[test]
fn archiver_rest_catalog() {
    let p = pipeline(with_archive(
        serde_json::json!({"rest": {"uri": "https://cat"}}),
    ));
    let (cm, _) = children(&p, &resolved(), 3, 1, &opts())
        .unwrap()
        .archiver
        .unwrap();
    let doc: serde_json::Value = serde_yaml::from_str(&cm.data.unwrap()["archiver.yaml"]).unwrap();
    assert_eq!(doc["catalog"]["kind"], "rest");
    assert_eq!(doc["catalog"]["uri"], "https://cat");
}

/// The REST catalog's client properties come from a Secret, as environment variables under the
/// prefix the archiver reads (`credential`, `token`, … never in the ConfigMap).
#[test]
fn archiver_rest_catalog_properties_from_a_secret() {
    let p = pipeline(with_archive(serde_json::json!({"rest": {
        "uri": "https://cat", "propertiesSecretRef": {"name": "cat-oauth"}}})));
    let (cm, deployment) = children(&p, &resolved(), 3, 1, &opts())
        .unwrap()
        .archiver
        .unwrap();
    let ctr = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let from = ctr
        .env_from
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.prefix.as_deref() == Some("ARCHIVER__CATALOG__PROPERTIES__"))
        .expect("the catalog's Secret as environment");
    assert_eq!(from.secret_ref.as_ref().unwrap().name, "cat-oauth");
    assert!(!cm.data.unwrap()["archiver.yaml"].contains("cat-oauth"));
    // without the field, no such environment
    let p = pipeline(with_archive(
        serde_json::json!({"rest": {"uri": "https://cat"}}),
    ));
    let (_, deployment) = children(&p, &resolved(), 3, 1, &opts())
        .unwrap()
        .archiver
        .unwrap();
    let ctr = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    assert!(
        ctr.env_from
            .iter()
            .flatten()
            .all(|e| e.prefix.as_deref() != Some("ARCHIVER__CATALOG__PROPERTIES__"))
    );
}
