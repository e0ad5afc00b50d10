//! The JSON types a field is seen with, as JSON Schema names them (`integer` apart from
//! `number`, as JSON Schema does: a column of whole numbers that starts sending fractions is a
//! change of type).

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

/// One JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    Null,
    Boolean,
    Integer,
    /// A number with a fraction or an exponent (JSON Schema's `number` minus `integer`).
    Number,
    String,
    Object,
    Array,
}

impl JsonType {
    pub const ALL: [JsonType; 7] = [
        JsonType::Null,
        JsonType::Boolean,
        JsonType::Integer,
        JsonType::Number,
        JsonType::String,
        JsonType::Object,
        JsonType::Array,
    ];

    /// The JSON Schema name.
    pub fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Object => "object",
            JsonType::Array => "array",
        }
    }

    /// The bit of this type in a [`TypeMask`].
    pub(crate) fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The index of this type in a [`TypeCounts`] array.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The types seen within one event (a field of array items can have several).
pub(crate) type TypeMask = u8;

/// Per type, the number of events in which a field had that type.
pub(crate) type TypeCounts = [u64; 7];

/// The counts as a map of the types seen (zero counts left out), for the serialized form.
pub(crate) fn counts_to_map(counts: &TypeCounts) -> BTreeMap<JsonType, u64> {
    JsonType::ALL
        .iter()
        .filter(|t| counts[t.index()] > 0)
        .map(|t| (*t, counts[t.index()]))
        .collect()
}
