//! Predictive pre-scaling's forecast: the pipeline's arrival rate one lead time ahead, learnt
//! from its own history with augurs' MSTL (a daily season, and a weekly one once two weeks are
//! known) and an AutoETS trend. No statistics of our own: the series is bucketed, handed to the
//! crate, and its forecast is scored against what arrived.
//!
//! - [`settings`]: the policy's `predictive` section as the forecast reads it (bucket, seasons,
//!   refit period, lead);
//! - [`series`] (pure): the arrival history in buckets, bounded;
//! - [`fit`] (pure): augurs' MSTL over a series → the next buckets;
//! - [`tracker`] (pure, the clock an input): one pipeline's history, the fitted forecast, its
//!   recent error and when to refit; what the decision reads ([`tracker::View`]);
//! - [`source`] (IO): the history from Prometheus, a range query with a deadline.
//!
//! What the decision does with a forecast is in [`super::ahead`].

pub mod fit;
pub mod series;
pub mod settings;
pub mod source;
pub mod tracker;

pub use settings::Settings;
pub use tracker::{Forecaster, State, View};
