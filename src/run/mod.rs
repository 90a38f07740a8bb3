//! The run loop shared by search and retraining: the epoch loop with its step limit, timing
//! and progress events ([`epoch`]), one recorded program per batch shape ([`replay`]), what a
//! step and an epoch report ([`metrics`]), and the state a run checkpoint holds ([`state`]).
//!
//! A run (a search, a retraining) implements [`Trainer`]: how an epoch starts, how one step
//! runs, how the epoch ends (validation, its metrics line). The loop owns everything else, so
//! both runs count steps, time them, cut epochs short and report progress the same way.

pub mod epoch;
pub mod metrics;
pub mod outdir;
pub mod replay;
pub mod state;

pub use epoch::{
    finished, run_epoch, EpochPlan, EpochSteps, Limits, Position, Progress, Timing, Trainer,
};
pub use metrics::{check_loss, nan_if_null, read_stats, Scores, StepStats};
pub use replay::{EvalRecorder, Recorder};

use crate::autodiff::{Labels, Tensor};
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{parameters, Module};
use crate::optim::Sgd;
use serde::{Deserialize, Serialize};

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

/// How both runs train the weights: SGD with momentum (optionally Nesterov), weight decay and
/// gradient-norm clipping, the learning rate cosine-annealed from `lr` to `lr_min` over the
/// run. Flattened into each run's settings, so their JSON keeps these keys at the top level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdRecipe {
    pub lr: f64,
    pub lr_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub grad_clip: f64,
}

/// Images of `h`×`w` pixels fit a network that halves them twice (two reduction cells, or
/// NAS-Bench-201's two residual blocks): both sides multiples of 4, so every halving is exact
/// and the parallel paths of a reduction meet at one size.
pub fn check_image_size(h: usize, w: usize, network: &str) -> Result<()> {
    if h >= 4 && w >= 4 && h.is_multiple_of(4) && w.is_multiple_of(4) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "images of {h}×{w} pixels do not fit the {network}: it halves them twice, so height \
         and width must be multiples of 4 (at least 4; CIFAR's 32×32 fits). Resize the images"
    )))
}

/// `v`, given as `flag`, must be a finite number with `ok(v)`; `want` says which (NaN and
/// infinities are refused everywhere: they never make a meaningful setting).
pub fn check_number(flag: &str, v: f64, ok: bool, want: &str) -> Result<()> {
    if v.is_finite() && ok {
        return Ok(());
    }
    Err(Error::Invalid(format!("{flag} must be {want}, got {v}")))
}

impl SgdRecipe {
    pub fn validate(&self) -> Result<()> {
        let positive = "a positive number";
        check_number("--lr", self.lr, self.lr > 0.0, positive)?;
        check_number(
            "--grad-clip",
            self.grad_clip,
            self.grad_clip > 0.0,
            positive,
        )?;
        check_number("--lr-min", self.lr_min, self.lr_min >= 0.0, "≥ 0")?;
        let m = self.momentum;
        check_number("--momentum", m, (0.0..1.0).contains(&m), "in [0, 1)")?;
        let wd = self.weight_decay;
        check_number("--weight-decay", wd, wd >= 0.0, "≥ 0")
    }

    /// The learning rate of epoch `e` of `epochs`, cosine-annealed (SPEC §4):
    /// lr_e = lr_min + (lr − lr_min)(1 + cos(π e / epochs))/2.
    pub fn lr_at(&self, e: usize, epochs: usize) -> f64 {
        let cos = (std::f64::consts::PI * e as f64 / epochs as f64).cos();
        self.lr_min + (self.lr - self.lr_min) * (1.0 + cos) / 2.0
    }

    /// The named weights of `net` and the SGD (momentum buffers in that order) that updates
    /// them.
    pub fn weights_and_sgd(&self, gpu: &Gpu, net: &dyn Module) -> Result<NamedWeightsSgd> {
        let weights = parameters(net, "");
        let ws: Vec<Tensor> = weights.iter().map(|(_, t)| t.clone()).collect();
        let (lr, momentum, decay) = (self.lr as f32, self.momentum as f32, self.weight_decay);
        let mut sgd = Sgd::new(gpu, &ws, lr, momentum, decay as f32)?;
        sgd.nesterov = self.nesterov;
        Ok((weights, sgd))
    }
}

/// A network's weights with their checkpoint names, and the SGD that updates them.
pub type NamedWeightsSgd = (Vec<(String, Tensor)>, Sgd);

#[cfg(test)]
mod tests {
    use super::check_image_size;

    #[test]
    fn image_sides_must_halve_twice_exactly() {
        for ok in [(4, 4), (32, 32), (8, 12), (64, 32)] {
            check_image_size(ok.0, ok.1, "search network").unwrap();
        }
        for bad in [(1, 1), (7, 7), (6, 8), (30, 32), (0, 4)] {
            let e = check_image_size(bad.0, bad.1, "search network")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("multiples of 4") && e.contains("search network"),
                "{e}"
            );
        }
    }
}
