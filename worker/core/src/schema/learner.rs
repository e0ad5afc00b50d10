//! The learner a worker runs next to the per-event path: it is offered every payload, walks a
//! sample of them (on average one in `sampleOneIn`, at random gaps so that no periodic pattern of
//! the traffic aliases with the sampling) and counts, per event type, the paths, types,
//! presences and client versions it sees, within the [`Budget`]. [`Learner::take`] ends the
//! window and returns its [`Observation`].
//!
//! An event offered and not sampled costs one decrement. A sampled event is parsed again (the
//! learner does not share the per-event path's typed view, which skips unknown fields).

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::{
    observation::{Budget, EventTypeShape, FieldShape, Observation, Window},
    types::{TypeCounts, TypeMask, counts_to_map},
    versions::Versions,
    walk::{KeyFields, Walk, WalkLimits},
};

/// The event type of events whose event type field is missing or not a string.
pub const NO_EVENT_TYPE: &str = "(none)";

/// The learner's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LearnerConfig {
    /// One event in this many is walked, on average (1: every event).
    pub sample_one_in: u32,
    /// The top-level field naming the event type.
    pub event_type_field: String,
    /// The top-level field carrying the client version.
    pub client_version_field: String,
    pub budget: Budget,
    /// Nesting walked into (deeper values count as their container).
    pub max_depth: usize,
    /// Items walked per array.
    pub max_array_items: usize,
    /// Values walked per event.
    pub max_values_per_event: usize,
    /// Seed of the sampling gaps.
    pub seed: u64,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        let w = WalkLimits::default();
        LearnerConfig {
            sample_one_in: 100,
            event_type_field: "eventType".into(),
            client_version_field: "appVersion".into(),
            budget: Budget::default(),
            max_depth: w.max_depth,
            max_array_items: w.max_items,
            max_values_per_event: w.max_values,
            seed: 0x5eed,
        }
    }
}

/// Learns the shape of the events offered to it, one window at a time.
#[derive(Debug)]
pub struct Learner {
    keys: KeyFields,
    limits: WalkLimits,
    budget: Budget,
    sample_one_in: u32,
    /// Events to go until the next sampled one (1: the next).
    countdown: u32,
    rng: u64,
    walk: Walk,
    /// The number of the sampled event being counted (a field counts once per event).
    seq: u64,
    window: Option<Window>,
    seen: u64,
    sampled: u64,
    unparsed: u64,
    types_overflow: u64,
    types: FxHashMap<Box<str>, TypeState>,
}

#[derive(Debug)]
struct TypeState {
    events: u64,
    first_seen_ms: i64,
    last_seen_ms: i64,
    paths_overflow: u64,
    values_truncated: u64,
    versions: Versions,
    fields: FxHashMap<Box<str>, FieldState>,
}

#[derive(Debug)]
struct FieldState {
    present: u64,
    types: TypeCounts,
    first_seen_ms: i64,
    last_seen_ms: i64,
    versions: Versions,
    /// The last event counted, and the types seen in it.
    seq: u64,
    mask: TypeMask,
}

impl FieldState {
    /// The window's shape of the field; the counts start again.
    fn take(&mut self) -> FieldShape {
        let shape = FieldShape {
            present: self.present,
            types: counts_to_map(&self.types),
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            versions: std::mem::take(&mut self.versions),
        };
        self.present = 0;
        self.types = [0; 7];
        self.first_seen_ms = i64::MAX;
        self.last_seen_ms = i64::MIN;
        shape
    }
}

impl Learner {
    pub fn new(config: &LearnerConfig) -> Self {
        let mut l = Learner {
            keys: KeyFields {
                event_type: config.event_type_field.clone(),
                client_version: config.client_version_field.clone(),
            },
            limits: WalkLimits {
                max_depth: config.max_depth,
                max_items: config.max_array_items,
                max_values: config.max_values_per_event,
            },
            budget: config.budget,
            sample_one_in: config.sample_one_in.max(1),
            countdown: 1,
            // xorshift needs a state other than 0.
            rng: config.seed | 1,
            walk: Walk::default(),
            seq: 0,
            window: None,
            seen: 0,
            sampled: 0,
            unparsed: 0,
            types_overflow: 0,
            types: FxHashMap::default(),
        };
        l.countdown = l.next_gap();
        l
    }

    /// Offers one raw payload seen at `now_ms`; returns whether it was sampled.
    #[inline]
    pub fn offer(&mut self, payload: &[u8], now_ms: i64) -> bool {
        self.seen += 1;
        if self.countdown > 1 {
            self.countdown -= 1;
            return false;
        }
        self.countdown = self.next_gap();
        self.learn(payload, now_ms);
        true
    }

    /// Walks and counts one payload (whatever the sampling).
    pub fn learn(&mut self, payload: &[u8], now_ms: i64) {
        self.sampled += 1;
        self.seq += 1;
        self.window = Some(match self.window {
            None => Window {
                start_ms: now_ms,
                end_ms: now_ms,
            },
            Some(w) => Window {
                start_ms: w.start_ms.min(now_ms),
                end_ms: w.end_ms.max(now_ms),
            },
        });
        let Ok(text) = simdutf8::basic::from_utf8(payload) else {
            self.unparsed += 1;
            return;
        };
        if self.walk.run(text, &self.keys, &self.limits).is_err() {
            self.unparsed += 1;
            return;
        }
        let name = self.walk.event_type().unwrap_or(NO_EVENT_TYPE);
        let known = self.types.len();
        let ts = match self.types.get_mut(name) {
            Some(ts) => ts,
            None if known < self.budget.max_event_types => {
                self.types.entry(name.into()).or_insert(TypeState {
                    events: 0,
                    first_seen_ms: now_ms,
                    last_seen_ms: now_ms,
                    paths_overflow: 0,
                    values_truncated: 0,
                    versions: Versions::default(),
                    fields: FxHashMap::default(),
                })
            }
            None => {
                self.types_overflow += 1;
                return;
            }
        };
        let version = self.walk.client_version();
        let (seq, max_versions) = (self.seq, self.budget.max_versions);
        ts.events += 1;
        ts.first_seen_ms = ts.first_seen_ms.min(now_ms);
        ts.last_seen_ms = ts.last_seen_ms.max(now_ms);
        ts.values_truncated += self.walk.truncated;
        ts.versions.add(version, 1, max_versions);
        for (path, t) in self.walk.values() {
            let known = ts.fields.len();
            let f = match ts.fields.get_mut(path) {
                Some(f) => f,
                None if known < self.budget.max_paths => {
                    ts.fields.entry(path.into()).or_insert(FieldState {
                        present: 0,
                        types: [0; 7],
                        first_seen_ms: now_ms,
                        last_seen_ms: now_ms,
                        versions: Versions::default(),
                        seq: 0,
                        mask: 0,
                    })
                }
                None => {
                    ts.paths_overflow += 1;
                    continue;
                }
            };
            if f.seq != seq {
                f.seq = seq;
                f.mask = 0;
                f.present += 1;
                f.first_seen_ms = f.first_seen_ms.min(now_ms);
                f.last_seen_ms = f.last_seen_ms.max(now_ms);
                f.versions.add(version, 1, max_versions);
            }
            if f.mask & t.bit() == 0 {
                f.mask |= t.bit();
                f.types[t.index()] += 1;
            }
        }
    }

    /// Ends the window: its observation, and a fresh window. The event types and paths seen
    /// in the window stay known (their counts zeroed), so that a steady stream of events does
    /// not allocate them again; those not seen are forgotten, so that they free the budget.
    pub fn take(&mut self) -> Observation {
        self.types.retain(|_, ts| ts.events > 0);
        let event_types = self
            .types
            .iter_mut()
            .map(|(name, ts)| {
                ts.fields.retain(|_, f| f.present > 0);
                let fields = ts
                    .fields
                    .iter_mut()
                    .map(|(p, f)| (p.to_string(), f.take()))
                    .collect();
                let shape = EventTypeShape {
                    events: ts.events,
                    first_seen_ms: ts.first_seen_ms,
                    last_seen_ms: ts.last_seen_ms,
                    fields,
                    paths_overflow: ts.paths_overflow,
                    values_truncated: ts.values_truncated,
                    versions: std::mem::take(&mut ts.versions),
                };
                ts.events = 0;
                ts.first_seen_ms = i64::MAX;
                ts.last_seen_ms = i64::MIN;
                ts.paths_overflow = 0;
                ts.values_truncated = 0;
                (name.to_string(), shape)
            })
            .collect();
        let obs = Observation {
            window: self.window.take(),
            events_seen: self.seen,
            events_sampled: self.sampled,
            unparsed: self.unparsed,
            event_types,
            event_types_overflow: self.types_overflow,
        };
        self.seen = 0;
        self.sampled = 0;
        self.unparsed = 0;
        self.types_overflow = 0;
        obs
    }

    /// A gap uniform in [1, 2N - 1] (mean N), from xorshift64*.
    fn next_gap(&mut self) -> u32 {
        if self.sample_one_in == 1 {
            return 1;
        }
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        let span = 2 * self.sample_one_in as u64 - 1;
        (1 + r % span) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::JsonType;

    fn every_event() -> LearnerConfig {
        LearnerConfig {
            sample_one_in: 1,
            ..LearnerConfig::default()
        }
    }

    #[test]
    fn counts_presence_types_versions_and_times_per_event_type() {
        let mut l = Learner::new(&every_event());
        let events = [
            r#"{"eventType":"a","appVersion":"1.0","x":1,"l":[1,2.5,"s"]}"#,
            r#"{"eventType":"a","appVersion":"2.0","x":"one","l":[3,4]}"#,
            r#"{"eventType":"a","appVersion":"2.0","l":[]}"#,
            r#"{"eventType":"b","y":null}"#,
            r#"{"appVersion":"2.0"}"#,
            r#"not json"#,
        ];
        for (i, e) in events.iter().enumerate() {
            l.offer(e.as_bytes(), 1000 + i as i64);
        }
        l.offer(b"\xff{}", 2000);
        let o = l.take();
        assert_eq!((o.events_seen, o.events_sampled, o.unparsed), (7, 7, 2));
        assert_eq!(
            o.window,
            Some(Window {
                start_ms: 1000,
                end_ms: 2000
            })
        );
        let a = &o.event_types["a"];
        assert_eq!(a.events, 3);
        assert_eq!(a.versions.names().collect::<Vec<_>>(), ["2.0", "1.0"]);
        let x = &a.fields["x"];
        assert_eq!(x.present, 2);
        assert_eq!((x.first_seen_ms, x.last_seen_ms), (1000, 1001));
        assert_eq!(x.types[&JsonType::Integer], 1);
        assert_eq!(x.types[&JsonType::String], 1);
        assert!((a.presence("x") - 2.0 / 3.0).abs() < 1e-9);
        // Array items: present once per event, each type once per event.
        let items = &a.fields["l[]"];
        assert_eq!(items.present, 2);
        assert_eq!(items.types[&JsonType::Integer], 2);
        assert_eq!(items.types[&JsonType::Number], 1);
        assert_eq!(a.fields["l"].present, 3);
        assert_eq!(o.event_types["b"].fields["y"].types[&JsonType::Null], 1);
        assert_eq!(o.event_types[NO_EVENT_TYPE].events, 1);
        // The next window starts empty.
        assert_eq!(l.take(), Observation::default());
    }

    #[test]
    fn the_observation_survives_json() {
        let mut l = Learner::new(&every_event());
        l.offer(
            br#"{"eventType":"a","appVersion":"1.0","x":[1,2.5,null,{"k":true}]}"#,
            5,
        );
        let o = l.take();
        let text = serde_json::to_string(&o).unwrap();
        assert!(
            text.contains(r#""types":{"null":1,"integer":1,"number":1,"object":1}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Observation>(&text).unwrap(), o);
    }

    #[test]
    fn budgets_bound_types_and_paths() {
        let mut config = every_event();
        config.budget = Budget {
            max_event_types: 2,
            max_paths: 3,
            max_versions: 1,
        };
        let mut l = Learner::new(&config);
        for i in 0..100 {
            let e = format!(
                r#"{{"eventType":"t{}","appVersion":"{i}","k{i}":1}}"#,
                i % 4
            );
            l.offer(e.as_bytes(), i);
        }
        let o = l.take();
        assert_eq!(o.event_types.len(), 2);
        assert_eq!(o.event_types_overflow, 50);
        for t in o.event_types.values() {
            assert_eq!(t.fields.len(), 3);
            // eventType, appVersion and the first k: each further event's own key overflows.
            assert_eq!(t.paths_overflow, 24);
            assert_eq!(t.versions.newest.len(), 1);
            assert_eq!(t.versions.others, 24);
        }
    }

    #[test]
    fn each_window_counts_afresh_and_unseen_paths_free_the_budget() {
        let mut config = every_event();
        config.budget.max_paths = 3;
        let mut l = Learner::new(&config);
        l.offer(br#"{"eventType":"a","x":1,"y":1}"#, 10);
        let first = l.take();
        assert_eq!(first.event_types["a"].fields.len(), 3);
        l.offer(br#"{"eventType":"a","x":"s","z":1}"#, 20);
        l.offer(br#"{"eventType":"a","x":"s","z":1}"#, 30);
        let second = l.take();
        let a = &second.event_types["a"];
        assert_eq!(a.events, 2);
        assert_eq!((a.first_seen_ms, a.last_seen_ms), (20, 30));
        // y still held its place during the window: z overflowed…
        assert_eq!(a.fields.keys().collect::<Vec<_>>(), ["eventType", "x"]);
        assert_eq!(a.paths_overflow, 2);
        let x = &a.fields["x"];
        assert_eq!((x.present, x.first_seen_ms, x.last_seen_ms), (2, 20, 30));
        assert_eq!(x.types, [(JsonType::String, 2)].into_iter().collect());
        // …and was forgotten at its end, so z has a place in the next.
        l.offer(br#"{"eventType":"a","x":"s","z":1}"#, 40);
        let third = l.take();
        assert_eq!(third.event_types["a"].fields.len(), 3);
        assert_eq!(third.event_types["a"].paths_overflow, 0);
    }

    #[test]
    fn samples_one_in_n_on_average() {
        let config = LearnerConfig {
            sample_one_in: 50,
            ..LearnerConfig::default()
        };
        let mut l = Learner::new(&config);
        let sampled = (0..100_000)
            .filter(|_| l.offer(br#"{"eventType":"a"}"#, 0))
            .count();
        assert!((1_800..2_200).contains(&sampled), "{sampled}");
        let o = l.take();
        assert_eq!(o.events_seen, 100_000);
        assert_eq!(o.events_sampled, sampled as u64);
    }
}
