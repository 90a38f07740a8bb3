//! Command implementations of the `darts-minus` binary.

pub mod args;
pub mod bench;
pub mod bench_chart;
pub mod check;
pub mod eval;
pub mod executors;
pub mod genotype;
pub mod progress;
pub mod report;
pub mod search;
pub mod sweep;
pub mod train;

use std::path::{Path, PathBuf};

/// A checkpoint file, or `checkpoint.safetensors` inside a run directory.
pub fn checkpoint_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("checkpoint.safetensors")
    } else {
        p.to_path_buf()
    }
}
