//! The dilated convolution candidates (`dil_conv_3x3`, `dil_conv_5x5`).

use super::candidate::{CandidateOp, Pooled, Split};
use crate::autodiff::{Conv2dCfg, Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{join, BatchNorm2d, Conv2d, Ctx, Module, Slot};
use rand::Rng;

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

impl CandidateOp for DilConv {
    fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        DilConv::forward(self, tape, x, ctx)
    }

    fn forward_split(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
        _: Option<&Pooled>,
    ) -> Result<Split<'_>> {
        if !Split::can_leave(&self.bn, ctx) {
            return Ok(Split::whole(self.forward(tape, x, ctx)?));
        }
        let (y, stats) = Conv2d::relu_dw_pw_stats(tape, x, &self.dw, &self.pw, ctx)?;
        Ok(Split {
            y,
            bn: Some(&self.bn),
            stats,
        })
    }
}
