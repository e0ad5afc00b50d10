//! Column-level data quality: which columns are tracked and the per-batch tally of nulls,
//! invalid values, mismatches and corrections that is folded into the metrics.

use serde::Deserialize;

/// A column of the impression record whose nulls and invalid values are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Column {
    ProfileId,
    VideoId,
    EntityId,
    ImageId,
    PageId,
    RowId,
    RowIndex,
    DeviceType,
    Country,
}

impl Column {
    pub const ALL: [Column; 9] = [
        Column::ProfileId,
        Column::VideoId,
        Column::EntityId,
        Column::ImageId,
        Column::PageId,
        Column::RowId,
        Column::RowIndex,
        Column::DeviceType,
        Column::Country,
    ];

    /// The column's name in the record and in metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Column::ProfileId => "profileId",
            Column::VideoId => "videoId",
            Column::EntityId => "entityId",
            Column::ImageId => "imageId",
            Column::PageId => "pageId",
            Column::RowId => "rowId",
            Column::RowIndex => "rowIndex",
            Column::DeviceType => "deviceType",
            Column::Country => "country",
        }
    }
}

/// A pair of columns that must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pair {
    /// entityId (`title:<id>`) and videoId.
    EntityVideo,
    /// The title encoded in imageId (`img-<videoId>-<n>`) and videoId.
    ImageVideo,
    /// showId sent by the client and the show of the title in the catalog.
    ShowCatalog,
}

impl Pair {
    pub const ALL: [Pair; 3] = [Pair::EntityVideo, Pair::ImageVideo, Pair::ShowCatalog];

    /// The pair's name in metric labels and in the record's `mismatches`.
    pub fn name(self) -> &'static str {
        match self {
            Pair::EntityVideo => "entityId/videoId",
            Pair::ImageVideo => "imageId/videoId",
            Pair::ShowCatalog => "showId/catalog",
        }
    }
}

/// A correction made in place: which column was rewritten from which source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Correction {
    VideoFromEntity,
    VideoFromImage,
    EntityFromVideo,
    ShowFromCatalog,
}

impl Correction {
    pub const ALL: [Correction; 4] = [
        Correction::VideoFromEntity,
        Correction::VideoFromImage,
        Correction::EntityFromVideo,
        Correction::ShowFromCatalog,
    ];

    /// `column<-source`, as written into the record's `corrections`.
    pub fn name(self) -> &'static str {
        match self {
            Correction::VideoFromEntity => "videoId<-entityId",
            Correction::VideoFromImage => "videoId<-imageId",
            Correction::EntityFromVideo => "entityId<-videoId",
            Correction::ShowFromCatalog => "showId<-catalog",
        }
    }
}

/// Counts gathered while processing one batch; added to the metrics once per batch so that the
/// hot path touches no shared state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub nulls: [u64; Column::ALL.len()],
    pub invalid: [u64; Column::ALL.len()],
    /// [pair][corrected as usize]
    pub mismatches: [[u64; 2]; Pair::ALL.len()],
    pub corrections: [u64; Correction::ALL.len()],
}

impl Tally {
    pub fn null(&mut self, c: Column) {
        self.nulls[c as usize] += 1;
    }
    pub fn invalid(&mut self, c: Column) {
        self.invalid[c as usize] += 1;
    }
    pub fn mismatch(&mut self, p: Pair, corrected: bool) {
        self.mismatches[p as usize][corrected as usize] += 1;
    }
    pub fn correction(&mut self, c: Correction) {
        self.corrections[c as usize] += 1;
    }
    /// Adds another tally (e.g. from another processing thread).
    pub fn merge(&mut self, o: &Tally) {
        for i in 0..self.nulls.len() {
            self.nulls[i] += o.nulls[i];
            self.invalid[i] += o.invalid[i];
        }
        for i in 0..self.mismatches.len() {
            self.mismatches[i][0] += o.mismatches[i][0];
            self.mismatches[i][1] += o.mismatches[i][1];
        }
        for i in 0..self.corrections.len() {
            self.corrections[i] += o.corrections[i];
        }
    }
}
