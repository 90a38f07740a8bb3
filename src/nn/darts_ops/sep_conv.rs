//! The separable convolution candidates (`sep_conv_3x3`, `sep_conv_5x5`).

use super::candidate::{CandidateOp, Pooled, Split};
use crate::autodiff::{ChannelStats, Conv2dCfg, Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{join, BatchNorm2d, Conv2d, Ctx, Module, Slot};
use rand::Rng;

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

impl CandidateOp for SepConv {
    fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        SepConv::forward(self, tape, x, ctx)
    }

    fn forward_split(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
        _: Option<&Pooled>,
    ) -> Result<Split<'_>> {
        if !Split::can_leave(&self.bn2, ctx) {
            return Ok(Split::whole(self.forward(tape, x, ctx)?));
        }
        let (y, stats) = self.before_bn(tape, x, ctx)?;
        Ok(Split {
            y,
            bn: Some(&self.bn2),
            stats,
        })
    }
}
