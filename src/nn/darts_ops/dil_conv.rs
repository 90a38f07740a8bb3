//! The dilated convolution candidates (`dil_conv_3x3`, `dil_conv_5x5`).

use super::candidate::{CandidateOp, EndsInBn};
use crate::autodiff::{Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{visit_named, BatchNorm2d, BeforeBn, ConvShape, Ctx, Module, ReluDwPwBn, Slot};
use rand::Rng;

/// ReLU → dilated depthwise k (stride s, dilation d) → 1×1 → BN.
pub struct DilConv(pub ReluDwPwBn);

impl DilConv {
    /// `shape`: the depthwise conv's kernel, stride, padding and dilation.
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, shape: ConvShape, affine: bool) -> Result<Self> {
        Ok(DilConv(ReluDwPwBn::new(gpu, rng, shape, affine)?))
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        CandidateOp::forward(self, tape, x, ctx)
    }
}

impl EndsInBn for DilConv {
    fn final_bn(&self) -> &BatchNorm2d {
        &self.0.bn
    }

    fn before_bn(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<BeforeBn> {
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
