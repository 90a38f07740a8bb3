//! The NAS-Bench-201 search network (SPEC §7): stem, 3 stages of 5 cells joined by residual
//! blocks, one α (6 edges × 5 ops) shared by all cells; DARTS- adds β·x on every edge.
//! State names follow the benchmark's reference code (`cells.k.edges.1<-0.2.op.1.weight`).

use super::nb201_body::Nb201Body;
use super::supernet::{Beta, EdgeOps, Supernet};
use crate::autodiff::{Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::mixed::{EdgeWeights, MixedOp, NodeSum, SharedPools};
use crate::nn::{join, Ctx, Module, Slot};
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

pub struct Nb201Network {
    pub config: Nb201Config,
    body: Nb201Body<Nb201Cell>,
    pub alphas: Tensor,
}

impl Nb201Network {
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, config: Nb201Config) -> Result<Self> {
        if config.channels == 0 || config.cells_per_stage == 0 || config.classes < 2 {
            return Err(Error::Invalid(format!(
                "invalid NAS-Bench-201 network: C = {}, {} cells per stage, {} classes (need C ≥ 1, --cells-per-stage ≥ 1, ≥ 2 classes)",
                config.channels, config.cells_per_stage, config.classes
            )));
        }
        let body = Nb201Body::new(
            gpu,
            rng,
            config.channels,
            config.cells_per_stage,
            config.classes,
            |rng, c| {
                let edges = NB201_EDGES
                    .iter()
                    .map(|_| MixedOp::nb201(gpu, &mut *rng, &NB201_OPS, c, config.aux))
                    .collect::<Result<_>>()?;
                Ok(Nb201Cell { edges })
            },
        )?;
        let data: Vec<f32> = (0..NB201_EDGES.len() * NB201_OPS.len())
            .map(|_| 1e-3 * Distribution::<f64>::sample(&StandardNormal, &mut *rng) as f32)
            .collect();
        let alphas = Tensor::parameter(gpu, &[NB201_EDGES.len(), NB201_OPS.len()], &data)?;
        Ok(Nb201Network {
            config,
            body,
            alphas,
        })
    }
}

impl Module for Nb201Network {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.body.visit(prefix, f, &|cell, p, f| {
            for ((to, from), op) in NB201_EDGES.iter().zip(&cell.edges) {
                op.visit(&join(p, &format!("edges.{to}<-{from}")), f);
            }
        });
    }
}

impl Supernet for Nb201Network {
    fn forward(&self, tape: &mut Tape, x: &Tensor, beta: Beta, ctx: Ctx) -> Result<Tensor> {
        let beta = if self.config.aux { beta } else { None };
        let w = tape.softmax_rows(&self.alphas)?;
        self.body.forward(tape, x, ctx, |tape, cell, h| {
            let mut nodes = vec![h];
            let mut pools = SharedPools::default();
            for to in 1..4 {
                let mut node = NodeSum::default();
                for (e, &(t, from)) in NB201_EDGES.iter().enumerate() {
                    if t == to {
                        let ew = EdgeWeights {
                            table: &w,
                            edge: e,
                            beta,
                        };
                        let x = &nodes[from];
                        node.add_edge(tape, &cell.edges[e], x, ew, &mut pools, ctx)?;
                    }
                }
                nodes.push(node.finish(tape)?);
            }
            Ok(nodes.pop().expect("four nodes"))
        })
    }

    fn alphas(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("arch_parameters", &self.alphas)]
    }

    fn edge_ops(&self) -> Result<Vec<EdgeOps>> {
        Ok(vec![(
            "arch_parameters",
            vec![&NB201_OPS[..]; NB201_EDGES.len()],
        )])
    }
}
