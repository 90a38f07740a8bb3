//! The dilated convolution candidates (`dil_conv_3x3`, `dil_conv_5x5`).

use super::candidate::{CandidateOp, EndsInBn};
use crate::autodiff::{ChannelStats, Conv2dCfg, Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{visit_named, BatchNorm2d, Ctx, Module, ReluDwPwBn, Slot};
use rand::Rng;

/// ReLU → dilated depthwise k (stride s, dilation d) → 1×1 → BN.
pub struct DilConv(pub ReluDwPwBn);

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
        let cfg = Conv2dCfg::new(stride, pad).dilation(dil);
        Ok(DilConv(ReluDwPwBn::new(
            gpu,
            rng,
            [cin, cout, k],
            cfg,
            affine,
        )?))
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        CandidateOp::forward(self, tape, x, ctx)
    }
}

impl EndsInBn for DilConv {
    fn final_bn(&self) -> &BatchNorm2d {
        &self.0.bn
    }

    fn before_bn(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        self.0.before_bn(tape, x, ctx)
    }
}

impl Module for DilConv {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        let b = &self.0;
        visit_named(
            prefix,
            &[("op.1", &b.dw), ("op.2", &b.pw), ("op.3", &b.bn)],
            f,
        );
    }
}
