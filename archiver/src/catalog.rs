//! The table in its catalog (IO): connecting, creating the namespace and table when absent,
//! reading the offsets the table holds, and committing data files with fencing.
//!
//! A commit is a transaction's `fast_append` with the offsets it leaves in the snapshot summary.
//! The transaction retries a catalog conflict on refreshed metadata (iceberg's commit retry);
//! [`Fenced`] wraps the catalog so that every attempt first checks, on the metadata it is about
//! to replace, that no other archiver committed the same partitions meanwhile
//! ([`crate::offsets::Progress::check`]). The SQL catalog's compare-and-swap on the metadata
//! location makes that check and the commit one step: an attempt whose base moved fails with a
//! conflict and is checked again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use iceberg::{
    Catalog, CatalogBuilder, Error as IcebergError, ErrorKind, Namespace, NamespaceIdent, Result,
    TableCommit, TableCreation, TableIdent,
    io::LocalFsStorageFactory,
    spec::{DataFile, Schema, UnboundPartitionSpec},
    table::Table,
    transaction::{ApplyTransactionAction, Transaction},
};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_BIND_STYLE, SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlBindStyle,
    SqlCatalogBuilder,
};

use crate::{
    config::{CatalogConfig, CatalogKind},
    offsets::{self, Offsets, Progress, Stale},
};

/// What went wrong with the table.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog call `{call}` did not answer within {timeout:?}")]
    Timeout {
        call: &'static str,
        timeout: Duration,
    },
    #[error("catalog call `{call}` failed: {source}")]
    Iceberg {
        call: &'static str,
        #[source]
        source: IcebergError,
    },
    #[error("stale commit dropped: {0}")]
    Stale(Stale),
}

impl CatalogError {
    /// The Event/metric reason.
    pub fn reason(&self) -> &'static str {
        match self {
            CatalogError::Timeout { .. } => "CatalogTimeout",
            CatalogError::Iceberg { .. } => "CatalogError",
            CatalogError::Stale(_) => "StaleCommit",
        }
    }
}

/// Runs a catalog call within `timeout`.
pub async fn deadline<T>(
    call: &'static str,
    timeout: Duration,
    f: impl Future<Output = Result<T>>,
) -> std::result::Result<T, CatalogError> {
    match tokio::time::timeout(timeout, f).await {
        Err(_) => Err(CatalogError::Timeout { call, timeout }),
        Ok(r) => r.map_err(|source| CatalogError::Iceberg { call, source }),
    }
}

/// Connects to the configured catalog.
pub async fn connect(
    config: &CatalogConfig,
    timeout: Duration,
) -> std::result::Result<Arc<dyn Catalog>, CatalogError> {
    match config.kind {
        CatalogKind::Sql => {
            let bind = if config.uri.starts_with("sqlite:") {
                SqlBindStyle::QMark
            } else {
                SqlBindStyle::DollarNumeric
            };
            let props = HashMap::from([
                (SQL_CATALOG_PROP_URI.to_string(), config.uri.clone()),
                (
                    SQL_CATALOG_PROP_WAREHOUSE.to_string(),
                    config.warehouse.clone(),
                ),
                (SQL_CATALOG_PROP_BIND_STYLE.to_string(), bind.to_string()),
            ]);
            let catalog = deadline(
                "connect",
                timeout,
                SqlCatalogBuilder::default()
                    .with_storage_factory(Arc::new(LocalFsStorageFactory))
                    .load(&config.name, props),
            )
            .await?;
            Ok(Arc::new(catalog))
        }
        CatalogKind::Rest => {
            let mut props: HashMap<String, String> =
                config.properties.clone().into_iter().collect();
            props.insert("uri".to_string(), config.uri.clone());
            props.insert("warehouse".to_string(), config.warehouse.clone());
            let catalog = deadline(
                "connect",
                timeout,
                iceberg_catalog_rest::RestCatalogBuilder::default()
                    .with_storage_factory(Arc::new(LocalFsStorageFactory))
                    .load(&config.name, props),
            )
            .await?;
            Ok(Arc::new(catalog))
        }
    }
}

/// Loads the table, creating its namespace and the table (with `schema` and `spec`) when absent.
pub async fn ensure_table(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    schema: Schema,
    spec: UnboundPartitionSpec,
    timeout: Duration,
) -> std::result::Result<Table, CatalogError> {
    let ns = ident.namespace().clone();
    if !deadline("namespace_exists", timeout, catalog.namespace_exists(&ns)).await? {
        let created = deadline(
            "create_namespace",
            timeout,
            catalog.create_namespace(&ns, HashMap::new()),
        )
        .await;
        // another archiver may have created it meanwhile
        if created.is_err()
            && !deadline("namespace_exists", timeout, catalog.namespace_exists(&ns)).await?
        {
            created?;
        }
    }
    if deadline("table_exists", timeout, catalog.table_exists(ident)).await? {
        return deadline("load_table", timeout, catalog.load_table(ident)).await;
    }
    let creation = TableCreation::builder()
        .name(ident.name().to_string())
        .schema(schema)
        .partition_spec(spec)
        .properties([(
            "write.parquet.compression-codec".to_string(),
            "zstd".to_string(),
        )])
        .build();
    match deadline("create_table", timeout, catalog.create_table(&ns, creation)).await {
        Ok(t) => Ok(t),
        // created by another archiver meanwhile
        Err(e) => {
            if deadline("table_exists", timeout, catalog.table_exists(ident)).await? {
                deadline("load_table", timeout, catalog.load_table(ident)).await
            } else {
                Err(e)
            }
        }
    }
}

/// The offsets of `topic` the table holds, along the current snapshot's ancestry.
pub fn table_offsets(table: &Table, topic: &str) -> Offsets {
    let metadata = table.metadata_ref();
    let Some(current) = metadata.current_snapshot_id() else {
        return Offsets::new();
    };
    let chain: Vec<_> = iceberg::util::snapshot::ancestors_of(&metadata, current).collect();
    offsets::from_history(
        chain.iter().map(|s| &s.summary().additional_properties),
        topic,
    )
}

/// The snapshot summary property naming the archiver instance that committed it.
pub const WRITER_PROPERTY: &str = "impressions.archive.writer";

/// What a successful commit produced.
#[derive(Debug, Clone)]
pub struct Committed {
    pub snapshot_id: i64,
    pub table_data_files: u64,
    pub table_files_bytes: u64,
    /// Conflicts retried on refreshed metadata before it went in.
    pub conflicts: u64,
    pub table: Table,
}

/// Commits `files` with the offsets `progress` leaves, fenced against other archivers.
pub async fn commit(
    catalog: Arc<dyn Catalog>,
    table: &Table,
    topic: &str,
    writer: &str,
    progress: &Progress,
    files: Vec<DataFile>,
    timeout: Duration,
) -> std::result::Result<Committed, CatalogError> {
    let fenced = Fenced {
        inner: catalog,
        topic: topic.to_string(),
        progress: progress.clone(),
        stale: Mutex::new(None),
        conflicts: Mutex::new(0),
    };
    let mut properties = offsets::summary_properties(topic, &progress.to_commit());
    properties.insert(WRITER_PROPERTY.to_string(), writer.to_string());
    let tx = Transaction::new(table);
    let action = tx
        .fast_append()
        .set_commit_uuid(uuid::Uuid::new_v4())
        .add_data_files(files)
        .set_snapshot_properties(properties);
    let tx = action.apply(tx).map_err(|source| CatalogError::Iceberg {
        call: "fast_append",
        source,
    })?;
    let result = deadline("commit", timeout, tx.commit(&fenced)).await;
    if let Some(stale) = fenced.stale.lock().expect("stale lock").take() {
        return Err(CatalogError::Stale(stale));
    }
    let table = result?;
    let conflicts = *fenced.conflicts.lock().expect("conflicts lock");
    let snapshot = table
        .metadata()
        .current_snapshot()
        .ok_or_else(|| CatalogError::Iceberg {
            call: "commit",
            source: IcebergError::new(ErrorKind::Unexpected, "committed table has no snapshot"),
        })?;
    let total = |k: &str| {
        snapshot
            .summary()
            .additional_properties
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Committed {
        snapshot_id: snapshot.snapshot_id(),
        table_data_files: total("total-data-files"),
        table_files_bytes: total("total-files-size"),
        conflicts,
        table: table.clone(),
    })
}

/// The catalog as seen by one commit: every `update_table` first checks the table's offsets.
struct Fenced {
    inner: Arc<dyn Catalog>,
    topic: String,
    progress: Progress,
    stale: Mutex<Option<Stale>>,
    conflicts: Mutex<u64>,
}

impl std::fmt::Debug for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fenced")
            .field("topic", &self.topic)
            .finish()
    }
}

#[async_trait]
impl Catalog for Fenced {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }
    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        self.inner.create_namespace(namespace, properties).await
    }
    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        self.inner.get_namespace(namespace).await
    }
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.inner.namespace_exists(namespace).await
    }
    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        self.inner.update_namespace(namespace, properties).await
    }
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        self.inner.drop_namespace(namespace).await
    }
    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }
    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> Result<Table> {
        self.inner.create_table(namespace, creation).await
    }
    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        self.inner.load_table(table).await
    }
    async fn drop_table(&self, table: &TableIdent) -> Result<()> {
        self.inner.drop_table(table).await
    }
    async fn purge_table(&self, table: &TableIdent) -> Result<()> {
        self.inner.purge_table(table).await
    }
    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        self.inner.table_exists(table).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> Result<()> {
        self.inner.rename_table(src, dest).await
    }
    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> Result<Table> {
        self.inner.register_table(table, metadata_location).await
    }
    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        let current = self.inner.load_table(commit.identifier()).await?;
        if let Err(stale) = self.progress.check(&table_offsets(&current, &self.topic)) {
            let message = stale.to_string();
            *self.stale.lock().expect("stale lock") = Some(stale);
            // not retryable: the transaction gives up and the archiver rewinds
            return Err(IcebergError::new(ErrorKind::PreconditionFailed, message));
        }
        let result = self.inner.update_table(commit).await;
        if let Err(e) = &result
            && e.kind() == ErrorKind::CatalogCommitConflicts
        {
            *self.conflicts.lock().expect("conflicts lock") += 1;
        }
        result
    }
}
