//! Data quality: the key columns that are checked and the tiered alert thresholds.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which columns are checked and when data quality turns Warning or Critical. Ratios are
/// fractions of the events seen over the evaluation window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QualitySpec {
    /// The key columns whose null and invalid values are counted per column.
    #[serde(default = "default_key_columns")]
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
}

impl Default for QualitySpec {
    fn default() -> Self {
        Self {
            key_columns: default_key_columns(),
            invalid_ratio: default_invalid(),
            null_ratio: default_null(),
            mismatch_ratio: default_mismatch(),
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
