//! A pipeline's decision history as `why` shows it, from the decision in its status and its
//! `Scale` Events (the operator's note: `FROM → TO: the numbers`), newest first. Pure.

use impressions_crds::status::ScalingDecisionStatus;
use k8s_openapi::{api::events::v1::Event, jiff::Timestamp};

use crate::format::age;

/// One decision, from wherever it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it was made (for a repeated Event: when it was last seen).
    pub time: Timestamp,
    pub reason: String,
    pub from: Option<i32>,
    pub to: Option<i32>,
    /// The numbers it used.
    pub message: String,
    /// Where it was read: `status`, `Event`.
    pub sources: Vec<&'static str>,
    /// How often the Event was recorded (a repeated Event keeps its first message).
    pub count: i32,
    /// When a repeated Event was first recorded.
    pub first: Option<Timestamp>,
}

/// The decision in `status.lastDecision`.
pub fn from_status(d: &ScalingDecisionStatus) -> Entry {
    Entry {
        time: d.time.0,
        reason: d.reason.clone(),
        from: Some(d.from),
        to: Some(d.to),
        message: d.message.clone(),
        sources: vec!["status"],
        count: 1,
        first: None,
    }
}

/// A `Scale` Event of the operator (other Events are not decisions: `None`).
pub fn from_event(e: &Event) -> Option<Entry> {
    if e.action.as_deref() != Some("Scale") {
        return None;
    }
    let created = e
        .event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.deprecated_first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let (time, count) = match &e.series {
        Some(s) => (s.last_observed_time.0, s.count),
        None => (created, e.deprecated_count.unwrap_or(1).max(1)),
    };
    let (from, to, message) = parse_note(e.note.as_deref().unwrap_or_default());
    Some(Entry {
        time,
        reason: e.reason.clone().unwrap_or_default(),
        from,
        to,
        message,
        sources: vec!["Event"],
        count,
        first: (count > 1).then_some(created),
    })
}

/// The operator's Scale note, `3 → 5: why`, as (3, 5, why); a note of another shape is kept
/// whole.
pub fn parse_note(note: &str) -> (Option<i32>, Option<i32>, String) {
    let parsed = note.split_once(": ").and_then(|(head, rest)| {
        let (a, b) = head.split_once('→')?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?, rest))
    });
    match parsed {
        Some((a, b, rest)) => (Some(a), Some(b), rest.to_owned()),
        None => (None, None, note.to_owned()),
    }
}

/// Decisions read twice (the status and its Event: the same reason and target within a
/// minute) as one, newest first.
pub fn merge(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by_key(|e| std::cmp::Reverse(e.time));
    let mut out: Vec<Entry> = Vec::new();
    for e in entries {
        let same = out.iter_mut().find(|o| {
            o.reason == e.reason
                && o.to == e.to
                && (o.time.as_second() - e.time.as_second()).abs() <= 60
                && o.sources.iter().all(|s| !e.sources.contains(s))
        });
        match same {
            Some(o) => {
                o.sources.extend(e.sources);
                if o.from.is_none() {
                    o.from = e.from;
                }
                if e.count > o.count {
                    (o.count, o.first) = (e.count, e.first);
                }
            }
            None => out.push(e),
        }
    }
    out
}

/// The history as text, each decision with its reason, replicas and numbers.
pub fn render(entries: &[Entry], now: Timestamp) -> String {
    if entries.is_empty() {
        return "  no decision recorded (no status.lastDecision, no Scale Event; Events expire after the API server's event TTL, 1 h by default)\n".into();
    }
    let mut out = String::new();
    for e in entries {
        let change = match (e.from, e.to) {
            (Some(a), Some(b)) if a == b => format!("held at {a}"),
            (Some(a), Some(b)) => format!("{a} → {b}"),
            (None, Some(b)) => format!("→ {b}"),
            _ => "-".into(),
        };
        let mut seen = format!("[{}]", e.sources.join(" + "));
        if let Some(first) = e.first {
            seen.push_str(&format!(
                " recorded {}× since {} ({} ago); the message is the first one's",
                e.count,
                first,
                age(first, now)
            ));
        }
        out.push_str(&format!(
            "  {} ({} ago)  {}  {}  {}\n      {}\n",
            e.time,
            age(e.time, now),
            e.reason,
            change,
            seen,
            e.message
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn event(reason: &str, note: &str, at: &str, action: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p.{at}"), "namespace": "ads"},
            "eventTime": at, "action": action, "reason": reason, "note": note, "type": "Normal",
            "reportingController": "impressions-operator", "reportingInstance": "x",
            "regarding": {"kind": "ImpressionPipeline", "name": "p", "namespace": "ads"}
        }))
        .unwrap()
    }

    #[test]
    fn a_scale_note_gives_its_replicas_and_numbers() {
        assert_eq!(
            parse_note("2 → 5: arrival 2500/s, capacity 600/s per replica"),
            (
                Some(2),
                Some(5),
                "arrival 2500/s, capacity 600/s per replica".into()
            )
        );
        assert_eq!(
            parse_note("something else: entirely"),
            (None, None, "something else: entirely".into())
        );
    }

    #[test]
    fn only_scale_events_are_decisions() {
        let e = event(
            "Degraded",
            "none ready",
            "2026-12-01T11:00:00.000000Z",
            "Reconcile",
        );
        assert_eq!(from_event(&e), None);
        let e = event(
            "ScaleUpForBacklog",
            "1 → 3: backlog 9000 events",
            "2026-12-01T11:00:00.000000Z",
            "Scale",
        );
        let got = from_event(&e).unwrap();
        assert_eq!(
            (got.from, got.to, got.message.as_str()),
            (Some(1), Some(3), "backlog 9000 events")
        );
    }

    #[test]
    fn newest_first_and_the_status_s_decision_merged_with_its_event() {
        let decision: ScalingDecisionStatus = serde_json::from_value(json!({
            "from": 3, "to": 5, "reason": "ScaleUpForBacklog",
            "message": "backlog 20000 events, capacity 600/s", "time": "2026-12-01T11:50:00Z"
        }))
        .unwrap();
        let entries = merge(vec![
            from_event(&event(
                "ScaleUpForBacklog",
                "1 → 3: backlog 9000 events",
                "2026-12-01T11:10:00.000000Z",
                "Scale",
            ))
            .unwrap(),
            from_status(&decision),
            from_event(&event(
                "ScaleUpForBacklog",
                "3 → 5: backlog 20000 events, capacity 600/s",
                "2026-12-01T11:50:01.000000Z",
                "Scale",
            ))
            .unwrap(),
            from_event(&event(
                "ScaleDownIdle",
                "5 → 2: arrival 100/s",
                "2026-12-01T11:30:00.000000Z",
                "Scale",
            ))
            .unwrap(),
        ]);
        let order: Vec<(&str, Option<i32>, Vec<&str>)> = entries
            .iter()
            .map(|e| (e.reason.as_str(), e.to, e.sources.clone()))
            .collect();
        assert_eq!(
            order,
            [
                ("ScaleUpForBacklog", Some(5), vec!["Event", "status"]),
                ("ScaleDownIdle", Some(2), vec!["Event"]),
                ("ScaleUpForBacklog", Some(3), vec!["Event"]),
            ]
        );
        let text = render(&entries, t("2026-12-01T12:00:00Z"));
        let first = text.lines().next().unwrap();
        assert!(
            first.contains("(9m59s ago)") && first.contains("3 → 5"),
            "{text}"
        );
        assert!(
            text.contains("      backlog 20000 events, capacity 600/s\n"),
            "{text}"
        );
    }

    #[test]
    fn a_repeated_event_says_how_often_and_since_when() {
        let mut e = event(
            "ScaleDownIdle",
            "4 → 3: arrival 100/s",
            "2026-12-01T11:00:00.000000Z",
            "Scale",
        );
        e.series = Some(
            serde_json::from_value(
                json!({"count": 3, "lastObservedTime": "2026-12-01T11:20:00.000000Z"}),
            )
            .unwrap(),
        );
        let got = from_event(&e).unwrap();
        assert_eq!((got.time, got.count), (t("2026-12-01T11:20:00Z"), 3));
        let text = render(&[got], t("2026-12-01T12:00:00Z"));
        assert!(
            text.contains("recorded 3× since 2026-12-01T11:00:00Z (60m ago)"),
            "{text}"
        );
    }

    #[test]
    fn nothing_recorded_says_so() {
        assert!(render(&[], t("2026-12-01T12:00:00Z")).contains("no decision recorded"));
    }
}
