//! The DARTS- mixed edge (SPEC §4): Σ_k softmax(α_e)_k · op_k(x) + β · aux(x), its
//! candidates' final batch norms fused into the sum.

use super::normalized_sum::{eval_normalized_sum, normalized_sum, SumTerm};
use crate::autodiff::{ChannelStats, PoolCfg, Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::darts_ops::{Candidate, FactorizedReduce, NoiseSource, Pooled, Role};
use crate::nn::{join, BatchNorm2d, Ctx, Module, Slot};
use rand::Rng;
use std::rc::Rc;

/// A DARTS- mixed edge: Σ_k softmax(α_e)_k · op_k(x) + β · aux(x).
pub struct MixedOp {
    pub ops: Vec<Candidate>,
    /// The auxiliary skip: identity at stride 1 (None here), its own FactorizedReduce at
    /// stride 2. `None` with `has_aux == false` is plain DARTS.
    pub aux: Option<FactorizedReduce>,
    pub has_aux: bool,
    /// State-name segment of the candidate list: `_ops` (DARTS) or none (NAS-Bench-201,
    /// whose edges are plain module lists).
    pub list_name: &'static str,
}

impl MixedOp {
    /// All candidates of `names` on `c` channels (`noise` draws from `noise`); `aux` adds
    /// the DARTS- auxiliary skip.
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        names: &[&str],
        c: usize,
        stride: usize,
        aux: bool,
        noise: Option<&Rc<NoiseSource>>,
    ) -> Result<MixedOp> {
        // Built before the candidates, in the reference's construction order.
        let aux_op = if aux && stride == 2 {
            Some(FactorizedReduce::new(gpu, rng, c, c, false)?)
        } else {
            None
        };
        let ops = names
            .iter()
            .map(|n| Candidate::darts(gpu, rng, n, (c, stride), Role::Search, noise))
            .collect::<Result<_>>()?;
        Ok(MixedOp {
            ops,
            aux: aux_op,
            has_aux: aux,
            list_name: "_ops",
        })
    }

    /// A NAS-Bench-201 edge (stride 1) over `names`; `aux` adds β·x.
    pub fn nb201(
        gpu: &Gpu,
        rng: &mut impl Rng,
        names: &[&str],
        c: usize,
        aux: bool,
    ) -> Result<MixedOp> {
        let ops = names
            .iter()
            .map(|n| Candidate::nb201(gpu, rng, n, c))
            .collect::<Result<_>>()?;
        Ok(MixedOp {
            ops,
            aux: None,
            has_aux: aux,
            list_name: "",
        })
    }

    /// `weights`: the (edges, ops) softmax table shared by the cell type; `edge`: this edge's
    /// row; `beta`: the scalar table holding β and its index.
    pub fn forward(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        weights: &Tensor,
        edge: usize,
        beta: Option<(&Tensor, usize)>,
        ctx: Ctx,
    ) -> Result<Tensor> {
        let k = self.ops.len();
        let mut ys = Vec::with_capacity(k);
        let mut idx = Vec::with_capacity(k);
        // A max and an avg candidate of one stride pool x in one pass.
        let stride_of = |want_max: bool| {
            self.ops.iter().find_map(|op| match op.op().pooling() {
                Some((max, stride)) if max == want_max => Some(stride),
                _ => None,
            })
        };
        let pooled = match (stride_of(true), stride_of(false)) {
            (Some(a), Some(b)) if a == b => {
                let cfg = PoolCfg::new(3, a, 1);
                let (max, avg, stats) = if ctx.train {
                    tape.max_avg_pool2d_with_stats(x, cfg)?
                } else {
                    let (max, avg) = tape.max_avg_pool2d(x, cfg)?;
                    (max, avg, None)
                };
                Some(Pooled { max, avg, stats })
            }
            _ => None,
        };
        // Each candidate up to its final batch norm, which the weighted sum below applies.
        let mut bns: Vec<Option<&BatchNorm2d>> = Vec::with_capacity(k);
        let mut stats: Vec<Option<ChannelStats>> = Vec::with_capacity(k);
        for (i, op) in self.ops.iter().enumerate() {
            // w·0 adds nothing and its weight gets a zero gradient either way: skip the work.
            if op.is_zero() {
                continue;
            }
            let split = op.op().forward_split(tape, x, ctx, pooled.as_ref())?;
            ys.push(split.y);
            bns.push(split.bn);
            stats.push(split.stats);
            idx.push(edge * k + i);
        }
        let aux = if self.has_aux {
            let (table, i) = beta.ok_or_else(|| Error::Invalid("a DARTS- edge needs β".into()))?;
            let a = match &self.aux {
                Some(fr) => fr.forward(tape, x, ctx)?,
                None => x.clone(),
            };
            Some((a, table, i))
        } else {
            None
        };
        if ys.is_empty() {
            // Every candidate is `none`: the edge is zero (plus β·aux).
            let zero = self.ops[0].forward(tape, x, ctx)?;
            return match aux {
                Some((a, table, i)) => {
                    let scaled = tape.scale_by(&a, table, i)?;
                    tape.sum(&[&zero, &scaled])
                }
                None => Ok(zero),
            };
        }
        // The candidates' final batch norms and one weighted sum over them and β·aux: fewer
        // launches, no temporaries.
        let mut terms: Vec<SumTerm> = ys
            .iter()
            .zip(&idx)
            .zip(bns.iter().zip(&stats))
            .map(|((y, &i), (bn, st))| {
                if let (Some(bn), true) = (bn, ctx.train) {
                    bn.count_batch();
                }
                SumTerm {
                    x: y,
                    bn: bn.map(|b| b.state()),
                    stats: st.as_ref(),
                    table: weights,
                    idx: i,
                }
            })
            .collect();
        if let Some((a, table, i)) = &aux {
            terms.push(SumTerm {
                x: a,
                bn: None,
                stats: None,
                table,
                idx: *i,
            });
        }
        match ctx.train {
            true => normalized_sum(tape, &terms),
            false => eval_normalized_sum(tape, &terms),
        }
    }
}

impl Module for MixedOp {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        for (k, op) in self.ops.iter().enumerate() {
            op.visit(&join(&join(prefix, self.list_name), &k.to_string()), f);
        }
        if let Some(a) = &self.aux {
            a.visit(&join(prefix, "auxiliary_op"), f);
        }
    }
}
