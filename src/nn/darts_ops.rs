//! The DARTS candidate operations (SPEC §2) and the DARTS- mixed edge (SPEC §4), with the
//! reference state names (`op.1.weight`, `conv_1.weight`, `_ops.k.1.running_mean`, …).

use super::{join, BatchNorm2d, Conv2d, Ctx, Module, Slot};
use crate::autodiff::{ChannelStats, Conv2dCfg, PoolCfg, SliceCfg, SumTerm, Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use rand::Rng;

/// Candidate operations of the DARTS space, in α column order.
pub const DARTS_OPS: [&str; 8] = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
];

/// ReLU → conv → BN.
pub struct ReluConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

impl ReluConvBn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        affine: bool,
    ) -> Result<Self> {
        Self::build(gpu, rng, [cin, cout, k, stride, pad], affine, false)
    }

    fn build(
        gpu: &Gpu,
        rng: &mut impl Rng,
        [cin, cout, k, stride, pad]: [usize; 5],
        affine: bool,
        bias: bool,
    ) -> Result<Self> {
        Ok(ReluConvBn {
            conv: Conv2d::new(gpu, rng, cin, cout, k, Conv2dCfg::new(stride, pad), bias)?,
            bn: BatchNorm2d::new(gpu, cout, affine)?,
        })
    }

    /// NAS-Bench-201's variant: the conv has a bias exactly when the BN has no affine part.
    #[allow(clippy::too_many_arguments)]
    pub fn nb201(
        gpu: &Gpu,
        rng: &mut impl Rng,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        affine: bool,
    ) -> Result<Self> {
        Self::build(gpu, rng, [cin, cout, k, stride, pad], affine, !affine)
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        let (h, stats) = self.conv.forward_relu_stats(tape, x, ctx)?;
        self.bn.forward_with_stats(tape, &h, stats, ctx)
    }
}

impl Module for ReluConvBn {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.conv.visit(&join(prefix, "op.1"), f);
        self.bn.visit(&join(prefix, "op.2"), f);
    }
}

/// ReLU, then two stride-2 1×1 convs (on x and on x[:, :, 1:, 1:]) concatenated, then BN.
pub struct FactorizedReduce {
    pub conv_1: Conv2d,
    pub conv_2: Conv2d,
    pub bn: BatchNorm2d,
}

impl FactorizedReduce {
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        cin: usize,
        cout: usize,
        affine: bool,
    ) -> Result<Self> {
        if !cout.is_multiple_of(2) {
            return Err(Error::Invalid(format!(
                "FactorizedReduce needs an even output channel count, got {cout}"
            )));
        }
        let cfg = Conv2dCfg::new(2, 0);
        Ok(FactorizedReduce {
            conv_1: Conv2d::new(gpu, rng, cin, cout / 2, 1, cfg, false)?,
            conv_2: Conv2d::new(gpu, rng, cin, cout / 2, 1, cfg, false)?,
            bn: BatchNorm2d::new(gpu, cout, affine)?,
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        let cat = self.before_bn(tape, x)?;
        self.bn.forward(tape, &cat, ctx)
    }

    /// Everything up to the final batch norm.
    fn before_bn(&self, tape: &mut Tape, x: &Tensor) -> Result<Tensor> {
        // The ReLU is folded into both convolutions (it commutes with the slicing).
        let a = self.conv_1.forward_relu(tape, x)?;
        // conv_2 (1×1, stride 2) on x[:, :, 1:, 1:] reads exactly x[:, :, 1::2, 1::2].
        let shifted = tape.slice2d(
            x,
            SliceCfg {
                offset: 1,
                stride: 2,
            },
        )?;
        let cfg = Conv2dCfg::new(1, 0).relu_input(true);
        let b = tape.conv2d(&shifted, &self.conv_2.weight, None, cfg)?;
        tape.concat(&[&a, &b])
    }
}

impl Module for FactorizedReduce {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.conv_1.visit(&join(prefix, "conv_1"), f);
        self.conv_2.visit(&join(prefix, "conv_2"), f);
        self.bn.visit(&join(prefix, "bn"), f);
    }
}

/// A cell's `preprocess0`: FactorizedReduce after a reduction cell, else ReLU-conv1×1-BN.
pub enum Preprocess {
    Relu(ReluConvBn),
    Reduce(FactorizedReduce),
}

impl Preprocess {
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        c_in: usize,
        c: usize,
        reduction_prev: bool,
        affine: bool,
    ) -> Result<Self> {
        Ok(if reduction_prev {
            Preprocess::Reduce(FactorizedReduce::new(gpu, rng, c_in, c, affine)?)
        } else {
            Preprocess::Relu(ReluConvBn::new(gpu, rng, c_in, c, 1, 1, 0, affine)?)
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        match self {
            Preprocess::Relu(p) => p.forward(tape, x, ctx),
            Preprocess::Reduce(p) => p.forward(tape, x, ctx),
        }
    }
}

impl Module for Preprocess {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        match self {
            Preprocess::Relu(p) => p.visit(prefix, f),
            Preprocess::Reduce(p) => p.visit(prefix, f),
        }
    }
}

/// ReLU → depthwise k (stride s) → 1×1 → BN → ReLU → depthwise k → 1×1 → BN.
pub struct SepConv {
    pub dw1: Conv2d,
    pub pw1: Conv2d,
    pub bn1: BatchNorm2d,
    pub dw2: Conv2d,
    pub pw2: Conv2d,
    pub bn2: BatchNorm2d,
}

impl SepConv {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        affine: bool,
    ) -> Result<Self> {
        let dw = |rng: &mut _, s| {
            Conv2d::new(
                gpu,
                rng,
                cin,
                cin,
                k,
                Conv2dCfg::new(s, pad).groups(cin),
                false,
            )
        };
        let dw1 = dw(rng, stride)?;
        let pw1 = Conv2d::new(gpu, rng, cin, cin, 1, Conv2dCfg::new(1, 0), false)?;
        let bn1 = BatchNorm2d::new(gpu, cin, affine)?;
        let dw2 = dw(rng, 1)?;
        let pw2 = Conv2d::new(gpu, rng, cin, cout, 1, Conv2dCfg::new(1, 0), false)?;
        let bn2 = BatchNorm2d::new(gpu, cout, affine)?;
        Ok(SepConv {
            dw1,
            pw1,
            bn1,
            dw2,
            pw2,
            bn2,
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        let (h, stats) = self.before_bn(tape, x, ctx)?;
        self.bn2.forward_with_stats(tape, &h, stats, ctx)
    }

    /// Everything up to the final batch norm, and that batch norm's statistics where the
    /// producing kernel wrote them.
    fn before_bn(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        let (h, stats) = Conv2d::relu_dw_pw_stats(tape, x, &self.dw1, &self.pw1, ctx)?;
        let h = self.bn1.forward_with_stats(tape, &h, stats, ctx)?;
        Conv2d::relu_dw_pw_stats(tape, &h, &self.dw2, &self.pw2, ctx)
    }
}

impl Module for SepConv {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.dw1.visit(&join(prefix, "op.1"), f);
        self.pw1.visit(&join(prefix, "op.2"), f);
        self.bn1.visit(&join(prefix, "op.3"), f);
        self.dw2.visit(&join(prefix, "op.5"), f);
        self.pw2.visit(&join(prefix, "op.6"), f);
        self.bn2.visit(&join(prefix, "op.7"), f);
    }
}

/// ReLU → dilated depthwise k (stride s, dilation d) → 1×1 → BN.
pub struct DilConv {
    pub dw: Conv2d,
    pub pw: Conv2d,
    pub bn: BatchNorm2d,
}

impl DilConv {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dil: usize,
        affine: bool,
    ) -> Result<Self> {
        Ok(DilConv {
            dw: Conv2d::new(
                gpu,
                rng,
                cin,
                cin,
                k,
                Conv2dCfg::new(stride, pad).dilation(dil).groups(cin),
                false,
            )?,
            pw: Conv2d::new(gpu, rng, cin, cout, 1, Conv2dCfg::new(1, 0), false)?,
            bn: BatchNorm2d::new(gpu, cout, affine)?,
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        let (h, stats) = Conv2d::relu_dw_pw_stats(tape, x, &self.dw, &self.pw, ctx)?;
        self.bn.forward_with_stats(tape, &h, stats, ctx)
    }
}

impl Module for DilConv {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.dw.visit(&join(prefix, "op.1"), f);
        self.pw.visit(&join(prefix, "op.2"), f);
        self.bn.visit(&join(prefix, "op.3"), f);
    }
}

/// A mixed edge's max and avg pooling of its input, done once for both candidates, with
/// their batch norms' statistics where the pooling kernel wrote them.
struct Pooled {
    max: Tensor,
    avg: Tensor,
    stats: Option<[ChannelStats; 2]>,
}

/// One candidate operation on an edge.
pub enum Candidate {
    /// Zeros shaped like `x[:, :, ::stride, ::stride]`.
    Zero {
        stride: usize,
    },
    /// 3×3 pooling (max or average, count_include_pad = False), then BN during search.
    Pool {
        max: bool,
        stride: usize,
        bn: Option<BatchNorm2d>,
    },
    Identity,
    /// ReLU → conv → BN (NAS-Bench-201's nor_conv).
    Conv(ReluConvBn),
    Reduce(FactorizedReduce),
    Sep(SepConv),
    Dil(DilConv),
}

impl Candidate {
    /// The DARTS operation `name` on `c` channels; `search` adds the BN after pooling.
    pub fn darts(
        gpu: &Gpu,
        rng: &mut impl Rng,
        name: &str,
        c: usize,
        stride: usize,
        affine: bool,
        search: bool,
    ) -> Result<Candidate> {
        let pool_bn = |_: ()| -> Result<Option<BatchNorm2d>> {
            if search {
                Ok(Some(BatchNorm2d::new(gpu, c, false)?))
            } else {
                Ok(None)
            }
        };
        Ok(match name {
            "none" => Candidate::Zero { stride },
            "max_pool_3x3" => Candidate::Pool {
                max: true,
                stride,
                bn: pool_bn(())?,
            },
            "avg_pool_3x3" => Candidate::Pool {
                max: false,
                stride,
                bn: pool_bn(())?,
            },
            "skip_connect" if stride == 1 => Candidate::Identity,
            "skip_connect" => Candidate::Reduce(FactorizedReduce::new(gpu, rng, c, c, affine)?),
            "sep_conv_3x3" => Candidate::Sep(SepConv::new(gpu, rng, c, c, 3, stride, 1, affine)?),
            "sep_conv_5x5" => Candidate::Sep(SepConv::new(gpu, rng, c, c, 5, stride, 2, affine)?),
            "dil_conv_3x3" => {
                Candidate::Dil(DilConv::new(gpu, rng, c, c, 3, stride, 2, 2, affine)?)
            }
            "dil_conv_5x5" => {
                Candidate::Dil(DilConv::new(gpu, rng, c, c, 5, stride, 4, 2, affine)?)
            }
            other => {
                return Err(Error::Invalid(format!(
                    "unknown DARTS operation '{other}'; known: {}",
                    DARTS_OPS.join(", ")
                )))
            }
        })
    }

    /// The NAS-Bench-201 operation `name` on `c` channels (stride 1, search: BN affine=False).
    pub fn nb201(gpu: &Gpu, rng: &mut impl Rng, name: &str, c: usize) -> Result<Candidate> {
        Ok(match name {
            "none" => Candidate::Zero { stride: 1 },
            "skip_connect" => Candidate::Identity,
            "nor_conv_1x1" => Candidate::Conv(ReluConvBn::nb201(gpu, rng, c, c, 1, 1, 0, false)?),
            "nor_conv_3x3" => Candidate::Conv(ReluConvBn::nb201(gpu, rng, c, c, 3, 1, 1, false)?),
            "avg_pool_3x3" => Candidate::Pool { max: false, stride: 1, bn: None },
            other => {
                return Err(Error::Invalid(format!(
                    "unknown NAS-Bench-201 operation '{other}'; known: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"
                )))
            }
        })
    }

    pub fn is_zero(&self) -> bool {
        matches!(self, Candidate::Zero { .. })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        self.forward_pooled(tape, x, ctx, None)
    }

    /// The candidate up to its final batch norm (train mode, no affine part), that batch norm
    /// and, where the producing 1×1 kernel wrote them, the statistics it needs; for a mixed
    /// edge to apply with its weighted sum. Otherwise the whole output and None.
    /// A pooling candidate takes its pooled input from `pooled` (max, avg) when given.
    fn forward_split(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
        pooled: Option<&Pooled>,
    ) -> Result<(Tensor, Option<&BatchNorm2d>, Option<ChannelStats>)> {
        let bn = match self {
            Candidate::Pool { bn: Some(bn), .. } => bn,
            Candidate::Conv(op) => &op.bn,
            Candidate::Reduce(op) => &op.bn,
            Candidate::Sep(op) => &op.bn2,
            Candidate::Dil(op) => &op.bn,
            _ => return Ok((self.forward_pooled(tape, x, ctx, pooled)?, None, None)),
        };
        if !ctx.train || bn.affine.is_some() {
            return Ok((self.forward_pooled(tape, x, ctx, pooled)?, None, None));
        }
        let (h, stats) = match self {
            Candidate::Pool { max, .. } => {
                let stats = pooled.and_then(|p| p.stats.as_ref());
                let stats = stats.map(|[m, a]| if *max { m.clone() } else { a.clone() });
                (self.pooled_input(tape, x, pooled)?, stats)
            }
            Candidate::Conv(op) => op.conv.forward_relu_stats(tape, x, ctx)?,
            Candidate::Reduce(op) => (op.before_bn(tape, x)?, None),
            Candidate::Sep(op) => op.before_bn(tape, x, ctx)?,
            Candidate::Dil(op) => Conv2d::relu_dw_pw_stats(tape, x, &op.dw, &op.pw, ctx)?,
            _ => {
                return Err(Error::Invalid(
                    "internal: a candidate without a final batch norm".into(),
                ))
            }
        };
        Ok((h, Some(bn), stats))
    }

    /// A pooling candidate's pooling of x (from `pooled` when given).
    fn pooled_input(&self, tape: &mut Tape, x: &Tensor, pooled: Option<&Pooled>) -> Result<Tensor> {
        let Candidate::Pool { max, stride, .. } = self else {
            return Err(Error::Invalid("internal: not a pooling candidate".into()));
        };
        let cfg = PoolCfg::new(3, *stride, 1);
        Ok(match (pooled, *max) {
            (Some(p), true) => p.max.clone(),
            (Some(p), false) => p.avg.clone(),
            (None, true) => tape.max_pool2d(x, cfg)?,
            (None, false) => tape.avg_pool2d(x, cfg)?,
        })
    }

    fn forward_pooled(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
        pooled: Option<&Pooled>,
    ) -> Result<Tensor> {
        match self {
            Candidate::Zero { stride } => {
                let (n, c, h, w) = x.nchw("zero")?;
                Tensor::zeros(
                    tape.gpu(),
                    &[n, c, h.div_ceil(*stride), w.div_ceil(*stride)],
                )
            }
            Candidate::Pool { bn, .. } => {
                let h = self.pooled_input(tape, x, pooled)?;
                match bn {
                    Some(bn) => bn.forward(tape, &h, ctx),
                    None => Ok(h),
                }
            }
            Candidate::Identity => Ok(x.clone()),
            Candidate::Conv(op) => op.forward(tape, x, ctx),
            Candidate::Reduce(op) => op.forward(tape, x, ctx),
            Candidate::Sep(op) => op.forward(tape, x, ctx),
            Candidate::Dil(op) => op.forward(tape, x, ctx),
        }
    }
}

impl Module for Candidate {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        match self {
            Candidate::Zero { .. } | Candidate::Identity => {}
            Candidate::Pool { bn, .. } => {
                if let Some(bn) = bn {
                    bn.visit(&join(prefix, "1"), f);
                }
            }
            Candidate::Conv(op) => op.visit(prefix, f),
            Candidate::Reduce(op) => op.visit(prefix, f),
            Candidate::Sep(op) => op.visit(prefix, f),
            Candidate::Dil(op) => op.visit(prefix, f),
        }
    }
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
    /// All candidates of `names` on `c` channels; `aux` adds the DARTS- auxiliary skip.
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        names: &[&str],
        c: usize,
        stride: usize,
        aux: bool,
    ) -> Result<MixedOp> {
        // Built before the candidates, in the reference's construction order.
        let aux_op = if aux && stride == 2 {
            Some(FactorizedReduce::new(gpu, rng, c, c, false)?)
        } else {
            None
        };
        let ops = names
            .iter()
            .map(|n| Candidate::darts(gpu, rng, n, c, stride, false, true))
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
            self.ops.iter().find_map(|op| match op {
                Candidate::Pool { max, stride, .. } if *max == want_max => Some(*stride),
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
            let (y, bn, st) = op.forward_split(tape, x, ctx, pooled.as_ref())?;
            ys.push(y);
            bns.push(bn);
            stats.push(st);
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
                if let Some(bn) = bn {
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
        tape.normalized_sum(&terms)
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
