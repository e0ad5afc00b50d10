//! The Helm chart installed on the stack's RBAC-enforcing API server (`helm install`): its
//! ServiceAccount's token is enough for the real operator binary to reconcile a pipeline end to
//! end (cluster-wide, or confined to `watchNamespaces`), and is refused what the operator must
//! never do. The chart rendered without an API server is tests/tests/chart_render.rs.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use impressions_crds::{ImpressionPipeline, conditions};
use impressions_tests::{
    Stack,
    chart::{self, helm, run, text},
    cluster,
    operator::{OperatorProcess, eventually},
    repo_root, unique,
    worker::{binary, free_port},
};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        coordination::v1::Lease,
        core::v1::{ConfigMap, Event, Namespace, Pod, Secret, Service},
        policy::v1::PodDisruptionBudget,
        rbac::v1::ClusterRoleBinding,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

/// Uninstalls the release and deletes what the test created, also when it fails.
struct Installed {
    release: String,
    release_ns: String,
    namespaces: Vec<String>,
    policy: String,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let stack = Stack::get();
        let _ = helm(stack)
            .args(["uninstall", &self.release, "-n", &self.release_ns, "--wait"])
            .stdout(Stdio::null())
            .status();
        let _ = stack
            .kubectl()
            .args([
                "delete",
                "scalingpolicy",
                &self.policy,
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .status();
        let _ = stack
            .kubectl()
            .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
            .args(&self.namespaces)
            .stdout(Stdio::null())
            .status();
    }
}

/// A kubeconfig for `token`: the admin kubeconfig's cluster (server and CA), the token as user.
fn token_kubeconfig(stack: &Stack, token: &str, name: &str) -> PathBuf {
    let admin: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&stack.kubeconfig).unwrap()).unwrap();
    let cluster = admin["clusters"][0]["name"].as_str().unwrap();
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": cluster, "user": name}}],
        "current-context": name,
    });
    let dir = std::env::temp_dir().join("impressions-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

async fn client_from(path: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// The API server's answer was 403 Forbidden.
fn assert_forbidden<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    match r {
        Err(kube::Error::Api(e)) if e.code == 403 => println!("refused (403): {what}"),
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

fn condition(p: &ImpressionPipeline, t: &str) -> Option<(String, String, String)> {
    let c = conditions::get(&p.status.as_ref()?.conditions, t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Installs the chart (all namespaces, or only the pipeline's with `namespaced`), runs the real
/// operator with the chart ServiceAccount's token, and checks what that token may and may not do.
async fn installed_chart_is_sufficient_and_least_privilege(namespaced: bool) {
    let stack = Stack::get();
    let admin = stack.client().await;
    cluster::install_crds(&admin).await.expect("install CRDs");
    let region = unique("chart");
    let release = unique("imp");
    let release_ns = cluster::namespace(&admin, &unique("chart-op"))
        .await
        .unwrap();
    let ns = cluster::namespace(&admin, &unique("chart-pl"))
        .await
        .unwrap();
    let other = cluster::namespace(&admin, &unique("chart-other"))
        .await
        .unwrap();
    let _installed = Installed {
        release: release.clone(),
        release_ns: release_ns.clone(),
        namespaces: vec![release_ns.clone(), ns.clone(), other.clone()],
        policy: region.clone(),
    };

    // helm install, as the chart's users would.
    let mut install = helm(stack);
    install
        .args(["install", &release])
        .arg(chart::dir())
        .args(["--namespace", &release_ns])
        .args(["--set", &format!("region={region}")])
        .args(["--set", &format!("prometheusUrl={}", stack.prometheus_url)]);
    if namespaced {
        install.args(["--set", &format!("watchNamespaces={{{ns}}}")]);
    }
    let out = run(&mut install);
    assert!(out.status.success(), "helm install:\n{}", text(&out));
    let sa = format!("{release}-impressions-operator");
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &release_ns)
        .get(&sa)
        .await
        .expect("the chart's Deployment");
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));

    // The chart ServiceAccount's token, not admin.
    let out = run(Command::new("bash")
        .arg(repo_root().join("tests/stack/stack.sh"))
        .args(["token", &release_ns, &sa, "3600"])
        .env("IMPRESSIONS_STACK_DIR", &stack.dir));
    assert!(out.status.success(), "stack.sh token: {}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let kubeconfig = token_kubeconfig(stack, &token, &release);
    let as_sa = client_from(&kubeconfig).await;
    let who = run(stack.kubectl().env("KUBECONFIG", &kubeconfig).args([
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&who.stdout),
        format!("system:serviceaccount:{release_ns}:{sa}"),
        "{}",
        text(&who)
    );

    // What a pipeline refers to, created by its owners (admin here).
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "kafka-credentials"},
        "stringData": {"sasl.username": "impressions", "sasl.password": "s3cret"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let catalog: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "titles"},
        "data": {"titles.json": "[{\"videoId\": 1, \"showId\": 10, \"title\": \"One\"}]"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &catalog)
        .await
        .unwrap();
    // The SREs' default policy of the region (cluster-scoped, named after the region).
    let policy = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ScalingPolicy",
        "metadata": {"name": region}, "spec": {"defaultForRegion": region, "minReplicas": 1, "maxReplicas": 4}});
    Api::<impressions_crds::ScalingPolicy>::all(admin.clone())
        .patch(
            &region,
            &PatchParams::apply(cluster::MANAGER),
            &Patch::Apply(&policy),
        )
        .await
        .unwrap();

    // The real operator, as the chart runs it, authenticated by the ServiceAccount's token.
    let port = free_port();
    let identity = format!("{release}-0");
    let dir = std::env::temp_dir().join("impressions-tests");
    let log = dir.join(format!("operator-{release}.log"));
    let mut cmd = Command::new(binary("operator"));
    cmd.args(["run", "--region", &region, "--leader-election"])
        .args(["--lease-namespace", &release_ns, "--identity", &identity])
        .args(["--worker-image", "impressions/worker:test"])
        .args(["--prometheus-url", &stack.prometheus_url])
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"));
    if namespaced {
        cmd.args(["--namespace", &ns]);
    }
    let child = cmd
        .env("KUBECONFIG", &kubeconfig)
        .env("OPERATOR_LOG", "info,impressions_operator=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start operator");
    let op = OperatorProcess {
        child,
        metrics_port: port,
        log,
    };

    // A pipeline reconciled end to end: policy, Secret and ConfigMap references resolved,
    // children applied, status written, Events published, the leader Lease held.
    let api: Api<ImpressionPipeline> = Api::namespaced(admin.clone(), &ns);
    let pipeline = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
    "metadata": {"name": "imp"},
    "spec": {
        "region": region,
        "source": {"bootstrapServers": stack.kafka_bootstrap, "topic": "raw",
                   "secretRef": {"name": "kafka-credentials"}},
        "sink": {"topic": "out", "deadLetterTopic": "dlq", "secretRef": {"name": "kafka-credentials"}},
        "enrichment": {"catalog": {"configMapRef": {"name": "titles", "key": "titles.json"}}},
        "scaling": {"mode": "Auto", "minReplicas": 1, "maxReplicas": 3}
    }});
    api.patch(
        "imp",
        &PatchParams::apply(cluster::MANAGER),
        &Patch::Apply(&pipeline),
    )
    .await
    .unwrap();
    let ready = eventually(Duration::from_secs(60), "Ready=True", || async {
        let p = api.get("imp").await.ok()?;
        condition(&p, conditions::READY).filter(|c| c.0 == "True")?;
        Some(p)
    })
    .await;
    // The region's ScalingPolicy was found through the policy watch.
    let scaling = condition(&ready, conditions::SCALING).expect("a Scaling condition");
    assert!(
        scaling.2.contains(&format!("ScalingPolicy {region}")),
        "policy not applied: {scaling:?}"
    );
    for (kind, present) in [
        (
            "Deployment",
            Api::<Deployment>::namespaced(admin.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "ConfigMap",
            Api::<ConfigMap>::namespaced(admin.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "Service",
            Api::<Service>::namespaced(admin.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "PodDisruptionBudget",
            Api::<PodDisruptionBudget>::namespaced(admin.clone(), &ns)
                .get_opt("imp-worker")
                .await
                .unwrap()
                .is_some(),
        ),
    ] {
        assert!(present, "{kind} imp-worker not applied");
    }
    eventually(
        Duration::from_secs(20),
        "a ChildrenCreated Event",
        || async {
            let events = Api::<Event>::namespaced(admin.clone(), &ns)
                .list(&ListParams::default())
                .await
                .ok()?;
            events
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("ChildrenCreated"))
                .then_some(())
        },
    )
    .await;
    // The leader Lease: created, then renewed (update) every lease duration / 3.
    let leases = Api::<Lease>::namespaced(admin.clone(), &release_ns);
    let lease_name = format!("impressions-operator-{region}");
    let held = |l: &Lease| {
        let spec = l.spec.clone().unwrap_or_default();
        (spec.holder_identity, spec.renew_time.map(|t| t.0))
    };
    let (holder, first_renewal) = held(&leases.get(&lease_name).await.expect("the leader Lease"));
    assert_eq!(holder.as_deref(), Some(identity.as_str()));
    eventually(Duration::from_secs(20), "the Lease renewed", || async {
        let (_, renewed) = held(&leases.get(&lease_name).await.ok()?);
        (renewed > first_renewal).then_some(())
    })
    .await;
    // A change of the pipeline is applied too (the watch and the status patch keep working).
    api.patch(
        "imp",
        &PatchParams::apply(cluster::MANAGER),
        &Patch::Merge(json!({"spec": {"sink": {"topic": "out-v2"}}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "the change applied", || async {
        let cm = Api::<ConfigMap>::namespaced(admin.clone(), &ns)
            .get("imp-worker")
            .await
            .ok()?;
        cm.data?["worker.yaml"].contains("out-v2").then_some(())
    })
    .await;
    // A clean stop (SIGTERM) releases the Lease (patch), so a standby takes over at once.
    let mut op = op;
    let term = run(Command::new("kill").args(["-TERM", &op.child.id().to_string()]));
    assert!(term.status.success(), "{}", text(&term));
    let stopped = tokio::task::block_in_place(|| op.child.wait()).unwrap();
    assert!(
        stopped.success(),
        "operator exit {stopped}:\n{}",
        op.log_tail()
    );
    let (holder, _) = held(&leases.get(&lease_name).await.unwrap());
    assert_eq!(holder, None, "the Lease was not released");
    let log = std::fs::read_to_string(&op.log).unwrap().to_lowercase();
    assert!(
        !log.contains("forbidden"),
        "the operator was refused a call:\n{}",
        op.log_tail()
    );

    // The schema step's calls, granted (a dry run: the pipeline here has no worker windows for
    // the operator to create its RawEventSchema from): the worker Service's EndpointSlices, the
    // RawEventSchema read and applied. Its status write needs the object to exist, so it is
    // proven with the admin credentials only (tests/tests/schema_drift.rs).
    Api::<k8s_openapi::api::discovery::v1::EndpointSlice>::namespaced(as_sa.clone(), &ns)
        .list(&ListParams::default().labels("kubernetes.io/service-name=imp-worker"))
        .await
        .expect("list the worker Service's EndpointSlices");
    // The archive's removal deletes the archiver's Deployment and ConfigMap: granted (dry runs
    // on the worker's children, which exist, so the API server answers past authorization).
    Api::<Deployment>::namespaced(as_sa.clone(), &ns)
        .delete("imp-worker", &DeleteParams::default().dry_run())
        .await
        .expect("delete a Deployment (dry run)");
    Api::<ConfigMap>::namespaced(as_sa.clone(), &ns)
        .delete("imp-worker", &DeleteParams::default().dry_run())
        .await
        .expect("delete a ConfigMap (dry run)");
    let schemas = Api::<impressions_crds::RawEventSchema>::namespaced(as_sa.clone(), &ns);
    schemas
        .get_opt("imp")
        .await
        .expect("get the pipeline's RawEventSchema");
    let body = json!({"apiVersion": "impressions.dev/v1alpha1", "kind": "RawEventSchema",
        "metadata": {"name": "imp"}, "spec": {}});
    schemas
        .patch(
            "imp",
            &PatchParams::apply("impressions-operator").dry_run(),
            &Patch::Apply(&body),
        )
        .await
        .expect("apply a RawEventSchema");

    // The same token is refused what the operator must never do. Writes are dry runs, so a
    // wrong grant fails the test without harm.
    let dry_delete = DeleteParams::default().dry_run();
    let dry_create = PostParams {
        dry_run: true,
        ..Default::default()
    };
    assert_forbidden(
        "list Secrets in the pipeline namespace",
        Api::<Secret>::namespaced(as_sa.clone(), &ns)
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "list Secrets in another namespace",
        Api::<Secret>::namespaced(as_sa.clone(), &other)
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "list Secrets cluster-wide",
        Api::<Secret>::all(as_sa.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "delete a CRD",
        Api::<CustomResourceDefinition>::all(as_sa.clone())
            .delete("impressionpipelines.impressions.dev", &dry_delete)
            .await,
    );
    assert_forbidden(
        "delete a namespace",
        Api::<Namespace>::all(as_sa.clone())
            .delete(&other, &dry_delete)
            .await,
    );
    assert_forbidden(
        "delete a pipeline",
        Api::<ImpressionPipeline>::namespaced(as_sa.clone(), &ns)
            .delete("imp", &dry_delete)
            .await,
    );
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap();
    assert_forbidden(
        "create a pod",
        Api::<Pod>::namespaced(as_sa.clone(), &ns)
            .create(&dry_create, &pod)
            .await,
    );
    assert_forbidden(
        "read a pod by name (only a list by a pipeline's selector is needed)",
        Api::<Pod>::namespaced(as_sa.clone(), &ns)
            .get("probe")
            .await,
    );
    assert_forbidden(
        "delete a RawEventSchema (its pipeline owns it)",
        Api::<impressions_crds::RawEventSchema>::namespaced(as_sa.clone(), &ns)
            .delete("imp", &dry_delete)
            .await,
    );
    let crb: ClusterRoleBinding = serde_json::from_value(json!({"metadata": {"name": unique("escalate")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": release_ns}]}))
    .unwrap();
    assert_forbidden(
        "bind itself to cluster-admin",
        Api::<ClusterRoleBinding>::all(as_sa.clone())
            .create(&dry_create, &crb)
            .await,
    );
    assert_forbidden(
        "modify a ScalingPolicy",
        Api::<impressions_crds::ScalingPolicy>::all(as_sa.clone())
            .delete(&region, &dry_delete)
            .await,
    );
    assert_forbidden(
        "read another Lease in its namespace",
        Api::<Lease>::namespaced(as_sa.clone(), &release_ns)
            .get("someone-else")
            .await,
    );
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    assert_forbidden(
        "create a Lease in another namespace",
        Api::<Lease>::namespaced(as_sa.clone(), &other)
            .create(&dry_create, &lease)
            .await,
    );
    let secret_elsewhere = Api::<Secret>::namespaced(as_sa.clone(), &other)
        .get_metadata_opt("kafka-credentials")
        .await;
    if namespaced {
        assert_forbidden(
            "read a Secret outside the watched namespaces",
            secret_elsewhere,
        );
        assert_forbidden(
            "list pipelines outside the watched namespaces",
            Api::<ImpressionPipeline>::namespaced(as_sa.clone(), &other)
                .list(&ListParams::default())
                .await,
        );
        let d: Deployment = serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "intruder", "namespace": other},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
        .unwrap();
        assert_forbidden(
            "apply a Deployment outside the watched namespaces",
            Api::<Deployment>::namespaced(as_sa.clone(), &other)
                .patch(
                    "intruder",
                    &PatchParams::apply("x").dry_run(),
                    &Patch::Apply(&d),
                )
                .await,
        );
    } else {
        // Watching every namespace, the operator may get (never list) a named Secret anywhere:
        // a pipeline's secretRef may be in any namespace. watchNamespaces confines it.
        assert!(
            secret_elsewhere.is_ok(),
            "get by name is granted: {secret_elsewhere:?}"
        );
    }
    let can = run(stack
        .kubectl()
        .env("KUBECONFIG", &kubeconfig)
        .args(["auth", "can-i", "--list", "-n", &ns]));
    println!(
        "kubectl auth can-i --list -n <pipeline namespace> as the chart's ServiceAccount:\n{}",
        text(&can)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn installed_chart_lets_the_operator_reconcile_and_refuses_the_rest() {
    installed_chart_is_sufficient_and_least_privilege(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn installed_chart_with_watched_namespaces_confines_the_operator_to_them() {
    installed_chart_is_sufficient_and_least_privilege(true).await;
}
