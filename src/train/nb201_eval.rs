//! The NAS-Bench-201 training network for one cell (the benchmark's `TinyNetwork` with
//! `InferCell`s): stem, 3 stages of N cells joined by residual blocks, BN → ReLU, pooling,
//! classifier. Every edge holds one fixed op with affine batch norm; state names follow the
//! benchmark's code (`cells.k.layers.e.op.1.weight`, `cells.k.conv_a.op.1.weight`, …).

use super::darts_eval::EvalCtx;
use super::EvalNet;
use crate::autodiff::{Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::darts_ops::{Candidate, ReluConvBn};
use crate::nn::ConvShape;
use crate::nn::{join, Module, Slot};
use crate::search::nb201::{Nb201Arch, NB201_EDGES, NB201_OPS};
use crate::search::nb201_body::Nb201Body;
use rand::Rng;

pub struct Nb201EvalNetwork {
    arch: Nb201Arch,
    body: Nb201Body<Vec<Candidate>>,
}

/// One op of the trained cell: like the search ops but with affine batch norm (so convs have
/// no bias).
fn infer_op(gpu: &Gpu, rng: &mut impl Rng, name: &str, c: usize) -> Result<Candidate> {
    Ok(match name {
        "nor_conv_1x1" => Candidate::Conv(ReluConvBn::nb201(
            gpu,
            rng,
            ConvShape::new([c, c, 1], 1, 0),
            true,
        )?),
        "nor_conv_3x3" => Candidate::Conv(ReluConvBn::nb201(
            gpu,
            rng,
            ConvShape::new([c, c, 3], 1, 1),
            true,
        )?),
        other => Candidate::nb201(gpu, rng, other, c)?,
    })
}

impl Nb201EvalNetwork {
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        arch: &Nb201Arch,
        channels: usize,
        cells_per_stage: usize,
        classes: usize,
    ) -> Result<Self> {
        if channels == 0 || cells_per_stage == 0 || classes < 2 {
            return Err(Error::Invalid(format!("invalid NAS-Bench-201 network: C = {channels}, {cells_per_stage} cells per stage, {classes} classes")));
        }
        let body = Nb201Body::new(gpu, rng, channels, cells_per_stage, classes, |rng, c| {
            arch.ops
                .iter()
                .map(|&k| infer_op(gpu, &mut *rng, NB201_OPS[k], c))
                .collect()
        })?;
        Ok(Nb201EvalNetwork {
            arch: arch.clone(),
            body,
        })
    }

    pub fn arch(&self) -> &Nb201Arch {
        &self.arch
    }
}

impl EvalNet for Nb201EvalNetwork {
    fn forward(&self, tape: &mut Tape, x: &Tensor, ec: EvalCtx) -> Result<super::Logits> {
        let logits = self.body.forward(tape, x, ec.ctx, |tape, ops, h| {
            let mut nodes = vec![h];
            for to in 1..4 {
                let mut terms = Vec::new();
                for (e, &(t, from)) in NB201_EDGES.iter().enumerate() {
                    // A `none` edge adds nothing.
                    if t == to && !ops[e].is_zero() {
                        terms.push(ops[e].forward(tape, &nodes[from], ec.ctx)?);
                    }
                }
                let node = if terms.is_empty() {
                    Tensor::zeros(tape.gpu(), nodes[0].shape())?
                } else {
                    let refs: Vec<&Tensor> = terms.iter().collect();
                    tape.sum(&refs)?
                };
                nodes.push(node);
            }
            Ok(nodes.pop().expect("four nodes"))
        })?;
        Ok((logits, None))
    }

    fn count_without_aux(&self) -> usize {
        crate::nn::count_parameters(self)
    }
}

impl Module for Nb201EvalNetwork {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.body.visit(prefix, f, &|ops, p, f| {
            for (e, op) in ops.iter().enumerate() {
                op.visit(&join(p, &format!("layers.{e}")), f);
            }
        });
    }
}
