//! What a search is configured by: the search space, the step order and every
//! hyperparameter (SPEC §5, §7), with the paper's and the benchmark's presets.

use super::darts_net::DartsConfig;
use super::nb201_net::Nb201Config;
use super::schedule::BetaSchedule;
use crate::error::{Error, Result};
use crate::run::{check_number, Limits, SgdRecipe};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The search space and its network shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    Darts(DartsConfig),
    Nb201(Nb201Config),
}

impl Space {
    /// The `--space` value: `darts`, `s1`…`s4` (RobustDARTS) or `nb201`.
    pub fn name(&self) -> &'static str {
        match self {
            Space::Darts(c) => c.candidates.name(),
            Space::Nb201(_) => "nb201",
        }
    }

    /// How messages name the space.
    pub fn label(&self) -> &'static str {
        match self {
            Space::Darts(c) => c.candidates.label(),
            Space::Nb201(_) => "NAS-Bench-201",
        }
    }

    pub fn classes(&self) -> usize {
        match self {
            Space::Darts(c) => c.classes,
            Space::Nb201(c) => c.classes,
        }
    }

    pub fn set_classes(&mut self, n: usize) {
        match self {
            Space::Darts(c) => c.classes = n,
            Space::Nb201(c) => c.classes = n,
        }
    }

    pub fn aux(&self) -> bool {
        match self {
            Space::Darts(c) => c.aux,
            Space::Nb201(c) => c.aux,
        }
    }
}

/// Which of the two updates of a step runs first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOrder {
    /// α step on a validation batch, then w step (the DARTS- paper's code).
    ArchFirst,
    /// w step, then α step (the NAS-Bench-201 DARTS baseline).
    WeightsFirst,
}

/// Which validation images the α steps of an epoch see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValPairing {
    /// The validation half in batches, reshuffled on each pass (the DARTS- code's queue).
    #[default]
    Queue,
    /// Every training image paired with a validation image drawn uniformly with replacement
    /// (NAS-Bench-201's `SearchDataset`, which the benchmark's DARTS baseline steps on).
    Random,
}

/// Every hyperparameter of a search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSettings {
    pub space: Space,
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(flatten)]
    pub sgd: SgdRecipe,
    pub arch_lr: f64,
    pub arch_betas: (f64, f64),
    pub arch_eps: f64,
    pub arch_weight_decay: f64,
    pub beta: BetaSchedule,
    pub order: StepOrder,
    /// The w step's clipping norm also counts α's gradient as PyTorch leaves it in `α.grad`:
    /// the w step's own plus the latest α step's (NAS-Bench-201's DARTS clips
    /// `network.parameters()`, α included, and only the α optimiser clears α's gradient). α
    /// itself is never clipped or moved by the w step.
    #[serde(default)]
    pub clip_alpha: bool,
    pub seed: u64,
    pub augment: bool,
    pub shuffle: bool,
    /// Absent from searches started before it existed, which all used the queue.
    #[serde(default)]
    pub val_pairing: ValPairing,
    /// Stop after this many steps in total (for step-by-step comparisons).
    pub max_steps: Option<usize>,
    /// Normalisation of the input images.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The training data the run was started on (None: the built-in mini set); a resumed run
    /// reads it again unless told otherwise.
    #[serde(default)]
    pub data: Option<PathBuf>,
}

impl SearchSettings {
    /// The DARTS- paper's search settings (SPEC §5).
    pub fn darts_paper() -> Self {
        SearchSettings {
            space: Space::Darts(DartsConfig::default()),
            epochs: 50,
            batch_size: 64,
            sgd: SgdRecipe {
                lr: 0.025,
                lr_min: 0.001,
                momentum: 0.9,
                weight_decay: 3e-4,
                nesterov: false,
                grad_clip: 5.0,
            },
            arch_lr: 3e-4,
            arch_betas: (0.5, 0.999),
            arch_eps: 1e-8,
            arch_weight_decay: 1e-3,
            beta: BetaSchedule::linear(50),
            order: StepOrder::ArchFirst,
            clip_alpha: false,
            seed: 2,
            augment: true,
            shuffle: true,
            val_pairing: ValPairing::Queue,
            max_steps: None,
            mean: crate::data::CIFAR10_MEAN,
            std: crate::data::CIFAR10_STD,
            data: None,
        }
    }

    /// The NAS-Bench-201 DARTS baseline's settings (SPEC §7), with the DARTS- aux path.
    pub fn nb201_benchmark() -> Self {
        let darts = Self::darts_paper();
        SearchSettings {
            space: Space::Nb201(Nb201Config::default()),
            sgd: SgdRecipe {
                weight_decay: 5e-4,
                nesterov: true,
                ..darts.sgd
            },
            order: StepOrder::WeightsFirst,
            clip_alpha: true,
            val_pairing: ValPairing::Random,
            ..darts
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        self.limits().validate()?;
        self.sgd.validate()?;
        let (lr, wd, b0) = (self.arch_lr, self.arch_weight_decay, self.beta.beta0);
        check_number("--arch-lr", lr, lr > 0.0, "a positive number")?;
        check_number("--arch-weight-decay", wd, wd >= 0.0, "≥ 0")?;
        check_number(
            "--beta0",
            b0,
            b0 >= 0.0,
            "≥ 0 (the auxiliary skip's weight)",
        )?;
        if self.beta.t_max <= self.beta.t_start {
            return bad(format!(
                "β schedule needs T_max > T_start (T_max = {}, T_start = {})",
                self.beta.t_max, self.beta.t_start
            ));
        }
        if let Space::Darts(c) = &self.space {
            // S1's lists exist for 14 edges only.
            c.edge_ops(false)?;
        }
        if self.std.iter().any(|&s| s <= 0.0) {
            return bad("normalisation std must be positive".into());
        }
        Ok(())
    }

    /// The bounds the run loop keeps to.
    pub fn limits(&self) -> Limits {
        Limits {
            epochs: self.epochs,
            batch_size: self.batch_size,
            max_steps: self.max_steps,
        }
    }
}
