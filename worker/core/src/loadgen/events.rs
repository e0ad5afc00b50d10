//! The event generator: raw client events of about 1.2 KB, with realistic ids, pages, rows and
//! devices, and known shares of other event types, invalid events and column mismatches.

use std::{collections::BTreeMap, fmt::Write};

use rand::{Rng, SeedableRng, rngs::SmallRng};
use serde::{Deserialize, Serialize};

use super::release::Release;
use crate::catalog::{Title, TitleKind};

/// The first videoId of the generated catalog; title `i` has videoId `FIRST_VIDEO_ID + i`.
pub const FIRST_VIDEO_ID: i64 = 80_000_000;

/// Shares of the generated traffic (each in [0, 1], applied in this order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Events of another type than impression (filtered out by the worker).
    pub non_impression: f64,
    /// Invalid impressions (dead-lettered by the worker), spread over the rejection reasons.
    pub invalid: f64,
    /// Valid impressions whose columns disagree or miss a derivable value.
    pub mismatch: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            non_impression: 0.2,
            invalid: 0.02,
            mismatch: 0.03,
        }
    }
}

/// What kind of event was generated, and so what the worker must make of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A clean impression: one output record.
    Valid,
    /// entityId missing: a record with entityId rebuilt from videoId.
    MissingEntity,
    /// videoId disagrees with entityId, the artwork names entityId's title: corrected record.
    CorrectableMismatch,
    /// videoId disagrees with entityId and nothing breaks the tie: a flagged record.
    UncorrectableMismatch,
    /// Not JSON: dead letter `invalid_json`.
    InvalidJson,
    /// Not UTF-8: dead letter `invalid_utf8`.
    InvalidUtf8,
    /// profileId missing: dead letter `missing_field`.
    MissingProfile,
    /// profileId is a number: dead letter `invalid_field`.
    IllTypedProfile,
    /// Thirty days old: dead letter `timestamp_out_of_range`.
    StaleTimestamp,
    /// A title not in the catalog: dead letter `unknown_title`.
    UnknownTitle,
    /// Another event type: filtered.
    NonImpression,
}

impl Kind {
    /// Whether the worker outputs a record for this kind.
    pub fn is_record(self) -> bool {
        matches!(
            self,
            Kind::Valid
                | Kind::MissingEntity
                | Kind::CorrectableMismatch
                | Kind::UncorrectableMismatch
        )
    }
    /// The dead-letter reason the worker must give, for invalid kinds.
    pub fn reject_reason(self) -> Option<&'static str> {
        Some(match self {
            Kind::InvalidJson => "invalid_json",
            Kind::InvalidUtf8 => "invalid_utf8",
            Kind::MissingProfile => "missing_field",
            Kind::IllTypedProfile => "invalid_field",
            Kind::StaleTimestamp => "timestamp_out_of_range",
            Kind::UnknownTitle => "unknown_title",
            _ => return None,
        })
    }
}

const INVALID: [Kind; 6] = [
    Kind::InvalidJson,
    Kind::InvalidUtf8,
    Kind::MissingProfile,
    Kind::IllTypedProfile,
    Kind::StaleTimestamp,
    Kind::UnknownTitle,
];
const MISMATCH: [Kind; 3] = [
    Kind::MissingEntity,
    Kind::CorrectableMismatch,
    Kind::UncorrectableMismatch,
];
const OTHER_TYPES: [&str; 5] = [
    "playback_start",
    "playback_stop",
    "search",
    "page_view",
    "heartbeat",
];
const DEVICES: [&str; 5] = ["tv", "mobile", "tablet", "web", "console"];
const COUNTRIES: [&str; 8] = ["US", "BR", "GB", "DE", "IN", "JP", "MX", "FR"];
const ROWS: [&str; 6] = [
    "continue",
    "trending",
    "top10",
    "new",
    "because-you-watched",
    "my-list",
];
const ARTWORK: [&str; 3] = ["boxshot", "billboard", "storyart"];

/// One generated event.
#[derive(Debug, Clone)]
pub struct Generated {
    pub kind: Kind,
    /// The event id (also the Kafka key), unique per seed.
    pub event_id: String,
    pub payload: Vec<u8>,
    /// Sent by the client release (its shape changed, see [`Release`]).
    pub released: bool,
}

/// Counts of what was generated, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub total: u64,
    pub records_expected: u64,
    pub dead_letters_expected: u64,
    pub filtered_expected: u64,
    pub by_kind: BTreeMap<Kind, u64>,
}

impl Report {
    pub fn add(&mut self, kind: Kind) {
        self.total += 1;
        *self.by_kind.entry(kind).or_default() += 1;
        if kind.is_record() {
            self.records_expected += 1;
        } else if kind.reject_reason().is_some() {
            self.dead_letters_expected += 1;
        } else {
            self.filtered_expected += 1;
        }
    }
}

/// Generates events deterministically from a seed.
#[derive(Debug)]
pub struct Generator {
    rng: SmallRng,
    seed: u64,
    titles: u32,
    mix: Mix,
    seq: u64,
    buf: String,
    release: Option<Release>,
}

impl Generator {
    pub fn new(seed: u64, titles: u32, mix: Mix) -> Self {
        Generator {
            rng: SmallRng::seed_from_u64(seed),
            seed,
            titles: titles.max(1),
            mix,
            seq: 0,
            buf: String::with_capacity(1600),
            release: None,
        }
    }

    /// The same generator with a share of its events sent by a client release (the draws for
    /// the release change the events that follow: a seed gives other events with a release).
    pub fn with_release(mut self, release: Release) -> Self {
        self.release = Some(release);
        self
    }

    /// The next event, stamped `now_ms`.
    pub fn next_event(&mut self, now_ms: i64) -> Generated {
        let kind = self.pick_kind();
        let event_id = format!("{:08x}-{:012}", self.seed as u32, self.seq);
        self.seq += 1;
        let mut payload = self.render(kind, &event_id, now_ms);
        let mut released = false;
        if let Some(r) = &self.release
            && self.rng.random::<f64>() < r.share
        {
            payload = r.apply(payload, kind == Kind::NonImpression);
            released = true;
        }
        Generated {
            kind,
            event_id,
            payload,
            released,
        }
    }

    fn pick_kind(&mut self) -> Kind {
        let r: f64 = self.rng.random();
        let m = self.mix;
        if r < m.non_impression {
            Kind::NonImpression
        } else if r < m.non_impression + m.invalid {
            INVALID[self.rng.random_range(0..INVALID.len())]
        } else if r < m.non_impression + m.invalid + m.mismatch {
            MISMATCH[self.rng.random_range(0..MISMATCH.len())]
        } else {
            Kind::Valid
        }
    }

    fn render(&mut self, kind: Kind, event_id: &str, now_ms: i64) -> Vec<u8> {
        let rng = &mut self.rng;
        let title = rng.random_range(0..self.titles) as i64;
        let mut video = FIRST_VIDEO_ID + title;
        let other = FIRST_VIDEO_ID + (title + 1) % self.titles as i64;
        let profile = rng.random_range(1_000_000u64..9_999_999);
        let device = DEVICES[rng.random_range(0..DEVICES.len())];
        let country = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
        let page = rng.random_range(1..=4);
        let row = ROWS[rng.random_range(0..ROWS.len())];
        let row_index = rng.random_range(0..40);
        let column = rng.random_range(0..30);
        let variant = rng.random_range(1..9);
        let mut ts = now_ms - rng.random_range(0..5_000);
        let event_type = if kind == Kind::NonImpression {
            OTHER_TYPES[rng.random_range(0..OTHER_TYPES.len())]
        } else {
            "impression"
        };

        let (mut entity, mut image) = (
            format!("\"title:{video}\""),
            format!("\"img-{video}-{variant}\""),
        );
        let mut profile_json = format!("\"P{profile}\"");
        match kind {
            Kind::MissingEntity => entity = "null".into(),
            Kind::CorrectableMismatch => {
                entity = format!("\"title:{other}\"");
                image = format!("\"img-{other}-{variant}\"");
            }
            Kind::UncorrectableMismatch => {
                entity = format!("\"title:{other}\"");
                image = "null".into();
            }
            Kind::MissingProfile => profile_json = "null".into(),
            Kind::IllTypedProfile => profile_json = profile.to_string(),
            Kind::StaleTimestamp => ts = now_ms - 30 * 24 * 3600 * 1000,
            Kind::UnknownTitle => {
                video = FIRST_VIDEO_ID + self.titles as i64 + 1000 + title;
                entity = format!("\"title:{video}\"");
                image = format!("\"img-{video}-{variant}\"");
            }
            _ => {}
        }
        let artwork = ARTWORK[rng.random_range(0..ARTWORK.len())];
        let session: u64 = rng.random();
        let request: u64 = rng.random();
        let track = rng.random_range(10_000_000..20_000_000);
        let b = &mut self.buf;
        b.clear();
        let _ = write!(
            b,
            concat!(
                "{{\"eventType\":\"{et}\",\"eventId\":\"{id}\",\"schemaVersion\":3,\"timestamp\":{ts},",
                "\"serverTimestamp\":{sts},\"profileId\":{pj},\"accountId\":\"A{acct}\",",
                "\"deviceId\":\"d-{dev:016x}\",\"deviceType\":\"{device}\",\"appVersion\":\"15.{minor}.1\",",
                "\"country\":\"{country}\",\"locale\":\"en-{country}\",\"sessionId\":\"{session:016x}\",",
                "\"requestId\":\"{request:016x}-{req2:08x}\",\"entityId\":{entity},\"videoId\":{video},",
                "\"imageId\":{image},\"artworkType\":\"{artwork}\",\"pageId\":{page},\"rowId\":\"{row}\",",
                "\"rowIndex\":{row_index},\"columnIndex\":{column},\"trackId\":{track},",
                "\"presentation\":{{\"visibleMs\":{visible},\"rankInRow\":{column},\"viewport\":{{\"w\":1920,\"h\":1080}},",
                "\"renderMs\":{render},\"lazyLoaded\":{lazy}}},",
                "\"experiments\":{{\"artwork_personalization\":\"cell_{c1}\",\"row_ranking_v7\":\"cell_{c2}\",",
                "\"billboard_autoplay\":\"cell_{c3}\",\"title_card_redesign\":\"control\",\"continue_watching_dedupe\":\"cell_{c4}\"}},",
                "\"context\":{{\"network\":\"wifi\",\"os\":\"{device}-os 18.2\",\"model\":\"model-{model}\",",
                "\"uiVersion\":\"ui-2026.{minor}.{variant}\",\"drmLevel\":\"L1\",\"hdr\":true,\"audioLang\":\"en\",",
                "\"subtitleLang\":null,\"memoryMb\":{mem},\"connectionMbps\":{mbps}}},",
                "\"referrer\":{{\"source\":\"home\",\"campaign\":null,\"deepLink\":\"app://browse/{row}\"}},",
                "\"debug\":{{\"buildId\":\"{session:x}{request:x}\",\"trace\":\"{request:032x}\"}}}}"
            ),
            et = event_type,
            id = event_id,
            ts = ts,
            sts = now_ms,
            pj = profile_json,
            acct = profile / 3,
            dev = profile.wrapping_mul(2654435761),
            device = device,
            minor = variant,
            variant = variant,
            country = country,
            session = session,
            request = request,
            req2 = track,
            entity = entity,
            video = video,
            image = image,
            artwork = artwork,
            page = page,
            row = row,
            row_index = row_index,
            column = column,
            track = track,
            visible = 200 + track % 3000,
            render = track % 90,
            lazy = track % 2 == 0,
            c1 = track % 7,
            c2 = track % 5,
            c3 = track % 3,
            c4 = track % 4,
            model = track % 97,
            mem = 1024 + track % 4096,
            mbps = 5 + track % 200,
        );
        let mut bytes = b.as_bytes().to_vec();
        match kind {
            Kind::InvalidJson => bytes.truncate(bytes.len() / 2),
            Kind::InvalidUtf8 => {
                let at = bytes.len() / 3;
                bytes[at] = 0xFF;
            }
            _ => {}
        }
        bytes
    }
}

/// The catalog matching the generator: `n` titles from [`FIRST_VIDEO_ID`]; every fourth a movie,
/// the rest episodes of shows of ten episodes.
pub fn catalog(n: u32) -> Vec<Title> {
    const GENRES: [&str; 6] = [
        "drama",
        "comedy",
        "thriller",
        "documentary",
        "kids",
        "anime",
    ];
    (0..n as i64)
        .map(|i| {
            let movie = i % 4 == 0;
            Title {
                video_id: FIRST_VIDEO_ID + i,
                name: format!("Title {i}"),
                kind: if movie {
                    TitleKind::Movie
                } else {
                    TitleKind::Episode
                },
                show_id: (!movie).then_some(70_000_000 + i / 10),
                season_number: (!movie).then_some((i / 10 % 5) as i32 + 1),
                episode_number: (!movie).then_some((i % 10) as i32 + 1),
                genres: vec![
                    GENRES[(i % 6) as usize].to_owned(),
                    GENRES[((i / 6) % 6) as usize].to_owned(),
                ],
                maturity_rating: Some(if i % 3 == 0 { "TV-MA" } else { "PG-13" }.to_owned()),
                release_year: Some(1990 + (i % 36) as i32),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_about_1_2_kb() {
        let mut a = Generator::new(7, 100, Mix::default());
        let mut b = Generator::new(7, 100, Mix::default());
        let (ea, eb) = (
            a.next_event(1_700_000_000_000),
            b.next_event(1_700_000_000_000),
        );
        assert_eq!(ea.payload, eb.payload);
        let mut sizes = 0usize;
        for _ in 0..1000 {
            sizes += a.next_event(1_700_000_000_000).payload.len();
        }
        let avg = sizes / 1000;
        assert!((1000..1400).contains(&avg), "average event size {avg}");
    }

    #[test]
    fn shares_follow_the_mix() {
        let mut g = Generator::new(
            1,
            100,
            Mix {
                non_impression: 0.5,
                invalid: 0.1,
                mismatch: 0.1,
            },
        );
        let mut r = Report::default();
        for _ in 0..10_000 {
            r.add(g.next_event(0).kind);
        }
        assert!((4_700..5_300).contains(&r.filtered_expected), "{r:?}");
        assert!((800..1_200).contains(&r.dead_letters_expected), "{r:?}");
        assert_eq!(
            r.records_expected + r.dead_letters_expected + r.filtered_expected,
            10_000
        );
    }
}
