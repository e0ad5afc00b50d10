//! The windows of one pipeline's workers, from their reports to one merged observation per
//! window (pure). A pod's report is counted once however often it is read (keyed by pod and
//! window start: the merge adds, so a report read twice would count twice), the pods' reports
//! of a window are grouped by the multiple of `windowSeconds` they end at, and a window is
//! closed as soon as every pod that answered has ended it (none failed), or once that multiple
//! is `grace` old: later reports of it are dropped.

use std::collections::{BTreeMap, HashMap};

use impressions_worker_core::schema::{
    Budget, Observation,
    report::{SchemaReport, WindowBounds},
};

/// One window of a pipeline: the merge of its pods' reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// From the earliest start to the latest end of the pods' windows (ms since the epoch).
    pub bounds: WindowBounds,
    /// The multiple of `windowSeconds` the pods' windows ended at.
    pub boundary_ms: i64,
    pub window_seconds: u32,
    /// The pods whose report was merged.
    pub pods: u32,
    pub observation: Observation,
}

/// The reports of one pipeline not yet merged, and how far windows are closed.
#[derive(Debug, Default)]
pub struct Windows {
    /// Per window multiple, per (pod, window start), the report.
    open: BTreeMap<i64, HashMap<(String, i64), SchemaReport>>,
    /// Windows ending at or before this multiple are closed.
    closed_upto: Option<i64>,
    /// The window length of the last report.
    window_seconds: Option<u32>,
}

impl Windows {
    /// The multiple up to which windows are closed: reports of windows that ended at or before
    /// it are dropped, so a read need not ask for them.
    pub fn closed_upto(&self) -> Option<i64> {
        self.closed_upto
    }

    /// The window length the workers report (`None` before the first report).
    pub fn window_seconds(&self) -> Option<u32> {
        self.window_seconds
    }

    /// Takes in reports (any number of times each); returns how many were new.
    pub fn ingest(&mut self, reports: impl IntoIterator<Item = SchemaReport>) -> usize {
        let mut new = 0;
        for r in reports {
            let Some(b) = r.boundary_ms() else { continue };
            if self.closed_upto.is_some_and(|c| b <= c) {
                continue;
            }
            self.window_seconds = Some(r.window_seconds);
            let key = (r.pod.clone(), r.window.start_ms);
            let slot = self.open.entry(b).or_default();
            if let std::collections::hash_map::Entry::Vacant(v) = slot.entry(key) {
                v.insert(r);
                new += 1;
            }
        }
        new
    }

    /// Whether the last window that ended by `now_ms` is still open within its grace: the
    /// workers' reports of it are awaited (a read is due soon, not at the next multiple).
    pub fn awaiting(&self, now_ms: i64, grace_ms: i64) -> bool {
        let Some(w) = self
            .window_seconds
            .map(|w| i64::from(w) * 1000)
            .filter(|w| *w > 0)
        else {
            return false;
        };
        let last = now_ms.div_euclid(w) * w;
        self.closed_upto.is_none_or(|c| c < last) && now_ms < last + grace_ms
    }

    /// Closes, oldest first, every window whose multiple is at most `complete_upto` (every pod
    /// that answered has ended it: see [`complete_upto`]) or at least `grace_ms` before
    /// `now_ms`. Windows up to `complete_upto` count as closed even without reports (a pod
    /// that started after them), so that their late reports are dropped too.
    pub fn close(
        &mut self,
        now_ms: i64,
        grace_ms: i64,
        complete_upto: Option<i64>,
    ) -> Vec<ClosedWindow> {
        let due: Vec<i64> = self
            .open
            .keys()
            .copied()
            .take_while(|b| complete_upto.is_some_and(|c| *b <= c) || b + grace_ms <= now_ms)
            .collect();
        if let Some(c) = complete_upto.filter(|_| self.window_seconds.is_some()) {
            self.closed_upto = Some(self.closed_upto.map_or(c, |x| x.max(c)));
        }
        let mut out = Vec::with_capacity(due.len());
        for b in due {
            let Some(reports) = self.open.remove(&b) else {
                continue;
            };
            self.closed_upto = Some(self.closed_upto.map_or(b, |c| c.max(b)));
            out.push(merge(b, reports.into_values().collect()));
        }
        out
    }
}

/// The last multiple every answering pod has ended a window at, from one read: per pod that
/// answered, the latest multiple among its reports (`None`: it reported no window after the
/// read's `endAfterMs`). `None` when a pod failed, none answered or one has not ended any: the
/// windows then close by their grace.
pub fn complete_upto(latest_per_pod: &[Option<i64>], any_failed: bool) -> Option<i64> {
    if any_failed || latest_per_pod.is_empty() {
        return None;
    }
    latest_per_pod
        .iter()
        .copied()
        .try_fold(i64::MAX, |m, l| l.map(|l| m.min(l)))
}

/// The merge of the pods' reports of one window, in a fixed order (the merge keeps the budget
/// by a fixed order too, so the result does not depend on the order the reports came in).
fn merge(boundary_ms: i64, mut reports: Vec<SchemaReport>) -> ClosedWindow {
    reports.sort_by(|a, b| (&a.pod, a.window.start_ms).cmp(&(&b.pod, b.window.start_ms)));
    let budget = reports.first().map_or_else(Budget::default, |r| r.budget);
    let bounds = WindowBounds {
        start_ms: reports.iter().map(|r| r.window.start_ms).min().unwrap_or(0),
        end_ms: reports.iter().map(|r| r.window.end_ms).max().unwrap_or(0),
    };
    let mut pods: Vec<&str> = reports.iter().map(|r| r.pod.as_str()).collect();
    pods.dedup();
    ClosedWindow {
        bounds,
        boundary_ms,
        window_seconds: reports.first().map_or(0, |r| r.window_seconds),
        pods: pods.len() as u32,
        observation: Observation::merged(reports.iter().map(|r| &r.observation), &budget),
    }
}

#[cfg(test)]
mod tests {
    use impressions_worker_core::schema::{
        Learner, LearnerConfig,
        report::{PipelineRef, WindowBounds},
    };

    use super::*;

    /// A report of `pod` for [start, end] with `n` events of `{"eventType":"imp","a":1}`.
    fn report(pod: &str, start: i64, end: i64, n: usize) -> SchemaReport {
        let mut l = Learner::new(&LearnerConfig {
            sample_one_in: 1,
            ..LearnerConfig::default()
        });
        for _ in 0..n {
            l.offer(br#"{"eventType":"imp","a":1}"#, start + 1);
        }
        SchemaReport {
            pipeline: PipelineRef {
                namespace: "ns".into(),
                name: "p".into(),
            },
            pod: pod.into(),
            window: WindowBounds {
                start_ms: start,
                end_ms: end,
            },
            window_seconds: 10,
            sample_one_in: 1,
            budget: Budget::default(),
            observation: l.take(),
        }
    }

    #[test]
    fn a_report_read_twice_counts_once_and_pods_merge_per_window() {
        let mut w = Windows::default();
        let a1 = report("a", 0, 10_050, 3);
        let b1 = report("b", 2_000, 10_090, 5);
        assert_eq!(w.ingest([a1.clone(), b1.clone(), a1.clone()]), 2);
        assert_eq!(w.ingest([b1.clone()]), 0, "read again: nothing new");
        assert!(w.close(12_000, 5_000, None).is_empty(), "within the grace");
        let a2 = report("a", 10_050, 20_010, 7);
        w.ingest([a2]);
        let closed = w.close(15_000, 5_000, None);
        assert_eq!(closed.len(), 1);
        let c = &closed[0];
        assert_eq!(c.boundary_ms, 10_000);
        assert_eq!(c.pods, 2);
        assert_eq!(c.observation.events_seen, 8);
        assert_eq!(c.observation.event_types["imp"].events, 8);
        assert_eq!(
            c.bounds,
            WindowBounds {
                start_ms: 0,
                end_ms: 10_090
            }
        );
        // A late report of a closed window is dropped, and so is the same report read again.
        assert_eq!(w.ingest([report("c", 0, 10_500, 1), a1, b1]), 0);
        let closed = w.close(25_000, 5_000, None);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].observation.events_seen, 7);
        assert_eq!(w.window_seconds(), Some(10));
    }

    #[test]
    fn the_merge_does_not_depend_on_the_order_of_the_reports() {
        let rs = [
            report("a", 0, 10_050, 3),
            report("b", 0, 10_010, 4),
            report("c", 0, 10_020, 5),
        ];
        let mut x = Windows::default();
        x.ingest(rs.clone());
        let mut y = Windows::default();
        y.ingest(rs.into_iter().rev());
        assert_eq!(x.close(20_000, 0, None), y.close(20_000, 0, None));
    }

    #[test]
    fn several_windows_close_oldest_first() {
        let mut w = Windows::default();
        w.ingest([
            report("a", 10_000, 20_000, 1),
            report("a", 0, 10_000, 1),
            report("a", 20_000, 30_000, 1),
        ]);
        let closed = w.close(30_500, 1_000, None);
        let b: Vec<i64> = closed.iter().map(|c| c.boundary_ms).collect();
        assert_eq!(b, [10_000, 20_000]);
    }

    #[test]
    fn a_window_closes_once_every_answering_pod_ended_it() {
        assert_eq!(
            complete_upto(&[Some(20_000), Some(10_000)], false),
            Some(10_000)
        );
        assert_eq!(
            complete_upto(&[Some(20_000), None], false),
            None,
            "one has not ended it"
        );
        assert_eq!(complete_upto(&[Some(20_000)], true), None, "a pod failed");
        assert_eq!(complete_upto(&[], false), None, "no pod answered");

        let mut w = Windows::default();
        assert!(!w.awaiting(10_100, 5_000), "window length unknown");
        w.ingest([report("a", 0, 10_050, 3)]);
        assert!(
            w.awaiting(10_100, 5_000),
            "10 s ended, not closed, within grace"
        );
        assert!(!w.awaiting(15_000, 5_000), "past its grace");
        // b has not ended the window yet: it stays open within its grace.
        assert!(
            w.close(10_100, 5_000, complete_upto(&[Some(10_000), None], false))
                .is_empty()
        );
        w.ingest([report("b", 0, 10_200, 5)]);
        let closed = w.close(
            10_250,
            5_000,
            complete_upto(&[Some(10_000), Some(10_000)], false),
        );
        assert_eq!(closed.len(), 1, "closed at once, not after its grace");
        assert_eq!((closed[0].pods, closed[0].observation.events_seen), (2, 8));
        assert!(!w.awaiting(10_300, 5_000));
        assert!(w.awaiting(20_100, 5_000), "the next window");
        // A window no pod reported (they started after it) still counts as closed.
        let mut fresh = Windows::default();
        fresh.ingest([report("c", 12_000, 20_010, 1)]);
        fresh.close(20_100, 5_000, Some(20_000));
        assert_eq!(fresh.closed_upto(), Some(20_000));
        assert_eq!(
            fresh.ingest([report("d", 0, 10_020, 1)]),
            0,
            "a late report of 10 s"
        );
    }
}
