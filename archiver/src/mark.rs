//! What a commit tells the consumer group: the metadata stored with the group's offsets (the
//! hint written after each table commit). Pure.
//!
//! The operator reads the group's offsets anyway (the archivers' lag); with them it reads the
//! last commit's snapshot id, time, records, files, bytes and latency, exactly (a Prometheus
//! gauge is a float and cannot hold a 63-bit snapshot id), without reaching into the catalog.
//! The format is JSON with short keys (the broker keeps at most `offset.metadata.max.bytes`,
//! 4096 by default, per partition), documented in docs/archive.md:
//!
//! `{"v":1,"snapshot":…,"atMs":…,"records":…,"files":…,"bytes":…,"commitMs":…}`

use serde::Serialize;

/// The version of the format.
pub const VERSION: u32 = 1;

/// One commit, as written into each committed partition's offset metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitMark {
    pub v: u32,
    /// The snapshot the commit made.
    pub snapshot: i64,
    /// When the catalog accepted it (Unix milliseconds).
    pub at_ms: i64,
    /// Records the commit archived.
    pub records: u64,
    /// Data files and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Milliseconds from closing the data files to the catalog accepting the snapshot.
    pub commit_ms: u64,
}

impl CommitMark {
    /// The metadata text.
    pub fn render(&self) -> String {
        serde_json::to_string(self).expect("a struct of numbers serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_format() {
        let m = CommitMark {
            v: VERSION,
            snapshot: 8_476_120_998_765_432_101,
            at_ms: 1_764_612_345_678,
            records: 1200,
            files: 3,
            bytes: 51_234,
            commit_ms: 19,
        };
        // docs/archive.md and the operator's reader (operator/src/autoscale/archive/mark.rs)
        // quote this text
        assert_eq!(
            m.render(),
            r#"{"v":1,"snapshot":8476120998765432101,"atMs":1764612345678,"records":1200,"files":3,"bytes":51234,"commitMs":19}"#
        );
        assert!(m.render().len() < 4096);
    }
}
