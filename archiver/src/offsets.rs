//! Offset bookkeeping: which Kafka offsets the table already holds, and whether a commit may add
//! the records consumed since. Pure; the catalog IO that reads a table's snapshots is elsewhere.
//!
//! Every commit stores, in its snapshot's summary, the next offset of each partition the
//! archiver owned at that commit (`impressions.archive.offset.<topic>.<partition>`). The
//! table's offsets are the newest value of each key along the current snapshot's ancestry.
//! Kafka's committed offsets of the consumer group are a hint for monitoring only: on start and
//! on every assignment the archiver seeks to the table's offsets.
//!
//! Fencing: a commit may go in only if, for every partition it covers, the table's offset is
//! still the one the archiver started from (`base`). Another archiver that committed the same
//! partition meanwhile (a rebalance, a restarted zombie) makes the commit stale: it is dropped
//! and the archiver seeks back to the table's offsets.

use std::collections::{BTreeMap, HashMap};

/// A partition's next offset to archive.
pub type Offsets = BTreeMap<i32, i64>;

const PREFIX: &str = "impressions.archive.offset.";

/// The summary key of a partition of a topic.
pub fn key(topic: &str, partition: i32) -> String {
    format!("{PREFIX}{topic}.{partition}")
}

/// The partition a summary key names, when it is one of `topic`.
fn partition_of(key: &str, topic: &str) -> Option<i32> {
    key.strip_prefix(PREFIX)?
        .strip_prefix(topic)?
        .strip_prefix('.')?
        .parse()
        .ok()
}

/// The summary properties of a commit that leaves `offsets` as the partitions' next offsets.
pub fn summary_properties(topic: &str, offsets: &Offsets) -> HashMap<String, String> {
    offsets
        .iter()
        .map(|(p, o)| (key(topic, *p), o.to_string()))
        .collect()
}

/// The table's offsets of `topic`: along the snapshots' summaries, newest first, the first
/// value of each partition.
pub fn from_history<'a>(
    summaries_newest_first: impl IntoIterator<Item = &'a HashMap<String, String>>,
    topic: &str,
) -> Offsets {
    let mut found = Offsets::new();
    for summary in summaries_newest_first {
        for (k, v) in summary {
            if let (Some(p), Ok(o)) = (partition_of(k, topic), v.parse::<i64>()) {
                found.entry(p).or_insert(o);
            }
        }
    }
    found
}

/// Why a commit may not go in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "partition {partition}: the table holds offsets up to {table:?}, this commit starts at {ours:?} (another archiver committed it)"
)]
pub struct Stale {
    pub partition: i32,
    pub table: Option<i64>,
    pub ours: Option<i64>,
}

/// What the archiver consumed since its last commit, per partition it owns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// The table's offset of each owned partition when consumption started (None: the table
    /// holds none, consumption started at the beginning).
    base: BTreeMap<i32, Option<i64>>,
    /// The next offset after the last record taken, per partition that had any.
    next: Offsets,
}

impl Progress {
    /// Ownership of `partitions` starting at the table's `offsets`.
    pub fn assigned(partitions: &[i32], offsets: &Offsets) -> Self {
        Progress {
            base: partitions
                .iter()
                .map(|p| (*p, offsets.get(p).copied()))
                .collect(),
            next: Offsets::new(),
        }
    }

    /// Whether `partition` is owned.
    pub fn owns(&self, partition: i32) -> bool {
        self.base.contains_key(&partition)
    }

    /// The owned partitions.
    pub fn partitions(&self) -> Vec<i32> {
        self.base.keys().copied().collect()
    }

    /// Records that the record at `offset` of `partition` was taken.
    pub fn took(&mut self, partition: i32, offset: i64) {
        self.next.insert(partition, offset + 1);
    }

    /// Whether anything was taken since the last commit.
    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    /// The offsets a commit of what was taken leaves in the table: every owned partition with
    /// a known offset (so the newest snapshot of each archiver names all it owns).
    pub fn to_commit(&self) -> Offsets {
        self.base
            .iter()
            .filter_map(|(p, base)| self.next.get(p).copied().or(*base).map(|o| (*p, o)))
            .collect()
    }

    /// Checks the table's current offsets against where consumption started.
    pub fn check(&self, table: &Offsets) -> Result<(), Stale> {
        for (p, ours) in &self.base {
            let theirs = table.get(p).copied();
            if theirs != *ours {
                return Err(Stale {
                    partition: *p,
                    table: theirs,
                    ours: *ours,
                });
            }
        }
        Ok(())
    }

    /// After a commit went in: what it committed is the new base.
    pub fn committed(&mut self) {
        let done = self.to_commit();
        for (p, base) in self.base.iter_mut() {
            if let Some(o) = done.get(p) {
                *base = Some(*o);
            }
        }
        self.next.clear();
    }

    /// The lag of each owned partition, from the partitions' high watermarks.
    pub fn lag(&self, high_watermarks: &Offsets) -> i64 {
        self.base
            .iter()
            .map(|(p, base)| {
                let at = self.next.get(p).copied().or(*base).unwrap_or(0);
                high_watermarks.get(p).map_or(0, |hw| (hw - at).max(0))
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(pairs: &[(&str, i32, i64)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(t, p, o)| (key(t, *p), o.to_string()))
            .chain([("added-records".to_string(), "5".to_string())])
            .collect()
    }

    #[test]
    fn keys_round_trip_and_ignore_other_topics_and_keys() {
        assert_eq!(
            partition_of(&key("impressions.avro", 3), "impressions.avro"),
            Some(3)
        );
        // a topic whose name extends another's is not confused with it
        assert_eq!(partition_of(&key("a.b", 3), "a"), None);
        assert_eq!(partition_of("added-records", "a"), None);
        let props = summary_properties("t", &Offsets::from([(0, 10), (2, 7)]));
        assert_eq!(
            props
                .get("impressions.archive.offset.t.2")
                .map(String::as_str),
            Some("7")
        );
    }

    #[test]
    fn the_newest_value_of_each_partition_wins() {
        let newest = summary(&[("t", 0, 30)]);
        let older = summary(&[("t", 0, 20), ("t", 1, 15), ("u", 2, 99)]);
        let oldest = summary(&[("t", 1, 5), ("t", 2, 1)]);
        let got = from_history([&newest, &older, &oldest], "t");
        assert_eq!(got, Offsets::from([(0, 30), (1, 15), (2, 1)]));
        assert!(from_history([], "t").is_empty());
    }

    #[test]
    fn a_commit_names_every_owned_partition_with_a_known_offset() {
        let mut p = Progress::assigned(&[0, 1, 2], &Offsets::from([(0, 10), (1, 4)]));
        assert!(p.is_empty());
        p.took(0, 10);
        p.took(0, 11);
        p.took(2, 0);
        assert_eq!(p.to_commit(), Offsets::from([(0, 12), (1, 4), (2, 1)]));
        p.committed();
        assert!(p.is_empty());
        assert_eq!(p.to_commit(), Offsets::from([(0, 12), (1, 4), (2, 1)]));
        // the next commit checks against what this one left
        assert!(p.check(&Offsets::from([(0, 12), (1, 4), (2, 1)])).is_ok());
    }

    #[test]
    fn a_commit_is_stale_when_another_archiver_moved_a_partition() {
        let p = Progress::assigned(&[0, 1], &Offsets::from([(0, 10)]));
        assert!(p.check(&Offsets::from([(0, 10)])).is_ok());
        assert_eq!(
            p.check(&Offsets::from([(0, 25)])),
            Err(Stale {
                partition: 0,
                table: Some(25),
                ours: Some(10)
            })
        );
        // a partition the table had no offset for, committed by someone else meanwhile
        assert_eq!(
            p.check(&Offsets::from([(0, 10), (1, 3)])),
            Err(Stale {
                partition: 1,
                table: Some(3),
                ours: None
            })
        );
        // partitions this archiver does not own do not matter
        assert!(p.check(&Offsets::from([(0, 10), (7, 3)])).is_ok());
    }

    #[test]
    fn lag_counts_from_what_was_taken() {
        let mut p = Progress::assigned(&[0, 1], &Offsets::from([(0, 10)]));
        p.took(0, 14);
        assert_eq!(p.lag(&Offsets::from([(0, 20), (1, 6)])), 5 + 6);
    }
}
