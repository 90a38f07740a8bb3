//! The separable convolution candidates (`sep_conv_3x3`, `sep_conv_5x5`).

use super::candidate::{CandidateOp, EndsInBn};
use crate::autodiff::{Conv2dCfg, Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{visit_named, BatchNorm2d, BeforeBn, ConvShape, Ctx, Module, ReluDwPwBn, Slot};
use rand::Rng;

/// ReLU → depthwise k (stride s) → 1×1 → BN → ReLU → depthwise k → 1×1 → BN: two
/// [`ReluDwPwBn`] blocks, the first keeping the channel count.
pub struct SepConv {
    pub first: ReluDwPwBn,
    pub second: ReluDwPwBn,
}

impl SepConv {
    /// `shape`: the first block's stride; the second keeps the size (stride 1).
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, shape: ConvShape, affine: bool) -> Result<Self> {
        let first = ConvShape {
            cout: shape.cin,
            ..shape
        };
        let second = ConvShape {
            cfg: Conv2dCfg {
                stride: 1,
                ..shape.cfg
            },
            ..shape
        };
        Ok(SepConv {
            first: ReluDwPwBn::new(gpu, rng, first, affine)?,
            second: ReluDwPwBn::new(gpu, rng, second, affine)?,
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        CandidateOp::forward(self, tape, x, ctx)
    }
}

impl EndsInBn for SepConv {
    fn final_bn(&self) -> &BatchNorm2d {
        &self.second.bn
    }

    fn before_bn(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<BeforeBn> {
        let h = self.first.forward(tape, x, ctx)?;
        self.second.before_bn(tape, &h, ctx)
    }
}

impl Module for SepConv {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        let (a, b) = (&self.first, &self.second);
        // op.0 and op.4 are the parameterless ReLUs of the reference Sequential.
        let parts: [(&str, &dyn Module); 6] = [
            ("op.1", &a.dw),
            ("op.2", &a.pw),
            ("op.3", &a.bn),
            ("op.5", &b.dw),
            ("op.6", &b.pw),
            ("op.7", &b.bn),
        ];
        visit_named(prefix, &parts, f);
    }
}
