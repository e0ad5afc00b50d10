//! The node agent restarts a process whose liveness probe fails, as a kubelet does: a worker
//! whose liveness probe asks a path it does not serve is stopped and started again (its restart
//! count and last termination in the pod's status), while a worker whose probe passes is left
//! alone over the same time; once deleted, its log is kept by the agent.

use std::time::Duration;

use impressions_tests::{
    Stack, cluster,
    processes::NodeAgentProcess,
    unique,
    worker::{self},
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{Api, api::PostParams};
use serde_json::json;

fn pod(name: &str, node: &str, liveness_path: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "worker",
                "image": "impressions-worker",
                "command": ["worker"],
                "args": ["run", "--config", "/etc/impressions/worker.yaml"],
                "ports": [{"name": "metrics", "containerPort": 9464}],
                "livenessProbe": {"httpGet": {"path": liveness_path, "port": "metrics"},
                                  "initialDelaySeconds": 2, "periodSeconds": 1, "failureThreshold": 2},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/impressions"}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": "worker"}}],
        }
    }))
    .expect("a pod")
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(0, |c| c.restart_count)
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_process_and_a_passing_one_does_not() {
    let stack = Stack::get();
    let client = stack.client().await;
    let ns = cluster::namespace(&client, &unique("liveness"))
        .await
        .unwrap();
    let topics = worker::topics(stack, &unique("liveness"), 2, 20).await;
    let config = worker::config(stack, &topics, "");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "worker"},
        "data": {"worker.yaml": config},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut agent = NodeAgentProcess::start(stack, &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for (name, path) in [("dead", "/no-such-path"), ("alive", "/healthz")] {
        pods.create(&PostParams::default(), &pod(name, &agent.node, path))
            .await
            .unwrap();
    }

    // Probed every second from 2 s on, two failures in a row: restarted within a few seconds
    // of starting (the worker stops on SIGTERM within its 5 s grace), then again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let dead = loop {
        if let Ok(p) = pods.get("dead").await
            && restarts(&p) >= 2
        {
            break p;
        }
        if tokio::time::Instant::now() > deadline {
            let tail = agent.log_tail();
            agent.stop();
            panic!("the pod whose liveness probe fails was not restarted twice in 60 s:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let last = dead
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .cloned();
    assert!(
        last.is_some(),
        "a restarted container shows how it ended: {:?}",
        dead.status
    );
    let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
    assert!(
        log.contains("liveness probe failed 2 times in a row"),
        "the agent says why it restarted the process:\n{}",
        agent.log_tail()
    );
    let alive = pods.get("alive").await.unwrap();
    let ready_running = alive
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
    assert!(
        ready_running && restarts(&alive) == 0,
        "the pod whose liveness probe passes runs unrestarted: {:?}",
        alive.status
    );
    // A deleted pod's folder goes; its process's log is kept under the agent's state.
    pods.delete("alive", &Default::default()).await.unwrap();
    let kept = agent.state_dir.join("logs").join(format!("{ns}_alive.log"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&kept).is_ok_and(|l| l.contains("starting")) {
        if tokio::time::Instant::now() > deadline {
            let tail = agent.log_tail();
            agent.stop();
            panic!(
                "the deleted pod's log was not kept at {}:\n{tail}",
                kept.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    agent.stop();
}
