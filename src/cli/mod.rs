//! Command implementations of the `darts-minus` binary.

pub mod search;
pub mod train;
