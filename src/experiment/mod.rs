//! Many runs: a sweep over spaces × methods × settings × seeds (its grid, its directory, the
//! local and Slurm executors) and the report that aggregates finished runs into tables and
//! figures. Above [`crate::search`] and [`crate::report`]: it reads search checkpoints and
//! draws with the report's charts; nothing below depends on it.

pub mod files;
pub mod grid;
pub mod local;
pub mod manifest;
pub mod slurm;
pub mod summary;
pub mod tables;
pub mod task;

pub use grid::{Grid, Method, RunSpec, SetList};
pub use manifest::{Manifest, RunPaths, RunState};
