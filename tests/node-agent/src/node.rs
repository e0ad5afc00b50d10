//! The Node object: registered at start, its Ready condition renewed as a kubelet does, deleted
//! on a clean stop.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

/// How often the Ready condition's heartbeat is renewed (the node lifecycle controller marks a
/// node unreachable after 40 s without one).
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// Creates the Node (or takes over an existing one of the same name) and marks it Ready.
pub async fn register(client: &Client, name: &str, runtime: &str) -> kube::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "impressions.dev/node-agent": runtime,
        }},
    }))
    .expect("node object");
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    heartbeat(client, name, runtime).await
}

/// Renews the Ready condition.
pub async fn heartbeat(client: &Client, name: &str, runtime: &str) -> kube::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let capacity = json!({"cpu": cores.to_string(), "memory": "16Gi", "pods": "110"});
    let status = json!({ "status": {
        "capacity": capacity, "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": format!("the impressions node agent runs pods ({runtime})"),
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
            "osImage": "impressions node agent", "containerRuntimeVersion": format!("{runtime}://impressions-node-agent"),
            "kubeletVersion": "v0.0.0-node-agent", "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": std::env::consts::ARCH,
        },
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map(|_| ())
}

/// Deletes the Node.
pub async fn deregister(client: &Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}
