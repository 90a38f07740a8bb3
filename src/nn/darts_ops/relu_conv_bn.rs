//! ReLU → conv → BN: a cell's 1×1 preprocessing, NAS-Bench-201's `nor_conv_k×k` candidates.

use super::candidate::{CandidateOp, EndsInBn};
use crate::autodiff::{Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{visit_named, BatchNorm2d, BeforeBn, Conv2d, ConvShape, Ctx, Module, Slot};
use rand::Rng;

/// ReLU → conv → BN.
pub struct ReluConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

impl ReluConvBn {
    /// The DARTS variant: no conv bias.
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, shape: ConvShape, affine: bool) -> Result<Self> {
        Self::build(gpu, rng, shape, affine, false)
    }

    /// NAS-Bench-201's variant: the conv has a bias exactly when the BN has no affine part.
    pub fn nb201(gpu: &Gpu, rng: &mut impl Rng, shape: ConvShape, affine: bool) -> Result<Self> {
        Self::build(gpu, rng, shape, affine, !affine)
    }

    fn build(
        gpu: &Gpu,
        rng: &mut impl Rng,
        s: ConvShape,
        affine: bool,
        bias: bool,
    ) -> Result<Self> {
        Ok(ReluConvBn {
            conv: Conv2d::new(gpu, rng, s, bias)?,
            bn: BatchNorm2d::new(gpu, s.cout, affine)?,
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        CandidateOp::forward(self, tape, x, ctx)
    }
}

impl EndsInBn for ReluConvBn {
    fn final_bn(&self) -> &BatchNorm2d {
        &self.bn
    }

    fn before_bn(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<BeforeBn> {
        self.conv.forward_relu_stats(tape, x, ctx)
    }
}

impl Module for ReluConvBn {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        visit_named(prefix, &[("op.1", &self.conv), ("op.2", &self.bn)], f);
    }
}
