//! ReLU → conv → BN: a cell's 1×1 preprocessing, NAS-Bench-201's `nor_conv_k×k` candidates.

use super::candidate::{CandidateOp, EndsInBn};
use crate::autodiff::{ChannelStats, Conv2dCfg, Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{visit_named, BatchNorm2d, Conv2d, Ctx, Module, Slot};
use rand::Rng;

/// ReLU → conv → BN.
pub struct ReluConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

impl ReluConvBn {
    /// The DARTS variant: no conv bias.
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

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        CandidateOp::forward(self, tape, x, ctx)
    }
}

impl EndsInBn for ReluConvBn {
    fn final_bn(&self) -> &BatchNorm2d {
        &self.bn
    }

    fn before_bn(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        self.conv.forward_relu_stats(tape, x, ctx)
    }
}

impl Module for ReluConvBn {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        visit_named(prefix, &[("op.1", &self.conv), ("op.2", &self.bn)], f);
    }
}
