//! The node agent's container mode (`node_agent --runtime runc`) on the stack: a worker pod with
//! `resources.limits.cpu: 500m` runs from the worker image (`make images`) as a runc container
//! whose cgroup has a 50 ms quota per 100 ms period and the memory limit, as the non-root user of
//! its security context, with its ConfigMap mounted; it reports Running and Ready with the image's
//! ID. A container that exits is restarted with its exit code in the pod status; a pod whose
//! image is not on the node waits with `ErrImageNeverPull`; a deleted pod's container is stopped
//! and its cgroup removed.

use std::{path::PathBuf, time::Duration};

use impressions_tests::{
    Stack, cluster, images,
    operator::eventually,
    processes::NodeAgentProcess,
    unique,
    worker::{self},
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::{Value, json};

fn worker_pod(name: &str, image: &str, args: &[&str]) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 20,
            // As the operator's worker pods: no ServiceAccount token (a projected volume).
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532},
            "containers": [{
                "name": "worker", "image": image,
                "command": ["worker"], "args": args,
                "ports": [{"name": "metrics", "containerPort": 9464}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 1},
                "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/impressions", "readOnly": true}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": "worker"}}],
        },
    }))
    .unwrap()
}

fn container_status(p: &Pod) -> Value {
    let s = serde_json::to_value(p.status.clone().unwrap_or_default()).unwrap();
    s["containerStatuses"][0].clone()
}

fn cgroup(controller: &str, ns: &str, pod: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join("impressions-node-agent")
        .join(format!("{ns}_{pod}"))
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_run_as_limited_containers_from_their_images() {
    let stack = Stack::get();
    let image = images::image("worker");
    images::require(&image);
    let client = stack.client().await;
    let ns = cluster::namespace(&client, &unique("ctr")).await.unwrap();
    let t = worker::topics(stack, "ctr", 2, 10).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = json!({"metadata": {"name": "worker"}, "data": {"worker.yaml": worker::config(stack, &t, "")}});
    cms.create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
        .await
        .unwrap();
    let agent = NodeAgentProcess::start_containers(stack, &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    let run = ["run", "--config", "/etc/impressions/worker.yaml"];
    pods.create(&pp, &worker_pod("limited", &image, &run))
        .await
        .unwrap();
    pods.create(
        &pp,
        &worker_pod(
            "crashing",
            &image,
            &["run", "--config", "/etc/impressions/absent.yaml"],
        ),
    )
    .await
    .unwrap();
    pods.create(
        &pp,
        &worker_pod("absent", "ghcr.io/impressions/absent:0.0.0", &run),
    )
    .await
    .unwrap();

    // Running and Ready, from the image.
    let p = eventually(Duration::from_secs(90), "the limited pod Ready", || async {
        let p = pods.get("limited").await.ok()?;
        let ready = container_status(&p)["ready"] == true;
        ready.then_some(p)
    })
    .await;
    let cs = container_status(&p);
    assert_eq!(cs["image"], image.as_str(), "{cs}");
    assert!(
        !cs["imageID"].as_str().unwrap_or_default().is_empty(),
        "{cs}"
    );
    assert_eq!(
        serde_json::to_value(p.status.unwrap()).unwrap()["phase"],
        "Running"
    );

    // Its cgroup has the limits; its process runs as the security context's user.
    assert_eq!(
        read(cgroup("cpu", &ns, "limited").join("cpu.cfs_quota_us")),
        "50000"
    );
    assert_eq!(
        read(cgroup("cpu", &ns, "limited").join("cpu.cfs_period_us")),
        "100000"
    );
    assert_eq!(
        read(cgroup("cpu", &ns, "limited").join("cpu.shares")),
        "256"
    );
    assert_eq!(
        read(cgroup("memory", &ns, "limited").join("memory.limit_in_bytes")),
        (256 * 1024 * 1024).to_string()
    );
    let procs = read(cgroup("cpu", &ns, "limited").join("cgroup.procs"));
    let pid: u32 = procs
        .lines()
        .next()
        .expect("a process in the cgroup")
        .parse()
        .unwrap();
    assert_eq!(images::uid_of(pid), 65532);

    // A container that exits is restarted, with its exit code.
    let cs = eventually(
        Duration::from_secs(60),
        "the crashing pod restarted",
        || async {
            let cs = container_status(&pods.get("crashing").await.ok()?);
            (cs["restartCount"].as_i64() >= Some(1)).then_some(cs)
        },
    )
    .await;
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1, "{cs}");

    // An image that is not on the node: the kubelet's ErrImageNeverPull.
    let cs = eventually(
        Duration::from_secs(30),
        "the absent image's waiting reason",
        || async {
            let cs = container_status(&pods.get("absent").await.ok()?);
            (!cs["state"]["waiting"]["reason"].is_null()).then_some(cs)
        },
    )
    .await;
    assert_eq!(
        cs["state"]["waiting"]["reason"], "ErrImageNeverPull",
        "{cs}"
    );
    assert!(
        cs["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("make images"),
        "{cs}"
    );

    // Deleted: SIGTERM, the worker drains, the container and its cgroup are gone.
    pods.delete("limited", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(40),
        "the limited pod removed",
        || async { pods.get_opt("limited").await.ok()?.is_none().then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(10), "its cgroup removed", || async {
        (!cgroup("cpu", &ns, "limited").exists()).then_some(())
    })
    .await;
    let log = std::fs::read_to_string(agent.log.clone()).unwrap_or_default();
    assert!(
        !log.contains("SIGKILL"),
        "the worker stopped within its grace:\n{log}"
    );
    drop(agent);
}
