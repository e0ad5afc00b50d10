//! The title catalog: title details by videoId, shared lock-free with the processing threads and
//! replaced whole when updates arrive (from a compacted topic or a file).

use std::sync::Arc;

use rustc_hash::FxHashMap;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// The kind of a title, as the Avro `TitleKind` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TitleKind {
    Movie,
    Show,
    Season,
    Episode,
    #[serde(other)]
    Other,
}

/// One catalog entry, as JSON on the catalog topic (keyed by videoId) or a line of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Title {
    pub video_id: i64,
    pub name: String,
    pub kind: TitleKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub season_number: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode_number: Option<i32>,
    #[serde(default)]
    pub genres: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maturity_rating: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_year: Option<i32>,
}

/// An immutable snapshot of the catalog.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    titles: FxHashMap<i64, Arc<Title>>,
}

impl Catalog {
    pub fn get(&self, video_id: i64) -> Option<&Title> {
        self.titles.get(&video_id).map(|t| &**t)
    }
    pub fn len(&self) -> usize {
        self.titles.len()
    }
    pub fn is_empty(&self) -> bool {
        self.titles.is_empty()
    }
    /// A copy with updates applied: `Some(title)` upserts, `None` (a tombstone) removes.
    pub fn with_updates(&self, updates: impl IntoIterator<Item = (i64, Option<Title>)>) -> Catalog {
        let mut titles = self.titles.clone();
        for (id, title) in updates {
            match title {
                Some(t) => titles.insert(id, Arc::new(t)),
                None => titles.remove(&id),
            };
        }
        Catalog { titles }
    }
    /// Parses JSON lines (one title per line; blank lines and `#` comments skipped).
    pub fn from_json_lines(text: &str) -> Result<Catalog, CatalogError> {
        let mut titles = FxHashMap::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let t: Title = serde_json::from_str(line).map_err(|e| CatalogError::Line {
                line: i + 1,
                detail: e.to_string(),
            })?;
            titles.insert(t.video_id, Arc::new(t));
        }
        Ok(Catalog { titles })
    }
}

/// A catalog that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog line {line}: {detail}")]
    Line { line: usize, detail: String },
    #[error("catalog file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// The catalog shared between its feed and the processing threads.
pub type SharedCatalog = Arc<ArcSwap<Catalog>>;

/// A new, empty shared catalog.
pub fn shared(c: Catalog) -> SharedCatalog {
    Arc::new(ArcSwap::from_pointee(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_round_trip_and_updates() {
        let c = Catalog::from_json_lines(
            "# titles\n{\"videoId\":1,\"name\":\"A\",\"kind\":\"MOVIE\"}\n\n{\"videoId\":2,\"name\":\"B\",\"kind\":\"EPISODE\",\"showId\":9,\"seasonNumber\":1,\"episodeNumber\":3}\n",
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(2).unwrap().show_id, Some(9));
        let t3 = Title {
            video_id: 3,
            name: "C".into(),
            kind: TitleKind::Show,
            show_id: None,
            season_number: None,
            episode_number: None,
            genres: vec![],
            maturity_rating: None,
            release_year: None,
        };
        let c2 = c.with_updates([(1, None), (3, Some(t3))]);
        assert!(c2.get(1).is_none() && c2.get(3).is_some() && c.get(1).is_some());
    }

    #[test]
    fn bad_line_is_named() {
        let err = Catalog::from_json_lines(
            "{\"videoId\":1,\"name\":\"A\",\"kind\":\"MOVIE\"}\n{\"videoId\":\"x\"}",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("catalog line 2:"), "{err}");
    }
}
