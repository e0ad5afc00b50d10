//! The Helm chart (`charts/impressions-operator`) and the tools of the stack that check it: the
//! pinned `helm` and Debian's `promtool`. Shared by the chart's stack tests (`chart_render`,
//! `rules`, `rbac`); the checks that need neither are the operator crate's (`operator/tests/charts.rs`).

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use serde_json::Value;

use crate::{Stack, repo_root};

/// The chart's folder.
pub fn dir() -> PathBuf {
    repo_root().join("charts/impressions-operator")
}

/// The chart's Prometheus rules (embedded by its PrometheusRule template).
pub fn rule_file() -> PathBuf {
    dir().join("files/rules/impressions.rules.yaml")
}

/// `promtool`, from PATH or Debian's /usr/bin. Panics (never skips) when it is missing.
pub fn promtool() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "promtool not found on PATH or in /usr/bin: install Debian's prometheus package \
             (`tests/stack/provision.sh prometheus`; `make stack-up` does it)"
        )
    })
}

/// Runs `cmd` to its end; panics when it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A command's stdout then stderr, for failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The stack's `helm`, pointed at its API server.
pub fn helm(stack: &Stack) -> Command {
    let mut cmd = Command::new(stack.tool("helm"));
    cmd.env("KUBECONFIG", &stack.kubeconfig);
    cmd
}

/// `helm template` with `--set` values; the rendered documents, or helm's error output.
pub fn template(values: &[&str]) -> Result<Vec<Value>, String> {
    let mut cmd = helm(Stack::get());
    cmd.args(["template", "imp"])
        .arg(dir())
        .args(["--namespace", "impressions-system"]);
    for v in values {
        cmd.args(["--set", v]);
    }
    let out = run(&mut cmd);
    if !out.status.success() {
        return Err(text(&out));
    }
    let docs = String::from_utf8(out.stdout).unwrap();
    Ok(docs
        .split("\n---")
        .filter_map(|d| serde_yaml::from_str::<Value>(d).ok())
        .filter(|v| v.is_object())
        .collect())
}
