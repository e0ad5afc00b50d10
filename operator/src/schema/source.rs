//! Where the workers' reports come from (IO): the ready worker pods behind the pipeline's
//! headless worker Service (its EndpointSlices, listed from the API server: the operator reads
//! no pods) and each pod's `GET /schema/windows` on its IP and metrics port, a few pods at a
//! time, every call with a deadline. A pod that does not answer is left out of this read (its
//! windows stay on its board for the next read).

use std::time::Duration;

use futures::{StreamExt, future::BoxFuture};
use impressions_worker_core::schema::report::SchemaReport;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, Client, api::ListParams};

/// What a read of one pipeline's reports failed on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("listing the worker Service's EndpointSlices: {0}")]
    Endpoints(#[source] kube::Error),
    #[error("listing the worker Service's EndpointSlices took longer than {0:?}")]
    EndpointsTimeout(Duration),
}

impl SourceError {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Endpoints(_) => "endpoints",
            SourceError::EndpointsTimeout(_) => "endpoints_timeout",
        }
    }
}

/// One pipeline's read: the reports, per pod that answered the latest window multiple it
/// reported (`None`: no window ended after the read's `endAfterMs`), and the pods that did not
/// answer (pod, why).
#[derive(Debug, Default)]
pub struct Read {
    pub reports: Vec<SchemaReport>,
    pub latest: Vec<Option<i64>>,
    pub failed: Vec<(String, String)>,
}

/// Reads the schema reports of a pipeline's workers, the pods behind `service`: the windows
/// that ended after `end_after_ms` (all the workers keep, without it).
pub trait ReportSource: Send + Sync {
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        service: &'a str,
        end_after_ms: Option<i64>,
    ) -> BoxFuture<'a, Result<Read, SourceError>>;
}

/// The workers' reports through the API server (EndpointSlices) and the pods' metrics port.
#[derive(Clone)]
pub struct PodReports {
    client: Client,
    http: reqwest::Client,
    deadline: Duration,
    concurrency: usize,
    /// The Service port name that serves `/schema/windows`; its number when a slice does not
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
    /// Reads with `deadline` per call (the EndpointSlice list, each pod's GET), `concurrency` pods at once,
    /// from the port named `port_name` (else `default_port`).
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

    /// `http://IP:PORT/schema/windows` of each endpoint not known to be unready, named by its
    /// pod.
    fn targets(&self, slices: &[EndpointSlice]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for slice in slices {
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(self.port_name))
                .and_then(|p| p.port)
                .unwrap_or(self.default_port);
            for e in slice.endpoints.iter().flatten() {
                if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                let Some(ip) = e.addresses.first() else {
                    continue;
                };
                let host = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.clone()
                };
                let pod = e
                    .target_ref
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_else(|| ip.clone());
                out.push((pod, format!("http://{host}:{port}/schema/windows")));
            }
        }
        out
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
        service: &'a str,
        end_after_ms: Option<i64>,
    ) -> BoxFuture<'a, Result<Read, SourceError>> {
        Box::pin(async move {
            let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), namespace);
            let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
            let slices = tokio::time::timeout(self.deadline, api.list(&lp))
                .await
                .map_err(|_| SourceError::EndpointsTimeout(self.deadline))?
                .map_err(SourceError::Endpoints)?;
            let query = end_after_ms
                .map(|t| format!("?endAfterMs={t}"))
                .unwrap_or_default();
            let targets = self.targets(&slices.items);
            let answers: Vec<(String, Result<Vec<SchemaReport>, String>)> =
                futures::stream::iter(targets)
                    .map(|(pod, url)| {
                        let url = format!("{url}{query}");
                        async move { (pod, self.get(&url).await) }
                    })
                    .buffer_unordered(self.concurrency)
                    .collect()
                    .await;
            let mut read = Read::default();
            for (pod, answer) in answers {
                match answer {
                    Ok(mut reports) => {
                        read.latest
                            .push(reports.iter().filter_map(SchemaReport::boundary_ms).max());
                        read.reports.append(&mut reports);
                    }
                    Err(e) => read.failed.push((pod, e)),
                }
            }
            Ok(read)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn targets_are_the_ready_endpoints_on_the_named_port() {
        let client =
            Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
        let r = PodReports::new(client, Duration::from_secs(1), 4, "metrics", 9464).unwrap();
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "addressType": "IPv4",
            "metadata": {"name": "s"},
            "ports": [{"name": "other", "port": 1}, {"name": "metrics", "port": 9000}],
            "endpoints": [
                {"addresses": ["10.0.0.2"], "conditions": {"ready": true},
                 "targetRef": {"kind": "Pod", "name": "w-1"}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false},
                 "targetRef": {"kind": "Pod", "name": "w-2"}},
                {"addresses": ["fd00::4"]}
            ]
        }))
        .unwrap();
        let unnamed: EndpointSlice = serde_json::from_value(serde_json::json!({
            "addressType": "IPv4", "metadata": {"name": "t"},
            "endpoints": [{"addresses": ["10.0.0.5"]}]
        }))
        .unwrap();
        assert_eq!(
            r.targets(&[slice, unnamed]),
            [
                (
                    "w-1".to_owned(),
                    "http://10.0.0.2:9000/schema/windows".to_owned()
                ),
                (
                    "fd00::4".to_owned(),
                    "http://[fd00::4]:9000/schema/windows".to_owned()
                ),
                (
                    "10.0.0.5".to_owned(),
                    "http://10.0.0.5:9464/schema/windows".to_owned()
                ),
            ]
        );
    }
}
