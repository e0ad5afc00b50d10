//! The operator binary against the real API server and controller-manager: children with owner
//! references, spec changes rolling the workers, garbage collection, missing references as
//! conditions and Events, leader election and failover, zero writes when idle, other regions
//! untouched, a manual replica edit put back.

use std::time::Duration;

use impressions_crds::{ImpressionPipeline, conditions};
use impressions_tests::{
    Stack, cluster,
    operator::{OperatorProcess, eventually},
    unique,
    worker::parse_metric,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{ConfigMap, Event, Secret, Service},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::json;

async fn setup(prefix: &str) -> (Client, String) {
    let client = Stack::get().client().await;
    cluster::install_crds(&client).await.expect("install CRDs");
    let ns = cluster::namespace(&client, &unique(prefix)).await.unwrap();
    (client, ns)
}

fn pipeline(name: &str, region: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({
        "region": region,
        "source": {"bootstrapServers": Stack::get().kafka_bootstrap, "topic": "raw"},
        "sink": {"topic": "out", "deadLetterTopic": "dlq"},
        "enrichment": {"catalog": {"topic": "titles"}},
        "worker": {"drainTimeoutSeconds": 20},
        "scaling": {"mode": "Auto", "minReplicas": 2, "maxReplicas": 6}
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline", "metadata": {"name": name}, "spec": spec})
}

async fn apply(
    api: &Api<ImpressionPipeline>,
    name: &str,
    body: &serde_json::Value,
) -> ImpressionPipeline {
    api.patch(
        name,
        &PatchParams::apply("tests").force(),
        &Patch::Apply(body),
    )
    .await
    .unwrap()
}

fn condition(p: &ImpressionPipeline, t: &str) -> Option<(String, String, String)> {
    let c = conditions::get(&p.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn events_for(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

async fn deployment(client: &Client, ns: &str, name: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(&format!("{name}-worker"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_update_delete_children_with_owner_references() {
    let stack = Stack::get();
    let (client, ns) = setup("op-crud").await;
    let _op = OperatorProcess::start(stack, "local", &ns, &[]);
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    let p = apply(&api, "imp", &pipeline("imp", "local", json!({}))).await;

    let d = eventually(Duration::from_secs(30), "the worker Deployment", || async {
        deployment(&client, &ns, "imp").await
    })
    .await;
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("ImpressionPipeline", "imp", p.uid().unwrap().as_str())
    );
    assert_eq!(owner.controller, Some(true));
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2), "starts at minReplicas");
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(35));
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("impressions/worker:test")
    );
    for (kind, present) in [
        (
            "ConfigMap",
            Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "Service",
            Api::<Service>::namespaced(client.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "PodDisruptionBudget",
            Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
    ] {
        assert!(present, "{kind} missing");
    }
    let ready = eventually(Duration::from_secs(20), "Ready=True", || async {
        let p = api.get("imp").await.ok()?;
        condition(&p, "Ready").filter(|c| c.0 == "True").map(|_| p)
    })
    .await;
    let st = ready.status.unwrap();
    assert_eq!(st.observed_generation, ready.metadata.generation);
    assert_eq!(
        st.selector.as_deref(),
        Some("app.kubernetes.io/name=impressions-worker,impressions.dev/pipeline=imp")
    );
    assert!(
        events_for(&client, &ns, "imp")
            .await
            .iter()
            .any(|(r, _)| r == "ChildrenCreated")
    );

    // A spec change rolls the workers: the pod template changes.
    let hash = |d: &Deployment| {
        d.spec
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
    let before = hash(&d);
    apply(
        &api,
        "imp",
        &pipeline(
            "imp",
            "local",
            json!({"sink": {"topic": "out-v2", "deadLetterTopic": "dlq"}}),
        ),
    )
    .await;
    eventually(Duration::from_secs(30), "a new pod template", || async {
        let d = deployment(&client, &ns, "imp").await?;
        (hash(&d) != before).then_some(())
    })
    .await;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("imp-worker")
        .await
        .unwrap();
    assert!(cm.data.unwrap()["worker.yaml"].contains("out-v2"));

    // Deleting the pipeline removes the children (garbage collection by the controller-manager).
    api.delete("imp", &DeleteParams::default()).await.unwrap();
    eventually(
        Duration::from_secs(60),
        "children garbage-collected",
        || async {
            let gone = deployment(&client, &ns, "imp").await.is_none()
                && Api::<ConfigMap>::namespaced(client.clone(), &ns)
                    .get_opt("imp-worker")
                    .await
                    .unwrap()
                    .is_none()
                && Api::<Service>::namespaced(client.clone(), &ns)
                    .get_opt("imp-worker")
                    .await
                    .unwrap()
                    .is_none();
            gone.then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_references_are_conditions_and_events_until_fixed() {
    let stack = Stack::get();
    let (client, ns) = setup("op-refs").await;
    let op = OperatorProcess::start(stack, "local", &ns, &[]);
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    let policy = unique("gold");
    apply(
        &api,
        "refs",
        &pipeline(
            "refs",
            "local",
            json!({"scaling": {"policyRef": policy, "minReplicas": 2, "maxReplicas": 6}}),
        ),
    )
    .await;

    let c = eventually(
        Duration::from_secs(30),
        "Ready=False PolicyMissing",
        || async {
            condition(&api.get("refs").await.ok()?, "Ready").filter(|c| c.1 == "PolicyMissing")
        },
    )
    .await;
    assert_eq!(c.0, "False");
    assert!(c.2.contains(&policy), "{}", c.2);
    eventually(Duration::from_secs(10), "a PolicyMissing Event", || async {
        events_for(&client, &ns, "refs")
            .await
            .iter()
            .any(|(r, _)| r == "PolicyMissing")
            .then_some(())
    })
    .await;
    assert!(
        deployment(&client, &ns, "refs").await.is_none(),
        "nothing applied while a reference is missing"
    );

    // Fixed: the policy appears → Ready, and the Secret reference is checked next.
    let policies: Api<impressions_crds::ScalingPolicy> = Api::all(client.clone());
    let pol = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy", "metadata": {"name": policy}, "spec": {"minReplicas": 1, "maxReplicas": 4}});
    policies
        .patch(&policy, &PatchParams::apply("tests"), &Patch::Apply(&pol))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "Ready=True after the policy exists",
        || async { condition(&api.get("refs").await.ok()?, "Ready").filter(|c| c.0 == "True") },
    )
    .await;
    eventually(Duration::from_secs(10), "a Recovered Event", || async {
        events_for(&client, &ns, "refs")
            .await
            .iter()
            .any(|(r, _)| r == "Recovered")
            .then_some(())
    })
    .await;
    // The policy's bounds apply: maxReplicas 6 in the pipeline is wider than the policy's 4.
    let p = api.get("refs").await.unwrap();
    let scaling = condition(&p, "Scaling").unwrap();
    assert_eq!(
        (scaling.0.as_str(), scaling.1.as_str()),
        ("False", "OverrideWiderThanPolicy"),
        "{}",
        scaling.2
    );

    // A Secret that does not exist, then does.
    apply(&api, "refs", &pipeline("refs", "local", json!({"scaling": {"policyRef": policy, "minReplicas": 2, "maxReplicas": 6}, "source": {"bootstrapServers": Stack::get().kafka_bootstrap, "topic": "raw", "secretRef": {"name": "kafka-creds"}}}))).await;
    eventually(
        Duration::from_secs(30),
        "Ready=False SecretMissing",
        || async {
            condition(&api.get("refs").await.ok()?, "Ready").filter(|c| c.1 == "SecretMissing")
        },
    )
    .await;
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "kafka-creds"}, "stringData": {"sasl.username": "u"}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "Ready=True after the Secret exists (retried with backoff)",
        || async { condition(&api.get("refs").await.ok()?, "Ready").filter(|c| c.0 == "True") },
    )
    .await;
    let d = deployment(&client, &ns, "refs").await.unwrap();
    let env_from = d.spec.unwrap().template.spec.unwrap().containers[0]
        .env_from
        .clone()
        .unwrap();
    assert_eq!(env_from[0].secret_ref.as_ref().unwrap().name, "kafka-creds");
    let m = op.metrics();
    assert!(
        m.contains("impressions_operator_reconcile_failures_total{reason=\"PolicyMissing\"}"),
        "{m}"
    );
    policies
        .delete(&policy, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_pipeline_causes_no_writes_and_other_regions_are_untouched() {
    let stack = Stack::get();
    let (client, ns) = setup("op-idle").await;
    let _op = OperatorProcess::start(stack, "local", &ns, &[]);
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    apply(&api, "idle", &pipeline("idle", "local", json!({}))).await;
    apply(
        &api,
        "foreign",
        &pipeline("foreign", "elsewhere", json!({})),
    )
    .await;
    eventually(Duration::from_secs(30), "Ready=True", || async {
        condition(&api.get("idle").await.ok()?, "Ready").filter(|c| c.0 == "True")
    })
    .await;
    // Let the Deployment's own status settle.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let versions = || async {
        let p = api.get("idle").await.unwrap().resource_version();
        let d = deployment(&client, &ns, "idle")
            .await
            .unwrap()
            .resource_version();
        let c = Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .get("idle-worker")
            .await
            .unwrap()
            .resource_version();
        let s = Api::<Service>::namespaced(client.clone(), &ns)
            .get("idle-worker")
            .await
            .unwrap()
            .resource_version();
        let b = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
            .get("idle-worker")
            .await
            .unwrap()
            .resource_version();
        (p, d, c, s, b)
    };
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(versions().await, before, "an idle pipeline was written to");

    let foreign = api.get("foreign").await.unwrap();
    assert!(
        foreign.status.is_none(),
        "a pipeline of another region got a status"
    );
    assert!(
        deployment(&client, &ns, "foreign").await.is_none(),
        "a pipeline of another region got children"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_replica_edit_is_put_back() {
    let stack = Stack::get();
    let (client, ns) = setup("op-edit").await;
    let _op = OperatorProcess::start(stack, "local", &ns, &[]);
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    apply(
        &api,
        "edit",
        &pipeline(
            "edit",
            "local",
            json!({"scaling": {"mode": "Manual"}, "replicas": 3}),
        ),
    )
    .await;
    eventually(Duration::from_secs(30), "3 replicas", || async {
        (deployment(&client, &ns, "edit").await?.spec?.replicas == Some(3)).then_some(())
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .patch(
            "edit-worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the edit put back to 3",
        || async {
            (deployment(&client, &ns, "edit").await?.spec?.replicas == Some(3)).then_some(())
        },
    )
    .await;
    // spec.replicas (through the scale subresource) is followed in Manual mode.
    let out = stack
        .kubectl()
        .args(["scale", "ipl/edit", "-n", &ns, "--replicas=4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        Duration::from_secs(30),
        "4 replicas after kubectl scale",
        || async {
            (deployment(&client, &ns, "edit").await?.spec?.replicas == Some(4)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_operators_share_a_lease_and_fail_over() {
    let stack = Stack::get();
    let (client, ns) = setup("op-lease").await;
    let flags = [
        "--leader-election",
        "--lease-namespace",
        &ns,
        "--lease-duration-seconds",
        "15",
    ];
    let mut a = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &[&flags[..], &["--identity", "op-a"]].concat(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut b = OperatorProcess::start(
        stack,
        "local",
        &ns,
        &[&flags[..], &["--identity", "op-b"]].concat(),
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || async {
        leases
            .get_opt("impressions-operator-local")
            .await
            .ok()??
            .spec?
            .holder_identity
    };
    let first = eventually(Duration::from_secs(20), "a lease holder", || async {
        holder().await.filter(|h| !h.is_empty())
    })
    .await;
    let standby_name = if first == "op-a" { "op-b" } else { "op-a" };

    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    apply(&api, "ha", &pipeline("ha", "local", json!({}))).await;
    eventually(Duration::from_secs(30), "the leader reconciles", || async {
        deployment(&client, &ns, "ha").await
    })
    .await;
    // Only the leader reconciles and writes: the standby has run no reconcile.
    let standby_metrics = if standby_name == "op-a" {
        a.metrics()
    } else {
        b.metrics()
    };
    let body = standby_metrics
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or_default();
    assert_eq!(
        parse_metric(body, "impressions_operator_reconciles_total"),
        0.0,
        "the standby reconciled:\n{body}"
    );
    assert_eq!(parse_metric(body, "impressions_operator_leader"), 0.0);
    let leader = if standby_name == "op-a" {
        &mut b
    } else {
        &mut a
    };
    leader.kill9();
    let killed_at = tokio::time::Instant::now();
    let new = eventually(
        Duration::from_secs(40),
        "the standby to take the lease",
        || async { holder().await.filter(|h| h == standby_name) },
    )
    .await;
    let failover = killed_at.elapsed();
    println!("failover to {new} took {failover:?}");
    assert!(
        failover <= Duration::from_secs(25),
        "failover took {failover:?}"
    );

    // The new leader reconciles: a spec change reaches the Deployment.
    apply(&api, "ha", &pipeline("ha", "local", json!({"scaling": {"mode": "Manual", "minReplicas": 2, "maxReplicas": 6}, "replicas": 5}))).await;
    eventually(
        Duration::from_secs(30),
        "the new leader applies the change",
        || async {
            (deployment(&client, &ns, "ha").await?.spec?.replicas == Some(5)).then_some(())
        },
    )
    .await;
}

/// Specs the API server accepts but that cannot be reconciled (a missing policy, Secret or catalog
/// ConfigMap) show as conditions; the operator stays up and keeps reconciling a valid pipeline
/// created after them.
#[tokio::test(flavor = "multi_thread")]
async fn broken_pipelines_do_not_wedge_the_operator() {
    let stack = Stack::get();
    let (client, ns) = setup("op-broken").await;
    let mut op = OperatorProcess::start(stack, "local", &ns, &[]);
    let api: Api<ImpressionPipeline> = Api::namespaced(client.clone(), &ns);
    let broken = [
        (
            "no-policy",
            json!({"scaling": {"policyRef": unique("absent"), "minReplicas": 1, "maxReplicas": 2}}),
            "PolicyMissing",
        ),
        (
            "no-secret",
            json!({"source": {"bootstrapServers": stack.kafka_bootstrap, "topic": "raw", "secretRef": {"name": "absent"}}}),
            "SecretMissing",
        ),
        (
            "no-catalog",
            json!({"enrichment": {"catalog": {"configMapRef": {"name": "absent", "key": "titles.jsonl"}}}}),
            "CatalogMissing",
        ),
    ];
    for (name, extra, _) in &broken {
        apply(&api, name, &pipeline(name, "local", extra.clone())).await;
    }
    apply(&api, "valid", &pipeline("valid", "local", json!({}))).await;
    eventually(
        Duration::from_secs(60),
        "the valid pipeline Ready",
        || async { condition(&api.get("valid").await.ok()?, "Ready").filter(|c| c.0 == "True") },
    )
    .await;
    assert!(deployment(&client, &ns, "valid").await.is_some());
    for (name, _, reason) in &broken {
        let c = eventually(Duration::from_secs(30), reason, || async {
            condition(&api.get(name).await.ok()?, "Ready").filter(|c| c.1 == *reason)
        })
        .await;
        assert_eq!(c.0, "False", "{name}: {c:?}");
        assert!(!c.2.is_empty(), "{name}: a readable message");
        assert!(deployment(&client, &ns, name).await.is_none(), "{name}");
    }
    assert!(
        op.child.try_wait().unwrap().is_none(),
        "the operator is still running:\n{}",
        op.log_tail()
    );
    op.kill9();
}
