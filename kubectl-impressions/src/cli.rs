//! The command line: `kubectl impressions [flags] COMMAND`, and what each command runs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::jiff::Timestamp;

use crate::{
    connect::{ConnectArgs, connect},
    error::Error,
    prescale, schema, status, what_if, why,
};

/// ImpressionPipelines at a glance: their status, why they scaled, what another ScalingPolicy
/// would have done. Uses your kubeconfig like kubectl.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl impressions",
    bin_name = "kubectl impressions",
    version,
    about
)]
pub struct Cli {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Every pipeline: replicas ready/desired, input and processed rates, lag (events and
    /// seconds), data quality, the last decision and its age.
    Status {
        /// Pipelines of every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// A pipeline's scaling decisions, newest first, each with its reason and the numbers it
    /// used: the last one from its status, the earlier ones from its Scale Events, and with
    /// --prometheus the operator's count of decisions by reason.
    Why {
        /// The ImpressionPipeline's name.
        name: String,
        /// Prometheus base URL that scrapes the operator.
        #[arg(long, env = "IMPRESSIONS_PROMETHEUS_URL")]
        prometheus: Option<String>,
        /// How far back to read the operator's counters (a Prometheus duration).
        #[arg(long, default_value = "1h")]
        since: String,
    },
    /// Replays the pipeline's recorded history (Prometheus) through the operator's simulator
    /// with a proposed ScalingPolicy and with its current one: replica-hours, seconds over the
    /// lag SLO, scaling actions, side by side, and a plot.
    WhatIf {
        /// The ImpressionPipeline's name.
        name: String,
        /// A ScalingPolicy manifest (YAML) to try.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Prometheus base URL that scrapes the pipeline's workers.
        #[arg(long, env = "IMPRESSIONS_PROMETHEUS_URL")]
        prometheus: String,
        /// Hours of history to replay (at most 168).
        #[arg(long, default_value_t = 1.0)]
        hours: f64,
        /// Write the plot (arrival rate, lag, replicas of both policies) to this SVG file.
        #[arg(long, value_name = "OUT")]
        svg: Option<PathBuf>,
        /// The operator's region (picks a region-default ScalingPolicy for a pipeline that
        /// names none and has no region).
        #[arg(long, env = "IMPRESSIONS_REGION", default_value = "")]
        region: String,
    },
    /// Declares a planned surge (spec.scaling.plannedSurges): the operator runs at least
    /// FACTOR × the usual replicas from a pod's start and a rebalance before --from until the
    /// end of the window.
    Prescale {
        /// The ImpressionPipeline's name.
        name: String,
        /// The load expected over the usual, above 1 and at most 100.
        #[arg(long)]
        factor: f64,
        /// When the surge starts: RFC 3339 (2026-12-24T18:00:00Z), `now`, or a duration from
        /// now (10m, 2h).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// How long it lasts (90m, 2h, 1h30m), at most 168h.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
    },
    /// The raw events' schema of a pipeline.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// The plugin's version.
    Version,
}

#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// Accepts the schema the workers learned in the last window as the pipeline's baseline
    /// (sets impressions.dev/schema-accept on its RawEventSchema).
    Accept {
        /// The pipeline's (and its RawEventSchema's) name.
        name: String,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// Runs the command; returns what to print.
pub async fn run(cli: Cli) -> Result<String, Error> {
    let connect_args = &cli.connect;
    match cli.command {
        Command::Version => Ok(format!(
            "kubectl-impressions {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        Command::Status {
            all_namespaces,
            output,
        } => {
            let cluster = connect(connect_args).await?;
            let namespace = (!all_namespaces).then_some(cluster.namespace.as_str());
            let pipelines = status::list(&cluster, namespace).await?;
            let now = Timestamp::now();
            let views: Vec<status::PipelineView> = pipelines
                .iter()
                .map(|p| status::PipelineView::of(p, now))
                .collect();
            match output {
                Output::Json => Ok(format!(
                    "{}\n",
                    serde_json::to_string_pretty(&views).expect("views serialize")
                )),
                Output::Table if views.is_empty() => Ok(match namespace {
                    Some(ns) => format!("No ImpressionPipelines in namespace {ns}.\n"),
                    None => "No ImpressionPipelines in any namespace.\n".into(),
                }),
                Output::Table => Ok(status::table(&views, all_namespaces, now)),
            }
        }
        Command::Why {
            name,
            prometheus,
            since,
        } => {
            let cluster = connect(connect_args).await?;
            why::run(&cluster, &name, prometheus.as_deref(), &since).await
        }
        Command::WhatIf {
            name,
            policy,
            prometheus,
            hours,
            svg,
            region,
        } => {
            if hours.is_nan() || hours <= 0.0 || hours > what_if::MAX_HOURS {
                return Err(Error::Usage(format!(
                    "--hours must be above 0 and at most {} (a week of history: Prometheus answers at most 11,000 points per series, at the 60 s step)",
                    what_if::MAX_HOURS
                )));
            }
            let cluster = connect(connect_args).await?;
            let request = what_if::Request {
                name,
                policy_file: policy,
                prometheus,
                hours,
                svg,
                region,
            };
            what_if::run(&cluster, &request).await
        }
        Command::Prescale {
            name,
            factor,
            from,
            duration,
        } => {
            let now = Timestamp::now();
            let surge = prescale::surge(factor, &from, &duration, now)?;
            let cluster = connect(connect_args).await?;
            prescale::add(&cluster, &name, surge, now).await
        }
        Command::Schema {
            command: SchemaCommand::Accept { name },
        } => {
            let cluster = connect(connect_args).await?;
            Ok(format!(
                "{}\n",
                schema::accept(&cluster, &name, Timestamp::now()).await?
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn flags_go_before_or_after_the_command_as_with_kubectl() {
        let cli = Cli::try_parse_from([
            "kubectl-impressions",
            "status",
            "-A",
            "-o",
            "json",
            "--context",
            "prod",
        ])
        .unwrap();
        assert_eq!(cli.connect.context.as_deref(), Some("prod"));
        assert!(matches!(
            cli.command,
            Command::Status {
                all_namespaces: true,
                output: Output::Json
            }
        ));
        let cli = Cli::try_parse_from(["kubectl-impressions", "-n", "ads", "why", "eu"]).unwrap();
        assert_eq!(cli.connect.namespace.as_deref(), Some("ads"));
        let e = Cli::try_parse_from(["kubectl-impressions", "what-if", "eu"]).unwrap_err();
        assert!(e.to_string().contains("--policy"), "{e}");
    }
}
