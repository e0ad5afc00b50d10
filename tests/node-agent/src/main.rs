//! `node_agent`: runs the pods of one namespace, for the local stack: as containers from their
//! images through runc, or as local processes. See the library, `impressions_node_agent`.

use std::path::PathBuf;

use clap::Parser;
use impressions_node_agent::{self as node_agent, Agent, Runtime, runc::Runc};

#[derive(Parser, Debug)]
#[command(
    name = "node_agent",
    about = "Runs pods as containers (runc) or local processes on a Node of its own"
)]
struct Cli {
    /// The Node's name.
    #[arg(long, default_value = "local-node")]
    node: String,
    /// Only run pods of this namespace (default: every namespace).
    #[arg(long)]
    namespace: Option<String>,
    /// How pods run: `runc` (a container from the pod's image in podman's local storage, its
    /// limits as cgroup limits) or `process` (`command[0]` from --bin-dir, no image, no limits).
    #[arg(long, default_value = "process", value_parser = ["process", "runc"])]
    runtime: String,
    /// `--runtime process`: where the programs named by the containers' `command[0]` are found.
    #[arg(long, required_if_eq("runtime", "process"))]
    bin_dir: Option<PathBuf>,
    /// `--runtime runc`: the containers' RLIMIT_NOFILE (at most the agent's own hard limit).
    #[arg(long, default_value_t = 4096)]
    nofile: u64,
    /// Folder for the pods' files and logs.
    #[arg(long)]
    state_dir: PathBuf,
    /// Prometheus file_sd folder for pods with a `metrics` port.
    #[arg(long, env = "PROMETHEUS_FILE_SD_DIR")]
    file_sd_dir: Option<PathBuf>,
    /// The variable set to `podIP:port` in each process.
    #[arg(long, default_value = "WORKER__METRICS__LISTEN")]
    listen_env: String,
    /// On SIGTERM, seconds the pods get to stop before they are killed.
    #[arg(long, default_value_t = 10)]
    shutdown_grace_seconds: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NODE_AGENT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.state_dir)?;
    // Pods run in their own folder: paths must not be relative.
    let state_dir = std::fs::canonicalize(&cli.state_dir)?;
    let runtime = match (cli.runtime.as_str(), &cli.bin_dir) {
        ("runc", _) => Runtime::Runc(Runc {
            root: state_dir.join("runc"),
            images: state_dir.join("images"),
            nofile: cli.nofile,
        }),
        (_, Some(dir)) => Runtime::Process {
            bin_dir: std::fs::canonicalize(dir)
                .map_err(|e| anyhow::anyhow!("--bin-dir {}: {e}", dir.display()))?,
        },
        (_, None) => anyhow::bail!("--runtime process needs --bin-dir"),
    };
    // The handlers are installed before anything can wait (on the API server, say).
    let stop = {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            node_agent::stop_signal().await;
            tracing::info!("stop requested");
            let _ = tx.send(());
        });
        async move {
            let _ = rx.await;
        }
    };
    node_agent::run(
        Agent {
            client: kube::Client::try_default().await?,
            node: cli.node,
            namespace: cli.namespace,
            runtime,
            state_dir,
            file_sd_dir: cli.file_sd_dir,
            listen_env: Some(cli.listen_env),
            shutdown_grace: std::time::Duration::from_secs(cli.shutdown_grace_seconds),
        },
        stop,
    )
    .await
}
