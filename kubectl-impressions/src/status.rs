//! `kubectl impressions status`: every pipeline of the namespace (or of all, `-A`) from its
//! status — replicas ready of desired, input and processed rates, lag in events and seconds,
//! data quality, the last decision — as a table or JSON. The figures are the ones `operator
//! top` shows ([`Row`]).

use impressions_crds::ImpressionPipeline;
use impressions_operator::tools::top::Row;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt, api::ListParams};
use serde::Serialize;

use crate::{
    connect::{Cluster, is_not_found, within},
    error::Error,
    format::{age, columns, number},
};

/// One pipeline as `status` shows it (and `-o json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineView {
    pub namespace: String,
    pub name: String,
    /// Whether the operator has written a status yet.
    pub has_status: bool,
    pub replicas: Replicas,
    pub input_per_second: Option<f64>,
    pub processed_per_second: Option<f64>,
    pub lag: Option<Lag>,
    /// The reason of the DataQuality condition (OK, Degraded, NoData…).
    pub quality: Option<String>,
    pub last_decision: Option<Decision>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replicas {
    pub ready: i32,
    /// Workers that exist.
    pub current: i32,
    /// What the operator wants now.
    pub desired: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    pub events: i64,
    /// How long the backlog takes to drain at the current processing rate.
    pub seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub reason: String,
    pub from: i32,
    pub to: i32,
    pub message: String,
    pub time: String,
    pub age_seconds: i64,
}

impl PipelineView {
    /// The view of a pipeline at `now`.
    pub fn of(p: &ImpressionPipeline, now: Timestamp) -> PipelineView {
        let row = Row::of(p);
        let last_decision = p
            .status
            .as_ref()
            .and_then(|s| s.last_decision.as_ref())
            .map(|d| Decision {
                reason: d.reason.clone(),
                from: d.from,
                to: d.to,
                message: d.message.clone(),
                time: d.time.0.to_string(),
                age_seconds: now.as_second() - d.time.0.as_second(),
            });
        PipelineView {
            namespace: p.namespace().unwrap_or_default(),
            name: p.name_any(),
            has_status: p.status.is_some(),
            replicas: Replicas {
                ready: row.ready,
                current: row.replicas,
                desired: row.desired,
            },
            input_per_second: row.input,
            processed_per_second: row.processed,
            lag: row.lag.map(|events| Lag {
                events,
                seconds: row.lag_seconds,
            }),
            quality: (!row.quality.is_empty() && row.quality != "-").then_some(row.quality),
            last_decision,
        }
    }
}

/// The table: a row per pipeline, the namespace first when `all_namespaces`.
pub fn table(views: &[PipelineView], all_namespaces: bool, now: Timestamp) -> String {
    let mut head = vec![
        "NAME",
        "READY",
        "INPUT/S",
        "PROCESSED/S",
        "LAG",
        "LAG-SECONDS",
        "QUALITY",
        "LAST DECISION",
        "AGE",
    ];
    if all_namespaces {
        head.insert(0, "NAMESPACE");
    }
    let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for v in views {
        let (decision, when) = v.last_decision.as_ref().map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |d| {
                let then = Timestamp::from_second(now.as_second() - d.age_seconds)
                    .unwrap_or(Timestamp::UNIX_EPOCH);
                (format!("{} {}→{}", d.reason, d.from, d.to), age(then, now))
            },
        );
        let mut row = vec![
            v.name.clone(),
            if v.has_status {
                format!(
                    "{}/{}",
                    v.replicas.ready,
                    v.replicas.desired.unwrap_or(v.replicas.current)
                )
            } else {
                "-".into()
            },
            number(v.input_per_second),
            number(v.processed_per_second),
            v.lag
                .as_ref()
                .map_or_else(|| "-".into(), |l| l.events.to_string()),
            v.lag
                .as_ref()
                .and_then(|l| l.seconds)
                .map_or_else(|| "-".into(), |s| format!("{s:.1}")),
            v.quality.clone().unwrap_or_else(|| "-".into()),
            decision,
            when,
        ];
        if all_namespaces {
            row.insert(0, v.namespace.clone());
        }
        rows.push(row);
    }
    columns(&rows)
}

/// The pipelines of `namespace` (all when `None`), sorted by namespace and name.
pub async fn list(
    cluster: &Cluster,
    namespace: Option<&str>,
) -> Result<Vec<ImpressionPipeline>, Error> {
    let (api, what): (Api<ImpressionPipeline>, String) = match namespace {
        Some(ns) => (
            Api::namespaced(cluster.client.clone(), ns),
            format!("listing ImpressionPipelines in namespace {ns}"),
        ),
        None => (
            Api::all(cluster.client.clone()),
            "listing ImpressionPipelines in all namespaces".into(),
        ),
    };
    let mut items = within(cluster.deadline, what, api.list(&ListParams::default()))
        .await
        .map_err(not_installed)?
        .items;
    items.sort_by_key(|p| (p.namespace(), p.name_any()));
    Ok(items)
}

/// A 404 on a list is the CRD missing.
fn not_installed(e: Error) -> Error {
    if is_not_found(&e) {
        Error::NotInstalled {
            resource: "impressionpipelines.impressions.dev",
            hint: "",
        }
    } else {
        e
    }
}

/// One pipeline; its absence names the namespace.
pub async fn get(cluster: &Cluster, name: &str) -> Result<ImpressionPipeline, Error> {
    let ns = &cluster.namespace;
    let api: Api<ImpressionPipeline> = Api::namespaced(cluster.client.clone(), ns);
    within(
        cluster.deadline,
        format!("reading ImpressionPipeline {ns}/{name}"),
        api.get_opt(name),
    )
    .await
    .map_err(not_installed)?
    .ok_or_else(|| Error::PipelineNotFound {
        namespace: ns.clone(),
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pipeline(name: &str, status: serde_json::Value) -> ImpressionPipeline {
        serde_json::from_value(json!({
            "apiVersion": "impressions.dev/v1alpha1", "kind": "ImpressionPipeline",
            "metadata": {"name": name, "namespace": "ads"},
            "spec": {"source": {"bootstrapServers": "k:9092", "topic": "raw"},
                     "sink": {"topic": "out", "deadLetterTopic": "dlq"},
                     "enrichment": {"catalog": {"topic": "titles"}}},
            "status": status
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn scaled() -> ImpressionPipeline {
        pipeline(
            "eu",
            json!({"replicas": 3, "readyReplicas": 2, "desiredReplicas": 4,
                   "lag": {"total": 12000, "maxPartition": 3000, "estimatedSeconds": 6.25},
                   "throughput": {"inputPerSecond": 2500.4, "processedPerSecond": 1999.6},
                   "conditions": [{"type": "DataQuality", "status": "True", "reason": "OK", "message": "",
                                   "lastTransitionTime": "2026-12-01T11:00:00Z"}],
                   "lastDecision": {"from": 3, "to": 4, "reason": "ScaleUpForBacklog",
                                    "message": "backlog 12000 events", "time": "2026-12-01T11:56:40Z"}}),
        )
    }

    #[test]
    fn a_row_has_every_figure_and_the_decision_with_its_age() {
        let t = table(&[PipelineView::of(&scaled(), now())], false, now());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME "), "{t}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "eu",
                "2/4",
                "2500",
                "2000",
                "12000",
                "6.2",
                "OK",
                "ScaleUpForBacklog",
                "3→4",
                "3m20s"
            ],
            "{t}"
        );
    }

    #[test]
    fn all_namespaces_put_the_namespace_first_and_no_status_shows_dashes() {
        let views = [
            PipelineView::of(&scaled(), now()),
            PipelineView::of(&pipeline("new", serde_json::Value::Null), now()),
        ];
        let t = table(&views, true, now());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE   NAME"), "{t}");
        assert!(lines[1].starts_with("ads         eu "), "{t}");
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cells,
            ["ads", "new", "-", "-", "-", "-", "-", "-", "-", "-"]
        );
    }

    #[test]
    fn the_json_names_each_figure() {
        let v = serde_json::to_value(PipelineView::of(&scaled(), now())).unwrap();
        assert_eq!(
            v,
            json!({"namespace": "ads", "name": "eu", "hasStatus": true,
                   "replicas": {"ready": 2, "current": 3, "desired": 4},
                   "inputPerSecond": 2500.4, "processedPerSecond": 1999.6,
                   "lag": {"events": 12000, "seconds": 6.25}, "quality": "OK",
                   "lastDecision": {"reason": "ScaleUpForBacklog", "from": 3, "to": 4,
                                    "message": "backlog 12000 events",
                                    "time": "2026-12-01T11:56:40Z", "ageSeconds": 200}})
        );
    }
}
