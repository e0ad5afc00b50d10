//! The impression worker: raw JSON events from Kafka to validated, enriched Avro on Kafka.

use clap::Parser;

/// Filters, validates and enriches raw impression events into Avro records.
#[derive(Parser, Debug)]
#[command(name = "worker", version, about)]
struct Cli {
    /// The worker's configuration file (YAML).
    #[arg(long)]
    config: std::path::PathBuf,
}

fn main() {
    let cli = Cli::parse();
    println!("worker with {}", cli.config.display());
}
