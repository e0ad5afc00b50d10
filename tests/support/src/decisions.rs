//! The operator's decision log, read back from its log files, and the judgement of a pipeline's
//! replica changes against it: due, or wrong.
//!
//! The operator logs (with `impressions_operator=debug`, text format):
//! - every evaluation of a pipeline: `evaluated pipeline=<ref> reason="<Reason>" replicas=<n>
//!   <message>`, the message carrying the estimate (`… → <n> replicas for <p> partitions`) and
//!   the rule that applied (`scaling down 8 → 4 …`, `held: …`);
//! - the history it rebuilt from Prometheus when it starts leading: `rebuilt the scaling history
//!   from Prometheus pipeline=<ref> points=<n>`;
//! - every failed read a last good one stood in for: `using the last good read error=… age=…`.
//!
//! A replica change is **due** when a scale decision of the log explains it (the reason is
//! `ScaleUp`, `ScaleUpForBacklog` or `ScaleDown` and the decided count is the new one, decided
//! before the change and applied within a bound) and fresh metrics made it: evaluations made
//! outside every interval in which a fault hid the metrics (a failed read that a stand-in
//! replaced, or no read at all). A scale-up decided from fresh metrics is due. A scale-down
//! needs its window: every fresh evaluation logged in the scale-down window before the decision
//! recommended at most the new count, none had its metrics missing, and fresh evaluations cover
//! the window from its start (no gap longer than a bound, except across a change of leader whose
//! new leader logged the history it rebuilt). A decision taken during a fault, on a stand-in,
//! is due only when the fresh evaluations before the fault had already made it: a scale-up the
//! last fresh evaluation recommended, a scale-down whose window the fresh evaluations cover up
//! to the fault's start (the fault delayed it, at most). Anything else is **wrong**: a change the
//! log does not explain, one decided while the metrics were missing, one resting on
//! recommendations made from stand-ins (a window that overlaps a fault other than the one the
//! decision was taken in), or a scale-down the window does not justify.

use std::path::PathBuf;

use serde::Serialize;

use crate::observe::{Clock, Sample};

/// One logged evaluation of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Seconds on the reader's clock.
    pub t: f64,
    /// Which log (operator process) wrote it: the index of its path.
    pub source: usize,
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub replicas: i32,
    /// The estimate's recommendation (`→ N replicas for`), absent when there was no estimate
    /// (metrics missing, no capacity measured yet).
    pub recommended: Option<i32>,
    pub message: String,
}

/// A history rebuilt from Prometheus by an operator that started leading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rebuild {
    pub t: f64,
    pub source: usize,
    pub namespace: String,
    pub name: String,
}

/// A failed read that the last good one stood in for (the log does not name the pipeline).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StandIn {
    pub t: f64,
    pub source: usize,
    pub error: String,
}

/// Everything the operators logged about their decisions, in time order.
#[derive(Debug, Clone, Default)]
pub struct DecisionLog {
    pub evaluations: Vec<Evaluation>,
    pub rebuilds: Vec<Rebuild>,
    pub stand_ins: Vec<StandIn>,
}

/// Removes ANSI escape sequences (the text format colours its output even into a file).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `<Kind>.<version>.<group>/<name>.<namespace>` (kube's object reference) → (namespace, name).
fn object_ref(s: &str) -> Option<(String, String)> {
    let (_, rest) = s.split_once('/')?;
    let (name, ns) = rest.rsplit_once('.')?;
    Some((ns.to_owned(), name.to_owned()))
}

/// The value of `key=` among the space-separated fields of `s`, without quotes, and the text
/// after that field.
fn field<'a>(s: &'a str, key: &str) -> Option<(&'a str, &'a str)> {
    let at = s.find(&format!("{key}="))?;
    let v = &s[at + key.len() + 1..];
    if let Some(q) = v.strip_prefix('"') {
        let end = q.find('"')?;
        Some((&q[..end], &q[end + 1..]))
    } else {
        let end = v.find(' ').unwrap_or(v.len());
        Some((&v[..end], &v[end..]))
    }
}

/// The recommendation of an estimate's message: `… → N replicas for P partitions`.
fn recommendation(message: &str) -> Option<i32> {
    let at = message.find(" replicas for ")?;
    let before = message[..at].trim_end();
    let n = before.rsplit(' ').next()?;
    before
        .strip_suffix(n)?
        .trim_end()
        .ends_with('→')
        .then(|| n.parse().ok())
        .flatten()
}

fn unix_seconds(ts: &str) -> Option<f64> {
    let t: k8s_openapi::jiff::Timestamp = ts.parse().ok()?;
    Some(t.as_millisecond() as f64 / 1000.0)
}

impl DecisionLog {
    /// Reads the operators' logs (`paths[i]` is source `i`), times on `clock`'s axis.
    pub fn read(paths: &[PathBuf], clock: &Clock) -> DecisionLog {
        let mut log = DecisionLog::default();
        for (i, p) in paths.iter().enumerate() {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            log.add(&text, i, clock.unix_origin());
        }
        log.sort();
        log
    }

    /// Parses one log's text as source `source`; times are seconds after `origin_unix`.
    pub fn parse(text: &str, source: usize, origin_unix: f64) -> DecisionLog {
        let mut log = DecisionLog::default();
        log.add(text, source, origin_unix);
        log.sort();
        log
    }

    fn sort(&mut self) {
        self.evaluations.sort_by(|a, b| a.t.total_cmp(&b.t));
        self.rebuilds.sort_by(|a, b| a.t.total_cmp(&b.t));
        self.stand_ins.sort_by(|a, b| a.t.total_cmp(&b.t));
    }

    fn add(&mut self, text: &str, source: usize, origin_unix: f64) {
        for raw in text.lines() {
            if !raw.contains("evaluat") && !raw.contains("the last good read") {
                continue;
            }
            let line = strip_ansi(raw);
            let Some((ts, rest)) = line.split_once(' ') else {
                continue;
            };
            let Some(t) = unix_seconds(ts).map(|u| u - origin_unix) else {
                continue;
            };
            if let Some(at) = rest.find(" evaluated pipeline=") {
                let fields = &rest[at + " evaluated ".len()..];
                let parsed = (|| {
                    let (pipeline, _) = field(fields, "pipeline")?;
                    let (namespace, name) = object_ref(pipeline)?;
                    let (reason, _) = field(fields, "reason")?;
                    let (replicas, message) = field(fields, "replicas")?;
                    let message = message.trim().to_owned();
                    Some(Evaluation {
                        t,
                        source,
                        namespace,
                        name,
                        reason: reason.to_owned(),
                        replicas: replicas.parse().ok()?,
                        recommended: recommendation(&message),
                        message,
                    })
                })();
                self.evaluations.extend(parsed);
            } else if rest.contains("rebuilt the scaling history")
                && let Some((namespace, name)) =
                    field(rest, "pipeline").and_then(|(p, _)| object_ref(p))
            {
                self.rebuilds.push(Rebuild {
                    t,
                    source,
                    namespace,
                    name,
                });
            } else if rest.contains("using the last good read") {
                // The error is shown as text (spaces and all) before `age=`.
                let error = rest
                    .split_once("error=")
                    .map_or("", |(_, e)| e.split(" age=").next().unwrap_or(e))
                    .to_owned();
                self.stand_ins.push(StandIn { t, source, error });
            }
        }
    }

    /// A pipeline's evaluations, in time order.
    pub fn of(&self, namespace: &str, name: &str) -> Vec<&Evaluation> {
        self.evaluations
            .iter()
            .filter(|e| e.namespace == namespace && e.name == name)
            .collect()
    }

    /// The longest time without an evaluation of a pipeline between `from` and `to`, counted
    /// from its last evaluation before `from` (or `from`) until `to`: (seconds, when it began).
    pub fn longest_gap(&self, namespace: &str, name: &str, from: f64, to: f64) -> (f64, f64) {
        let evs = self.of(namespace, name);
        let start = evs.iter().rev().find(|e| e.t <= from).map_or(from, |e| e.t);
        let mut points = vec![start];
        points.extend(evs.iter().filter(|e| e.t > from && e.t <= to).map(|e| e.t));
        points.push(to);
        points
            .windows(2)
            .map(|w| (w[1] - w[0], w[0]))
            .fold((0.0, from), |a, b| if b.0 > a.0 { b } else { a })
    }

    /// The time of a pipeline's last evaluation.
    pub fn last(&self, namespace: &str, name: &str) -> Option<f64> {
        self.of(namespace, name).last().map(|e| e.t)
    }

    /// Evaluations of a pipeline between `from` and `to` whose reason is `reason`.
    pub fn count(&self, namespace: &str, name: &str, reason: &str, from: f64, to: f64) -> usize {
        self.of(namespace, name)
            .iter()
            .filter(|e| e.reason == reason && e.t >= from && e.t <= to)
            .count()
    }

    /// Stand-ins for failed reads logged between `from` and `to`.
    pub fn stand_ins(&self, from: f64, to: f64) -> Vec<&StandIn> {
        self.stand_ins
            .iter()
            .filter(|s| s.t >= from && s.t <= to)
            .collect()
    }

    /// The last sign, between `from` and `to`, that a read failed: a stand-in logged, or an
    /// evaluation of any pipeline holding on missing metrics.
    pub fn last_failed_read(&self, from: f64, to: f64) -> Option<f64> {
        let stand_in = self.stand_ins(from, to).into_iter().map(|s| s.t);
        let missing = self
            .evaluations
            .iter()
            .filter(|e| e.reason == "HoldMetricsMissing" && e.t >= from && e.t <= to)
            .map(|e| e.t);
        stand_in.chain(missing).reduce(f64::max)
    }

    fn rebuilt_by(&self, source: usize, namespace: &str, name: &str, before: f64) -> bool {
        self.rebuilds.iter().any(|r| {
            r.source == source && r.namespace == namespace && r.name == name && r.t <= before
        })
    }

    /// Judges one replica change of a pipeline (see the module's documentation).
    pub fn judge(&self, c: &Change, namespace: &str, name: &str, rules: &Rules) -> Verdict {
        let evs = self.of(namespace, name);
        let verdict = |due: bool, why: String, decision: Option<&Evaluation>| Verdict {
            change: c.clone(),
            due,
            why,
            decision: decision.map(|d| format!("{:.1}: {} {}", d.t, d.reason, d.message)),
        };
        // A decision taken while the API server was away is applied when it is back.
        let stalled: f64 = rules
            .stalls
            .iter()
            .filter(|s| s.from <= c.t && s.to + rules.apply_within >= c.before)
            .map(|s| s.to - s.from)
            .sum();
        let earliest = c.before - rules.apply_within - stalled;
        let Some(d) = evs.iter().rev().copied().find(|e| {
            e.t <= c.t + CLOCK_SLACK
                && e.t >= earliest
                && e.replicas == c.to
                && SCALE_REASONS.contains(&e.reason.as_str())
        }) else {
            return verdict(
                false,
                format!(
                    "no scale decision to {} replicas logged between {earliest:.1} and {:.1}",
                    c.to, c.t
                ),
                None,
            );
        };
        if d.reason == "ScaleUpMetricsMissing" {
            return verdict(
                false,
                "decided while the metrics were missing".into(),
                Some(d),
            );
        }
        let blind_at = |t: f64| rules.blind.iter().find(|b| t >= b.from && t <= b.to);
        // A decision taken while a fault hid the metrics rests on a stand-in for a failed read:
        // it is due only when the fresh evaluations before the fault had already made it (the
        // fault delayed it at most), never on what the stand-ins alone recommended.
        let during = blind_at(d.t);
        if c.to > c.from {
            let Some(b) = during else {
                return verdict(true, format!("{} from fresh metrics", d.reason), Some(d));
            };
            let last = evs
                .iter()
                .rev()
                .copied()
                .find(|e| e.t < b.from && blind_at(e.t).is_none());
            return match last.and_then(|e| Some((e.t, e.recommended?))) {
                Some((t, r)) if r >= c.to => verdict(
                    true,
                    format!(
                        "decided while {} hid the metrics, but the last fresh evaluation before it ({t:.1}) already recommended {r}",
                        b.what
                    ),
                    Some(d),
                ),
                _ => verdict(
                    false,
                    format!(
                        "decided at {:.1}, while {} hid the metrics ({:.1}–{:.1}), and no fresh evaluation before it recommended {}",
                        d.t, b.what, b.from, b.to, c.to
                    ),
                    Some(d),
                ),
            };
        }
        // A scale-down: the fresh evaluations of its window must justify it. The window may end
        // in the fault the decision was taken in; no other fault may have hidden any of it.
        let w0 = d.t - rules.down_window + WINDOW_SLACK;
        if let Some(b) = rules
            .blind
            .iter()
            .find(|b| Some(*b) != during && b.from <= d.t && b.to >= w0)
        {
            return verdict(
                false,
                format!(
                    "its {:.0} s window ({w0:.1}–{:.1}) overlaps {} ({:.1}–{:.1}), which hid the metrics: it rests on stand-ins or on nothing",
                    rules.down_window, d.t, b.what, b.from, b.to
                ),
                Some(d),
            );
        }
        let fresh_until = during.map_or(d.t, |b| b.from);
        let window: Vec<&Evaluation> = evs
            .iter()
            .copied()
            .filter(|e| e.t >= w0 && e.t <= fresh_until && blind_at(e.t).is_none())
            .collect();
        if let Some(b) = during
            && window.is_empty()
        {
            return verdict(
                false,
                format!(
                    "decided at {:.1}, while {} hid the metrics ({:.1}–{:.1}), with no fresh evaluation in its window",
                    d.t, b.what, b.from, b.to
                ),
                Some(d),
            );
        }
        if let Some(e) = window
            .iter()
            .find(|e| e.recommended.is_none_or(|r| r > c.to))
        {
            return verdict(
                false,
                format!(
                    "within its {:.0} s window, at {:.1}, {} {}",
                    rules.down_window,
                    e.t,
                    e.reason,
                    e.recommended
                        .map_or("had no estimate".to_owned(), |r| format!(
                            "recommended {r} > {}",
                            c.to
                        ))
                ),
                Some(d),
            );
        }
        let anchor = evs.iter().rev().copied().find(|e| e.t < w0);
        let mut points: Vec<&Evaluation> = anchor.into_iter().collect();
        points.extend(window.iter().copied());
        let first = points[0];
        if anchor.is_none() && !self.rebuilt_by(first.source, namespace, name, first.t) {
            return verdict(
                false,
                format!(
                    "no evaluation logged before its window ({w0:.1}) and no history rebuilt: the window is not covered"
                ),
                Some(d),
            );
        }
        // Fresh evaluations reach the decision, or the start of the fault it was taken in.
        let tail = during.map(|b| (points[points.len() - 1], b.from));
        if let Some((last, from)) = tail
            && from - last.t > rules.max_gap
        {
            return verdict(
                false,
                format!(
                    "no fresh evaluation logged from {:.1} to the fault at {from:.1} (more than {:.0} s)",
                    last.t, rules.max_gap
                ),
                Some(d),
            );
        }
        for p in points.windows(2) {
            let (a, b) = (p[0], p[1]);
            let leader_change =
                a.source != b.source && self.rebuilt_by(b.source, namespace, name, b.t);
            if b.t - a.t > rules.max_gap && !leader_change {
                return verdict(
                    false,
                    format!(
                        "no evaluation logged from {:.1} to {:.1} within its window (more than {:.0} s)",
                        a.t, b.t, rules.max_gap
                    ),
                    Some(d),
                );
            }
        }
        let how = match during {
            None => "from fresh metrics".to_owned(),
            Some(b) => format!(
                "decided while {} hid the metrics, but due before it",
                b.what
            ),
        };
        verdict(
            true,
            format!(
                "ScaleDown {how}; {} fresh evaluations in its {:.0} s window recommended at most {}",
                window.len(),
                rules.down_window,
                c.to
            ),
            Some(d),
        )
    }
}

/// The reasons of a decision that changes the count.
const SCALE_REASONS: [&str; 4] = [
    "ScaleUp",
    "ScaleUpForBacklog",
    "ScaleDown",
    "ScaleUpMetricsMissing",
];
/// A logged decision may carry a timestamp a little after the sample that saw its effect.
const CLOCK_SLACK: f64 = 1.0;
/// The operator's window is measured on its own clock; the log's time is when the line was
/// written: the first second of the window is not required.
const WINDOW_SLACK: f64 = 1.0;

/// A change of a Deployment's replicas seen between two samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The sample before the change.
    pub before: f64,
    /// The sample that saw it.
    pub t: f64,
    pub from: i32,
    pub to: i32,
}

/// The changes of replicas in a sampler's samples; the Deployment's creation and deletion are
/// not changes.
pub fn changes(samples: &[Sample]) -> Vec<Change> {
    samples
        .windows(2)
        .filter(|w| w[0].deployment && w[1].deployment && w[0].replicas != w[1].replicas)
        .map(|w| Change {
            before: w[0].t,
            t: w[1].t,
            from: w[0].replicas,
            to: w[1].replicas,
        })
        .collect()
}

/// An interval of a fault, on the reader's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    pub from: f64,
    pub to: f64,
    pub what: String,
}

/// How changes are judged.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The policy's scale-down stabilization window.
    pub down_window: f64,
    /// The longest time between two logged evaluations that still counts as covering a window.
    pub max_gap: f64,
    /// How long after its decision a change may be seen (reconcile and sampling), besides the
    /// time the API server was away.
    pub apply_within: f64,
    /// When faults hid the metrics (reads failed: a stand-in or nothing).
    pub blind: Vec<Interval>,
    /// When decisions could not be applied (the API server away, no leader).
    pub stalls: Vec<Interval>,
}

/// The judgement of one change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub change: Change,
    pub due: bool,
    pub why: String,
    /// The decision that explains it: `time: reason message`.
    pub decision: Option<String>,
}

#[cfg(test)]
mod tests;
