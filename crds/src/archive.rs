//! The historical sink (`spec.archive`): the pipeline's Avro records archived in an Apache
//! Iceberg table by an archiver fleet the operator runs beside the workers (docs/archive.md).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where and how the pipeline's records are archived.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveSpec {
    /// The Iceberg catalog that holds the table.
    pub catalog: ArchiveCatalog,

    /// Where the table's files go. `file:///…` (a local or mounted filesystem): the storage
    /// the archiver has built in.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('file:/')")
        .message("must be a file:/// location (the archiver's built-in storage)"))]
    #[schemars(length(min = 1, max = 1024))]
    pub warehouse: String,

    /// The table's namespace in the catalog (dot-separated levels).
    #[x_kube(validation = kube::core::Rule::new(IDENT_PATH_RULE).message(IDENT_PATH_MESSAGE))]
    #[schemars(length(min = 1, max = 255))]
    pub namespace: String,

    /// The table's name. Created with the schema of `impression.avsc` when absent.
    #[x_kube(validation = kube::core::Rule::new(IDENT_RULE).message(IDENT_MESSAGE))]
    #[schemars(length(min = 1, max = 255))]
    pub table: String,

    /// How a new table is partitioned by event time: Hour (default), Day or None.
    #[serde(default)]
    pub partitioning: ArchivePartitioning,

    /// A data file rolls over to a new one at about this size. Default 128 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1048576, max = 4294967296_i64))]
    pub target_file_size_bytes: Option<i64>,

    /// An archived record waits at most this long for its commit (each commit closes the open
    /// files, so this also bounds how long a file stays open). Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub commit_interval_seconds: Option<i32>,

    /// Caps each archiver's rate (records/s), e.g. to emulate a CPU limit in tests (as
    /// `worker.maxEventsPerSecond` does for the workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_records_per_second: Option<u64>,
}

/// The catalog: a SQL catalog (SQLite file or PostgreSQL) or an Iceberg REST catalog. Exactly
/// one must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.sql) != has(self.rest)")
    .message("exactly one of archive.catalog.sql and archive.catalog.rest must be set"))]
pub struct ArchiveCatalog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlCatalog>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RestCatalog>,
}

/// A SQL catalog: the URI inline (SQLite: `sqlite:///path/catalog.db`), or from a Secret's key
/// (PostgreSQL with credentials: `postgres://user:password@host/db`). Exactly one must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.uri) != has(self.uriSecretRef)")
    .message("exactly one of sql.uri and sql.uriSecretRef must be set"))]
pub struct SqlCatalog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(
        "self.startsWith('sqlite:') || self.startsWith('postgres://') || self.startsWith('postgresql://')"
    ).message("must be a sqlite: or postgres:// URI"))]
    #[schemars(length(min = 1, max = 2048))]
    pub uri: Option<String>,

    /// A key of a Secret in the pipeline's namespace holding the URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_secret_ref: Option<SecretKeyRef>,
}

/// An Iceberg REST catalog.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestCatalog {
    #[x_kube(validation = kube::core::Rule::new(
        "self.startsWith('http://') || self.startsWith('https://')"
    ).message("must be an http:// or https:// URI"))]
    #[schemars(length(min = 1, max = 2048))]
    pub uri: String,

    /// A Secret in the pipeline's namespace whose keys are properties of the catalog's client:
    /// `credential` (`client_id:client_secret`, exchanged for a token at the catalog's OAuth2
    /// endpoint), `token` (a bearer token), `oauth2-server-uri`, `scope`, `header.<name>`.
    /// The archivers read them from their environment (`ARCHIVER__CATALOG__PROPERTIES__<key>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_secret_ref: Option<crate::object_ref::LocalObjectRef>,
}

/// A key of a Secret in the pipeline's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    #[x_kube(validation = kube::core::Rule::new(crate::OBJECT_NAME_RULE).message(crate::OBJECT_NAME_MESSAGE))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[x_kube(validation = kube::core::Rule::new(crate::CONFIG_KEY_RULE).message(crate::CONFIG_KEY_MESSAGE))]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// How a new table is partitioned by the event time (`timestamp`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArchivePartitioning {
    #[default]
    Hour,
    Day,
    None,
}

/// An identifier: letters, digits and '_', not starting with a digit.
const IDENT_RULE: &str = "self.matches('^[A-Za-z_][A-Za-z0-9_]*$')";
const IDENT_MESSAGE: &str =
    "must be an identifier: letters, digits and '_', not starting with a digit";
/// Dot-separated identifiers.
const IDENT_PATH_RULE: &str =
    "self.matches('^[A-Za-z_][A-Za-z0-9_]*([.][A-Za-z_][A-Za-z0-9_]*)*$')";
const IDENT_PATH_MESSAGE: &str =
    "must be dot-separated identifiers: letters, digits and '_', none starting with a digit";

impl ArchiveSpec {
    /// The commit interval in effect.
    pub fn commit_interval_seconds(&self) -> u64 {
        self.commit_interval_seconds
            .map_or(300, |s| s.max(1) as u64)
    }

    /// The target file size in effect.
    pub fn target_file_size_bytes(&self) -> u64 {
        self.target_file_size_bytes
            .map_or(128 * 1024 * 1024, |b| b.max(1024 * 1024) as u64)
    }
}
