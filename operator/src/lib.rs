//! The impressions operator: reconciles ImpressionPipelines of its region into worker fleets
//! (Deployment, ConfigMap, Service, PodDisruptionBudget) and keeps their status.
//!
//! Decisions are pure ([`build`], [`bounds`], [`status`], [`resolve::pick_policy`],
//! [`quality::assess`]); IO lives in [`reconcile`] (the apply layer), [`resolve::resolve`],
//! [`leader`] and the adapters of the evaluation loops ([`autoscale`], [`quality::source`]).

pub mod autoscale;
pub mod bounds;
pub mod build;
pub mod controller;
pub mod error;
pub mod http;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod quality;
pub mod reconcile;
pub mod resolve;
pub mod shutdown;
pub mod simulate;
pub mod status;
pub mod top;
