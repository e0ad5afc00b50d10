//! Data quality: the key columns that are checked and the tiered alert thresholds.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which columns are checked and when data quality turns Warning or Critical. Ratios are
/// fractions of the events seen over the evaluation window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QualitySpec {
    /// The key columns whose null and invalid values are counted per column, each once.
    #[serde(default = "default_key_columns")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    #[schemars(length(min = 1, max = 16))]
    pub key_columns: Vec<Column>,

    /// Share of raw impression events rejected to the dead-letter topic.
    #[serde(default = "default_invalid")]
    pub invalid_ratio: Thresholds,

    /// Share of records with a null value in a key column (per column).
    #[serde(default = "default_null")]
    pub null_ratio: Thresholds,

    /// Share of records whose columns disagree (e.g. entityId vs videoId), corrected or not.
    #[serde(default = "default_mismatch")]
    pub mismatch_ratio: Thresholds,

    /// The window the ratios are computed over, in seconds. Keep it at least four Prometheus
    /// scrape intervals long.
    #[serde(default = "default_window")]
    #[schemars(range(min = 10, max = 86400))]
    pub window_seconds: u32,
}

impl Default for QualitySpec {
    fn default() -> Self {
        Self {
            key_columns: default_key_columns(),
            invalid_ratio: default_invalid(),
            null_ratio: default_null(),
            mismatch_ratio: default_mismatch(),
            window_seconds: default_window(),
        }
    }
}

/// A column of the impression record whose quality is tracked.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub enum Column {
    /// The member profile that saw the artwork.
    ProfileId,
    /// The title the artwork belongs to.
    VideoId,
    /// The entity id sent by the client (`title:<videoId>` or the bare id).
    EntityId,
    /// The artwork image.
    ImageId,
    /// The page the row was on.
    PageId,
    /// The row's id.
    RowId,
    /// The row's position on the page.
    RowIndex,
    /// The device class.
    DeviceType,
    /// The member's country.
    Country,
}

impl Column {
    /// Every column, in declaration order.
    pub const ALL: [Column; 9] = [
        Column::ProfileId,
        Column::VideoId,
        Column::EntityId,
        Column::ImageId,
        Column::PageId,
        Column::RowId,
        Column::RowIndex,
        Column::DeviceType,
        Column::Country,
    ];

    /// The column's name: its spelling in the spec, in the record and in the workers' `column`
    /// metric label.
    pub fn name(self) -> &'static str {
        match self {
            Column::ProfileId => "profileId",
            Column::VideoId => "videoId",
            Column::EntityId => "entityId",
            Column::ImageId => "imageId",
            Column::PageId => "pageId",
            Column::RowId => "rowId",
            Column::RowIndex => "rowIndex",
            Column::DeviceType => "deviceType",
            Column::Country => "country",
        }
    }

    /// The column of a name, if it is one.
    pub fn from_name(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A warning and a critical threshold on a ratio in [0, 1].
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("self.warning <= self.critical")
    .message("the warning threshold must not exceed the critical threshold"))]
pub struct Thresholds {
    /// At or above this ratio, data quality is Warning.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub warning: f64,
    /// At or above this ratio, data quality is Critical.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub critical: f64,
}

fn default_key_columns() -> Vec<Column> {
    vec![
        Column::ProfileId,
        Column::VideoId,
        Column::ImageId,
        Column::PageId,
        Column::RowIndex,
    ]
}
fn default_invalid() -> Thresholds {
    Thresholds {
        warning: 0.01,
        critical: 0.05,
    }
}
fn default_null() -> Thresholds {
    Thresholds {
        warning: 0.005,
        critical: 0.02,
    }
}
fn default_mismatch() -> Thresholds {
    Thresholds {
        warning: 0.01,
        critical: 0.05,
    }
}
fn default_window() -> u32 {
    300
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_the_serde_names() {
        for c in Column::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
            assert_eq!(Column::from_name(c.name()), Some(c));
        }
        assert_eq!(Column::from_name("showId"), None);
    }

    #[test]
    fn an_empty_quality_section_gets_the_defaults() {
        let q: QualitySpec = serde_json::from_str("{}").unwrap();
        assert_eq!(q, QualitySpec::default());
        assert_eq!(q.window_seconds, 300);
    }
}
