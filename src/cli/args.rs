//! Argument groups that several commands share, flattened into each (`#[command(flatten)]`)
//! so that a flag means the same everywhere. Their order and help text are those each
//! command had: a group's flags sit where the command lists them.

use clap::{Args, ValueEnum};

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

/// How long a run is and how large its batches (search, train); unset: the preset's.
#[derive(Args, Debug)]
pub struct LengthArgs {
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
}

/// SGD's momentum and weight decay (search, train); unset: the preset's.
#[derive(Args, Debug)]
pub struct MomentumArgs {
    #[arg(long)]
    pub momentum: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
}
