//! The impressions.dev API on the real kube-apiserver: CRD installation, validation messages,
//! the scale and status subresources, and printer columns.

use impressions_crds::{ImpressionPipeline, ScalingPolicy};
use impressions_tests::{Stack, cluster, repo_root, unique};
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::json;

async fn setup(prefix: &str) -> (kube::Client, String) {
    let client = Stack::get().client().await;
    cluster::install_crds(&client).await.expect("install CRDs");
    let ns = cluster::namespace(&client, &unique(prefix))
        .await
        .expect("namespace");
    (client, ns)
}

fn pipeline(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut p = json!({
        "apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
        "metadata": { "name": name },
        "spec": {
            "region": "local",
            "source": { "bootstrapServers": "127.0.0.1:9092", "topic": "raw" },
            "sink": { "topic": "out", "deadLetterTopic": "dlq" },
            "enrichment": { "catalog": { "topic": "titles" } },
        }
    });
    if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    p
}

#[tokio::test]
async fn crds_are_established_and_served() {
    let (client, _ns) = setup("crds").await;
    let discovery = kube::Discovery::new(client).run().await.unwrap();
    let group = discovery
        .get("impressions.dev")
        .expect("impressions.dev is served");
    let kinds: Vec<String> = group
        .recommended_resources()
        .into_iter()
        .map(|(ar, _)| ar.kind)
        .collect();
    assert!(
        kinds.contains(&"ImpressionPipeline".to_owned()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"ScalingPolicy".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn examples_are_accepted_and_defaulted() {
    let (client, ns) = setup("examples").await;
    let root = repo_root().join("examples");
    let policy: ScalingPolicy =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("scaling-policy.yaml")).unwrap())
            .unwrap();
    let pp = PatchParams::apply(cluster::MANAGER).force();
    let policies: Api<ScalingPolicy> = Api::all(client.clone());
    let applied = policies
        .patch("standard", &pp, &Patch::Apply(&policy))
        .await
        .expect("policy accepted");
    assert_eq!(applied.spec.max_replicas, 12);

    let pipe: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("pipeline.yaml")).unwrap())
            .unwrap();
    let api: Api<ImpressionPipeline> = Api::namespaced(client, &ns);
    let created = api
        .patch("impressions", &pp, &Patch::Apply(&pipe))
        .await
        .expect("pipeline accepted");
    // Server-side defaults from the schema.
    assert_eq!(
        created.spec.sink.delivery_guarantee,
        impressions_crds::pipeline::DeliveryGuarantee::AtLeastOnce
    );
    assert_eq!(created.spec.worker.drain_timeout_seconds, 20);
    assert_eq!(
        created.spec.consumer_group(&ns, "impressions"),
        format!("{ns}.impressions")
    );
}

#[tokio::test]
async fn invalid_manifests_are_rejected_with_readable_messages() {
    let (client, ns) = setup("invalid").await;
    let dir = repo_root().join("tests/manifests/invalid");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 98,
        "expected at least 98 invalid manifests, found {}",
        paths.len()
    );
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        // Each leading `# expect: ` line is a fragment the API server's message must hold
        // (typically the field's path, then the rule's message).
        let expect: Vec<&str> = text
            .lines()
            .map_while(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expect.is_empty(),
            "{} lacks a `# expect:` first line",
            path.display()
        );
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        match cluster::create_yaml(&client, &ns, &text).await.unwrap() {
            Ok(_) => failures.push(format!(
                "{file}: accepted, expected rejection with {expect:?}"
            )),
            Err(status) if expect.iter().all(|e| status.message.contains(e)) => {
                println!("{file}: rejected: {}", status.message)
            }
            Err(status) => failures.push(format!(
                "{file}: message {:?} lacks one of {expect:?}",
                status.message
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Manifests that set the checked fields to values that work (the widest names, every kind of
/// env source, quantities, page id spellings, bounds): the schema's rules must not refuse them.
#[tokio::test]
async fn valid_manifests_are_accepted() {
    let (client, ns) = setup("valid").await;
    let dir = repo_root().join("tests/manifests/valid");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.push(repo_root().join("examples/pipeline.yaml"));
    paths.push(repo_root().join("examples/scaling-policy.yaml"));
    paths.sort();
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        let mut obj: DynamicObject = serde_yaml::from_str(&text).unwrap();
        let (ar, namespaced) = cluster::resolve(&client, &obj).await.unwrap();
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(client.clone(), &ns, &ar)
        } else {
            // Cluster-wide names are shared with other tests (e.g. the example policy).
            obj.metadata.name = Some(unique("valid"));
            Api::all_with(client.clone(), &ar)
        };
        // A server-side dry run: every admission step and rule, nothing stored.
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        match api.create(&dry_run, &obj).await {
            Ok(_) => println!("{}: accepted", path.display()),
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn kubectl_scale_goes_through_the_scale_subresource() {
    let (client, ns) = setup("scale").await;
    let api: Api<ImpressionPipeline> = Api::namespaced(client, &ns);
    let pp = PatchParams::apply(cluster::MANAGER);
    let body = pipeline(
        "scaled",
        json!({"scaling": {"mode": "External", "maxReplicas": 6}, "replicas": 1}),
    );
    api.patch("scaled", &pp, &Patch::Apply(&body))
        .await
        .unwrap();

    let out = Stack::get()
        .kubectl()
        .args(["scale", "ipl/scaled", "-n", &ns, "--replicas=4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl scale failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(api.get("scaled").await.unwrap().spec.replicas, Some(4));

    let scale = api.get_scale("scaled").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(4));

    // The CEL bound on spec.replicas holds for the scale subresource too.
    let out = Stack::get()
        .kubectl()
        .args(["scale", "ipl/scaled", "-n", &ns, "--replicas=9"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "scaling above maxReplicas was accepted"
    );
    assert!(
        err.contains("spec.replicas must not be above spec.scaling.maxReplicas"),
        "{err}"
    );
}

#[tokio::test]
async fn spec_and_status_are_separate_subresources() {
    let (client, ns) = setup("status").await;
    let api: Api<ImpressionPipeline> = Api::namespaced(client, &ns);
    let created = api
        .patch(
            "sub",
            &PatchParams::apply(cluster::MANAGER),
            &Patch::Apply(&pipeline("sub", json!({}))),
        )
        .await
        .unwrap();
    let generation = created.metadata.generation;

    // A status written through the main resource is dropped.
    let through_main = json!({"status": {"replicas": 7}});
    let after = api
        .patch("sub", &PatchParams::default(), &Patch::Merge(&through_main))
        .await
        .unwrap();
    assert_eq!(after.status.map(|s| s.replicas).unwrap_or(0), 0);

    // Through /status it lands, and neither spec nor generation move.
    let status = json!({"status": {"replicas": 7, "readyReplicas": 5, "desiredReplicas": 8}});
    let after = api
        .patch_status("sub", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let st = after.status.clone().unwrap();
    assert_eq!(
        (st.replicas, st.ready_replicas, st.desired_replicas),
        (7, 5, Some(8))
    );
    assert_eq!(after.metadata.generation, generation);

    // A spec change through /status is ignored.
    let spec_via_status = json!({"spec": {"region": "elsewhere"}});
    let after = api
        .patch_status(
            "sub",
            &PatchParams::default(),
            &Patch::Merge(&spec_via_status),
        )
        .await
        .unwrap();
    assert_eq!(after.spec.region, "local");
}

#[tokio::test]
async fn printer_columns_are_served_as_a_table() {
    let (client, ns) = setup("columns").await;
    let api: Api<ImpressionPipeline> = Api::namespaced(client, &ns);
    api.patch(
        "cols",
        &PatchParams::apply(cluster::MANAGER),
        &Patch::Apply(&pipeline("cols", json!({}))),
    )
    .await
    .unwrap();
    let status = json!({"status": {
        "replicas": 3, "desiredReplicas": 4,
        "lag": {"total": 1234, "maxPartition": 400},
        "throughput": {"inputPerSecond": 5000.5, "processedPerSecond": 4900.0},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "ok",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "DataQuality", "status": "True", "reason": "Warning", "message": "videoId null 1%",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]
    }});
    api.patch_status("cols", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    let out = Stack::get()
        .kubectl()
        .args(["get", "ipl", "-n", &ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "REGION", "MODE", "REPLICAS", "DESIRED", "LAG", "IN/S", "QUALITY", "READY",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..9],
        [
            "cols", "local", "Auto", "3", "4", "1234", "5000.5", "Warning", "True"
        ]
    );
}

#[tokio::test]
async fn the_stack_mints_service_account_tokens_and_enforces_rbac() {
    let (client, ns) = setup("token").await;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client, &ns);
    let sa: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "probe"}})).unwrap();
    sas.create(&Default::default(), &sa).await.unwrap();
    let stack = Stack::get();
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("tests/stack/stack.sh"))
        .args(["token", &ns, "probe", "600"])
        .env("IMPRESSIONS_STACK_DIR", &stack.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stack.sh token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.len() > 100, "not a token: {token:?}");
    let as_sa = |args: &[&str]| {
        stack
            .kubectl()
            .args(["--token", &token, "--user", ""])
            .args(args)
            .output()
            .unwrap()
    };
    let who = as_sa(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&who.stdout),
        format!("system:serviceaccount:{ns}:probe"),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let denied = as_sa(&["get", "secrets", "-n", &ns]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
}
