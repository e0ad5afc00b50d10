//! Why an event was rejected to the dead-letter topic. Each variant's [`Reject::reason`] is the
//! value of the dead-letter header and of the `reason` label of the rejection counter.

/// A rejection: the event goes to the dead-letter topic with its original bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("payload is not valid UTF-8 (first bad byte at {at})")]
    InvalidUtf8 { at: usize },
    #[error("payload is not a JSON object: {detail}")]
    InvalidJson { detail: String },
    #[error("payload is {size} bytes, above the {limit}-byte limit")]
    Oversize { size: usize, limit: usize },
    #[error("required field {field} is missing or null")]
    MissingField { field: &'static str },
    #[error("field {field} has an invalid value: {detail}")]
    InvalidField { field: &'static str, detail: String },
    #[error("timestamp {timestamp_ms} ms lies outside [{min_ms}, {max_ms}]")]
    TimestampOutOfRange {
        timestamp_ms: i64,
        min_ms: i64,
        max_ms: i64,
    },
    #[error("videoId {video_id} is not in the title catalog")]
    UnknownTitle { video_id: i64 },
}

impl Reject {
    /// Every reason, for pre-registering metric series.
    pub const REASONS: [&'static str; 7] = [
        "invalid_utf8",
        "invalid_json",
        "oversize",
        "missing_field",
        "invalid_field",
        "timestamp_out_of_range",
        "unknown_title",
    ];

    /// The machine-readable reason: a dead-letter header value and a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::InvalidUtf8 { .. } => "invalid_utf8",
            Reject::InvalidJson { .. } => "invalid_json",
            Reject::Oversize { .. } => "oversize",
            Reject::MissingField { .. } => "missing_field",
            Reject::InvalidField { .. } => "invalid_field",
            Reject::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            Reject::UnknownTitle { .. } => "unknown_title",
        }
    }
}
