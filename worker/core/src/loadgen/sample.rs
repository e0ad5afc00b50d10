//! A fixed sample of generated traffic for the benchmarks: 10,000 events of the default mix
//! over 5,000 titles, the catalog they refer to, and four pages and rows to resolve.

use super::{Generator, Mix, events};
use crate::{catalog::Catalog, process::Locations};

/// Events in the sample.
pub const EVENTS: usize = 10_000;

/// The sample's payloads, the catalog they refer to, and the time they were generated at.
pub fn traffic() -> (Vec<Vec<u8>>, Catalog, i64) {
    let now = 1_790_000_000_000;
    let mut g = Generator::new(42, 5000, Mix::default());
    let payloads: Vec<Vec<u8>> = (0..EVENTS).map(|_| g.next_event(now).payload).collect();
    let catalog = Catalog::default().with_updates(
        events::catalog(5000)
            .into_iter()
            .map(|t| (t.video_id, Some(t))),
    );
    (payloads, catalog, now)
}

/// The pages and rows the sample's events are shown on.
pub fn locations() -> Locations {
    Locations {
        pages: (1..=4).map(|i| (i, format!("Page {i}"))).collect(),
        rows: ["continue", "trending", "top10", "new"]
            .iter()
            .map(|r| (r.to_string(), r.to_uppercase()))
            .collect(),
    }
}
