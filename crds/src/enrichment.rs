//! Enrichment: where title details come from and how pages and rows are named.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Title details and location names added to each impression.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnrichmentSpec {
    /// Where the title catalog (title, type, show/season/episode, genres) is read from.
    pub catalog: CatalogSource,

    /// Display names of pages and rows, keyed by their ids in the raw events.
    #[serde(default)]
    pub locations: LocationNames,
}

/// The title catalog: a compacted Kafka topic kept current while running, or a ConfigMap for
/// small setups. Exactly one must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.topic) != has(self.configMapRef)")
    .message("exactly one of catalog.topic and catalog.configMapRef must be set"))]
pub struct CatalogSource {
    /// A compacted topic keyed by title id whose values are title JSON documents, on the source
    /// cluster. Updates take effect without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(crate::TOPIC_RULE).message(crate::TOPIC_MESSAGE))]
    #[schemars(length(min = 1, max = 249))]
    pub topic: Option<String>,

    /// A ConfigMap in the pipeline's namespace holding the catalog as JSON lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

/// A key of a ConfigMap in the pipeline's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    #[x_kube(validation = kube::core::Rule::new(crate::OBJECT_NAME_RULE).message(crate::OBJECT_NAME_MESSAGE))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the catalog (JSON lines, one title per line).
    #[serde(default = "default_catalog_key")]
    #[x_kube(validation = kube::core::Rule::new(crate::CONFIG_KEY_RULE).message(crate::CONFIG_KEY_MESSAGE))]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_catalog_key() -> String {
    "catalog.jsonl".to_owned()
}

/// Every key of `locations.pages` is an integer the worker can parse as an i64.
const PAGE_ID_RULE: &str = "self.all(k, k.matches('^[+-]?[0-9]{1,18}$'))";
/// No two keys of `locations.pages` are spellings of the same integer (the worker refuses them).
const PAGE_ID_UNIQUE_RULE: &str = "!self.all(k, k.matches('^[+-]?[0-9]{1,18}$')) || self.all(k, self.exists_one(j, int(j) == int(k)))";

/// Display names for the page and row ids found in raw events.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LocationNames {
    /// Page id → page name (e.g. `"1": "Home"`). Unknown ids are kept and named `unknown`.
    /// A page id is an integer of at most 18 digits (the worker reads it as an i64); `1`, `+1`
    /// and `01` are the same id and may be given only once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = kube::core::Rule::new(PAGE_ID_RULE).message(
        "keys must be page ids: integers of at most 18 digits such as \"1\" or \"42\""
    ))]
    #[x_kube(validation = kube::core::Rule::new(PAGE_ID_UNIQUE_RULE).message(
        "a page id is given twice in different spellings (1, +1 and 01 are the same page)"
    ))]
    #[schemars(extend("maxProperties" = 256))]
    pub pages: BTreeMap<String, String>,
    /// Row id → row name (e.g. `"trending": "Trending Now"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 4096))]
    pub rows: BTreeMap<String, String>,
}
