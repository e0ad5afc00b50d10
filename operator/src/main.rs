//! The impressions operator: reconciles ImpressionPipelines into worker fleets and scales them.

use clap::Parser;

/// Reconciles ImpressionPipelines of one region into worker fleets and scales them from Kafka
/// lag and Prometheus throughput, within the SREs' ScalingPolicies.
#[derive(Parser, Debug)]
#[command(name = "operator", version, about)]
struct Cli {
    /// The region this operator serves (pipelines with spec.region equal to it or empty).
    #[arg(long, env = "IMPRESSIONS_REGION")]
    region: String,
}

fn main() {
    let cli = Cli::parse();
    println!("operator for region {}", cli.region);
}
