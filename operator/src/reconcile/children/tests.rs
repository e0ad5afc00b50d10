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
    }
}

#[test]
fn children_are_owned_and_labelled() {
    let c = children(&pipeline(serde_json::json!({})), &resolved(), 3, &opts()).unwrap();
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
    let c = children(&pipeline(serde_json::json!({})), &resolved(), 3, &opts()).unwrap();
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
    let a = children(&pipeline(serde_json::json!({})), &resolved(), 2, &opts()).unwrap();
    let b = children(
        &pipeline(serde_json::json!({"sink": {"topic": "out2", "deadLetterTopic": "dlq"}})),
        &resolved(),
        2,
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
    let c = children(&pipeline(serde_json::json!({})), &resolved(), 5, &opts()).unwrap();
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
    let c = children(&p, &r, 1, &opts()).unwrap();
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
    let c = children(&pipeline(sink(100_000)), &resolved(), 1, &opts()).unwrap();
    let yaml = &c.config_map.data.as_ref().unwrap()["worker.yaml"];
    let cfg = impressions_worker_core::config::WorkerConfig::from_yaml(yaml, []).unwrap();
    assert_eq!(cfg.dead_letter.max_payload_bytes, 100_000);

    // 990,000 does not fit the producer's default 1,000,000 less the headers' room.
    let e = children(&pipeline(sink(990_000)), &resolved(), 1, &opts()).unwrap_err();
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
    children(&p, &r, 1, &opts()).expect("fits the sink Secret's message.max.bytes");
}
