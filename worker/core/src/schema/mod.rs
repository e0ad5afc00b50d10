//! The raw events' schema, learned and watched. Raw client events are unschematized JSON from
//! many client versions; a worker learns their shape from a sample ([`learner`]), publishes one
//! [`Observation`] per window, observations of the workers of a pipeline merge by adding
//! ([`observation`]), and the result is compared to an accepted baseline ([`drift`]) and can be
//! rendered as JSON Schema ([`json_schema`]).
//!
//! | concept | module |
//! |---|---|
//! | Field paths (`a.b`, `items[]`) and their segments | [`path`] |
//! | JSON types | [`types`] |
//! | One pass over a payload: paths, types, event type, client version | [`walk`] |
//! | Client versions, bounded to the newest | [`versions`] |
//! | The observation of a window, its budget and merge | [`observation`] |
//! | The learner (sampling, bounded state) | [`learner`] |
//! | Drift from a baseline and its thresholds | [`drift`] |
//! | JSON Schema rendering | [`json_schema`] |
//! | What a worker serves for a window (`GET /schema`) | [`report`] |

pub mod drift;
pub mod json_schema;
pub mod learner;
pub mod observation;
pub mod path;
pub mod report;
pub mod types;
pub mod versions;
pub mod walk;

pub use drift::{Drift, DriftKind, Thresholds, detect};
pub use learner::{Learner, LearnerConfig};
pub use observation::{Budget, EventTypeShape, FieldShape, Observation, Window};
pub use types::JsonType;
