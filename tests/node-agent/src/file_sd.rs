//! Prometheus file_sd targets for running pods: one file per pod, labelled as the chart's
//! ServiceMonitor relabels them (`namespace`, `pipeline`, `pod`).

use std::path::{Path, PathBuf};

use serde_json::json;

/// The pod label copied to the `pipeline` target label.
pub const PIPELINE_LABEL: &str = "impressions.dev/pipeline";

fn path(dir: &Path, ns: &str, pod: &str) -> PathBuf {
    dir.join(format!("pod-{ns}-{pod}.json"))
}

/// Writes (atomically) the target file of a pod serving metrics at `addr`.
pub fn write(dir: &Path, ns: &str, pod: &str, pipeline: Option<&str>, addr: &str) {
    let mut labels = json!({"namespace": ns, "pod": pod});
    if let Some(p) = pipeline {
        labels["pipeline"] = json!(p);
    }
    let body = json!([{ "targets": [addr], "labels": labels }]).to_string();
    let target = path(dir, ns, pod);
    let tmp = target.with_extension("json.tmp");
    if std::fs::write(&tmp, body).is_ok() {
        let _ = std::fs::rename(&tmp, &target);
    }
}

/// Removes a pod's target file.
pub fn remove(dir: &Path, ns: &str, pod: &str) {
    let _ = std::fs::remove_file(path(dir, ns, pod));
}
