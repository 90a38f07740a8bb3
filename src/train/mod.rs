//! Retraining a searched architecture from scratch (SPEC §8): the discrete evaluation
//! networks built from a genotype, the run's settings, its epoch and the run itself.

pub mod darts_eval;
pub mod epoch;
pub mod nb201_eval;
pub mod settings;
pub mod trainer;

use crate::autodiff::{Tape, Tensor};
use crate::error::Result;
use crate::nn::darts_ops::NoiseSource;
use crate::nn::Module;
use crate::search::genotype::Genotype;
use crate::search::nb201::Nb201Arch;
use darts_eval::EvalCtx;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The architecture a network is trained for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Darts(Genotype),
    Nb201(Nb201Arch),
}

impl Arch {
    /// The upstream Python `Genotype(...)` string, or the NAS-Bench-201 arch string.
    pub fn text(&self) -> String {
        match self {
            Arch::Darts(g) => g.to_python(),
            Arch::Nb201(a) => a.arch_string(),
        }
    }
}

/// A network's logits and, while training with an auxiliary head, the head's logits.
pub type Logits = (Tensor, Option<Tensor>);

/// A discrete network trained from scratch.
pub trait EvalNet: Module {
    /// Logits, and the auxiliary head's logits when the network has one and is training.
    fn forward(&self, tape: &mut Tape, x: &Tensor, ec: EvalCtx) -> Result<Logits>;
    /// Weights without the auxiliary head (the paper's parameter count).
    fn count_without_aux(&self) -> usize;
    /// Where the network's `noise` operations draw from (a cell with RobustDARTS S4's noise).
    fn noise(&self) -> Option<&NoiseSource> {
        None
    }
}

/// Drop path's per-sample scales for a batch of `n`: each sample is kept with probability
/// 1 − p and then divided by 1 − p (so the expectation is unchanged), else zeroed.
pub fn drop_path_scales(n: usize, p: f64, rng: &mut impl Rng) -> Vec<f32> {
    if p <= 0.0 {
        return vec![1.0; n];
    }
    let keep = 1.0 - p;
    (0..n)
        .map(|_| {
            if rng.random::<f64>() < keep {
                (1.0 / keep) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Drop-path probability of epoch `e` of `epochs`: p0 · e / epochs (SPEC §8).
pub fn drop_path_prob(p0: f64, epoch: usize, epochs: usize) -> f64 {
    p0 * epoch as f64 / epochs.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Augment, CIFAR10_MEAN, CIFAR10_STD};
    use rand::SeedableRng;

    #[test]
    fn drop_path_keeps_the_expectation() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let s = drop_path_scales(200_000, 0.2, &mut rng);
        let zeros = s.iter().filter(|&&v| v == 0.0).count() as f64 / s.len() as f64;
        let mean = s.iter().map(|&v| v as f64).sum::<f64>() / s.len() as f64;
        assert!((zeros - 0.2).abs() < 0.005, "dropped fraction {zeros}");
        assert!((mean - 1.0).abs() < 0.01, "mean scale {mean}");
        assert!(s.iter().all(|&v| v == 0.0 || (v - 1.25).abs() < 1e-6));
        assert_eq!(drop_path_scales(5, 0.0, &mut rng), vec![1.0; 5]);
        assert!((drop_path_prob(0.2, 300, 600) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn cutout_zeroes_the_expected_area() {
        // Exact expectation: the centre is uniform over the 32×32 pixels, the 16×16 square
        // (y ± 8) is clipped at the border.
        let side = |c: i64| ((c + 8).min(32) - (c - 8).max(0)) as f64;
        let expected: f64 = (0..32)
            .flat_map(|y| (0..32).map(move |x| side(y) * side(x)))
            .sum::<f64>()
            / (1024.0 * 1024.0);
        let aug = Augment::none(CIFAR10_MEAN, CIFAR10_STD).with_cutout(16);
        let img = vec![200u8; 3 * 32 * 32];
        let mut out = vec![0f32; 3 * 32 * 32];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let trials = 4000;
        let mut zeroed = 0usize;
        for _ in 0..trials {
            aug.apply(&img, 32, 32, &mut out, &mut rng);
            zeroed += out[..1024].iter().filter(|&&v| v == 0.0).count();
            // Every channel is cut at the same place.
            assert_eq!(
                out[..1024].iter().map(|&v| v == 0.0).collect::<Vec<_>>(),
                out[2048..].iter().map(|&v| v == 0.0).collect::<Vec<_>>()
            );
        }
        let frac = zeroed as f64 / (trials as f64 * 1024.0);
        assert!(
            (frac - expected).abs() < 0.01,
            "zeroed fraction {frac}, expected {expected}"
        );
    }
}
