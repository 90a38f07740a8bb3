//! A cell's `preprocess0`.

use super::{FactorizedReduce, ReluConvBn};
use crate::autodiff::{Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::ConvShape;
use crate::nn::{Ctx, Module, Slot};
use rand::Rng;

/// A cell's `preprocess0`: FactorizedReduce after a reduction cell, else ReLU-conv1×1-BN.
pub enum Preprocess {
    Relu(ReluConvBn),
    Reduce(FactorizedReduce),
}

impl Preprocess {
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        c_in: usize,
        c: usize,
        reduction_prev: bool,
        affine: bool,
    ) -> Result<Self> {
        Ok(if reduction_prev {
            Preprocess::Reduce(FactorizedReduce::new(gpu, rng, c_in, c, affine)?)
        } else {
            Preprocess::Relu(ReluConvBn::new(
                gpu,
                rng,
                ConvShape::new([c_in, c, 1], 1, 0),
                affine,
            )?)
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        match self {
            Preprocess::Relu(p) => p.forward(tape, x, ctx),
            Preprocess::Reduce(p) => p.forward(tape, x, ctx),
        }
    }
}

impl Module for Preprocess {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        match self {
            Preprocess::Relu(p) => p.visit(prefix, f),
            Preprocess::Reduce(p) => p.visit(prefix, f),
        }
    }
}
