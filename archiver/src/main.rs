//! The `archiver` binary: `archiver --config FILE` (or `ARCHIVER_CONFIG`).

use std::{path::PathBuf, sync::Arc};

use clap::Parser;
use impressions_archiver::{
    config::ArchiverConfig,
    error::Error,
    http,
    metrics::Metrics,
    run::{self, Health},
};
use prometheus_client::registry::Registry;

#[derive(Debug, Parser)]
#[command(
    name = "archiver",
    version,
    about = "Archives a pipeline's Avro topic into an Iceberg table, exactly once"
)]
struct Cli {
    #[arg(long, env = "ARCHIVER_CONFIG")]
    config: PathBuf,
    #[arg(long, env = "ARCHIVER_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cli.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let config = match ArchiverConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("archiver: invalid config: {e}");
            tracing::error!(reason = "InvalidConfig", error = %e, "invalid config");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("archiver: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_and_run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(reason = e.reason(), error = %e, "archiver stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve_and_run(config: ArchiverConfig) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind(config.metrics.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "serving /metrics /healthz /readyz");
    tokio::spawn(http::serve(
        listener,
        Arc::new(registry),
        Arc::clone(&health),
    ));
    run::run(config, metrics, health, shutdown_signal()).await
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
