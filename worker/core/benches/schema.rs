//! The raw events' schema learner's cost next to the per-event path, on the same ~1.2 KB
//! generated events and in the same run: the per-event path alone (as in
//! `worker/benches/pipeline.rs`), the same with the learner offered every event at its default
//! sampling (what a worker pays), the learner alone at its default sampling, and the learner
//! walking every event (the cost of one sampled event).
//!
//! Before criterion's runs, the two costs are measured alternately and the fastest round of each
//! kept, and their ratio printed: on a shared machine, other load slows separate runs unevenly,
//! and the minimum of alternating rounds is the figure least disturbed by it.
//!
//! `cargo bench -p impressions-worker-core --bench schema` (see docs/benchmarks.md).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use impressions_worker_core::{
    avro::{self, Encoder, Framing},
    loadgen::sample,
    process::{Limits, Outcome, Processor},
    quality::Tally,
    schema::{Learner, LearnerConfig},
};

const N: usize = sample::EVENTS;

fn bench(c: &mut Criterion) {
    let (events, catalog, now) = sample::traffic();
    let defaults = LearnerConfig::default();
    println!(
        "{} events, {} bytes on average, learner sampling one in {}",
        events.len(),
        events.iter().map(Vec::len).sum::<usize>() / events.len(),
        defaults.sample_one_in
    );
    let schema = avro::schema();
    let mut p = Processor::new(
        Encoder::new(&schema, Framing::SingleObject),
        Limits::default(),
        sample::locations(),
    );
    let mut out = Vec::with_capacity(1024);

    let (mut path_best, mut learner_best) = (Duration::MAX, Duration::MAX);
    let mut learner = Learner::new(&defaults);
    for _ in 0..30 {
        let t = Instant::now();
        let mut tally = Tally::default();
        for e in &events {
            std::hint::black_box(p.process(e, &catalog, now, &mut out, &mut tally));
        }
        path_best = path_best.min(t.elapsed());
        let t = Instant::now();
        for e in &events {
            learner.offer(e, now);
        }
        std::hint::black_box(learner.take());
        learner_best = learner_best.min(t.elapsed());
    }
    let per_event = |d: Duration| d.as_nanos() as f64 / events.len() as f64;
    println!(
        "fastest of 30 alternating rounds: per-event path {:.0} ns/event, learner {:.1} ns/event \
         ({:.2} % of the path)",
        per_event(path_best),
        per_event(learner_best),
        100.0 * per_event(learner_best) / per_event(path_best)
    );
    write_results(
        per_event(path_best),
        per_event(learner_best),
        defaults.sample_one_in,
        events.len(),
    );

    let mut group = c.benchmark_group("schema");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);

    group.bench_function("typed_path", |b| {
        b.iter(|| {
            let mut tally = Tally::default();
            let mut records = 0;
            for e in &events {
                if p.process(e, &catalog, now, &mut out, &mut tally) == Outcome::Record {
                    records += out.len();
                }
            }
            records
        })
    });

    // One window per iteration, taken at its end as a worker would.
    group.bench_function("typed_path_and_learner", |b| {
        b.iter(|| {
            let mut tally = Tally::default();
            let mut records = 0;
            for e in &events {
                learner.offer(e, now);
                if p.process(e, &catalog, now, &mut out, &mut tally) == Outcome::Record {
                    records += out.len();
                }
            }
            (records, learner.take().events_sampled)
        })
    });

    group.bench_function("learner_default_sampling", |b| {
        b.iter(|| {
            for e in &events {
                learner.offer(e, now);
            }
            learner.take().events_sampled
        })
    });

    let mut every = Learner::new(&LearnerConfig {
        sample_one_in: 1,
        ..defaults
    });
    group.bench_function("learner_every_event", |b| {
        b.iter(|| {
            for e in &events {
                every.offer(e, now);
            }
            every.take().events_sampled
        })
    });
    group.finish();
}

/// The alternating rounds' figures, for docs/benchmarks.md to quote.
fn write_results(path_ns: f64, learner_ns: f64, sample_one_in: u32, events: usize) {
    let share = 100.0 * learner_ns / path_ns;
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let results = serde_json::json!({
        "command": "cargo bench -p impressions-worker-core --bench schema",
        "unix_time": unix,
        "events": events,
        "rounds": 30,
        "learner_sampling_one_in": sample_one_in,
        "per_event_path_ns": path_ns,
        "learner_ns_per_event": learner_ns,
        "learner_share_of_path_percent": share,
        "goal_percent": 5.0,
        "goal_met": share <= 5.0,
    });
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/results/bench-schema-learner.json"
    );
    match std::fs::write(
        file,
        serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
    ) {
        Ok(()) => println!("results: {file}"),
        Err(e) => eprintln!("cannot write {file}: {e}"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
