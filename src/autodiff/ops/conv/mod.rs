//! 2-D convolution (dense, 1×1, grouped/depthwise, any stride, padding, dilation, optional
//! bias). The algorithm is chosen once from the shape at forward ([`ConvPlan`]) and kept in
//! the node, so backward takes the matching kernels; each algorithm's forward and gradients
//! live side by side in its own file:
//!
//! - `pointwise`: plain 1×1 convolutions as batched matrix products (`pointwise.wgsl`)
//! - `depthwise`: depthwise k×k, and the fused depthwise + 1×1 launch (`depthwise.wgsl`)
//! - `dense`: one group on rows of a multiple of 4 (`conv.wgsl`'s `forward4` family)
//! - `generic`: everything else, one output per thread (`conv.wgsl`)
//!
//! `dw_pw` composes a depthwise and a 1×1 convolution into one op ([`Tape::dw_pw`]).

mod dense;
mod depthwise;
mod dw_pw;
mod generic;
mod pointwise;

use super::layout::SliceCfg;
use super::norm::ChannelStats;
use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};
use crate::gpu::{ConvParams, LaunchPolicy, Work};

pub(crate) use dw_pw::DwPwNode;

/// The weight gradients' lane broadcasts (dense `weight_partial4`, 1×1 `weight_grad_partial4`):
/// where a subgroup's 8 lanes can take 8 output blocks of 4 channels, or 4 output blocks of
/// each of 2 input blocks, the input block's values are read once and broadcast.
fn weight_grad_lanes(
    policy: &crate::gpu::LaunchPolicy,
    cout: usize,
    cin: usize,
) -> &'static [(&'static str, u32)] {
    let (bo, bi) = (cout.div_ceil(4), cin.div_ceil(4));
    match policy.lanes {
        true if bo.is_multiple_of(8) => &[("LANES", 1)],
        true if bo == 4 && bi.is_multiple_of(2) => &[("LANES", 1), ("OB", 4)],
        _ => &[],
    }
}

/// The entry and work of a split weight gradient's second pass over `n` weights: `serial`
/// (a thread per weight walks its chunks' partials) or, where the policy wants it for this
/// many `chunks` (GPUs), `group` (a workgroup per weight: strided loads and a tree sum).
fn chunk_sum(
    policy: &LaunchPolicy,
    chunks: usize,
    [serial, group]: [&'static str; 2],
    n: usize,
) -> (&'static str, Work) {
    match policy.chunk_sum_by_group(chunks) {
        true => (group, Work::Groups(n)),
        false => (serial, Work::Threads(n)),
    }
}

/// Stride, padding, dilation and groups of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dCfg {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
    /// Convolve relu(x) instead of x: the ReLU is folded into the kernels' loads, so it needs
    /// no pass and no buffer of its own (DARTS' ReLU → conv pairs).
    pub relu_input: bool,
}

impl Conv2dCfg {
    pub fn new(stride: usize, padding: usize) -> Self {
        Conv2dCfg {
            stride,
            padding,
            dilation: 1,
            groups: 1,
            relu_input: false,
        }
    }
    pub fn relu_input(mut self, on: bool) -> Self {
        self.relu_input = on;
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// Whether the weight of this convolution over `cin` input channels is read at the same
    /// index in every lane by its fast kernels (dense `forward4`, the 1×1 GEMM, depthwise
    /// `forward4` and the fused depthwise + 1×1 `dw_pw4`; not other grouped convolutions), so
    /// it is worth a buffer that can also be bound as a uniform ([`Tensor::weight_parameter`]).
    pub fn reads_weight_uniformly(&self, cin: usize) -> bool {
        self.groups == 1 || self.groups == cin
    }
}

/// ⌊(h + 2p − d(k−1) − 1)/s⌋ + 1, or None when the kernel does not fit.
pub fn out_size(h: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    (h + 2 * p >= span).then(|| (h + 2 * p - span) / s + 1)
}

/// Which kernels a convolution runs on, the first that fits in this order.
#[derive(Clone, Copy, Debug)]
enum ConvAlgo {
    /// 1×1, stride 1, no padding, one group, no bias.
    Pointwise,
    /// Depthwise, square kernel ≤ 5×5, equal strides, paddings and dilations, no bias.
    Depthwise,
    /// One group, output rows of a multiple of 4: forward and weight gradient by `dense`.
    /// `flipped`: the input gradient by `dense` too where dx's rows allow (else `generic`).
    DenseRows4 { flipped: bool },
    /// Forward and weight gradient by `generic`; the input gradient as for `DenseRows4`.
    Generic { flipped: bool },
}

/// A convolution's kernel parameters and algorithm, fixed at forward.
#[derive(Clone, Copy, Debug)]
struct ConvPlan {
    p: ConvParams,
    algo: ConvAlgo,
}

impl ConvPlan {
    /// The plan for an input of shape `xs` (n, c, h, w), and the output's shape.
    fn new(
        xs: [usize; 4],
        w: &Tensor,
        cfg: Conv2dCfg,
        has_bias: bool,
    ) -> Result<(Self, [usize; 4])> {
        let p = params(xs, w, cfg, has_bias)?;
        let flipped = dense::flipped_applies(&p);
        let algo = if pointwise::applies(&p) {
            ConvAlgo::Pointwise
        } else if depthwise::applies(&p) {
            ConvAlgo::Depthwise
        } else if dense::rows4(&p) {
            ConvAlgo::DenseRows4 { flipped }
        } else {
            ConvAlgo::Generic { flipped }
        };
        let out = [p.n, p.cout, p.ho, p.wo].map(|v| v as usize);
        Ok((ConvPlan { p, algo }, out))
    }

    /// [`ConvPlan::new`] for the input `x`.
    fn of(x: &Tensor, w: &Tensor, cfg: Conv2dCfg, has_bias: bool) -> Result<(Self, [usize; 4])> {
        let (n, cin, h, wd) = x.nchw("conv2d")?;
        Self::new([n, cin, h, wd], w, cfg, has_bias)
    }

    /// Runs the forward kernels into a new tensor, outside the tape; with `stats` a 1×1 or
    /// dense convolution also writes its output's batch-norm statistics where it can.
    fn forward(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        out_shape: &[usize],
        relu: bool,
        stats: bool,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        let y = Tensor::empty(x.gpu(), out_shape, "conv2d output")?;
        let f = &Fwd {
            x,
            w,
            b,
            y: &y,
            relu,
            stats,
        };
        let channel_stats = match &self.algo {
            ConvAlgo::Pointwise => pointwise::forward(&self.p, f)?,
            ConvAlgo::Depthwise => {
                depthwise::forward(&self.p, f)?;
                None
            }
            ConvAlgo::DenseRows4 { .. } => dense::forward(&self.p, f)?,
            ConvAlgo::Generic { .. } => {
                generic::forward(&self.p, f)?;
                None
            }
        };
        Ok((y, channel_stats))
    }
}

/// The kernel parameters of a convolution of an input of shape `xs` (n, c, h, w), checked.
fn params(xs: [usize; 4], w: &Tensor, cfg: Conv2dCfg, has_bias: bool) -> Result<ConvParams> {
    let [n, cin, h, wd] = xs;
    let [cout, cinpg, kh, kw] = match w.shape() {
        &[a, b, c, d] => [a, b, c, d],
        s => {
            return Err(Error::shape(
                "conv2d",
                format!("weight must be 4-D, got {s:?}"),
            ))
        }
    };
    let g = cfg.groups;
    if g == 0 || cin % g != 0 || cout % g != 0 || cinpg != cin / g {
        return Err(Error::shape(
            "conv2d",
            format!(
                "input {:?} and weight {:?} do not agree for groups = {g}",
                xs,
                w.shape()
            ),
        ));
    }
    if cfg.stride == 0 || cfg.dilation == 0 {
        return Err(Error::shape(
            "conv2d",
            "stride and dilation must be at least 1",
        ));
    }
    let ho = out_size(h, kh, cfg.stride, cfg.padding, cfg.dilation);
    let wo = out_size(wd, kw, cfg.stride, cfg.padding, cfg.dilation);
    let (Some(ho), Some(wo)) = (ho, wo) else {
        return Err(Error::shape(
            "conv2d",
            format!(
                "kernel {kh}x{kw} (dilation {}) does not fit input {h}x{wd} with padding {}",
                cfg.dilation, cfg.padding
            ),
        ));
    };
    let u = |v: usize| v as u32;
    Ok(ConvParams {
        n: u(n),
        cin: u(cin),
        h: u(h),
        w: u(wd),
        cout: u(cout),
        ho: u(ho),
        wo: u(wo),
        kh: u(kh),
        kw: u(kw),
        sh: u(cfg.stride),
        sw: u(cfg.stride),
        ph: u(cfg.padding),
        pw: u(cfg.padding),
        dh: u(cfg.dilation),
        dw: u(cfg.dilation),
        groups: u(g),
        has_bias: u(has_bias as usize),
        // Only the dense weight gradient sets these, on its own copy.
        per: 0,
        chunks: 0,
        _pad: 0,
    })
}

/// Pipeline constants for a kernel reading its input through a folded ReLU (none otherwise,
/// so the plain pipelines stay the ones already compiled).
fn relu_consts(relu: bool) -> &'static [(&'static str, u32)] {
    if relu {
        &[("RELU", 1)]
    } else {
        &[]
    }
}

/// The tensors of a forward launch: y = conv(relu?(x), w) (+ b); `stats` asks for y's
/// batch-norm statistics where the algorithm can write them.
pub(super) struct Fwd<'a> {
    x: &'a Tensor,
    w: &'a Tensor,
    b: Option<&'a Tensor>,
    y: &'a Tensor,
    relu: bool,
    stats: bool,
}

/// The tensors of the input gradient: dy, the weight, dx, and the folded ReLU's mask (x, where
/// there is one: the gradient passes only where x > 0).
pub(super) struct InGrad<'a> {
    gy: &'a Tensor,
    w: &'a Tensor,
    dx: &'a Tensor,
    mask: Option<&'a Tensor>,
}

/// The tensors of the weight gradient: x (read through a ReLU with `relu`), dy and dw.
pub(super) struct WGrad<'a> {
    x: &'a Tensor,
    gy: &'a Tensor,
    dw: &'a Tensor,
    relu: bool,
}

pub(crate) struct Conv2dNode {
    /// Values kept only when the weight needs its gradient (not in the α step).
    x: Saved,
    w: Saved,
    b: Option<Saved>,
    plan: ConvPlan,
    /// The input went through a folded ReLU (see [`Conv2dCfg::relu_input`]).
    relu: bool,
}

impl Tape {
    /// y = conv2d(x, w) (+ b). x: (n, cin, h, w); w: (cout, cin/groups, kh, kw); b: (cout).
    pub fn conv2d(
        &mut self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dCfg,
    ) -> Result<Tensor> {
        Ok(self.conv2d_impl(x, w, b, cfg, false)?.0)
    }

    /// [`Tape::conv2d`] for a train-mode batch norm to follow: where that batch norm would
    /// split its reductions (GPUs), a 1×1 convolution without bias (`gemm4_stats`) or a dense
    /// one on rows of a multiple of 4 (`forward4_stats`) also writes its output's statistics,
    /// for [`Tape::batch_norm_with_stats`].
    pub fn conv2d_with_stats(
        &mut self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dCfg,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        self.conv2d_impl(x, w, b, cfg, true)
    }

    fn conv2d_impl(
        &mut self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dCfg,
        stats: bool,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        let (plan, out_shape) = ConvPlan::of(x, w, cfg, b.is_some())?;
        // A strided 1×1 conv only reads every s-th pixel: subsample, then a plain matrix
        // product (cheaper than the general kernel's gather, forward and backward).
        if plan.p.kh == 1
            && plan.p.kw == 1
            && cfg.stride > 1
            && cfg.padding == 0
            && cfg.groups == 1
            && b.is_none()
        {
            let sub = self.slice2d(
                x,
                SliceCfg {
                    offset: 0,
                    stride: cfg.stride,
                },
            )?;
            return self.conv2d_impl(
                &sub,
                w,
                None,
                Conv2dCfg::new(1, 0).relu_input(cfg.relu_input),
                stats,
            );
        }
        if let Some(b) = b {
            if b.shape() != [out_shape[1]] {
                return Err(Error::shape(
                    "conv2d",
                    format!("bias must be ({}), got {:?}", out_shape[1], b.shape()),
                ));
            }
        }
        let (y, channel_stats) = plan.forward(x, w, b, &out_shape, cfg.relu_input, stats)?;
        self.add_macs(y.numel() as u64 * w.numel() as u64 / w.shape()[0] as u64);
        let mut inputs = vec![x, w];
        inputs.extend(b);
        let y = self.record(&inputs, y, || {
            Op::Conv2d(Conv2dNode {
                // The weight gradient reads x, and so does the folded ReLU's mask.
                x: Saved::keep_if(
                    x,
                    w.requires_grad() || (cfg.relu_input && x.requires_grad()),
                ),
                w: Saved::keep(w),
                b: b.map(Saved::key_only),
                plan,
                relu: cfg.relu_input,
            })
        });
        Ok((y, channel_stats))
    }
}

impl Conv2dNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let gpu = gy.gpu();
        let p = &self.plan.p;
        let mut out = Vec::new();
        if self.x.requires_grad() {
            let dx = Tensor::empty(gpu, self.x.shape(), "conv2d dx")?;
            // Through a folded ReLU the gradient passes only where x > 0.
            let mask = if self.relu {
                Some(self.x.data()?)
            } else {
                None
            };
            let g = &InGrad {
                gy,
                w: self.w.data()?,
                dx: &dx,
                mask,
            };
            let dx = match self.plan.algo {
                ConvAlgo::Pointwise => pointwise::input_grad(p, g).map(|_| dx.clone()),
                ConvAlgo::Depthwise => depthwise::input_grad(p, g).map(|_| dx.clone()),
                ConvAlgo::DenseRows4 { flipped: true } | ConvAlgo::Generic { flipped: true } => {
                    dense::input_grad(p, g).map(|_| dx.clone())
                }
                ConvAlgo::DenseRows4 { flipped: false } | ConvAlgo::Generic { flipped: false } => {
                    generic::input_grad(p, g)
                }
            }?;
            out.push((self.x.key(), dx));
        }
        let b = self.b.as_ref().filter(|b| b.requires_grad());
        // Set where the weight-gradient launches also produce the bias gradient: the 1×1 and
        // rows-of-4 dense kernels sum the dy they load for dw.
        let mut db = None;
        if self.w.requires_grad() {
            let dw = Tensor::empty(gpu, self.w.shape(), "conv2d dw")?;
            let g = &WGrad {
                x: self.x.data()?,
                gy,
                dw: &dw,
                relu: self.relu,
            };
            let folds_bias = matches!(
                self.plan.algo,
                ConvAlgo::Pointwise | ConvAlgo::DenseRows4 { .. }
            );
            if let Some(b) = b.filter(|_| folds_bias) {
                db = Some(Tensor::empty(gpu, b.shape(), "conv2d db")?);
            }
            match self.plan.algo {
                ConvAlgo::Pointwise => pointwise::weight_grad(p, g, db.as_ref())?,
                ConvAlgo::Depthwise => depthwise::weight_grad(p, g)?,
                ConvAlgo::DenseRows4 { .. } => dense::weight_grad(p, g, db.as_ref())?,
                ConvAlgo::Generic { .. } => generic::weight_grad(p, g)?,
            }
            out.push((self.w.key(), dw));
        }
        if let Some(b) = b {
            let db = match db {
                Some(db) => db,
                None => generic::bias_grad(p, gy, b.shape())?,
            };
            out.push((b.key(), db));
        }
        Ok(out)
    }
}
