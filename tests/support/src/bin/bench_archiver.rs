//! The archiver on the local Kafka: records archived per second and per CPU-second, bytes per
//! record in Parquet against the Avro topic, commit latency, and the data files an hour at the
//! default settings. The Avro topic is written by the worker binary from generated events first;
//! then one archiver (release build) archives it into a fresh SQLite catalog.
//!
//! `cargo run --release -p impressions-tests --bin bench_archiver -- [EVENTS] [--out FILE]` with
//! the stack up (`make bench-archiver` does both).

use std::time::{Duration, Instant};

use impressions_tests::{
    Stack,
    archive::{ArchiverProcess, Catalog, config},
    kafka::{self, Isolation},
    worker::{WorkerProcess, topics, wait_committed},
};
use impressions_worker::loadgen::Mix;
use rdkafka::Message;

/// CPU seconds (user + system) of a process so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command's closing parenthesis: utime and stime are the 12th and 13th
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // sysconf(_SC_CLK_TCK) is 100 on Linux
    ticks / 100.0
}

fn metric_sum_count(text: &str, family: &str) -> (f64, f64) {
    let series =
        |suffix: &str| impressions_tests::worker::parse_metric(text, &format!("{family}_{suffix}"));
    (series("sum"), series("count"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1).cloned());
    let stack = Stack::get();
    let t = topics(stack, "bench-archiver", 3, 5000).await;
    eprintln!("producing {n} raw events and running the worker…");
    kafka::produce_generated(stack, &t.raw, 42, n, 5000, Mix::default()).await;
    let mut w = WorkerProcess::start(
        "bench-archiver-worker",
        &impressions_tests::worker::config(stack, &t, ""),
    );
    w.wait_ready(Duration::from_secs(60));
    wait_committed(stack, &t, Duration::from_secs(600)).await;
    assert!(
        w.terminate(Duration::from_secs(60)).0,
        "worker stops cleanly"
    );
    let avro = kafka::read_to_end(
        stack,
        &t.out,
        Isolation::ReadUncommitted,
        Duration::from_secs(60),
    );
    let records = avro.len();
    let avro_bytes: usize = avro
        .iter()
        .map(|m| m.payload().map_or(0, |p| p.len()))
        .sum();
    drop(avro);
    eprintln!("{records} Avro records ({avro_bytes} bytes); archiving…");

    let catalog = Catalog::new("bench-archiver");
    let interval = 10;
    let cfg = config(
        stack,
        &t.out,
        &t.dlq,
        &format!("{}-archiver", t.group),
        &catalog,
        &format!("commitIntervalSeconds: {interval}"),
    );
    let mut a = ArchiverProcess::start("bench-archiver", &cfg, &[]);
    a.wait_ready(Duration::from_secs(60));
    let pid = a.child.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    // the first record is taken at once; the last commit falls due `interval` after the last
    // batch began, so the wall time includes up to one interval of waiting
    let done = a.wait_committed(records as f64, Duration::from_secs(1800));
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    assert_eq!(
        done,
        records as f64,
        "archived every record:\n{}",
        a.log_tail()
    );
    let metrics = a.get("/metrics").map(|x| x.1).unwrap_or_default();
    let busy = impressions_tests::worker::parse_metric(
        &metrics,
        "impressions_archiver_busy_seconds_total",
    );
    let parquet_bytes = impressions_tests::worker::parse_metric(
        &metrics,
        "impressions_archiver_bytes_committed_total",
    );
    let files = impressions_tests::worker::parse_metric(
        &metrics,
        "impressions_archiver_files_committed_total",
    );
    let (commit_sum, commits) = metric_sum_count(&metrics, "impressions_archiver_commit_seconds");
    assert!(a.terminate(Duration::from_secs(60)));
    let table = catalog.read(stack);
    assert_eq!(table.rows, records, "pyiceberg reads every record back");
    assert!(table.duplicates().is_empty());

    // Files an hour at the defaults (commitIntervalSeconds 300, targetFileSizeBytes 128 MiB):
    // each commit closes one file per event hour it saw (one, or two across an hour boundary),
    // more when a partition's file reached the target size.
    let parquet_per_record = parquet_bytes / records as f64;
    let target = 128.0 * 1024.0 * 1024.0;
    let rate_to_roll = target / 300.0 / parquet_per_record;
    let report = serde_json::json!({
        "date": chrono_date(),
        "command": command_line(),
        "machine": "2 cores, 24 GiB; the local stack on the same cores",
        "records": records,
        "wall_seconds": wall,
        "records_per_second": records as f64 / wall,
        "cpu_seconds": cpu,
        "records_per_cpu_second": records as f64 / cpu,
        "busy_seconds": busy,
        "avro_bytes_per_record": avro_bytes as f64 / records as f64,
        "parquet_bytes_per_record": parquet_per_record,
        "parquet_to_avro": parquet_bytes / avro_bytes as f64,
        "commits": commits,
        "commit_interval_seconds": interval,
        "commit_latency_mean_seconds": if commits > 0.0 { commit_sum / commits } else { 0.0 },
        "files": files,
        "files_per_hour_at_defaults_per_archiver": 3600.0 / 300.0,
        "records_per_second_above_which_files_roll_by_size_at_defaults": rate_to_roll,
        "data_files_in_table": table.data_files.len(),
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    if let Some(path) = out {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap() + "\n").unwrap();
        eprintln!("wrote {path}");
    }
}

fn chrono_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%MZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The command line as run, with the archiver build it drove.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    match std::env::var("IMPRESSIONS_ARCHIVER_BIN") {
        Ok(bin) => format!("IMPRESSIONS_ARCHIVER_BIN={bin} {}", args.join(" ")),
        Err(_) => args.join(" "),
    }
}
