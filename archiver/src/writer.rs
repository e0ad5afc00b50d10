//! The data files of one commit: Parquet files written with iceberg's writers (a rolling file
//! writer per partition, rolling at the target file size), closed into `DataFile`s at commit.

use arrow_array::RecordBatch;
use iceberg::{
    spec::{DataFile, DataFileFormat, Literal, PartitionKey, Struct},
    table::Table,
    writer::{
        base_writer::data_file_writer::DataFileWriterBuilder,
        file_writer::{
            ParquetWriterBuilder,
            location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator},
            rolling_writer::RollingFileWriterBuilder,
        },
        partitioning::{
            PartitioningWriter, fanout_writer::FanoutWriter,
            unpartitioned_writer::UnpartitionedWriter,
        },
    },
};
use parquet::{
    basic::{Compression, ZstdLevel},
    file::properties::WriterProperties,
};

use crate::schema::Partitioning;

type Builder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

enum Inner {
    Partitioned(Box<FanoutWriter<Builder>>),
    Unpartitioned(Box<UnpartitionedWriter<Builder>>),
}

/// The open data files of one commit.
pub struct FileSet {
    inner: Inner,
    table: Table,
    partitioning: Partitioning,
}

impl std::fmt::Debug for FileSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSet")
            .field("table", self.table.identifier())
            .field("partitioning", &self.partitioning)
            .finish()
    }
}

impl FileSet {
    /// Files under `table`'s data location, named `<prefix>-<n>.parquet` (the prefix is unique
    /// per file set, so an abandoned set never shares a name with a committed one).
    pub fn new(
        table: &Table,
        partitioning: Partitioning,
        target_file_size: u64,
        prefix: String,
    ) -> iceberg::Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let parquet = ParquetWriterBuilder::new(props, table.metadata().current_schema().clone());
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            target_file_size as usize,
            table.file_io().clone(),
            DefaultLocationGenerator::new(table.metadata())?,
            DefaultFileNameGenerator::new(prefix, None, DataFileFormat::Parquet),
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let inner = match partitioning {
            Partitioning::None => Inner::Unpartitioned(Box::new(UnpartitionedWriter::new(builder))),
            _ => Inner::Partitioned(Box::new(FanoutWriter::new(builder))),
        };
        Ok(FileSet {
            inner,
            table: table.clone(),
            partitioning,
        })
    }

    /// Writes the rows of one partition bucket (hours or days since the epoch).
    pub async fn write(&mut self, bucket: i32, batch: RecordBatch) -> iceberg::Result<()> {
        match &mut self.inner {
            Inner::Unpartitioned(w) => w.write(batch).await,
            Inner::Partitioned(w) => {
                let value = match self.partitioning {
                    Partitioning::Day => Literal::date(bucket),
                    _ => Literal::int(bucket),
                };
                let key = PartitionKey::new(
                    self.table
                        .metadata()
                        .default_partition_spec()
                        .as_ref()
                        .clone(),
                    self.table.metadata().current_schema().clone(),
                    Struct::from_iter([Some(value)]),
                );
                w.write(key, batch).await
            }
        }
    }

    /// Closes every open file.
    pub async fn close(self) -> iceberg::Result<Vec<DataFile>> {
        match self.inner {
            Inner::Unpartitioned(w) => w.close().await,
            Inner::Partitioned(w) => w.close().await,
        }
    }
}
