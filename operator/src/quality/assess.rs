//! The pure judgement: what a pipeline's workers counted over the window → ratios → the level
//! (OK, Warning, Critical) and the worst offender → the DataQuality condition and the Event a
//! change of level deserves.

use std::collections::BTreeMap;

use impressions_crds::quality::{Column, QualitySpec, Thresholds};

/// What a pipeline's workers counted over the window, summed over the workers (Prometheus
/// `increase()`, so possibly fractional).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowCounts {
    /// Events handled: records, dead letters and filtered events.
    pub processed: f64,
    /// Events of other types than impression, dropped.
    pub filtered: f64,
    /// Dead-lettered events by reason.
    pub rejected: BTreeMap<String, f64>,
    /// Null or missing values by column name.
    pub nulls: BTreeMap<String, f64>,
    /// Ill-typed or out-of-range values by column name.
    pub invalid: BTreeMap<String, f64>,
    /// Column pairs that disagreed, corrected or not, by pair name (`entityId/videoId`).
    pub mismatches: BTreeMap<String, f64>,
}

/// Shares over the window, each in [0, 1].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QualityRatios {
    /// Impression events (processed minus filtered): the denominator of the dead-letter, null
    /// and invalid ratios.
    pub impressions: f64,
    /// Impression events dead-lettered.
    pub dead_lettered: f64,
    /// The reason most dead letters had.
    pub top_reason: Option<String>,
    /// Per column: impression events whose value was null or missing.
    pub nulls: BTreeMap<Column, f64>,
    /// Per column: impression events whose value was ill-typed or out of range.
    pub invalid: BTreeMap<Column, f64>,
    /// Per pair: records (impressions not dead-lettered) whose two columns disagreed.
    pub mismatches: BTreeMap<String, f64>,
}

/// `n / of` within [0, 1]; 0 when undefined.
fn share(n: f64, of: f64) -> f64 {
    let r = n / of;
    if r.is_finite() {
        r.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Fewer impression events than this in a window are too few to judge: a handful of events
/// (traffic stopping, a quiet region at night) would make any ratio swing to Critical.
pub const MIN_IMPRESSIONS: f64 = 100.0;

/// The ratios of a window's counts; `None` when the window holds fewer than
/// [`MIN_IMPRESSIONS`] impression events (nothing to judge: the condition is Unknown, not OK).
pub fn ratios(c: &WindowCounts) -> Option<QualityRatios> {
    let impressions = (c.processed - c.filtered).max(0.0);
    // `max` turns a NaN into 0.
    if impressions < MIN_IMPRESSIONS {
        return None;
    }
    let dead_letters: f64 = c.rejected.values().filter(|v| v.is_finite()).sum();
    let records = impressions - dead_letters;
    let by_column = |m: &BTreeMap<String, f64>| {
        m.iter()
            .filter_map(|(name, n)| Some((Column::from_name(name)?, share(*n, impressions))))
            .collect()
    };
    Some(QualityRatios {
        impressions,
        dead_lettered: share(dead_letters, impressions),
        top_reason: c
            .rejected
            .iter()
            .filter(|(_, n)| **n > 0.0)
            .fold(None::<(&String, f64)>, |best, (r, n)| match best {
                Some((_, b)) if b >= *n => best,
                _ => Some((r, *n)),
            })
            .map(|(r, _)| r.clone()),
        nulls: by_column(&c.nulls),
        invalid: by_column(&c.invalid),
        mismatches: c
            .mismatches
            .iter()
            .map(|(pair, n)| (pair.clone(), share(*n, records)))
            .collect(),
    })
}

/// How good the data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    /// The DataQuality condition's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "Warning",
            Level::Critical => "Critical",
        }
    }

    /// The value of the `pipeline_data_quality` gauge.
    pub fn gauge(self) -> i64 {
        self as i64
    }

    /// The level a condition reason names, if it names one.
    pub fn from_reason(reason: &str) -> Option<Level> {
        [Level::Ok, Level::Warning, Level::Critical]
            .into_iter()
            .find(|l| l.reason() == reason)
    }

    /// The level of one ratio: at or above a threshold reaches it; a ratio of 0 is always OK.
    pub fn of(ratio: f64, t: &Thresholds) -> Level {
        if ratio.is_nan() || ratio <= 0.0 {
            Level::Ok
        } else if ratio >= t.critical {
            Level::Critical
        } else if ratio >= t.warning {
            Level::Warning
        } else {
            Level::Ok
        }
    }
}

/// Which threshold a ratio is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `invalidRatio`: dead-lettered events, and ill-typed values of a key column.
    Invalid,
    /// `nullRatio`: nulls of a key column.
    Null,
    /// `mismatchRatio`: a column pair that disagreed.
    Mismatch,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid",
            Kind::Null => "null",
            Kind::Mismatch => "mismatch",
        }
    }
}

/// What a ratio is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// All dead-lettered impression events.
    DeadLetters { top_reason: Option<String> },
    /// One key column.
    Column(Column),
    /// One column pair.
    Pair(String),
}

/// One checked ratio and the level it reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    pub subject: Subject,
    pub ratio: f64,
    pub thresholds: Thresholds,
    pub level: Level,
}

impl Finding {
    fn new(kind: Kind, subject: Subject, ratio: f64, thresholds: Thresholds) -> Finding {
        Finding {
            kind,
            subject,
            ratio,
            thresholds,
            level: Level::of(ratio, &thresholds),
        }
    }

    /// The threshold reached (the warning threshold when none is).
    pub fn threshold(&self) -> f64 {
        match self.level {
            Level::Critical => self.thresholds.critical,
            _ => self.thresholds.warning,
        }
    }

    /// How far past its threshold the ratio is (ratio / threshold), to rank findings of one
    /// level against each other.
    fn severity(&self) -> f64 {
        match (self.ratio > 0.0, self.threshold() > 0.0) {
            (false, _) => 0.0,
            (true, true) => self.ratio / self.threshold(),
            (true, false) => f64::INFINITY,
        }
    }

    fn worse_than(&self, other: &Finding) -> bool {
        (self.level, self.severity()) > (other.level, other.severity())
    }

    /// The finding in words: what, how much, over which window, and the threshold it reached.
    pub fn describe(&self, window_seconds: u32) -> String {
        let what = match (&self.subject, self.kind) {
            (Subject::DeadLetters { top_reason }, _) => format!(
                "{} of impression events dead-lettered{}",
                pct(self.ratio),
                top_reason
                    .as_deref()
                    .map(|r| format!(" (most often {r})"))
                    .unwrap_or_default()
            ),
            (Subject::Column(c), k) => format!(
                "column {} {} in {} of impression events",
                c.name(),
                k.name(),
                pct(self.ratio)
            ),
            (Subject::Pair(p), _) => {
                format!("columns {p} disagree in {} of records", pct(self.ratio))
            }
        };
        let level = match self.level {
            Level::Critical => "critical",
            _ => "warning",
        };
        format!(
            "{what} over the last {}; {} {level} threshold {}",
            span(window_seconds),
            self.kind.name(),
            pct(self.threshold())
        )
    }
}

/// The judgement of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub level: Level,
    /// The worst finding: the highest level, then the furthest past its threshold.
    pub worst: Finding,
    /// Other findings at Warning or Critical.
    pub others_above: usize,
    pub impressions: f64,
}

/// Judges the ratios against the thresholds: dead letters and each key column's invalid values
/// against `invalidRatio`, each key column's nulls against `nullRatio`, each column pair against
/// `mismatchRatio`. The level is the worst finding's.
pub fn assess(spec: &QualitySpec, r: &QualityRatios) -> Assessment {
    let mut findings = vec![Finding::new(
        Kind::Invalid,
        Subject::DeadLetters {
            top_reason: r.top_reason.clone(),
        },
        r.dead_lettered,
        spec.invalid_ratio,
    )];
    let mut columns = spec.key_columns.clone();
    columns.sort();
    columns.dedup();
    for c in columns {
        let ratio = |m: &BTreeMap<Column, f64>| m.get(&c).copied().unwrap_or(0.0);
        findings.push(Finding::new(
            Kind::Null,
            Subject::Column(c),
            ratio(&r.nulls),
            spec.null_ratio,
        ));
        findings.push(Finding::new(
            Kind::Invalid,
            Subject::Column(c),
            ratio(&r.invalid),
            spec.invalid_ratio,
        ));
    }
    for (pair, ratio) in &r.mismatches {
        findings.push(Finding::new(
            Kind::Mismatch,
            Subject::Pair(pair.clone()),
            *ratio,
            spec.mismatch_ratio,
        ));
    }
    let above = findings.iter().filter(|f| f.level > Level::Ok).count();
    let worst = findings
        .into_iter()
        .reduce(|w, f| if f.worse_than(&w) { f } else { w })
        .expect("the dead-letter finding is always there");
    Assessment {
        level: worst.level,
        others_above: above.saturating_sub(1),
        worst,
        impressions: r.impressions,
    }
}

/// Why there is no judgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoData {
    #[error("no Prometheus URL configured (--prometheus-url)")]
    NoPrometheus,
    #[error("Prometheus has no worker series for the pipeline")]
    NoSeries,
    #[error("fewer than 100 impression events in the last {0}: too few to judge")]
    NoEvents(String),
    #[error("Prometheus: {0}")]
    Unavailable(String),
}

/// One evaluation of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub window_seconds: u32,
    pub outcome: Result<Assessment, NoData>,
}

impl Reading {
    /// Judges a pipeline's counts (`None`: Prometheus has no series of it).
    pub fn of(spec: &QualitySpec, counts: Option<&WindowCounts>) -> Reading {
        let window = spec.window_seconds;
        let outcome = match counts {
            None => Err(NoData::NoSeries),
            Some(c) => ratios(c)
                .map(|r| assess(spec, &r))
                .ok_or_else(|| NoData::NoEvents(span(window))),
        };
        Reading {
            window_seconds: window,
            outcome,
        }
    }

    /// The level, when there was data to judge.
    pub fn level(&self) -> Option<Level> {
        self.outcome.as_ref().ok().map(|a| a.level)
    }

    /// The DataQuality condition: True/OK, False/Warning or Critical naming the worst offender
    /// and its ratio, Unknown/NoData saying why. The OK message carries no figures, so that a
    /// healthy pipeline's status is not rewritten at every evaluation.
    pub fn condition(&self) -> ConditionText {
        match &self.outcome {
            Err(e) => ConditionText {
                status: None,
                reason: "NoData",
                message: e.to_string(),
            },
            Ok(a) if a.level == Level::Ok => ConditionText {
                status: Some(true),
                reason: Level::Ok.reason(),
                message: format!(
                    "every ratio is below its warning threshold over the last {}",
                    span(self.window_seconds)
                ),
            },
            Ok(a) => {
                let mut message = a.worst.describe(self.window_seconds);
                if a.others_above > 0 {
                    message.push_str(&format!(
                        " ({} more check{} above a threshold)",
                        a.others_above,
                        if a.others_above == 1 { "" } else { "s" }
                    ));
                }
                ConditionText {
                    status: Some(false),
                    reason: a.level.reason(),
                    message,
                }
            }
        }
    }
}

/// A condition's status (`None`: Unknown), reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionText {
    pub status: Option<bool>,
    pub reason: &'static str,
    pub message: String,
}

/// An Event about a change of level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelEvent {
    /// A Warning Event (else Normal).
    pub warning: bool,
    pub reason: &'static str,
}

/// The Event a change of the DataQuality reason deserves: Warning Events when the level becomes
/// Warning or Critical (also from NoData), a Normal one when it returns to OK from either; none
/// when the reason did not change, when data goes missing, or when OK follows NoData.
pub fn event(previous_reason: Option<&str>, next: &ConditionText) -> Option<LevelEvent> {
    if previous_reason == Some(next.reason) {
        return None;
    }
    let previous = previous_reason.and_then(Level::from_reason);
    match Level::from_reason(next.reason)? {
        Level::Ok => (previous > Some(Level::Ok)).then_some(LevelEvent {
            warning: false,
            reason: "DataQualityRecovered",
        }),
        Level::Warning => Some(LevelEvent {
            warning: true,
            reason: "DataQualityWarning",
        }),
        Level::Critical => Some(LevelEvent {
            warning: true,
            reason: "DataQualityCritical",
        }),
    }
}

/// A ratio as a percentage with about two significant digits (`12%`, `3.5%`, `0.25%`).
pub fn pct(ratio: f64) -> String {
    let p = ratio * 100.0;
    let decimals = if p >= 10.0 || p == 0.0 {
        0
    } else if p >= 1.0 {
        1
    } else {
        2
    };
    let s = format!("{p:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}%")
}

/// A window as Prometheus writes durations (`5m`, `90s`, `1h`).
pub fn span(seconds: u32) -> String {
    if seconds > 0 && seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds > 0 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests;
