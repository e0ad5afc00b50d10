//! Where the workers' reports come from (IO): the pipeline's running worker pods (a list of
//! the API server, by the pipeline's selector) and each pod's `GET /schema/windows` on its pod
//! IP and metrics port, a few pods at a time, every call with a deadline. A pod that does not
//! answer is left out of this read (its windows stay on its board for the next read).

use std::time::Duration;

use futures::{StreamExt, future::BoxFuture};
use impressions_worker_core::schema::report::SchemaReport;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};

/// The labels that select a pipeline's worker pods, as `k=v,k=v`.
pub type Selector = String;

/// What a read of one pipeline's reports failed on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("listing the worker pods: {0}")]
    Pods(#[source] kube::Error),
    #[error("listing the worker pods took longer than {0:?}")]
    PodsTimeout(Duration),
}

impl SourceError {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Pods(_) => "pods",
            SourceError::PodsTimeout(_) => "pods_timeout",
        }
    }
}

/// One pipeline's read: the reports, and the pods that did not answer (pod, why).
#[derive(Debug, Default)]
pub struct Read {
    pub reports: Vec<SchemaReport>,
    pub failed: Vec<(String, String)>,
}

/// Reads the schema reports of a pipeline's workers.
pub trait ReportSource: Send + Sync {
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Read, SourceError>>;
}

/// The workers' reports through the API server (pods) and the pods' metrics port.
#[derive(Clone)]
pub struct PodReports {
    client: Client,
    http: reqwest::Client,
    deadline: Duration,
    concurrency: usize,
    /// The container port name that serves `/schema/windows`; its number when the pod does not
    /// name one.
    port_name: &'static str,
    default_port: i32,
}

impl std::fmt::Debug for PodReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodReports")
            .field("deadline", &self.deadline)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl PodReports {
    /// Reads with `deadline` per call (the pod list, each pod's GET), `concurrency` pods at once,
    /// from the container port named `port_name` (else `default_port`).
    pub fn new(
        client: Client,
        deadline: Duration,
        concurrency: usize,
        port_name: &'static str,
        default_port: i32,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(deadline)
            .connect_timeout(deadline)
            .build()?;
        Ok(PodReports {
            client,
            http,
            deadline,
            concurrency: concurrency.max(1),
            port_name,
            default_port,
        })
    }

    /// `http://IP:PORT/schema/windows` of each running pod with an IP.
    fn targets(&self, pods: &[Pod]) -> Vec<(String, String)> {
        pods.iter()
            .filter_map(|p| {
                let status = p.status.as_ref()?;
                if status.phase.as_deref() != Some("Running") {
                    return None;
                }
                let ip = status.pod_ip.as_deref()?;
                let port = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.ports.as_ref())
                    .and_then(|ports| {
                        ports
                            .iter()
                            .find(|cp| cp.name.as_deref() == Some(self.port_name))
                    })
                    .map_or(self.default_port, |cp| cp.container_port);
                let name = p.metadata.name.clone().unwrap_or_default();
                Some((name, format!("http://{ip}:{port}/schema/windows")))
            })
            .collect()
    }

    async fn get(&self, url: &str) -> Result<Vec<SchemaReport>, String> {
        let resp = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }
}

impl ReportSource for PodReports {
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Read, SourceError>> {
        Box::pin(async move {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            let lp = ListParams::default().labels(selector);
            let pods = tokio::time::timeout(self.deadline, api.list(&lp))
                .await
                .map_err(|_| SourceError::PodsTimeout(self.deadline))?
                .map_err(SourceError::Pods)?;
            let targets = self.targets(&pods.items);
            let answers: Vec<(String, Result<Vec<SchemaReport>, String>)> =
                futures::stream::iter(targets)
                    .map(|(pod, url)| async move { (pod, self.get(&url).await) })
                    .buffer_unordered(self.concurrency)
                    .collect()
                    .await;
            let mut read = Read::default();
            for (pod, answer) in answers {
                match answer {
                    Ok(mut reports) => read.reports.append(&mut reports),
                    Err(e) => read.failed.push((pod, e)),
                }
            }
            Ok(read)
        })
    }
}
