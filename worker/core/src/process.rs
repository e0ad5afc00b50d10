//! The per-event path: bytes → parse → validate → resolve the title → enrich → quality → Avro.
//! Pure apart from the clock value passed in; no IO, no shared state.

use std::collections::HashMap;

use crate::{
    agree::{self, TitleClaims},
    avro::Encoder,
    catalog::Catalog,
    event::{self, Loose, RawEvent},
    quality::{Column, Correction, Pair, Tally},
    record::{EntityId, ImpressionRecord, LocationRecord, TitleRecord},
    reject::Reject,
};

/// Input limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Larger payloads are rejected as oversize.
    pub max_event_bytes: usize,
    /// Timestamps older than now minus this are rejected.
    pub max_age_ms: i64,
    /// Timestamps later than now plus this are rejected.
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 64 * 1024,
            max_age_ms: 7 * 24 * 3600 * 1000,
            max_future_ms: 3600 * 1000,
        }
    }
}

/// Display names of page and row ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations {
    pub pages: HashMap<i64, String>,
    pub rows: HashMap<String, String>,
}

/// The event types other than impressions that are filtered out (counted, not dead-lettered);
/// anything else is labelled `other`.
pub const FILTERED_TYPES: [&str; 6] = [
    "playback_start",
    "playback_stop",
    "search",
    "page_view",
    "heartbeat",
    "other",
];

/// What became of one input event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A valid impression; its Avro encoding is in the output buffer.
    Record,
    /// An invalid event, for the dead-letter topic.
    Rejected(Reject),
    /// A valid event of another type, dropped; the label is one of [`FILTERED_TYPES`].
    Filtered(&'static str),
}

/// Processes events with one encoder and fixed settings.
#[derive(Debug)]
pub struct Processor<'s> {
    encoder: Encoder<'s>,
    enricher: Enricher,
}

/// Validation and enrichment settings (kept apart from the encoder so both can be borrowed).
#[derive(Debug)]
struct Enricher {
    limits: Limits,
    locations: Locations,
}

impl<'s> Processor<'s> {
    pub fn new(encoder: Encoder<'s>, limits: Limits, locations: Locations) -> Self {
        Processor {
            encoder,
            enricher: Enricher { limits, locations },
        }
    }

    /// Processes one payload. On [`Outcome::Record`], `out` holds the encoded record.
    pub fn process(
        &mut self,
        payload: &[u8],
        catalog: &Catalog,
        now_ms: i64,
        out: &mut Vec<u8>,
        tally: &mut Tally,
    ) -> Outcome {
        match self.try_process(payload, catalog, now_ms, out, tally) {
            Ok(Some(kind)) => Outcome::Filtered(kind),
            Ok(None) => Outcome::Record,
            Err(r) => Outcome::Rejected(r),
        }
    }

    fn try_process(
        &mut self,
        payload: &[u8],
        catalog: &Catalog,
        now_ms: i64,
        out: &mut Vec<u8>,
        tally: &mut Tally,
    ) -> Result<Option<&'static str>, Reject> {
        let limit = self.enricher.limits.max_event_bytes;
        if payload.len() > limit {
            return Err(Reject::Oversize {
                size: payload.len(),
                limit,
            });
        }
        // simdutf8's fast check first; the compat check only to locate the bad byte.
        let text = match simdutf8::basic::from_utf8(payload) {
            Ok(t) => t,
            Err(_) => {
                let at = simdutf8::compat::from_utf8(payload)
                    .err()
                    .map_or(0, |e| e.valid_up_to());
                return Err(Reject::InvalidUtf8 { at });
            }
        };
        if !text.trim_start().starts_with('{') {
            return Err(Reject::InvalidJson {
                detail: "not a JSON object".into(),
            });
        }
        let ev = event::parse(text).map_err(|e| Reject::InvalidJson {
            detail: e.to_string(),
        })?;
        match ev.event_type.as_ref().map(|t| t.as_str()) {
            None => return Err(Reject::MissingField { field: "eventType" }),
            Some(None) => {
                return Err(Reject::InvalidField {
                    field: "eventType",
                    detail: "not a string".into(),
                });
            }
            Some(Some("impression")) => {}
            Some(Some(other)) => {
                return Ok(Some(
                    FILTERED_TYPES
                        .iter()
                        .find(|t| **t == other)
                        .copied()
                        .unwrap_or("other"),
                ));
            }
        }
        let record = self.enricher.build(&ev, catalog, now_ms, tally)?;
        self.encoder
            .encode(&record, out)
            .map_err(|e| Reject::InvalidField {
                field: "record",
                detail: e.to_string(),
            })?;
        Ok(None)
    }
}

impl Enricher {
    fn build<'e>(
        &'e self,
        ev: &'e RawEvent<'e>,
        catalog: &'e Catalog,
        now_ms: i64,
        tally: &mut Tally,
    ) -> Result<ImpressionRecord<'e>, Reject> {
        let event_id = required_str(&ev.event_id, "eventId", None, tally)?;
        let profile_id = required_str(&ev.profile_id, "profileId", Some(Column::ProfileId), tally)?;
        let timestamp = match &ev.timestamp {
            None => return Err(Reject::MissingField { field: "timestamp" }),
            Some(t) => t.as_i64().ok_or_else(|| Reject::InvalidField {
                field: "timestamp",
                detail: "not an integer of epoch milliseconds".into(),
            })?,
        };
        // Saturating: limits are checked at load, but a window must never wrap around.
        let (min_ms, max_ms) = (
            now_ms.saturating_sub(self.limits.max_age_ms),
            now_ms.saturating_add(self.limits.max_future_ms),
        );
        if !(min_ms..=max_ms).contains(&timestamp) {
            return Err(Reject::TimestampOutOfRange {
                timestamp_ms: timestamp,
                min_ms,
                max_ms,
            });
        }

        let video = id_column(&ev.video_id, Column::VideoId, tally, |l| {
            l.as_i64().filter(|v| *v > 0)
        });
        let entity_raw = opt_str(&ev.entity_id, Some(Column::EntityId), tally);
        let entity = entity_raw.and_then(|s| {
            let id = agree::entity_id(s);
            if id.is_none() {
                tally.invalid(Column::EntityId);
            }
            id
        });
        let image_id = opt_str(&ev.image_id, Some(Column::ImageId), tally);
        let image = image_id.and_then(agree::image_title);
        let agreement = agree::resolve(TitleClaims {
            video,
            entity,
            image,
        })
        .ok_or(Reject::MissingField { field: "videoId" })?;
        let title = catalog
            .get(agreement.video_id)
            .ok_or(Reject::UnknownTitle {
                video_id: agreement.video_id,
            })?;

        let mut corrections: Vec<&'static str> =
            agreement.corrections.iter().map(|c| c.name()).collect();
        let mut mismatches: Vec<&'static str> = Vec::new();
        for &(pair, corrected) in &agreement.mismatches {
            tally.mismatch(pair, corrected);
            if !corrected {
                mismatches.push(pair.name());
            }
        }
        for c in &agreement.corrections {
            tally.correction(*c);
        }
        if let (Some(sent), Some(truth)) =
            (ev.show_id.as_ref().and_then(Loose::as_i64), title.show_id)
            && sent != truth
        {
            tally.mismatch(Pair::ShowCatalog, true);
            tally.correction(Correction::ShowFromCatalog);
            corrections.push(Correction::ShowFromCatalog.name());
        }

        let entity_id = match entity_raw {
            Some(e) if !agreement.rewrite_entity => EntityId::Original(e),
            _ => EntityId::FromVideo(agreement.video_id),
        };
        let page_id = small_int(&ev.page_id, Some(Column::PageId), tally);
        let row_id = opt_str(&ev.row_id, Some(Column::RowId), tally);
        Ok(ImpressionRecord {
            event_id,
            timestamp,
            profile_id,
            account_id: opt_str(&ev.account_id, None, tally),
            device_id: opt_str(&ev.device_id, None, tally),
            device_type: opt_str(&ev.device_type, Some(Column::DeviceType), tally),
            country: opt_str(&ev.country, Some(Column::Country), tally),
            video_id: agreement.video_id,
            entity_id,
            image_id,
            title: TitleRecord {
                name: &title.name,
                kind: title.kind,
                show_id: title.show_id,
                season_number: title.season_number,
                episode_number: title.episode_number,
                genres: &title.genres,
                maturity_rating: title.maturity_rating.as_deref(),
                release_year: title.release_year,
            },
            location: LocationRecord {
                page_id,
                page_name: page_id
                    .and_then(|p| self.locations.pages.get(&i64::from(p)))
                    .map(String::as_str),
                row_id,
                row_name: row_id
                    .and_then(|r| self.locations.rows.get(r))
                    .map(String::as_str),
                row_index: small_int(&ev.row_index, Some(Column::RowIndex), tally),
                column_index: small_int(&ev.column_index, None, tally),
            },
            corrections,
            mismatches,
            processed_at: now_ms,
        })
    }
}

/// A required non-empty string field.
fn required_str<'e>(
    v: &'e Option<Loose<'e>>,
    field: &'static str,
    col: Option<Column>,
    tally: &mut Tally,
) -> Result<&'e str, Reject> {
    match v {
        None => {
            if let Some(c) = col {
                tally.null(c);
            }
            Err(Reject::MissingField { field })
        }
        Some(Loose::Str(s)) if !s.is_empty() => Ok(s),
        Some(Loose::Str(_)) => {
            if let Some(c) = col {
                tally.null(c);
            }
            Err(Reject::MissingField { field })
        }
        Some(_) => {
            if let Some(c) = col {
                tally.invalid(c);
            }
            Err(Reject::InvalidField {
                field,
                detail: "not a string".into(),
            })
        }
    }
}

/// An optional string column: null or empty counts as null, another type as invalid.
fn opt_str<'e>(
    v: &'e Option<Loose<'e>>,
    col: Option<Column>,
    tally: &mut Tally,
) -> Option<&'e str> {
    match v {
        Some(Loose::Str(s)) if !s.is_empty() => Some(s),
        None | Some(Loose::Str(_)) => {
            if let Some(c) = col {
                tally.null(c);
            }
            None
        }
        Some(_) => {
            if let Some(c) = col {
                tally.invalid(c);
            }
            None
        }
    }
}

/// An optional id column read with `read`; a value `read` refuses counts as invalid.
fn id_column(
    v: &Option<Loose<'_>>,
    col: Column,
    tally: &mut Tally,
    read: impl Fn(&Loose<'_>) -> Option<i64>,
) -> Option<i64> {
    match v {
        None => {
            tally.null(col);
            None
        }
        Some(l) => {
            let id = read(l);
            if id.is_none() {
                tally.invalid(col);
            }
            id
        }
    }
}

/// An optional non-negative int32 column.
fn small_int(v: &Option<Loose<'_>>, col: Option<Column>, tally: &mut Tally) -> Option<i32> {
    match v {
        None => {
            if let Some(c) = col {
                tally.null(c);
            }
            None
        }
        Some(l) => {
            let n = l
                .as_i64()
                .filter(|n| *n >= 0)
                .and_then(|n| i32::try_from(n).ok());
            if n.is_none()
                && let Some(c) = col
            {
                tally.invalid(c);
            }
            n
        }
    }
}
