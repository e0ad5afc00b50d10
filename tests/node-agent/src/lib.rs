//! A node agent for the local stack: it runs pods as containers from their images through runc
//! ([`oci`], [`runc`]), or as local processes of a bin folder.
//!
//! It registers a Node, binds the pods of its namespace that no scheduler has placed, and runs
//! each pod bound to it ([`pod`]): the real controller-manager creates the pods
//! from the operator's Deployment and computes the Deployment's status from the pod statuses this
//! agent reports, exactly as in a cluster. Running pods serving a `metrics` port are written to
//! Prometheus's file_sd folder ([`file_sd`]).

pub mod address;
pub mod file_sd;
pub mod launch;
pub mod node;
pub mod oci;
pub mod pod;
pub mod pod_status;
pub mod runc;

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
    /// How a pod's container runs.
    pub runtime: Runtime,
    /// Pod folders live under `<state_dir>/pods/`.
    pub state_dir: PathBuf,
    /// Prometheus file_sd folder.
    pub file_sd_dir: Option<PathBuf>,
    /// The variable set to `podIP:port` (stands in for the pod's network namespace).
    pub listen_env: Option<String>,
    /// On the agent's own stop, how long its pods get to stop (a kubelet's
    /// `shutdownGracePeriod`); processes still running after it are killed.
    pub shutdown_grace: Duration,
}

/// How the agent runs a pod's container.
#[derive(Debug, Clone)]
pub enum Runtime {
    /// As a local process: `command[0]` is a program of `bin_dir`; the image is not used and
    /// limits are not applied.
    Process { bin_dir: PathBuf },
    /// As a container from its image (podman's local storage; nothing is pulled) through runc,
    /// with its limits as cgroup limits.
    Runc(runc::Runc),
}

impl Runtime {
    /// The name the Node shows (`impressions.dev/node-agent` label, runtime version).
    pub fn name(&self) -> &'static str {
        match self {
            Runtime::Process { .. } => "process",
            Runtime::Runc(_) => "runc",
        }
    }
}

/// The deadline of each API call of the agent's loop (binding, Node heartbeat, deregistering).
pub const API_DEADLINE: Duration = Duration::from_secs(10);

/// Resolves on SIGTERM or Ctrl-C.
pub async fn stop_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.node)
            .field("namespace", &self.namespace)
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

struct Running {
    tx: watch::Sender<Option<Pod>>,
    ip: Ipv4Addr,
    version: Option<String>,
}

/// Runs until `stop` resolves (SIGTERM or Ctrl-C in the binary), then stops every pod's process
/// within the shutdown grace and deregisters the Node. A stop while starting (the API server
/// not answering) returns at once.
pub async fn run(
    agent: Agent,
    stop: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let agent = Arc::new(agent);
    if let Runtime::Runc(runc) = &agent.runtime {
        runc.delete_all().await;
    }
    let mut stop = std::pin::pin!(stop);
    let runtime = agent.runtime.name();
    tokio::select! {
        r = tokio::time::timeout(API_DEADLINE, node::register(&agent.client, &agent.node, runtime)) => {
            r.map_err(|_| anyhow::anyhow!("registering the Node: no answer within {API_DEADLINE:?}"))??
        }
        _ = &mut stop => {
            tracing::info!("stopped before the Node was registered");
            return Ok(());
        }
    }
    tracing::info!(node = %agent.node, namespace = ?agent.namespace, "node registered");
    let beat = {
        let (client, name) = (agent.client.clone(), agent.node.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(node::HEARTBEAT).await;
                match tokio::time::timeout(API_DEADLINE, node::heartbeat(&client, &name, runtime))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "node heartbeat failed"),
                    Err(_) => tracing::warn!("node heartbeat: no answer within {API_DEADLINE:?}"),
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
            .backoff(watch_backoff())
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
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut addresses = address::Addresses::new();
    let mut stopped = tokio::select! {
        r = store.wait_until_ready() => { r?; false }
        _ = &mut stop => true,
    };
    while !stopped {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = &mut stop => { stopped = true; continue; }
        }
        let pods = store.state();
        for p in &pods {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            let Some(uid) = p.uid() else { continue };
            match node {
                None if p.metadata.deletion_timestamp.is_none() => {
                    tokio::select! {
                        _ = bind(&agent, p) => {}
                        _ = &mut stop => { stopped = true; break; }
                    }
                }
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

    tracing::info!(pods = running.len(), grace = ?agent.shutdown_grace, "stopping");
    for r in running.values() {
        let _ = r.tx.send(None);
    }
    let all_stopped = tokio::time::timeout(agent.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if all_stopped.is_err() {
        // Dropping the tasks kills their processes (kill_on_drop; pdeathsig when the agent exits).
        tracing::warn!(grace = ?agent.shutdown_grace, "pods still running after the shutdown grace are killed");
        tasks.shutdown().await;
    }
    if let Runtime::Runc(runc) = &agent.runtime {
        // Containers whose runc was killed with its task.
        runc.delete_all().await;
    }
    for r in running.values() {
        addresses.release(r.ip);
    }
    feed.abort();
    beat.abort();
    if tokio::time::timeout(API_DEADLINE, node::deregister(&agent.client, &agent.node))
        .await
        .is_err()
    {
        tracing::warn!("the Node was not deleted within {API_DEADLINE:?}");
    }
    tracing::info!("stopped");
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
    let (name, params) = (p.name_any(), PostParams::default());
    let bound = api.create_subresource::<_, serde_json::Value>("binding", &name, &params, &binding);
    match tokio::time::timeout(API_DEADLINE, bound).await {
        Ok(Ok(_)) => tracing::info!(pod = %p.name_any(), "bound"),
        Ok(Err(e)) => tracing::debug!(pod = %p.name_any(), error = %e, "not bound"),
        Err(_) => tracing::warn!(pod = %p.name_any(), "binding: no answer within {API_DEADLINE:?}"),
    }
}

/// The pod watch's retry delays: 0.5 s doubling up to 2.5 s, plus a random jitter of up to the
/// delay itself (backon's), so at most 5 s (kube's default grows to 30 s and more). After
/// an API server outage the first watch usually fails once more (its resource version expired);
/// with the default the agent then stayed blind ~20 s, and pods the ReplicaSet deleted meanwhile
/// kept consuming and left their group late.
fn watch_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_millis(2500))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_watch_retries_within_five_seconds_however_long_it_failed() {
        let delays: Vec<Duration> = watch_backoff().take(30).collect();
        assert_eq!(delays.len(), 30, "retries without end");
        let most = delays.iter().max().unwrap();
        assert!(*most <= Duration::from_secs(5), "a retry waited {most:?}");
        assert!(
            delays[10..]
                .iter()
                .all(|d| *d >= Duration::from_millis(2500)),
            "the delay grows to the cap: {delays:?}"
        );
        assert!(delays[0] < Duration::from_millis(1100), "{delays:?}");
    }
}
