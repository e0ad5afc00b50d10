//! `operator`: reconciles ImpressionPipelines of one region into worker fleets.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use clap::{Parser, Subcommand};
use impressions_operator::{
    autoscale::{
        archive::{evaluator::ArchiveEvaluator, prometheus::ArchivePrometheus},
        evaluator::Evaluator,
        signals::{
            kafka_lag::{KafkaLag, LagSource, LagTarget},
            prometheus::PrometheusThroughput,
        },
    },
    controller::{self, Loops, OperatorOptions},
    http,
    leader::{Elector, LeaseConfig},
    metrics::Metrics,
    quality::{
        evaluator::QualityEvaluator,
        signals::{PrometheusQuality, QualitySource},
    },
    reconcile::{children::BuildOptions, labels},
    schema::{
        collector::SchemaCollector,
        source::{PodReports, ReportSource},
    },
    shutdown,
};
use prometheus_client::registry::Registry;

/// Reconciles ImpressionPipelines of one region into worker fleets and keeps their status,
/// within the SREs' ScalingPolicies.
#[derive(Parser, Debug)]
#[command(name = "operator", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "OPERATOR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator.
    Run(RunArgs),
    /// Replay a traffic trace through the scaling decision, side by side with KEDA+HPA, the
    /// Flink autoscaler and static provisioning.
    Simulate(SimulateArgs),
    /// A live view of the pipelines (rates, lag, replicas vs desired, the last decision); on
    /// exit, a plot of what it saw.
    Top(TopArgs),
}

#[derive(clap::Args, Debug)]
struct TopArgs {
    /// Only pipelines of this namespace (default: all).
    #[arg(long)]
    namespace: Option<String>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Write an SVG of the run (replicas, lag, input rate) here on exit.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
    /// Write what was observed (replicas ready and desired, lag, rates) as JSON here on exit.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(clap::Args, Debug)]
struct SimulateArgs {
    /// step | spike | ramp | failover | diurnal[:0|1|2] | launch | evacuation | noisy | sawtooth |
    /// growth | outage | weekly | csv:PATH (seconds,events_per_second)
    #[arg(long, default_value = "step")]
    scenario: String,
    /// Replay a running pipeline's real history instead: its Prometheus URL…
    #[arg(long, requires = "pipeline")]
    prometheus: Option<String>,
    /// …the pipeline as NAMESPACE/NAME…
    #[arg(long)]
    pipeline: Option<String>,
    /// …and how many hours back.
    #[arg(long, default_value_t = 1.0)]
    hours: f64,
    /// Partitions of the simulated topic.
    #[arg(long, default_value_t = 64)]
    partitions: i32,
    /// Events/s one replica processes when fully busy.
    #[arg(long, default_value_t = 25_000.0)]
    capacity: f64,
    /// Seconds until a new pod consumes.
    #[arg(long, default_value_t = 20.0)]
    startup_seconds: f64,
    /// Seconds of delay before metrics reach the autoscaler.
    #[arg(long, default_value_t = 10.0)]
    metric_delay_seconds: f64,
    /// Eager (stop-the-world) rebalancing instead of cooperative.
    #[arg(long)]
    eager: bool,
    /// Partition skew exponent (0 = uniform).
    #[arg(long, default_value_t = 0.0)]
    skew: f64,
    /// Relative spread of capacity between replicas.
    #[arg(long, default_value_t = 0.0)]
    capacity_noise: f64,
    /// Total capacity grows as replicas^exponent (1 = linear).
    #[arg(long, default_value_t = 1.0)]
    scaling_exponent: f64,
    /// Also write the comparison (every row, the oracles, each grid's frontier) as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Also plot arrival rate, lag and replicas of ours, each baseline's cheapest SLO-clean
    /// setting and static provisioning to this SVG file.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
    /// The operator's region, for the replayed pipeline's region-default ScalingPolicy.
    #[arg(long, env = "IMPRESSIONS_REGION", default_value = "")]
    region: String,
    /// Run every built-in scenario and write the results (every scenario × policy, the
    /// frontiers, the oracles, the timings) to this JSON file; plots go to `--plots`.
    #[arg(long, conflicts_with_all = ["prometheus", "json", "svg"])]
    bench: Option<std::path::PathBuf>,
    /// The directory of the benchmark's plots (one SVG per scenario).
    #[arg(long, default_value = "out")]
    plots: std::path::PathBuf,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The region this operator serves: pipelines whose spec.region is this or empty.
    #[arg(long, env = "IMPRESSIONS_REGION")]
    region: String,
    /// Namespaces to watch (repeat the flag); all namespaces when none is given.
    #[arg(
        long = "namespace",
        env = "IMPRESSIONS_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// The worker image for pipelines that name none.
    #[arg(
        long,
        env = "IMPRESSIONS_WORKER_IMAGE",
        default_value = impressions_operator::DEFAULT_WORKER_IMAGE
    )]
    worker_image: String,
    /// The archiver image (pipelines with an archive).
    #[arg(
        long,
        env = "IMPRESSIONS_ARCHIVER_IMAGE",
        default_value = impressions_operator::DEFAULT_ARCHIVER_IMAGE
    )]
    archiver_image: String,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "OPERATOR_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    metrics_listen: SocketAddr,
    /// Elect a leader through a Lease so that several replicas can run.
    #[arg(long, env = "OPERATOR_LEADER_ELECTION", default_value_t = false)]
    leader_election: bool,
    /// The namespace of the leader Lease.
    #[arg(long, env = "OPERATOR_LEASE_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease (defaults to the host name and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Prometheus base URL for worker throughput (processed rate, busy fraction) and data
    /// quality. Without it, metrics count as missing, Auto pipelines hold their replicas and
    /// DataQuality is Unknown.
    #[arg(long, env = "IMPRESSIONS_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Seconds a lease is valid without renewal (failover time).
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Simulate(args) => simulate(args).await,
            Command::Top(a) => top(a).await,
        }
    });
    // Blocking calls still running (a Kafka request in a thread of its own) are abandoned.
    rt.shutdown_timeout(shutdown::RUNTIME_GRACE);
    result
}

async fn top(a: TopArgs) -> anyhow::Result<()> {
    let written = impressions_operator::tools::top::run(
        kube::Client::try_default().await?,
        impressions_operator::tools::top::TopOptions {
            namespace: a.namespace,
            interval: Duration::from_secs_f64(a.interval.max(0.2)),
            duration: a.duration.map(Duration::from_secs_f64),
            plot: a.plot,
            json: a.json,
        },
    )
    .await?;
    for f in written {
        println!("plot of the run: {}", f.display());
    }
    Ok(())
}

/// Runs the operator until SIGTERM, Ctrl-C or the loss of the Lease. A stop before leading
/// exits at once, whatever the operator is waiting on (the API server, the Lease).
async fn run(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.region.is_empty(), "--region must not be empty");
    let stop = shutdown::stop();
    let started = tokio::select! {
        s = start(&args) => s?,
        _ = stop.clone() => {
            tracing::info!("stopped before starting");
            return Ok(());
        }
    };
    let Started {
        client,
        identity,
        metrics,
    } = started;
    let elector = args.leader_election.then(|| {
        Elector::new(
            client.clone(),
            LeaseConfig::for_duration(
                &args.lease_namespace,
                &format!("impressions-operator-{}", args.region),
                &identity,
                Duration::from_secs(args.lease_duration_seconds),
            ),
        )
    });
    if let Some(e) = &elector {
        tokio::select! {
            _ = e.acquire() => {}
            _ = stop.clone() => {
                tracing::info!("stopped while waiting for the Lease");
                return Ok(());
            }
        }
    }
    metrics.leader.set(1);
    let result = lead(&args, client, identity, metrics, elector.as_ref(), stop).await;
    // A lost lease is not ours to release (and the API server may be what failed).
    if let Some(e) = elector.as_ref().filter(|_| result.is_ok())
        && tokio::time::timeout(shutdown::RELEASE_GRACE, e.release())
            .await
            .is_err()
    {
        tracing::warn!(
            "the Lease was not released within {:?}; a standby takes over when it expires",
            shutdown::RELEASE_GRACE
        );
    }
    tracing::info!("stopped");
    result
}

/// What the operator needs before it may lead.
struct Started {
    client: kube::Client,
    identity: String,
    metrics: Arc<Metrics>,
}

/// Serves /metrics, connects to the API server (readiness follows).
async fn start(args: &RunArgs) -> anyhow::Result<Started> {
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-listen {}: {e}", args.metrics_listen))?;
    tokio::spawn(http::serve(listener, Arc::new(registry), ready.clone()));
    let deadline = Duration::from_secs(30);
    tokio::time::timeout(deadline, client.apiserver_version())
        .await
        .map_err(|_| anyhow::anyhow!("the API server did not answer within {deadline:?}"))?
        .map_err(|e| anyhow::anyhow!("cannot reach the API server: {e}"))?;
    ready.store(true, Ordering::Release);
    tracing::info!(region = %args.region, namespaces = ?args.namespaces, %identity, "starting");
    Ok(Started {
        client,
        identity,
        metrics,
    })
}

/// The deadline of each call reading the workers' schema reports (the EndpointSlice list, each pod's GET).
const SCHEMA_READ_DEADLINE: Duration = Duration::from_secs(3);
/// Worker pods of one pipeline read at once.
const SCHEMA_PODS_AT_ONCE: usize = 8;

/// Reconciles and evaluates until a stop (in-flight reconciles get a grace period) or the loss
/// of the Lease (an error: another replica may already act).
async fn lead(
    args: &RunArgs,
    client: kube::Client,
    identity: String,
    metrics: Arc<Metrics>,
    elector: Option<&Elector>,
    stop: shutdown::Stop,
) -> anyhow::Result<()> {
    let lost = async {
        match elector {
            Some(e) => e.hold().await,
            None => futures::future::pending().await,
        }
    };
    let prometheus = match &args.prometheus_url {
        Some(url) => Some(
            PrometheusThroughput::new(url)
                .map_err(|e| anyhow::anyhow!("--prometheus-url {url}: {e}"))?,
        ),
        None => None,
    };
    let quality_source = match &args.prometheus_url {
        Some(url) => Some(Arc::new(
            PrometheusQuality::new(url)
                .map_err(|e| anyhow::anyhow!("--prometheus-url {url}: {e}"))?,
        ) as Arc<dyn QualitySource>),
        None => None,
    };
    let archive_prometheus = match &args.prometheus_url {
        Some(url) => Some(
            ArchivePrometheus::new(url)
                .map_err(|e| anyhow::anyhow!("--prometheus-url {url}: {e}"))?,
        ),
        None => None,
    };
    // one Kafka client per cluster serves the workers' and the archivers' groups
    let kafka_lag = Arc::new(KafkaLag::default());
    let loops = Loops {
        scaler: Arc::new(
            Evaluator::new(kafka_lag.clone(), prometheus)
                .with_interval_histogram(metrics.evaluation_interval.clone()),
        ),
        archive: Arc::new(ArchiveEvaluator::new(kafka_lag, archive_prometheus)),
        quality: Arc::new(QualityEvaluator::new(quality_source)),
        schema: Arc::new(SchemaCollector::new(
            Some(Arc::new(PodReports::new(
                client.clone(),
                SCHEMA_READ_DEADLINE,
                SCHEMA_PODS_AT_ONCE,
                labels::METRICS_PORT_NAME,
                labels::METRICS_PORT,
            )?) as Arc<dyn ReportSource>),
            metrics.schema_read_failures.clone(),
            metrics.schema_windows.clone(),
        )),
    };
    let opts = OperatorOptions {
        region: args.region.clone(),
        field_manager: "impressions-operator".into(),
        build: BuildOptions {
            worker_image: args.worker_image.clone(),
            archiver_image: args.archiver_image.clone(),
        },
    };
    let controller = controller::run(
        client,
        opts,
        metrics,
        args.namespaces.clone(),
        identity,
        loops,
        stop.clone(),
    );
    tokio::pin!(controller);
    tokio::select! {
        _ = &mut controller => Ok(()),
        _ = lost => anyhow::bail!("leadership lost"),
        _ = stop => {
            if tokio::time::timeout(shutdown::RECONCILE_GRACE, &mut controller).await.is_err() {
                tracing::warn!(
                    "reconciles still running {:?} after the stop request are abandoned",
                    shutdown::RECONCILE_GRACE
                );
            }
            Ok(())
        }
    }
}

async fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    use impressions_operator::tools::simulate::{self, model::ModelConfig, replay, traces};
    let mut cfg = ModelConfig {
        partitions: a.partitions,
        skew: a.skew,
        capacity: a.capacity,
        capacity_noise: a.capacity_noise,
        scaling_exponent: a.scaling_exponent,
        startup_seconds: a.startup_seconds,
        metric_delay_seconds: a.metric_delay_seconds,
        cooperative: !a.eager,
        max_replicas: a.partitions,
        ..ModelConfig::default()
    };
    if let Some(out) = &a.bench {
        let results = simulate::bench::run_all(&cfg, &a.plots).map_err(anyhow::Error::msg)?;
        for c in &results.scenarios {
            print!("{}", simulate::table(c));
        }
        println!("{}", simulate::bench::summary(&results));
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_vec_pretty(&results)?)?;
        println!("results: {}", out.display());
        return Ok(());
    }
    let mut policy = impressions_crds::ScalingPolicySpec::builtin();
    let mut pipeline_spec = None;
    let (scenario, arrivals) = match (&a.prometheus, &a.pipeline) {
        (Some(url), Some(p)) => {
            let (ns, name) = p
                .split_once('/')
                .ok_or_else(|| anyhow::anyhow!("--pipeline must be NAMESPACE/NAME"))?;
            // The pipeline and its effective policy, from the cluster.
            let from_cluster = replay_pipeline(ns, name, &a.region).await;
            let queries = from_cluster
                .as_ref()
                .map(|(_, p)| p.spec.queries.clone())
                .unwrap_or_else(|_| impressions_crds::ScalingPolicySpec::builtin().queries);
            let prom = PrometheusThroughput::new(url).map_err(anyhow::Error::msg)?;
            let step = (a.hours * 3600.0 / 720.0).clamp(5.0, 60.0);
            let points = prom
                .history(&queries, ns, name, (a.hours * 3600.0) as i64, step)
                .await
                .map_err(anyhow::Error::msg)?;
            anyhow::ensure!(
                points.len() >= 2,
                "Prometheus has no history for {p} in the last {} h",
                a.hours
            );
            // The topic's partition count, from Kafka (the operator's own client, without the
            // source Secret's settings).
            let partitions = match &from_cluster {
                Ok((spec, _)) => {
                    let target = LagTarget {
                        bootstrap: spec.source.bootstrap_servers.clone(),
                        topic: spec.source.topic.clone(),
                        group: spec.consumer_group(ns, name),
                        reset: spec.source.offset_reset,
                        kafka: Default::default(),
                    };
                    tokio::task::spawn_blocking(move || {
                        KafkaLag::default().sample(&target).map(|s| s.partitions)
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()))
                }
                Err(e) => Err(format!("no pipeline to read the topic of ({e})")),
            };
            let r = replay::resolve(
                &points,
                partitions,
                from_cluster
                    .as_ref()
                    .map(|(_, p)| p.clone())
                    .map_err(Clone::clone),
                &cfg,
            );
            println!("replaying {p} with:");
            for line in &r.provenance {
                println!("  {line}");
            }
            cfg = r.cfg;
            policy = r.policy;
            pipeline_spec = from_cluster.ok().map(|(s, _)| s);
            (format!("history of {p}"), traces::from_history(&points))
        }
        _ => (
            a.scenario.clone(),
            traces::scenario(&a.scenario).map_err(anyhow::Error::msg)?,
        ),
    };
    let c = simulate::compare_with(&scenario, &arrivals, &cfg, &policy, pipeline_spec.as_ref());
    print!("{}", simulate::table(&c));
    println!(
        "({} simulated seconds per policy; the project's policy took {:.3} s; all {} runs (grids included) {:.2} s)",
        arrivals.len(),
        c.rows[0].wall_seconds,
        c.runs,
        c.wall_seconds
    );
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&c)?)?;
    }
    if let Some(path) = a.svg {
        simulate::plot::svg(&path, &scenario, &c.plotted(), Some(c.slo_seconds))
            .map_err(anyhow::Error::msg)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// The replayed pipeline's spec and its effective policy with its bounds, from the cluster.
async fn replay_pipeline(
    ns: &str,
    name: &str,
    region: &str,
) -> Result<
    (
        impressions_crds::ImpressionPipelineSpec,
        impressions_operator::tools::simulate::replay::ClusterPolicy,
    ),
    String,
> {
    use impressions_crds::{ImpressionPipeline, ScalingPolicy};
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("no cluster: {e}"))?;
    let pipeline = kube::Api::<ImpressionPipeline>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| format!("pipeline {ns}/{name}: {e}"))?;
    let policies = kube::Api::<ScalingPolicy>::all(client)
        .list(&Default::default())
        .await
        .map_err(|e| format!("ScalingPolicies: {e}"))?
        .items;
    let policy = impressions_operator::tools::simulate::replay::ClusterPolicy::of(
        &pipeline, region, &policies,
    )?;
    Ok((pipeline.spec, policy))
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPERATOR_LOG")
        .unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
