//! What the search loop needs from a search space's network.

use crate::autodiff::{Tape, Tensor};
use crate::error::Result;
use crate::nn::{Ctx, Module};

/// β of the auxiliary skip: the GPU scalar table holding it and its index (None for plain
/// DARTS).
pub type Beta<'a> = Option<(&'a Tensor, usize)>;

pub trait Supernet: Module {
    /// Logits for a batch `x` (n, 3, h, w), the auxiliary skip weighted by `beta`.
    fn forward(&self, tape: &mut Tape, x: &Tensor, beta: Beta, ctx: Ctx) -> Result<Tensor>;

    /// Architecture parameters with their checkpoint names (not part of the weights w).
    fn alphas(&self) -> Vec<(&'static str, &Tensor)>;

    /// Names of the candidate operations, in α column order.
    fn op_names(&self) -> &'static [&'static str];
}
