//! The DARTS mixed edge and the fusions it runs through the tape: its weighted sum over the
//! candidates (and β·aux), and that sum with the candidates' final batch norms folded in.
//! They are tape ops like any other ([`Tape`]'s generic [`FusedNode`] extension point), but
//! only this layer knows them. Kernels: `shaders/mixed.wgsl`.
//!
//! [`FusedNode`]: crate::autodiff::FusedNode

mod edge;
mod normalized_sum;
mod weighted_sum;

pub use edge::{EdgeWeights, MixedOp, NodeSum, SharedPools};
pub use normalized_sum::SumTerm;

use crate::autodiff::{Tape, Tensor};
use crate::error::Result;

/// The mixed edge's sums as ops on a [`Tape`] (`use` this trait to call them).
pub trait MixedSums {
    /// `Σ_k w[idx[k]] · ys[k]`: the mixed-edge sum (w a softmax table, idx the flat positions
    /// of this edge's ops), with gradients to every y_k and to w.
    fn weighted_sum(&mut self, ys: &[&Tensor], w: &Tensor, idx: &[usize]) -> Result<Tensor>;

    /// `Σ_k table_k[idx_k] · y_k` over terms (y, table, idx) whose weights sit in at most two
    /// GPU tables (the mixed edge: softmax(α) for the candidates, β for the auxiliary skip).
    /// Gradients flow to every y_k and to the tables that require one. Four terms per launch
    /// (eight where the launch policy says so).
    fn weighted_sum_terms(&mut self, terms: &[(&Tensor, &Tensor, usize)]) -> Result<Tensor>;

    /// `Σ_t table_t[idx_t] · v_t` in term order, v_t = batch_norm(x_t) (train mode, no affine,
    /// running statistics updated) or x_t: a mixed edge's candidates, most ending in such a
    /// batch norm. Where launches are costly, the statistics, the normalisation and the sum
    /// take one launch (and backward one, plus one for the weights' gradient): for small
    /// channels one thread per channel, bit for bit what separate batch norms and a weighted
    /// sum give; for larger ones a workgroup per channel. Elsewhere it is exactly those.
    fn normalized_sum(&mut self, terms: &[SumTerm]) -> Result<Tensor>;

    /// `onto + normalized_sum(terms)`: where the sum runs fused, in its one launch (a cell
    /// node's sum over its edges, [`NodeSum`]; the last bit may differ from a separate add's,
    /// see `ACC` in `shaders/mixed.wgsl`); elsewhere the sum, then an add. onto gets the
    /// output's gradient as it is.
    fn normalized_sum_onto(&mut self, terms: &[SumTerm], onto: &Tensor) -> Result<Tensor>;

    /// The same sum with eval-mode batch norms (running statistics, no affine): v_t =
    /// (x_t − running_mean)/√(running_var + eps). In an inference pass, where the launch
    /// policy allows, one launch over every term; otherwise (or where a gradient is wanted)
    /// a batch norm per normalised term and a weighted sum.
    fn eval_normalized_sum(&mut self, terms: &[SumTerm]) -> Result<Tensor>;

    /// `onto + eval_normalized_sum(terms)`: in the sum's one launch where it has one, else the
    /// sum, then an add.
    fn eval_normalized_sum_onto(&mut self, terms: &[SumTerm], onto: &Tensor) -> Result<Tensor>;
}

impl MixedSums for Tape {
    fn weighted_sum(&mut self, ys: &[&Tensor], w: &Tensor, idx: &[usize]) -> Result<Tensor> {
        weighted_sum::weighted_sum(self, ys, w, idx)
    }

    fn weighted_sum_terms(&mut self, terms: &[(&Tensor, &Tensor, usize)]) -> Result<Tensor> {
        weighted_sum::weighted_sum_terms(self, terms)
    }

    fn normalized_sum(&mut self, terms: &[SumTerm]) -> Result<Tensor> {
        normalized_sum::normalized_sum(self, terms)
    }

    fn normalized_sum_onto(&mut self, terms: &[SumTerm], onto: &Tensor) -> Result<Tensor> {
        let done = normalized_sum::normalized_sum_onto(self, terms, Some(onto))?;
        add_unless_added(self, onto, done)
    }

    fn eval_normalized_sum(&mut self, terms: &[SumTerm]) -> Result<Tensor> {
        normalized_sum::eval_normalized_sum(self, terms)
    }

    fn eval_normalized_sum_onto(&mut self, terms: &[SumTerm], onto: &Tensor) -> Result<Tensor> {
        let done = normalized_sum::eval_normalized_sum_onto(self, terms, Some(onto))?;
        add_unless_added(self, onto, done)
    }
}

/// onto + y, where the launch that made y (`added`: false) did not add it already.
fn add_unless_added(tape: &mut Tape, onto: &Tensor, (y, added): (Tensor, bool)) -> Result<Tensor> {
    match added {
        true => Ok(y),
        false => tape.sum(&[onto, &y]),
    }
}
