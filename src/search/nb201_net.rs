//! The NAS-Bench-201 search network (SPEC §7): stem, 3 stages of 5 cells joined by residual
//! blocks, one α (6 edges × 5 ops) shared by all cells; DARTS- adds β·x on every edge.
//! State names follow the benchmark's reference code (`cells.k.edges.1<-0.2.op.1.weight`).

use super::supernet::Supernet;
use crate::autodiff::{Conv2dCfg, PoolCfg, Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::darts_ops::ReluConvBn;
use crate::nn::mixed::MixedOp;
use crate::nn::{join, BatchNorm2d, Conv2d, Ctx, Linear, Module, Slot};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

pub use super::nb201::{NB201_EDGES, NB201_OPS};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Nb201Config {
    pub channels: usize,
    pub cells_per_stage: usize,
    pub classes: usize,
    pub aux: bool,
}

impl Default for Nb201Config {
    fn default() -> Self {
        Nb201Config {
            channels: 16,
            cells_per_stage: 5,
            classes: 10,
            aux: true,
        }
    }
}

struct Nb201Cell {
    edges: Vec<MixedOp>,
}

/// a = ReLUConvBN(in→out, 3×3, s2), b = ReLUConvBN(out→out, 3×3); shortcut = avgpool 2 → 1×1.
struct ResBlock {
    conv_a: ReluConvBn,
    conv_b: ReluConvBn,
    shortcut: Conv2d,
}

enum Block {
    Cell(Nb201Cell),
    Res(Box<ResBlock>),
}

pub struct Nb201Network {
    pub config: Nb201Config,
    stem_conv: Conv2d,
    stem_bn: BatchNorm2d,
    blocks: Vec<Block>,
    last_bn: BatchNorm2d,
    classifier: Linear,
    pub alphas: Tensor,
}

impl Nb201Network {
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, config: Nb201Config) -> Result<Self> {
        if config.channels == 0 || config.cells_per_stage == 0 || config.classes < 2 {
            return Err(Error::Invalid(format!(
                "invalid NAS-Bench-201 network: {config:?}"
            )));
        }
        let c0 = config.channels;
        let stem_conv = Conv2d::new(gpu, rng, 3, c0, 3, Conv2dCfg::new(1, 1), false)?;
        let stem_bn = BatchNorm2d::new(gpu, c0, true)?;
        let mut blocks = Vec::new();
        let mut c = c0;
        for stage in 0..3 {
            if stage > 0 {
                blocks.push(Block::Res(Box::new(ResBlock {
                    conv_a: ReluConvBn::nb201(gpu, rng, c, 2 * c, 3, 2, 1, true)?,
                    conv_b: ReluConvBn::nb201(gpu, rng, 2 * c, 2 * c, 3, 1, 1, true)?,
                    shortcut: Conv2d::new(gpu, rng, c, 2 * c, 1, Conv2dCfg::new(1, 0), false)?,
                })));
                c *= 2;
            }
            for _ in 0..config.cells_per_stage {
                let edges = NB201_EDGES
                    .iter()
                    .map(|_| MixedOp::nb201(gpu, rng, &NB201_OPS, c, config.aux))
                    .collect::<Result<_>>()?;
                blocks.push(Block::Cell(Nb201Cell { edges }));
            }
        }
        let last_bn = BatchNorm2d::new(gpu, c, true)?;
        let classifier = Linear::new(gpu, rng, c, config.classes)?;
        let data: Vec<f32> = (0..NB201_EDGES.len() * NB201_OPS.len())
            .map(|_| 1e-3 * Distribution::<f64>::sample(&StandardNormal, &mut *rng) as f32)
            .collect();
        let alphas = Tensor::parameter(gpu, &[NB201_EDGES.len(), NB201_OPS.len()], &data)?;
        Ok(Nb201Network {
            config,
            stem_conv,
            stem_bn,
            blocks,
            last_bn,
            classifier,
            alphas,
        })
    }
}

impl Module for Nb201Network {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.stem_conv.visit(&join(prefix, "stem.0"), f);
        self.stem_bn.visit(&join(prefix, "stem.1"), f);
        for (k, b) in self.blocks.iter().enumerate() {
            let p = join(prefix, &format!("cells.{k}"));
            match b {
                Block::Cell(cell) => {
                    for ((to, from), op) in NB201_EDGES.iter().zip(&cell.edges) {
                        op.visit(&join(&p, &format!("edges.{to}<-{from}")), f);
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

impl Supernet for Nb201Network {
    fn forward(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        beta: Option<(&Tensor, usize)>,
        ctx: Ctx,
    ) -> Result<Tensor> {
        let beta = if self.config.aux { beta } else { None };
        let w = tape.softmax_rows(&self.alphas)?;
        let h = self.stem_conv.forward(tape, x)?;
        let mut h = self.stem_bn.forward(tape, &h, ctx)?;
        for b in &self.blocks {
            h = match b {
                Block::Cell(cell) => {
                    let mut nodes = vec![h];
                    for to in 1..4 {
                        let mut terms = Vec::new();
                        for (e, &(t, from)) in NB201_EDGES.iter().enumerate() {
                            if t == to {
                                terms.push(cell.edges[e].forward(
                                    tape,
                                    &nodes[from],
                                    &w,
                                    e,
                                    beta,
                                    ctx,
                                )?);
                            }
                        }
                        let refs: Vec<&Tensor> = terms.iter().collect();
                        nodes.push(tape.sum(&refs)?);
                    }
                    nodes.pop().expect("four nodes")
                }
                Block::Res(r) => {
                    let a = r.conv_a.forward(tape, &h, ctx)?;
                    let b = r.conv_b.forward(tape, &a, ctx)?;
                    let pooled = tape.avg_pool2d(&h, PoolCfg::new(2, 2, 0))?;
                    let sc = r.shortcut.forward(tape, &pooled)?;
                    tape.sum(&[&sc, &b])?
                }
            };
        }
        let h = self.last_bn.forward(tape, &h, ctx)?;
        let h = tape.relu(&h)?;
        let pooled = tape.global_avg_pool(&h)?;
        self.classifier.forward(tape, &pooled)
    }

    fn alphas(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("arch_parameters", &self.alphas)]
    }

    fn op_names(&self) -> &'static [&'static str] {
        &NB201_OPS
    }
}
