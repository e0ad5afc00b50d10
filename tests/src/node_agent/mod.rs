//! A node agent that runs pods as local processes (the local stack has no container runtime).
//!
//! It registers a Node, binds the pods of its namespace that no scheduler has placed, and runs
//! each pod bound to it as one process ([`pod`]): the real controller-manager creates the pods
//! from the operator's Deployment and computes the Deployment's status from the pod statuses this
//! agent reports, exactly as in a cluster. Running pods serving a `metrics` port are written to
//! Prometheus's file_sd folder ([`file_sd`]).

pub mod address;
pub mod file_sd;
pub mod launch;
pub mod node;
pub mod pod;
pub mod pod_status;

use std::{
    collections::{BTreeSet, HashMap},
    net::Ipv4Addr,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    api::PostParams,
    runtime::{WatchStreamExt, reflector, watcher},
};
use tokio::{sync::watch, task::JoinSet};

/// The agent's settings.
#[derive(Clone)]
pub struct Agent {
    pub client: Client,
    /// The Node's name.
    pub node: String,
    /// The namespace whose pods it runs (`None`: all).
    pub namespace: Option<String>,
    /// Where `command[0]` of a container is found.
    pub bin_dir: PathBuf,
    /// Pod folders live under `<state_dir>/pods/`.
    pub state_dir: PathBuf,
    /// Prometheus file_sd folder.
    pub file_sd_dir: Option<PathBuf>,
    /// The variable set to `podIP:port` (stands in for the pod's network namespace).
    pub listen_env: Option<String>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.node)
            .field("namespace", &self.namespace)
            .field("bin_dir", &self.bin_dir)
            .finish_non_exhaustive()
    }
}

struct Running {
    tx: watch::Sender<Option<Pod>>,
    ip: Ipv4Addr,
    version: Option<String>,
}

/// Runs until SIGTERM or Ctrl-C, then stops every pod's process and deregisters the Node.
pub async fn run(agent: Agent) -> anyhow::Result<()> {
    let agent = Arc::new(agent);
    node::register(&agent.client, &agent.node).await?;
    tracing::info!(node = %agent.node, namespace = ?agent.namespace, "node registered");
    let beat = {
        let (client, name) = (agent.client.clone(), agent.node.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(node::HEARTBEAT).await;
                if let Err(e) = node::heartbeat(&client, &name).await {
                    tracing::warn!(error = %e, "node heartbeat failed");
                }
            }
        })
    };

    let api: Api<Pod> = match &agent.namespace {
        Some(ns) => Api::namespaced(agent.client.clone(), ns),
        None => Api::all(agent.client.clone()),
    };
    let (store, writer) = reflector::store::<Pod>();
    let changed = Arc::new(tokio::sync::Notify::new());
    let feed = {
        let changed = changed.clone();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .touched_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    tracing::warn!(error = %e, "pod watch error");
                }
                changed.notify_one();
            }
        })
    };
    store.wait_until_ready().await?;

    let mut running: HashMap<String, Running> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut addresses = address::Addresses::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        let pods = store.state();
        for p in &pods {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            let Some(uid) = p.uid() else { continue };
            match node {
                None if p.metadata.deletion_timestamp.is_none() => bind(&agent, p).await,
                Some(n) if n == agent.node => {
                    let version = p.resource_version();
                    if let Some(r) = running.get_mut(&uid) {
                        if r.version != version {
                            r.version = version;
                            let _ = r.tx.send(Some((**p).clone()));
                        }
                    } else {
                        let used = running.values().map(|r| r.ip).collect();
                        let ip = addresses.take(&used);
                        let (tx, rx) = watch::channel(Some((**p).clone()));
                        tasks.spawn(pod::run(agent.clone(), ip, rx));
                        running.insert(uid, Running { tx, ip, version });
                    }
                }
                _ => {}
            }
        }
        // Pods gone from the API (deleted by someone else): stop their processes.
        let live: BTreeSet<String> = pods.iter().filter_map(|p| p.uid()).collect();
        running.retain(|uid, r| {
            let keep = live.contains(uid) && !r.tx.is_closed();
            if !keep {
                let _ = r.tx.send(None);
                addresses.release(r.ip);
            }
            keep
        });
        while tasks.try_join_next().is_some() {}
    }

    tracing::info!(pods = running.len(), "stopping");
    for r in running.values() {
        let _ = r.tx.send(None);
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    for r in running.values() {
        addresses.release(r.ip);
    }
    feed.abort();
    beat.abort();
    node::deregister(&agent.client, &agent.node).await;
    Ok(())
}

/// Binds an unscheduled pod to this node (the agent is the only scheduler here).
async fn bind(agent: &Agent, p: &Pod) {
    let api: Api<Pod> = Api::namespaced(agent.client.clone(), &p.namespace().unwrap_or_default());
    let binding = serde_json::json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": { "name": p.name_any() },
        "target": { "apiVersion": "v1", "kind": "Node", "name": agent.node },
    });
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &p.name_any(),
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => tracing::info!(pod = %p.name_any(), "bound"),
        Err(e) => tracing::debug!(pod = %p.name_any(), error = %e, "not bound"),
    }
}
