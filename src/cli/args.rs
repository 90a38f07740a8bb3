//! Argument groups that several commands share, flattened into each (`#[command(flatten)]`)
//! so that a flag means the same everywhere. Their order and help text are those each
//! command had: a group's flags sit where the command lists them.

use clap::{Args, ValueEnum};
use darts_minus::nn::darts_ops::DartsSpace;
use darts_minus::run::SgdRecipe;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum SpaceArg {
    /// The DARTS space: every edge all eight candidates.
    Darts,
    /// NAS-Bench-201's cell and network.
    Nb201,
    /// RobustDARTS S1: the DARTS cell, a different pair of candidates on every edge.
    S1,
    /// RobustDARTS S2: {skip_connect, sep_conv_3x3} on every edge.
    S2,
    /// RobustDARTS S3: {none, skip_connect, sep_conv_3x3} on every edge.
    S3,
    /// RobustDARTS S4: {noise, sep_conv_3x3} on every edge.
    S4,
}

impl SpaceArg {
    /// The candidate lists of a DARTS-cell space (None: NAS-Bench-201).
    pub fn darts_cell(self) -> Option<DartsSpace> {
        match self {
            SpaceArg::Nb201 => None,
            SpaceArg::Darts => Some(DartsSpace::Darts),
            SpaceArg::S1 => Some(DartsSpace::S1),
            SpaceArg::S2 => Some(DartsSpace::S2),
            SpaceArg::S3 => Some(DartsSpace::S3),
            SpaceArg::S4 => Some(DartsSpace::S4),
        }
    }
}

/// `--space` (search, bench, genotype).
#[derive(Args, Debug)]
pub struct SpaceArgs {
    /// Search space [default: darts].
    #[arg(long, value_enum)]
    pub space: Option<SpaceArg>,
}

impl SpaceArgs {
    pub fn space(&self) -> SpaceArg {
        self.space.unwrap_or(SpaceArg::Darts)
    }
}

/// Where a run reads its training data, writes its output and resumes from (search, train).
#[derive(Args, Debug)]
pub struct RunFiles {
    /// Training data: a CIFAR-10/100 binary file or folder, or an image folder
    /// (<class>/*.png|jpg). Default: the built-in 1,000-image CIFAR-10 mini set.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory (default: a new one under runs/, named after the command and the time).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue a run from its checkpoint (or its output directory).
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

/// Which preset a run starts from, how long it is, its batches, its randomness, its width
/// and its weights' SGD (search, train); unset: the preset's.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Use the paper's settings even on the built-in mini set.
    #[arg(long)]
    pub paper: bool,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of the initial weights, the batch order and the augmentation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// No random crop / flip (normalisation only).
    #[arg(long)]
    pub no_augment: bool,
    /// Stop after this many steps in total.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Replace the run in a non-empty --out (by default a new run refuses one).
    #[arg(long)]
    pub overwrite: bool,
    /// Initial channels C of the network.
    #[arg(long)]
    pub channels: Option<usize>,
    #[command(flatten)]
    pub sgd: SgdArgs,
}

impl RunArgs {
    /// (flag, given) of the flags a resumed run cannot take.
    pub fn settings_given(&self) -> Vec<(&'static str, bool)> {
        let mut given = vec![
            ("--paper", self.paper),
            ("--epochs", self.epochs.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--seed", self.seed.is_some()),
            ("--no-augment", self.no_augment),
            ("--max-steps", self.max_steps.is_some()),
            ("--channels", self.channels.is_some()),
        ];
        given.extend(self.sgd.given());
        given
    }
}

/// The weights' SGD (search, train); unset: the preset's.
#[derive(Args, Debug)]
pub struct SgdArgs {
    /// Initial learning rate of the weights (cosine-annealed over the run).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub momentum: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Clip the weights' gradient norm to this.
    #[arg(long)]
    pub grad_clip: Option<f64>,
}

impl SgdArgs {
    /// (flag, given) of its flags, for refusing them on `--resume`.
    pub fn given(&self) -> [(&'static str, bool); 4] {
        [
            ("--lr", self.lr.is_some()),
            ("--momentum", self.momentum.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--grad-clip", self.grad_clip.is_some()),
        ]
    }

    /// The preset `r` with the flags given.
    pub fn apply(&self, r: &mut SgdRecipe) {
        r.lr = self.lr.unwrap_or(r.lr);
        r.momentum = self.momentum.unwrap_or(r.momentum);
        r.weight_decay = self.weight_decay.unwrap_or(r.weight_decay);
        r.grad_clip = self.grad_clip.unwrap_or(r.grad_clip);
    }
}
