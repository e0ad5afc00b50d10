//! `kubectl impressions`: a kubectl plugin for ImpressionPipelines, using the user's kubeconfig
//! like kubectl ([`connect`]).
//!
//! - [`status`]: every pipeline's replicas, rates, lag, quality and last decision.
//! - [`why`]: a pipeline's decisions, newest first, from its status, its Events ([`history`])
//!   and the operator's metrics ([`decision_counts`]).
//! - [`what_if`]: a proposed ScalingPolicy against the current one on the pipeline's recorded
//!   history, through the operator's simulator ([`compare`]).
//! - [`schema`]: accepting the learned raw-event schema as the baseline.
//! - [`prescale`]: declaring a planned surge on a pipeline.
//!
//! The command line is [`cli`]; [`format`] prints as kubectl does; [`error`] says what went wrong.

pub mod cli;
pub mod compare;
pub mod connect;
pub mod decision_counts;
pub mod error;
pub mod format;
pub mod history;
pub mod prescale;
pub mod schema;
pub mod status;
pub mod what_if;
pub mod why;
