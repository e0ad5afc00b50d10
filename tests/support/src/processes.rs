//! Running the node agent (`node_agent`) and `loadgen` as processes in end-to-end tests.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use impressions_worker::loadgen::Kind;

use crate::{Stack, worker::binary};

/// A node agent running one namespace's pods (as processes, or as containers through runc).
#[derive(Debug)]
pub struct NodeAgentProcess {
    pub child: Child,
    pub node: String,
    pub log: PathBuf,
    /// Pod folders (`pods/<ns>_<pod>/container.log`).
    pub state_dir: PathBuf,
}

impl NodeAgentProcess {
    /// Starts an agent with its own Node for `namespace`, running pods as processes of the
    /// workspace's binaries, writing scrape targets for the stack's Prometheus.
    pub fn start(stack: &Stack, namespace: &str) -> NodeAgentProcess {
        let bin_dir = binary("worker").parent().unwrap().to_owned();
        let mut runtime = vec!["--runtime".into(), "process".into(), "--bin-dir".into()];
        runtime.push(bin_dir.into_os_string());
        Self::start_with(stack, namespace, &runtime)
    }

    /// [`NodeAgentProcess::start`] running pods as containers from their images through runc
    /// (`make images` builds the project's).
    pub fn start_containers(stack: &Stack, namespace: &str) -> NodeAgentProcess {
        Self::start_with(stack, namespace, &["--runtime".into(), "runc".into()])
    }

    fn start_with(
        stack: &Stack,
        namespace: &str,
        runtime: &[std::ffi::OsString],
    ) -> NodeAgentProcess {
        let dir = std::env::temp_dir()
            .join("impressions-tests")
            .join(format!("node-{namespace}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("agent.log");
        let node = format!("node-{namespace}");
        let child = Command::new(binary("node_agent"))
            .args(["--node", &node, "--namespace", namespace])
            .args(runtime)
            .arg("--state-dir")
            .arg(&dir)
            .arg("--file-sd-dir")
            .arg(&stack.file_sd_dir)
            .env("KUBECONFIG", &stack.kubeconfig)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start node_agent");
        NodeAgentProcess {
            child,
            node,
            log,
            state_dir: dir,
        }
    }

    /// The agent's log and the last lines of every pod's container log.
    pub fn log_tail(&self) -> String {
        let mut out = crate::log_tail(&self.log, 20);
        if let Ok(pods) = std::fs::read_dir(self.state_dir.join("pods")) {
            for p in pods.flatten() {
                out.push_str(&format!("\n--- {}\n", p.file_name().to_string_lossy()));
                out.push_str(&crate::log_tail(&p.path().join("container.log"), 8));
            }
        }
        out
    }

    /// Stops the agent with SIGTERM: it stops its pods' processes and deletes its Node.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for NodeAgentProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// A `loadgen produce` run that records every event id it sent.
#[derive(Debug)]
pub struct LoadgenRun {
    pub child: Child,
    pub ids: PathBuf,
}

impl LoadgenRun {
    /// Produces along `trace` for `seconds` into `topic`, with `seed` (distinct per run).
    pub fn start(stack: &Stack, topic: &str, trace: &str, seconds: f64, seed: u64) -> LoadgenRun {
        Self::start_program(&binary("loadgen"), stack, topic, trace, seconds, seed)
    }

    /// As [`Self::start`] with another build of loadgen (e.g. `target/release/loadgen`, which
    /// `make images` builds: a tenth of the debug build's CPU per event).
    pub fn start_program(
        program: &std::path::Path,
        stack: &Stack,
        topic: &str,
        trace: &str,
        seconds: f64,
        seed: u64,
    ) -> LoadgenRun {
        let dir = std::env::temp_dir().join("impressions-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let ids = dir.join(format!("{}.ids", crate::unique(topic)));
        let child = Command::new(program)
            .args([
                "produce",
                "--bootstrap",
                &stack.kafka_bootstrap,
                "--topic",
                topic,
            ])
            .args(["--trace", trace, "--duration", &seconds.to_string()])
            .args(["--seed", &seed.to_string(), "--titles", "200"])
            .arg("--ids-out")
            .arg(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start loadgen");
        LoadgenRun { child, ids }
    }

    /// Waits for the end of the run; panics when loadgen failed.
    pub fn wait(&mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "loadgen failed: {status}");
    }

    /// Asks loadgen to stop if it still runs (SIGTERM: it stops sending and waits up to 3 s for
    /// the acknowledgements of what it sent, whose ids it has recorded) and waits for it.
    pub fn stop(&mut self) -> std::io::Result<std::process::ExitStatus> {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
        }
        self.child.wait()
    }

    /// Whether loadgen still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Every event sent, by id; panics when loadgen left no list.
    pub fn sent(&self) -> HashMap<String, Kind> {
        self.try_sent()
            .unwrap_or_else(|e| panic!("{}: {e}", self.ids.display()))
    }

    /// Every event sent, by id; an error when loadgen left no list (it was stopped before it
    /// started).
    pub fn try_sent(&self) -> std::io::Result<HashMap<String, Kind>> {
        let text = std::fs::read_to_string(&self.ids)?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, kind)| {
                let kind: Kind = serde_json::from_value(serde_json::json!(kind))
                    .unwrap_or_else(|e| panic!("kind {kind}: {e}"));
                (id.to_owned(), kind)
            })
            .collect())
    }
}

impl Drop for LoadgenRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
