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

use darts_minus::gpu::{AdapterChoice, Gpu};
use std::path::{Path, PathBuf};

/// The device for a long run (`search`, `train`), with one line on stderr where the adapter
/// is an older Mesa's software driver (see `AdapterSummary::driver_advice`).
pub fn open_gpu(choice: &AdapterChoice) -> darts_minus::Result<Gpu> {
    let gpu = Gpu::new(choice)?;
    if let Some(advice) = gpu.adapter().driver_advice() {
        eprintln!("{advice}");
    }
    Ok(gpu)
}

/// A checkpoint file, or `checkpoint.safetensors` inside a run directory.
pub fn checkpoint_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("checkpoint.safetensors")
    } else {
        p.to_path_buf()
    }
}
