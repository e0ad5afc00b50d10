//! The last commit of the archivers, read from the metadata they store with their consumer
//! group's offsets after each commit to the table (the archiver's `mark` module writes it;
//! docs/archive.md documents the format). Pure.

use serde::Deserialize;

/// One commit to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitMark {
    pub v: u32,
    pub snapshot: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub records: u64,
    pub files: u64,
    pub bytes: u64,
    pub commit_ms: u64,
}

/// The newest commit among the partitions' metadata (text that is not a mark is ignored: the
/// group's offsets may have been set by another tool).
pub fn newest(metadata: &[String]) -> Option<CommitMark> {
    metadata
        .iter()
        .filter_map(|m| serde_json::from_str::<CommitMark>(m).ok())
        .max_by_key(|m| (m.at_ms, m.snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text the archiver's own test renders (archiver/src/mark.rs).
    const DOCUMENTED: &str = r#"{"v":1,"snapshot":8476120998765432101,"atMs":1764612345678,"records":1200,"files":3,"bytes":51234,"commitMs":19}"#;

    #[test]
    fn the_newest_mark_is_read_exactly() {
        let older = DOCUMENTED
            .replace("1764612345678", "1764612300000")
            .replace("8476120998765432101", "17");
        let m = newest(&[older, "not a mark".into(), DOCUMENTED.into()]).unwrap();
        assert_eq!(m.snapshot, 8_476_120_998_765_432_101, "all 63 bits");
        assert_eq!(
            (m.at_ms, m.records, m.files, m.bytes, m.commit_ms),
            (1_764_612_345_678, 1200, 3, 51_234, 19)
        );
        assert_eq!(newest(&["{}".into()]), None);
    }
}
