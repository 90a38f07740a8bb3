//! The run loop shared by search and retraining: the epoch loop with its step limit, timing
//! and progress events ([`epoch`]), one recorded program per batch shape ([`replay`]), what a
//! step and an epoch report ([`metrics`]), and the state a run checkpoint holds ([`state`]).
//!
//! A run (a search, a retraining) implements [`Trainer`]: how an epoch starts, how one step
//! runs, how the epoch ends (validation, its metrics line). The loop owns everything else, so
//! both runs count steps, time them, cut epochs short and report progress the same way.

pub mod epoch;
pub mod metrics;
pub mod replay;
pub mod state;

pub use epoch::{finished, run_epoch, EpochPlan, EpochSteps, Limits, Position, Progress, Trainer};
pub use metrics::{read_stats, StepStats};
pub use replay::Recorder;

use crate::autodiff::{Labels, Tensor};
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{parameters, Module};
use crate::optim::Sgd;

/// A batch of 3-channel images of `(h, w)` pixels and its labels, on the GPU.
pub fn upload_batch(gpu: &Gpu, b: &Batch, (h, w): (usize, usize)) -> Result<(Tensor, Labels)> {
    let n = b.y.len();
    if b.x.len() != n * 3 * h * w {
        return Err(Error::shape(
            "batch",
            format!("{} values for {n} images of 3×{h}×{w}", b.x.len()),
        ));
    }
    Ok((
        Tensor::from_slice(gpu, &[n, 3, h, w], &b.x)?,
        Labels::new(gpu, &b.y)?,
    ))
}

/// The named weights of `net` and the SGD (momentum buffers in that order) that updates them,
/// as both runs set them up.
pub fn weights_and_sgd(
    gpu: &Gpu,
    net: &dyn Module,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
) -> Result<(Vec<(String, Tensor)>, Sgd)> {
    let weights = parameters(net, "");
    let ws: Vec<Tensor> = weights.iter().map(|(_, t)| t.clone()).collect();
    let mut sgd = Sgd::new(gpu, &ws, lr as f32, momentum as f32, weight_decay as f32)?;
    sgd.nesterov = nesterov;
    Ok((weights, sgd))
}
