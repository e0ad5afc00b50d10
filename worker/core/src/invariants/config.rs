//! The config check: any config text with any `WORKER__…` overrides loads into a config the
//! worker can use, or fails with a field named.

use crate::{
    avro::{Encoder, Framing},
    config::{ConfigError, WorkerConfig},
    loadgen::{Generator, Mix},
    process::{Outcome, Processor},
    quality::Tally,
    reject::Reject,
};

use super::event::{CATALOG_TITLES, ENCODER_SCHEMA, NOW_MS, catalog};

const YEAR_2500_MS: i64 = 16_725_225_600_000;

/// Most overrides read from one config input.
pub const MAX_OVERRIDES: usize = 8;

/// Splits a config input into the YAML text (all of it) and its overrides: each line
/// `#env KEY=VALUE` (a YAML comment) adds the override `KEY=VALUE`, at most [`MAX_OVERRIDES`].
pub fn config_input(text: &str) -> (&str, Vec<(String, String)>) {
    let env = text
        .lines()
        .filter_map(|l| l.strip_prefix("#env "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .take(MAX_OVERRIDES)
        .collect();
    (text, env)
}

/// Loads a config from YAML text and overrides and checks the result; panics on a violation.
/// Returns the validated config, if it is one.
pub fn check_config(yaml: &str, env: &[(String, String)]) -> Option<WorkerConfig> {
    match WorkerConfig::from_yaml(yaml, env.iter().cloned()) {
        Err(e) => {
            let message = e.to_string();
            match &e {
                ConfigError::Field { field, message: m } => {
                    assert!(
                        !field.trim().is_empty(),
                        "error names no field: {message:?}"
                    );
                    assert!(!m.trim().is_empty(), "error says nothing: {message:?}");
                }
                ConfigError::Yaml(m) => assert!(!m.trim().is_empty(), "empty YAML error"),
                ConfigError::Read { .. } => panic!("no file is read: {message}"),
            }
            None
        }
        Ok(cfg) => {
            check_valid_config(&cfg);
            let again = WorkerConfig::from_yaml(yaml, env.iter().cloned())
                .expect("the same input loads again");
            assert_eq!(cfg, again, "loading is deterministic");
            Some(cfg)
        }
    }
}

/// Everything the worker derives from a validated config at start, and one valid event
/// processed with its limits and locations.
fn check_valid_config(cfg: &WorkerConfig) {
    let limits = cfg.limits();
    assert!(limits.max_event_bytes > 0 && limits.max_age_ms > 0 && limits.max_future_ms >= 0);
    let locations = cfg.locations();
    assert_eq!(
        locations.pages.len(),
        cfg.locations.pages.len(),
        "a page id was dropped"
    );
    let t = cfg.transactions();
    assert!(t.interval_ms > 0 && t.max_events > 0 && t.timeout_ms > 0);
    let (prefix, props) = cfg.sink_kafka();
    assert!(prefix == "source.kafka" || prefix == "sink.kafka");
    // A dead letter cut to its limit fits the producer's message size with room to spare.
    let message_max: usize = props
        .get("message.max.bytes")
        .map_or(1_000_000, |v| v.trim().parse().expect("validated"));
    assert!(
        cfg.dead_letter.max_payload_bytes > 0
            && cfg.dead_letter.max_payload_bytes + 64 * 1024 <= message_max,
        "dead-letter payload limit {} with message.max.bytes {message_max}",
        cfg.dead_letter.max_payload_bytes
    );
    assert!(
        !cfg.sink_bootstrap().trim().is_empty(),
        "the sink has no bootstrap servers"
    );
    assert!((1..=64).contains(&cfg.processing.threads));
    assert!((1..=100_000).contains(&cfg.processing.max_batch));
    if let Some(rate) = cfg.processing.max_events_per_second {
        let cap = crate::ratecap::RateCap::new(rate);
        let _ = cap.hold(cfg.processing.max_batch, std::time::Duration::ZERO);
    }
    let _ = std::time::Duration::from_secs(cfg.drain_timeout_secs);
    // The schema learner of each processing thread, and a window the worker can schedule.
    assert!(cfg.schema.window_seconds > 0);
    let _ = cfg
        .schema
        .window_seconds
        .checked_mul(1000)
        .expect("a window in ms");
    if let Some(l) = cfg.learner(cfg.processing.threads - 1) {
        let budget = l.budget;
        assert!(budget.max_event_types > 0 && budget.max_paths > 0 && budget.max_versions > 0);
        let mut learner = crate::schema::Learner::new(&l);
        let e = Generator::new(2, CATALOG_TITLES, Mix::default()).next_event(NOW_MS);
        learner.learn(&e.payload, NOW_MS);
        let o = learner.take();
        assert_eq!(o.events_sampled, 1);
        assert!(o.event_types.len() <= budget.max_event_types);
    }

    // Clocks the worker could see: now, a clock before the epoch (read as 0), a far future.
    let mut p = Processor::new(
        Encoder::new(&ENCODER_SCHEMA, Framing::SingleObject),
        limits,
        locations,
    );
    let mut g = Generator::new(
        1,
        CATALOG_TITLES,
        Mix {
            non_impression: 0.0,
            invalid: 0.0,
            mismatch: 0.0,
        },
    );
    let cat = catalog();
    let (mut out, mut tally) = (Vec::new(), Tally::default());
    for now in [NOW_MS, 0, YEAR_2500_MS] {
        let e = g.next_event(now);
        match p.process(&e.payload, &cat, now, &mut out, &mut tally) {
            Outcome::Record => {}
            Outcome::Rejected(Reject::Oversize { .. })
                if e.payload.len() > limits.max_event_bytes => {}
            // Generated events are up to 5 s old.
            Outcome::Rejected(Reject::TimestampOutOfRange {
                timestamp_ms,
                min_ms,
                ..
            }) if timestamp_ms < min_ms && min_ms == now - limits.max_age_ms => {}
            o => panic!("a valid event at {now} became {o:?} with {limits:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_come_from_env_comment_lines() {
        let (yaml, env) = config_input("a: 1\n#env WORKER__SINK__TOPIC=x=y\n#envX=1\n");
        assert_eq!(yaml, "a: 1\n#env WORKER__SINK__TOPIC=x=y\n#envX=1\n");
        assert_eq!(env, [("WORKER__SINK__TOPIC".to_owned(), "x=y".to_owned())]);
    }
}
