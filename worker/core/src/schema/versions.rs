//! The client versions that send something, bounded: the newest `max` versions with their
//! counts, the rest counted together. Keeping the greatest keys of a total order (not the most
//! frequent) makes both the streaming insert and the merge exact, commutative and associative:
//! a version dropped once has `max` newer ones above it forever after.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// Compares versions naturally: runs of digits as numbers (`15.10.1` after `15.9.1`), other
/// runs as text; ties broken by the plain text, so that the order is total.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    while !x.is_empty() && !y.is_empty() {
        let dx = x[0].is_ascii_digit();
        let dy = y[0].is_ascii_digit();
        let run = |s: &[u8], digits: bool| {
            s.iter()
                .position(|c| c.is_ascii_digit() != digits)
                .unwrap_or(s.len())
        };
        let (nx, ny) = (run(x, dx), run(y, dy));
        let (rx, ry) = (&x[..nx], &y[..ny]);
        let o = match (dx, dy) {
            (true, true) => {
                let (sx, sy) = (strip_zeros(rx), strip_zeros(ry));
                sx.len().cmp(&sy.len()).then_with(|| sx.cmp(sy))
            }
            // At the same place, digits sort after anything else.
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => rx.cmp(ry),
        };
        if o != Ordering::Equal {
            return o;
        }
        x = &x[nx..];
        y = &y[ny..];
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

/// A run of digits without its leading zeros.
fn strip_zeros(run: &[u8]) -> &[u8] {
    let z = run.iter().position(|c| *c != b'0').unwrap_or(run.len());
    &run[z..]
}

/// One version and the number of (sampled) events of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionCount {
    pub version: String,
    pub events: u64,
}

/// The newest versions (newest first) and the events of the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    pub newest: Vec<VersionCount>,
    /// Events of older versions than those kept, or of events with no version.
    pub others: u64,
}

impl Versions {
    /// Counts `events` of `version` (`None`: an event without one), keeping at most `max`.
    pub fn add(&mut self, version: Option<&str>, events: u64, max: usize) {
        let Some(v) = version else {
            self.others += events;
            return;
        };
        // Most counts are of a version already kept: found by equality, without ordering.
        if let Some(k) = self.newest.iter_mut().find(|k| k.version == v) {
            k.events += events;
            return;
        }
        match self.newest.binary_search_by(|k| compare(v, &k.version)) {
            Ok(i) => self.newest[i].events += events,
            Err(i) => {
                self.newest.insert(
                    i,
                    VersionCount {
                        version: v.to_owned(),
                        events,
                    },
                );
                self.truncate(max);
            }
        }
    }

    /// Adds every count of `other`, keeping at most `max`.
    pub fn merge(&mut self, other: &Versions, max: usize) {
        self.others += other.others;
        for k in &other.newest {
            self.add(Some(&k.version), k.events, usize::MAX);
        }
        self.truncate(max);
    }

    /// The versions kept, newest first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.newest.iter().map(|k| k.version.as_str())
    }

    fn truncate(&mut self, max: usize) {
        while self.newest.len() > max {
            if let Some(k) = self.newest.pop() {
                self.others += k.events;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_naturally() {
        let mut v = vec![
            "15.10.1",
            "15.9.1",
            "15.9.1-rc1",
            "16.0",
            "2",
            "15.9.01",
            "a",
        ];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(
            v,
            [
                "a",
                "2",
                "15.9.01",
                "15.9.1",
                "15.9.1-rc1",
                "15.10.1",
                "16.0"
            ]
        );
    }

    #[test]
    fn the_newest_are_kept_and_the_rest_counted() {
        let mut v = Versions::default();
        for (ver, n) in [("1.0", 5), ("3.0", 1), ("2.0", 2), ("1.0", 1), ("4.0", 1)] {
            v.add(Some(ver), n, 2);
        }
        v.add(None, 3, 2);
        assert_eq!(v.names().collect::<Vec<_>>(), ["4.0", "3.0"]);
        assert_eq!(v.others, 5 + 2 + 1 + 3);
    }
}
