//! Avro encoding of output records with the schema kept in `schemas/impression.avsc`: single-object
//! encoding (`C3 01` + Rabin fingerprint) by default, Confluent wire format (`0x00` + schema id)
//! when a schema id is configured. The schema is parsed once; buffers are reused.

use serde_avro_fast::{Schema, ser::SerializerConfig};

/// The output schema, as kept in the repository.
pub const IMPRESSION_SCHEMA: &str = include_str!("../../schemas/impression.avsc");

/// How each record is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Avro single-object encoding: `C3 01`, the schema's 8-byte Rabin fingerprint, the datum.
    SingleObject,
    /// Confluent wire format: `0x00`, the 4-byte big-endian schema id, the datum.
    Confluent { schema_id: u32 },
}

/// The parsed output schema (parse once, share by reference).
pub fn schema() -> Schema {
    IMPRESSION_SCHEMA
        .parse()
        .expect("schemas/impression.avsc is a valid Avro schema")
}

/// Encodes records with one schema and framing into a caller-owned buffer.
pub struct Encoder<'s> {
    config: SerializerConfig<'s>,
    framing: Framing,
}

impl std::fmt::Debug for Encoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("framing", &self.framing)
            .finish()
    }
}

impl<'s> Encoder<'s> {
    pub fn new(schema: &'s Schema, framing: Framing) -> Self {
        Encoder {
            config: SerializerConfig::new(schema),
            framing,
        }
    }

    /// Replaces `out` with the framed encoding of `value`.
    pub fn encode<T: serde::Serialize>(
        &mut self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), serde_avro_fast::ser::SerError> {
        out.clear();
        match self.framing {
            Framing::SingleObject => {
                serde_avro_fast::to_single_object(value, &mut *out, &mut self.config)?;
            }
            Framing::Confluent { schema_id } => {
                out.push(0);
                out.extend_from_slice(&schema_id.to_be_bytes());
                serde_avro_fast::to_datum(value, &mut *out, &mut self.config)?;
            }
        }
        Ok(())
    }
}
