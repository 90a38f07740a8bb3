//! The DARTS- mixed edge (SPEC §4): Σ_k softmax(α_e)_k · op_k(x) + β · aux(x), its
//! candidates' final batch norms fused into the sum.

use super::normalized_sum::{eval_normalized_sum_onto, normalized_sum_onto, SumTerm};
use crate::autodiff::{ChannelStats, PoolCfg, Tape, Tensor, TensorId};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::darts_ops::{Candidate, FactorizedReduce, NoiseSource, Pooled, Role};
use crate::nn::{join, BatchNorm2d, Ctx, Module, Slot};
use rand::Rng;
use std::rc::Rc;

/// Where an edge's coefficients are: row `edge` of the (edges, ops) softmax table shared by the
/// cell type, and for DARTS- β (a scalar table and its index).
#[derive(Clone, Copy)]
pub struct EdgeWeights<'a> {
    pub table: &'a Tensor,
    pub edge: usize,
    pub beta: Option<(&'a Tensor, usize)>,
}

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

    /// The edge on x with its coefficients `w`; `pools`: the cell's poolings so far.
    pub fn forward(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        w: EdgeWeights,
        pools: &mut SharedPools,
        ctx: Ctx,
    ) -> Result<Tensor> {
        Ok(self.forward_onto(tape, x, w, pools, ctx, None)?.0)
    }

    /// [`Self::forward`] added onto `onto` (its node's sum over the edges before it) where the
    /// edge's tail runs fused: `(onto + edge, true)`; else `(edge, false)`. See [`NodeSum`].
    pub fn forward_onto(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        w: EdgeWeights,
        pools: &mut SharedPools,
        ctx: Ctx,
        onto: Option<&Tensor>,
    ) -> Result<(Tensor, bool)> {
        let EdgeWeights {
            table: weights,
            edge,
            beta,
        } = w;
        let k = self.ops.len();
        let mut ys = Vec::with_capacity(k);
        let mut idx = Vec::with_capacity(k);
        // The pooling candidates take x's poolings from `pools`: computed once for every edge
        // of the cell that reads x at this stride (a max and an avg in one pass).
        let mut want = [false; 2];
        let mut strides = self.ops.iter().filter_map(|op| op.op().pooling());
        let stride = strides.clone().next().map(|(_, s)| s);
        let one_stride = strides.all(|(max, s)| {
            want[usize::from(!max)] = true;
            Some(s) == stride
        });
        let pooled = match stride {
            Some(s) if one_stride => Some(pools.get(tape, x, s, want, ctx.train)?),
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
            let split = op.op().forward_split(tape, x, ctx, pooled)?;
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
            let y = match aux {
                Some((a, table, i)) => {
                    let scaled = tape.scale_by(&a, table, i)?;
                    tape.sum(&[&zero, &scaled])?
                }
                None => zero,
            };
            return Ok((y, false));
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
            true => normalized_sum_onto(tape, &terms, onto),
            false => eval_normalized_sum_onto(tape, &terms, onto),
        }
    }
}

/// A cell node's sum over its edges, built as they run: an edge whose tail runs fused adds
/// its output onto the sum so far in the same launch (no sum launch of the node's own, and
/// no edge output written and read again; in eval mode likewise, in the one-launch
/// inference sum); the others are added at the end. Always in edge
/// order, ((e1 + e2) + e3), as one sum over the edges' outputs adds them.
#[derive(Default)]
pub struct NodeSum {
    /// The first edges' sum (or the first edge alone).
    onto: Option<Tensor>,
    /// Edges after one that could not add onto it, in order.
    rest: Vec<Tensor>,
}

impl NodeSum {
    /// Runs `edge` on `x` and adds it to the node.
    pub fn add_edge(
        &mut self,
        tape: &mut Tape,
        edge: &MixedOp,
        x: &Tensor,
        w: EdgeWeights,
        pools: &mut SharedPools,
        ctx: Ctx,
    ) -> Result<()> {
        let onto = self.onto.as_ref().filter(|_| self.rest.is_empty());
        let (y, added) = edge.forward_onto(tape, x, w, pools, ctx, onto)?;
        match (added, &self.onto) {
            (true, _) | (false, None) => self.onto = Some(y),
            (false, Some(_)) => self.rest.push(y),
        }
        Ok(())
    }

    /// The node: the sum of every edge added.
    pub fn finish(self, tape: &mut Tape) -> Result<Tensor> {
        let first = self
            .onto
            .ok_or_else(|| Error::Invalid("a cell node without edges".into()))?;
        if self.rest.is_empty() {
            return Ok(first);
        }
        let mut all = vec![&first];
        all.extend(&self.rest);
        tape.sum(&all)
    }
}

/// The 3×3 poolings of a cell's states, keyed by state and stride: every edge reading a state
/// pools it identically (the pooling has no parameters), so a cell pools each state once per
/// stride instead of once per edge, and the backward pass runs one pooling gradient over the
/// edges' summed gradients. Each edge keeps its own batch norm (its own running statistics),
/// fed the shared statistics where the pooling kernel wrote them.
#[derive(Default)]
pub struct SharedPools(Vec<(TensorId, usize, Pooled)>);

impl SharedPools {
    /// x's poolings at `stride`, with the max (`want[0]`) and avg (`want[1]`) ones computed
    /// where missing: both in one launch where both are, with their batch norms' statistics
    /// in train mode.
    pub fn get(
        &mut self,
        tape: &mut Tape,
        x: &Tensor,
        stride: usize,
        want: [bool; 2],
        train: bool,
    ) -> Result<&Pooled> {
        let i = match self.0.iter().position(|e| e.0 == x.id() && e.1 == stride) {
            Some(i) => i,
            None => {
                self.0.push((x.id(), stride, Pooled::default()));
                self.0.len() - 1
            }
        };
        let cfg = PoolCfg::new(3, stride, 1);
        let p = &mut self.0[i].2;
        match (want[0] && p.max.is_none(), want[1] && p.avg.is_none()) {
            (true, true) => {
                let (max, avg, stats) = match train {
                    true => tape.max_avg_pool2d_with_stats(x, cfg)?,
                    false => {
                        let (max, avg) = tape.max_avg_pool2d(x, cfg)?;
                        (max, avg, None)
                    }
                };
                let [sm, sa] = stats.map_or([None, None], |[m, a]| [Some(m), Some(a)]);
                p.max = Some((max, sm));
                p.avg = Some((avg, sa));
            }
            (true, false) => p.max = Some((tape.max_pool2d(x, cfg)?, None)),
            (false, true) => p.avg = Some((tape.avg_pool2d(x, cfg)?, None)),
            (false, false) => {}
        }
        Ok(&self.0[i].2)
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
