//! The NAS-Bench-201 training network for one cell (the benchmark's `TinyNetwork` with
//! `InferCell`s): stem, 3 stages of N cells joined by residual blocks, BN → ReLU, pooling,
//! classifier. Every edge holds one fixed op with affine batch norm; state names follow the
//! benchmark's code (`cells.k.layers.e.op.1.weight`, `cells.k.conv_a.op.1.weight`, …).

use super::darts_eval::EvalCtx;
use super::EvalNet;
use crate::autodiff::{Conv2dCfg, PoolCfg, Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::darts_ops::{Candidate, ReluConvBn};
use crate::nn::{join, BatchNorm2d, Conv2d, Linear, Module, Slot};
use crate::search::nb201::{Nb201Arch, NB201_EDGES, NB201_OPS};
use rand::Rng;

struct ResBlock {
    conv_a: ReluConvBn,
    conv_b: ReluConvBn,
    shortcut: Conv2d,
}

enum Block {
    Cell(Vec<Candidate>),
    Res(Box<ResBlock>),
}

pub struct Nb201EvalNetwork {
    arch: Nb201Arch,
    stem_conv: Conv2d,
    stem_bn: BatchNorm2d,
    blocks: Vec<Block>,
    last_bn: BatchNorm2d,
    classifier: Linear,
}

/// One op of the trained cell: like the search ops but with affine batch norm (so convs have
/// no bias).
fn infer_op(gpu: &Gpu, rng: &mut impl Rng, name: &str, c: usize) -> Result<Candidate> {
    Ok(match name {
        "nor_conv_1x1" => Candidate::Conv(ReluConvBn::nb201(gpu, rng, c, c, 1, 1, 0, true)?),
        "nor_conv_3x3" => Candidate::Conv(ReluConvBn::nb201(gpu, rng, c, c, 3, 1, 1, true)?),
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
        let stem_conv = Conv2d::new(gpu, rng, 3, channels, 3, Conv2dCfg::new(1, 1), false)?;
        let stem_bn = BatchNorm2d::new(gpu, channels, true)?;
        let mut blocks = Vec::new();
        let mut c = channels;
        for stage in 0..3 {
            if stage > 0 {
                blocks.push(Block::Res(Box::new(ResBlock {
                    conv_a: ReluConvBn::nb201(gpu, rng, c, 2 * c, 3, 2, 1, true)?,
                    conv_b: ReluConvBn::nb201(gpu, rng, 2 * c, 2 * c, 3, 1, 1, true)?,
                    shortcut: Conv2d::new(gpu, rng, c, 2 * c, 1, Conv2dCfg::new(1, 0), false)?,
                })));
                c *= 2;
            }
            for _ in 0..cells_per_stage {
                let ops = arch
                    .ops
                    .iter()
                    .map(|&k| infer_op(gpu, rng, NB201_OPS[k], c))
                    .collect::<Result<_>>()?;
                blocks.push(Block::Cell(ops));
            }
        }
        Ok(Nb201EvalNetwork {
            arch: arch.clone(),
            stem_conv,
            stem_bn,
            blocks,
            last_bn: BatchNorm2d::new(gpu, c, true)?,
            classifier: Linear::new(gpu, rng, c, classes)?,
        })
    }

    pub fn arch(&self) -> &Nb201Arch {
        &self.arch
    }
}

impl EvalNet for Nb201EvalNetwork {
    fn forward(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ec: EvalCtx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let h = self.stem_conv.forward(tape, x)?;
        let mut h = self.stem_bn.forward(tape, &h, ec.ctx)?;
        for b in &self.blocks {
            h = match b {
                Block::Cell(ops) => {
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
                    nodes.pop().expect("four nodes")
                }
                Block::Res(r) => {
                    let a = r.conv_a.forward(tape, &h, ec.ctx)?;
                    let b = r.conv_b.forward(tape, &a, ec.ctx)?;
                    let pooled = tape.avg_pool2d(&h, PoolCfg::new(2, 2, 0))?;
                    let sc = r.shortcut.forward(tape, &pooled)?;
                    tape.sum(&[&sc, &b])?
                }
            };
        }
        let h = self.last_bn.forward(tape, &h, ec.ctx)?;
        let h = tape.relu(&h)?;
        let pooled = tape.global_avg_pool(&h)?;
        Ok((self.classifier.forward(tape, &pooled)?, None))
    }

    fn count_without_aux(&self) -> usize {
        crate::nn::count_parameters(self)
    }
}

impl Module for Nb201EvalNetwork {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.stem_conv.visit(&join(prefix, "stem.0"), f);
        self.stem_bn.visit(&join(prefix, "stem.1"), f);
        for (k, b) in self.blocks.iter().enumerate() {
            let p = join(prefix, &format!("cells.{k}"));
            match b {
                Block::Cell(ops) => {
                    for (e, op) in ops.iter().enumerate() {
                        op.visit(&join(&p, &format!("layers.{e}")), f);
                    }
                }
                Block::Res(r) => {
                    r.conv_a.visit(&join(&p, "conv_a"), f);
                    r.conv_b.visit(&join(&p, "conv_b"), f);
                    r.shortcut.visit(&join(&p, "downsample.1"), f);
                }
            }
        }
        self.last_bn.visit(&join(prefix, "lastact.0"), f);
        self.classifier.visit(&join(prefix, "classifier"), f);
    }
}
