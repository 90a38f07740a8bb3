//! Basic layers with PyTorch's default initialisation (weights U(−1/√fan_in, 1/√fan_in),
//! affine batch norm γ = 1, β = 0, running mean 0 and variance 1).

use super::{join, Ctx, Module, Slot};
use crate::autodiff::{BnState, ChannelStats, Conv2dCfg, Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use rand::Rng;
use std::cell::Cell;

/// A parameter drawn from U(−bound, bound); `window`: a weight every lane reads at the same
/// index ([`Tensor::weight_parameter`]).
fn uniform(
    gpu: &Gpu,
    rng: &mut impl Rng,
    shape: &[usize],
    bound: f32,
    window: bool,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    // Refused before the values are drawn: an absurd size (--channels 100000) must not try
    // to allocate tens of GB on the host first.
    let (bytes, limit) = (n as u64 * 4, gpu.limits().max_storage_buffer_binding_size);
    if bytes > limit {
        return Err(Error::TooLarge {
            name: format!("a weight of shape {shape:?}"),
            bytes,
            limit,
            what: "max_storage_buffer_binding_size",
        });
    }
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
    if window {
        Tensor::weight_parameter(gpu, shape, &data)
    } else {
        Tensor::parameter(gpu, shape, &data)
    }
}

/// What a convolution layer is built from: channels, kernel side and configuration.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub cfg: Conv2dCfg,
}

impl ConvShape {
    /// `[cin, cout, k]` at `stride` with `pad` zeros each side.
    pub fn new([cin, cout, k]: [usize; 3], stride: usize, pad: usize) -> Self {
        let cfg = Conv2dCfg::new(stride, pad);
        ConvShape { cin, cout, k, cfg }
    }

    pub fn dilation(mut self, d: usize) -> Self {
        self.cfg = self.cfg.dilation(d);
        self
    }
}

/// 2-D convolution layer; weight (cout, cin/groups, k, k).
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub cfg: Conv2dCfg,
}

impl Conv2d {
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, shape: ConvShape, bias: bool) -> Result<Conv2d> {
        let ConvShape { cin, cout, k, cfg } = shape;
        let fan_in = cin / cfg.groups * k * k;
        let bound = 1.0 / (fan_in as f32).sqrt();
        let window = cfg.reads_weight_uniformly(cin);
        let weight = uniform(gpu, rng, &[cout, cin / cfg.groups, k, k], bound, window)?;
        let bias = if bias {
            Some(uniform(gpu, rng, &[cout], bound, false)?)
        } else {
            None
        };
        Ok(Conv2d { weight, bias, cfg })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor) -> Result<Tensor> {
        tape.conv2d(x, &self.weight, self.bias.as_ref(), self.cfg)
    }

    /// pw(dw(relu(x))): a depthwise then a 1×1 convolution as one tape node (see
    /// [`Tape::dw_pw`]), the ReLU folded into the depthwise loads.
    pub fn relu_dw_pw(tape: &mut Tape, x: &Tensor, dw: &Conv2d, pw: &Conv2d) -> Result<Tensor> {
        Ok(Conv2d::relu_dw_pw_impl(tape, x, dw, pw, false)?.0)
    }

    /// [`Conv2d::relu_dw_pw`] followed by a batch norm (`ctx.train`: in train mode): the 1×1
    /// kernel also writes the output's statistics where that saves the batch norm a pass.
    pub fn relu_dw_pw_stats(
        tape: &mut Tape,
        x: &Tensor,
        dw: &Conv2d,
        pw: &Conv2d,
        ctx: Ctx,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        Conv2d::relu_dw_pw_impl(tape, x, dw, pw, ctx.train)
    }

    fn relu_dw_pw_impl(
        tape: &mut Tape,
        x: &Tensor,
        dw: &Conv2d,
        pw: &Conv2d,
        stats: bool,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        if pw.bias.is_some() || dw.bias.is_some() || pw.cfg != Conv2dCfg::new(1, 0) {
            let h = dw.forward_relu(tape, x)?;
            return Ok((pw.forward(tape, &h)?, None));
        }
        let cfg = dw.cfg.relu_input(true);
        if stats {
            tape.dw_pw_with_stats(x, &dw.weight, cfg, &pw.weight)
        } else {
            Ok((tape.dw_pw(x, &dw.weight, cfg, &pw.weight)?, None))
        }
    }

    /// conv(relu(x)), the ReLU folded into the convolution's loads.
    pub fn forward_relu(&self, tape: &mut Tape, x: &Tensor) -> Result<Tensor> {
        let cfg = self.cfg.relu_input(true);
        tape.conv2d(x, &self.weight, self.bias.as_ref(), cfg)
    }

    /// [`Conv2d::forward_relu`] followed by a batch norm (`ctx.train`: in train mode): a 1×1
    /// convolution also writes its output's statistics where that saves the batch norm a pass.
    pub fn forward_relu_stats(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        if !ctx.train {
            return Ok((self.forward_relu(tape, x)?, None));
        }
        let cfg = self.cfg.relu_input(true);
        tape.conv2d_with_stats(x, &self.weight, self.bias.as_ref(), cfg)
    }
}

impl Module for Conv2d {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        f(&join(prefix, "weight"), Slot::Param(&self.weight));
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), Slot::Param(b));
        }
    }
}

/// A tensor before a batch norm, with that batch norm's statistics where the producing kernel
/// wrote them.
pub type BeforeBn = (Tensor, Option<ChannelStats>);

/// ReLU → depthwise k → 1×1 → BN: a dilated conv candidate is one, a separable conv two.
/// The convs draw their weights in that order (dw, then pw).
pub struct ReluDwPwBn {
    pub dw: Conv2d,
    pub pw: Conv2d,
    pub bn: BatchNorm2d,
}

impl ReluDwPwBn {
    /// `shape`: the channels and the depthwise conv's kernel, stride, padding and dilation
    /// (groups set here).
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, shape: ConvShape, affine: bool) -> Result<Self> {
        let ConvShape { cin, cout, cfg, .. } = shape;
        let dw = ConvShape {
            cout: cin,
            cfg: cfg.groups(cin),
            ..shape
        };
        Ok(ReluDwPwBn {
            dw: Conv2d::new(gpu, rng, dw, false)?,
            pw: Conv2d::new(gpu, rng, ConvShape::new([cin, cout, 1], 1, 0), false)?,
            bn: BatchNorm2d::new(gpu, cout, affine)?,
        })
    }

    /// Everything up to the batch norm, with its statistics where the 1×1 kernel wrote them.
    pub fn before_bn(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<BeforeBn> {
        Conv2d::relu_dw_pw_stats(tape, x, &self.dw, &self.pw, ctx)
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        let (h, stats) = self.before_bn(tape, x, ctx)?;
        self.bn.forward_with_stats(tape, &h, stats, ctx)
    }
}

/// Batch normalisation (eps 1e-5, momentum 0.1), running statistics tracked.
pub struct BatchNorm2d {
    pub affine: Option<(Tensor, Tensor)>,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Cell<i64>,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNorm2d {
    pub fn new(gpu: &Gpu, c: usize, affine: bool) -> Result<BatchNorm2d> {
        let affine = if affine {
            Some((
                Tensor::full(gpu, &[c], 1.0)?.with_grad(),
                Tensor::zeros(gpu, &[c])?.with_grad(),
            ))
        } else {
            None
        };
        Ok(BatchNorm2d {
            affine,
            running_mean: Tensor::zeros(gpu, &[c])?,
            running_var: Tensor::full(gpu, &[c], 1.0)?,
            num_batches_tracked: Cell::new(0),
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        self.forward_with_stats(tape, x, None, ctx)
    }

    /// [`BatchNorm2d::forward`] with x's statistics from the kernel that produced it (see
    /// [`Tape::batch_norm_with_stats`]).
    pub fn forward_with_stats(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        stats: Option<ChannelStats>,
        ctx: Ctx,
    ) -> Result<Tensor> {
        if ctx.train {
            self.count_batch();
        }
        tape.batch_norm_with_stats(
            x,
            stats,
            self.affine.as_ref().map(|(g, b)| (g, b)),
            self.state(),
            ctx.train,
        )
    }

    /// The running statistics and hyperparameters, for an op that normalises on its own
    /// ([`MixedSums::normalized_sum`](crate::nn::mixed::MixedSums::normalized_sum)); call
    /// [`BatchNorm2d::count_batch`] with it in train mode.
    pub fn state(&self) -> BnState<'_> {
        BnState {
            running_mean: &self.running_mean,
            running_var: &self.running_var,
            momentum: self.momentum,
            eps: self.eps,
        }
    }

    /// Counts one train-mode batch (PyTorch's `num_batches_tracked`).
    pub fn count_batch(&self) {
        self.num_batches_tracked
            .set(self.num_batches_tracked.get() + 1);
    }
}

impl Module for BatchNorm2d {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        if let Some((g, b)) = &self.affine {
            f(&join(prefix, "weight"), Slot::Param(g));
            f(&join(prefix, "bias"), Slot::Param(b));
        }
        f(
            &join(prefix, "running_mean"),
            Slot::Buffer(&self.running_mean),
        );
        f(
            &join(prefix, "running_var"),
            Slot::Buffer(&self.running_var),
        );
        f(
            &join(prefix, "num_batches_tracked"),
            Slot::Counter(&self.num_batches_tracked),
        );
    }
}

/// Fully connected layer, weight (out, in), bias (out).
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, fin: usize, fout: usize) -> Result<Linear> {
        let bound = 1.0 / (fin as f32).sqrt();
        Ok(Linear {
            weight: uniform(gpu, rng, &[fout, fin], bound, false)?,
            bias: uniform(gpu, rng, &[fout], bound, false)?,
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor) -> Result<Tensor> {
        tape.linear(x, &self.weight, Some(&self.bias))
    }
}

impl Module for Linear {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        f(&join(prefix, "weight"), Slot::Param(&self.weight));
        f(&join(prefix, "bias"), Slot::Param(&self.bias));
    }
}
