//! The output record, shaped as `schemas/impression.avsc`, borrowing from the input and the
//! catalog so that encoding copies nothing it does not have to.

use serde::Serialize;

use crate::catalog::TitleKind;

/// One enriched impression.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImpressionRecord<'a> {
    pub event_id: &'a str,
    pub timestamp: i64,
    pub profile_id: &'a str,
    pub account_id: Option<&'a str>,
    pub device_id: Option<&'a str>,
    pub device_type: Option<&'a str>,
    pub country: Option<&'a str>,
    pub video_id: i64,
    pub entity_id: EntityId<'a>,
    pub image_id: Option<&'a str>,
    pub title: TitleRecord<'a>,
    pub location: LocationRecord<'a>,
    pub corrections: Vec<&'static str>,
    pub mismatches: Vec<&'static str>,
    pub processed_at: i64,
}

/// entityId as sent, or rebuilt as `title:<videoId>` when corrected.
#[derive(Debug, PartialEq)]
pub enum EntityId<'a> {
    Original(&'a str),
    FromVideo(i64),
}

impl Serialize for EntityId<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EntityId::Original(e) => s.serialize_str(e),
            EntityId::FromVideo(v) => s.collect_str(&format_args!("title:{v}")),
        }
    }
}

/// Title details from the catalog.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TitleRecord<'a> {
    pub name: &'a str,
    pub kind: TitleKind,
    pub show_id: Option<i64>,
    pub season_number: Option<i32>,
    pub episode_number: Option<i32>,
    pub genres: &'a [String],
    pub maturity_rating: Option<&'a str>,
    pub release_year: Option<i32>,
}

/// Where on the page the artwork was shown.
#[derive(Debug, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LocationRecord<'a> {
    pub page_id: Option<i32>,
    pub page_name: Option<&'a str>,
    pub row_id: Option<&'a str>,
    pub row_name: Option<&'a str>,
    pub row_index: Option<i32>,
    pub column_index: Option<i32>,
}
