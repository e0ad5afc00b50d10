//! One PromQL query that answers a signal for many pipelines: each pipeline's rendered template
//! is tagged with a label naming the pipeline, and the tagged results are joined with `or`.
//! Any template that yields an instant vector works (the built-in ones and an SRE's own), and
//! Prometheus answers all pipelines in one request.

use std::collections::HashMap;

use prometheus_http_query::response::Data;

/// A pipeline as (namespace, name).
pub type PipelineId = (String, String);

/// Pipelines per query: keeps one query's text (about 250 bytes a pipeline) well under
/// Prometheus's request limits and its evaluation short.
pub const CHUNK: usize = 250;

/// The label that names the pipeline in a union's result.
const LABEL: &str = "impressions_pipeline";

/// Substitutes `{namespace}`, `{pipeline}` and `{window}` in a query template.
pub fn render(template: &str, namespace: &str, pipeline: &str, window: &str) -> String {
    template
        .replace("{namespace}", namespace)
        .replace("{pipeline}", pipeline)
        .replace("{window}", window)
}

/// The union query of `template` for `pipelines`.
pub fn union(template: &str, window: &str, pipelines: &[PipelineId]) -> String {
    pipelines
        .iter()
        .map(|(ns, name)| {
            format!(
                "label_replace(({}), \"{LABEL}\", \"{ns}/{name}\", \"\", \"\")",
                render(template, ns, name, window)
            )
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Each pipeline's value in a union's answer (its first finite sample, as a single-pipeline
/// query is read); pipelines without series are absent.
pub fn by_pipeline(data: &Data) -> HashMap<PipelineId, f64> {
    let mut out = HashMap::new();
    for s in data.as_vector().into_iter().flatten() {
        let value = s.sample().value();
        let Some((ns, name)) = s.metric().get(LABEL).and_then(|v| v.split_once('/')) else {
            continue;
        };
        if value.is_finite() {
            out.entry((ns.to_owned(), name.to_owned())).or_insert(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ns: &str, name: &str) -> PipelineId {
        (ns.to_owned(), name.to_owned())
    }

    #[test]
    fn each_pipeline_is_rendered_and_tagged() {
        let q = union(
            "sum(rate(x{namespace=\"{namespace}\",pipeline=\"{pipeline}\"}[{window}]))",
            "1m",
            &[id("a", "p1"), id("b", "p2")],
        );
        assert_eq!(
            q,
            "label_replace((sum(rate(x{namespace=\"a\",pipeline=\"p1\"}[1m]))), \
             \"impressions_pipeline\", \"a/p1\", \"\", \"\") or \
             label_replace((sum(rate(x{namespace=\"b\",pipeline=\"p2\"}[1m]))), \
             \"impressions_pipeline\", \"b/p2\", \"\", \"\")"
        );
    }

    #[test]
    fn answers_are_split_by_the_tag() {
        let data: Data = serde_json::from_value(serde_json::json!({
            "resultType": "vector",
            "result": [
                {"metric": {"impressions_pipeline": "a/p1"}, "value": [1.0, "12.5"]},
                {"metric": {"impressions_pipeline": "b/p2", "x": "1"}, "value": [1.0, "NaN"]},
                {"metric": {"impressions_pipeline": "b/p2", "x": "2"}, "value": [1.0, "3"]},
                {"metric": {"other": "z"}, "value": [1.0, "9"]}
            ]
        }))
        .expect("data");
        let m = by_pipeline(&data);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[&id("a", "p1")], 12.5);
        assert_eq!(m[&id("b", "p2")], 3.0, "the first finite sample");
    }
}
