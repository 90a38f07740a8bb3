//! Argument groups that several commands share, flattened into each (`#[command(flatten)]`)
//! so that a flag means the same everywhere. Their order and help text are those each
//! command had: a group's flags sit where the command lists them.

use clap::{Args, ValueEnum};
use darts_minus::run::SgdRecipe;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum SpaceArg {
    Darts,
    Nb201,
}

/// `--space` (search, bench).
#[derive(Args, Debug)]
pub struct SpaceArgs {
    /// Search space.
    #[arg(long, value_enum, default_value = "darts")]
    pub space: SpaceArg,
}

/// Which preset a run starts from, how long it is, its batches and its randomness (search,
/// train); unset: the preset's.
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
    /// The preset `r` with the flags given.
    pub fn apply(&self, r: &mut SgdRecipe) {
        r.lr = self.lr.unwrap_or(r.lr);
        r.momentum = self.momentum.unwrap_or(r.momentum);
        r.weight_decay = self.weight_decay.unwrap_or(r.weight_decay);
        r.grad_clip = self.grad_clip.unwrap_or(r.grad_clip);
    }
}
