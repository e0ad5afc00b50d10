//! `kubectl impressions why NAME`: the pipeline's decisions, newest first, each with its reason
//! and numbers — the last one from its status, the earlier ones from its `Scale` Events — and,
//! with `--prometheus`, the operator's count of decisions by reason.

use k8s_openapi::{api::events::v1::Event, jiff::Timestamp};
use kube::{Api, api::ListParams};

use crate::{
    connect::{Cluster, within},
    decision_counts,
    error::Error,
    history::{self, Entry},
    status,
};

/// The `why` report of pipeline `name` in the cluster's namespace.
pub async fn run(
    cluster: &Cluster,
    name: &str,
    prometheus: Option<&str>,
    window: &str,
) -> Result<String, Error> {
    let ns = &cluster.namespace;
    let pipeline = status::get(cluster, name).await?;
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), ns);
    let selector = format!("regarding.kind=ImpressionPipeline,regarding.name={name}");
    let listed = within(
        cluster.deadline,
        format!("listing the Events of ImpressionPipeline {ns}/{name}"),
        events.list(&ListParams::default().fields(&selector)),
    )
    .await?;
    let uid = pipeline.metadata.uid.clone();
    let mut entries: Vec<Entry> = listed
        .items
        .iter()
        // Events of an earlier pipeline of the same name are not this one's.
        .filter(|e| {
            let of = e.regarding.as_ref().and_then(|r| r.uid.as_ref());
            of.is_none() || uid.is_none() || of == uid.as_ref()
        })
        .filter_map(history::from_event)
        .collect();
    if let Some(d) = pipeline
        .status
        .as_ref()
        .and_then(|s| s.last_decision.as_ref())
    {
        entries.push(history::from_status(d));
    }
    let now = Timestamp::now();
    let mut out = format!("ImpressionPipeline {ns}/{name}: decisions, newest first\n");
    out.push_str(&history::render(&history::merge(entries), now));
    if let Some(url) = prometheus {
        out.push_str(&format!(
            "\ndecisions the operator counted by reason ({url}, {}):\n",
            decision_counts::METRIC
        ));
        let counts = decision_counts::read(url, ns, name, window, cluster.deadline).await?;
        out.push_str(&decision_counts::render(&counts, window));
    }
    Ok(out)
}
