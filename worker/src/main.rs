//! `worker`: the impression filter/enrich job.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use impressions_worker::{
    catalog::{self, Catalog},
    config::WorkerConfig,
    http, kafka,
    metrics::Metrics,
    run::{self, Health},
    schema_report::Board,
};
use prometheus_client::registry::Registry;

/// Filters raw client events to impressions, rejects invalid ones to a dead-letter topic,
/// enriches and checks the rest, and writes Avro records to the sink topic.
#[derive(Parser, Debug)]
#[command(name = "worker", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "WORKER_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the worker.
    Run {
        /// The configuration file (YAML); `WORKER__…` environment variables override fields.
        #[arg(long, env = "WORKER_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file and print it as the worker reads it.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the output Avro schema.
    Schema,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    match cli.command {
        Command::Schema => {
            print!("{}", impressions_worker::avro::IMPRESSION_SCHEMA);
            Ok(())
        }
        Command::CheckConfig { config } => {
            let cfg = WorkerConfig::load(&config, std::env::vars())?;
            println!("{cfg:#?}");
            Ok(())
        }
        Command::Run { config } => {
            let cfg = WorkerConfig::load(&config, std::env::vars())?;
            run_worker(cfg)
        }
    }
}

fn run_worker(cfg: WorkerConfig) -> anyhow::Result<()> {
    tracing::info!(namespace = %cfg.pipeline.namespace, pipeline = %cfg.pipeline.name, "starting");
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let cgroup = impressions_worker::cpu::CpuCgroup::of_this_process();
    tracing::info!(cgroup = ?cgroup.as_ref().map(|c| &c.dirs[0]), limit_cores = ?cgroup.as_ref().and_then(|c| c.limit_cores()), "CPU");
    let cpu_since_ready = Arc::new(impressions_worker::cpu::SinceReady::default());
    impressions_worker::metrics::register_cpu(
        &mut registry,
        cgroup,
        cpu_since_ready.clone(),
        metrics.processed.clone(),
    );
    let registry = Arc::new(registry);
    let health = Arc::new(Health {
        cpu_since_ready,
        schema: Board::new(cfg.schema.enabled),
        ..Health::default()
    });
    let stop = Arc::new(AtomicBool::new(false));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(cfg.metrics.listen))
        .with_context(|| {
            format!(
                "config field metrics.listen: cannot listen on {}",
                cfg.metrics.listen
            )
        })?;
    rt.spawn(http::serve(listener, registry, health.clone()));
    let stop_signal = stop.clone();
    rt.spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stop requested: finishing in-flight work");
        stop_signal.store(true, Ordering::Release);
    });

    let (shared, loaded) = (
        catalog::shared(Catalog::default()),
        Arc::new(AtomicBool::new(false)),
    );
    let auth = Arc::new(kafka::auth::AuthWatch::default());
    let feed_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let feed = match (&cfg.catalog.file, &cfg.catalog.topic) {
        (Some(path), _) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| catalog::CatalogError::File {
                    path: path.display().to_string(),
                    source,
                })?;
            let c = Catalog::from_json_lines(&text)?;
            metrics.catalog_titles.set(c.len() as i64);
            tracing::info!(titles = c.len(), file = %path.display(), "catalog loaded");
            shared.store(Arc::new(c));
            loaded.store(true, Ordering::Release);
            None
        }
        (None, Some(topic)) => {
            let consumer = kafka::client::catalog_reader(&cfg).create_with_context(
                kafka::auth::WatchedContext {
                    watch: auth.clone(),
                    client: "catalog reader",
                },
            )?;
            let (topic, shared, metrics, loaded, stop, feed_error) = (
                topic.clone(),
                shared.clone(),
                metrics.clone(),
                loaded.clone(),
                stop.clone(),
                feed_error.clone(),
            );
            Some(std::thread::Builder::new().name("catalog".into()).spawn(move || {
                if let Err(e) = kafka::catalog_feed::follow(consumer, &topic, shared, metrics, loaded, stop.clone()) {
                    tracing::error!(error = %e, topic = %topic, "catalog topic cannot be read");
                    *feed_error.lock().expect("feed error lock") =
                        Some(format!("catalog topic {topic} cannot be read: {e}"));
                    stop.store(true, Ordering::Release);
                }
            })?)
        }
        (None, None) => unreachable!("validated: exactly one catalog source"),
    };

    let result = run::run(&cfg, shared, loaded, metrics, health, stop.clone(), auth);
    stop.store(true, Ordering::Release);
    // After a failure the process ends without waiting for the feed; after a stop it waits a
    // little (the feed may be inside a Kafka call to a broker that does not answer).
    if let (Ok(()), Some(f)) = (&result, feed) {
        join_within(f, FEED_STOP_GRACE);
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    let feed_error = feed_error.lock().expect("feed error lock").take();
    match (result, feed_error) {
        (Ok(()), Some(e)) => Err(anyhow::anyhow!(e)),
        (result, _) => result,
    }
}

/// How long a stopping worker waits for the catalog feed's thread.
const FEED_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Joins `thread` if it ends within `grace`; otherwise leaves it to end with the process.
fn join_within(thread: std::thread::JoinHandle<()>, grace: std::time::Duration) {
    let until = std::time::Instant::now() + grace;
    while !thread.is_finished() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if thread.is_finished() {
        let _ = thread.join();
    } else {
        tracing::warn!(
            ?grace,
            "the catalog feed is still inside a Kafka call; not waited for"
        );
    }
}

fn init_tracing(format: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("WORKER_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
