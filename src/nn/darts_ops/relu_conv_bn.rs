//! ReLU → conv → BN: a cell's 1×1 preprocessing, NAS-Bench-201's `nor_conv_k×k` candidates.

use super::candidate::{CandidateOp, Pooled, Split};
use crate::autodiff::{Conv2dCfg, Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{join, BatchNorm2d, Conv2d, Ctx, Module, Slot};
use rand::Rng;

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

impl CandidateOp for ReluConvBn {
    fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        ReluConvBn::forward(self, tape, x, ctx)
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
        let (y, stats) = self.conv.forward_relu_stats(tape, x, ctx)?;
        Ok(Split {
            y,
            bn: Some(&self.bn),
            stats,
        })
    }
}
