//! Tools of the `operator` binary besides `run`: the scaling simulator and the live view.

pub mod simulate;
pub mod top;
