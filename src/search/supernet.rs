//! What the search loop needs from a search space's network.

use crate::autodiff::{Tape, Tensor};
use crate::error::Result;
use crate::nn::darts_ops::NoiseSource;
use crate::nn::{Ctx, Module};

/// β of the auxiliary skip: the GPU scalar table holding it and its index (None for plain
/// DARTS).
pub type Beta<'a> = Option<(&'a Tensor, usize)>;

pub trait Supernet: Module {
    /// Logits for a batch `x` (n, 3, h, w), the auxiliary skip weighted by `beta`.
    fn forward(&self, tape: &mut Tape, x: &Tensor, beta: Beta, ctx: Ctx) -> Result<Tensor>;

    /// Architecture parameters with their checkpoint names (not part of the weights w).
    fn alphas(&self) -> Vec<(&'static str, &Tensor)>;

    /// Each α table's candidate names per edge (row), in α column order.
    fn edge_ops(&self) -> Result<Vec<EdgeOps>>;

    /// The source the `noise` candidates draw from, in spaces that have them.
    fn noise(&self) -> Option<&NoiseSource> {
        None
    }
}

/// An α table's name and the candidates of each of its rows.
pub type EdgeOps = (&'static str, Vec<&'static [&'static str]>);
