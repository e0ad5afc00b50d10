//! `kubectl-impressions`: the kubectl plugin (`kubectl impressions …`). See the library's docs.

use clap::Parser;
use kubectl_impressions::cli::{Cli, run};

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
