//! `node_agent`: runs the pods of one namespace as local processes, for the local stack (which has
//! no container runtime). See the library, `impressions_node_agent`.

use std::path::PathBuf;

use clap::Parser;
use impressions_node_agent::{self as node_agent, Agent};

#[derive(Parser, Debug)]
#[command(
    name = "node_agent",
    about = "Runs pods as local processes on a Node of its own"
)]
struct Cli {
    /// The Node's name.
    #[arg(long, default_value = "local-node")]
    node: String,
    /// Only run pods of this namespace (default: every namespace).
    #[arg(long)]
    namespace: Option<String>,
    /// Where the programs named by the containers' `command[0]` are found.
    #[arg(long)]
    bin_dir: PathBuf,
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
    let bin_dir = std::fs::canonicalize(&cli.bin_dir)
        .map_err(|e| anyhow::anyhow!("--bin-dir {}: {e}", cli.bin_dir.display()))?;
    let state_dir = std::fs::canonicalize(&cli.state_dir)?;
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
            bin_dir,
            state_dir,
            file_sd_dir: cli.file_sd_dir,
            listen_env: Some(cli.listen_env),
            shutdown_grace: std::time::Duration::from_secs(cli.shutdown_grace_seconds),
        },
        stop,
    )
    .await
}
