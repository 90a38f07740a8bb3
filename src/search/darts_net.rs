//! The DARTS search network (SPEC §3): stem, cells with mixed edges shared α per cell type,
//! global pooling and classifier; DARTS- adds β·aux on every edge.

use super::supernet::{Beta, EdgeOps, Supernet};
use crate::autodiff::{Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::darts_ops::{DartsSpace, NoiseSource, Preprocess, ReluConvBn};
use crate::nn::mixed::{EdgeWeights, MixedOp, NodeSum, SharedPools};
use crate::nn::ConvShape;
use crate::nn::{join, BatchNorm2d, Conv2d, Ctx, Linear, Module, Slot};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::rc::Rc;

/// Shape of a DARTS search network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DartsConfig {
    /// Initial channels C.
    pub channels: usize,
    /// Number of cells L (reductions at ⌊L/3⌋ and ⌊2L/3⌋).
    pub layers: usize,
    pub classes: usize,
    /// Intermediate nodes per cell.
    pub nodes: usize,
    /// The DARTS- auxiliary skip on every edge.
    pub aux: bool,
    /// The candidates of each edge: DARTS' eight, or RobustDARTS' S1–S4 lists.
    #[serde(default)]
    pub candidates: DartsSpace,
}

impl Default for DartsConfig {
    fn default() -> Self {
        DartsConfig {
            channels: 16,
            layers: 8,
            classes: 10,
            nodes: 4,
            aux: true,
            candidates: DartsSpace::Darts,
        }
    }
}

impl DartsConfig {
    pub fn edges(&self) -> usize {
        (0..self.nodes).map(|i| i + 2).sum()
    }
    pub fn is_reduction(&self, cell: usize) -> bool {
        is_reduction(cell, self.layers)
    }

    /// Every edge's candidates in a normal (`reduction` false) or reduction cell.
    pub fn edge_ops(&self, reduction: bool) -> Result<Vec<&'static [&'static str]>> {
        self.candidates.cell_ops(reduction, self.edges())
    }
}

/// Whether cell `i` of `layers` is a reduction cell (⌊L/3⌋, ⌊2L/3⌋), in both networks.
fn is_reduction(i: usize, layers: usize) -> bool {
    i == layers / 3 || i == 2 * layers / 3
}

/// The stem both DARTS networks (search and retraining) start with: 3×3 conv (3 → `c_stem`)
/// and batch norm, whose output is both inputs of the first cell.
pub(crate) struct Stem {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl Stem {
    fn new(gpu: &Gpu, rng: &mut impl Rng, c_stem: usize) -> Result<Self> {
        Ok(Stem {
            conv: Conv2d::new(gpu, rng, ConvShape::new([3, c_stem, 3], 1, 1), false)?,
            bn: BatchNorm2d::new(gpu, c_stem, true)?,
        })
    }

    /// The stem (3C channels) and `layers` cells of C channels, doubled at the reduction
    /// cells ⌊L/3⌋ and ⌊2L/3⌋. `cell(rng, i, (c_pp, c_p, c), reduction, reduction_prev)` builds
    /// cell `i` and says how many channels it puts out; the last cell's count is returned.
    pub(crate) fn with_cells<R: Rng, C>(
        gpu: &Gpu,
        rng: &mut R,
        c: usize,
        layers: usize,
        mut cell: impl FnMut(&mut R, usize, (usize, usize, usize), bool, bool) -> Result<(C, usize)>,
    ) -> Result<(Stem, Vec<C>, usize)> {
        let c_stem = 3 * c;
        let stem = Stem::new(gpu, rng, c_stem)?;
        let (mut c_pp, mut c_p, mut c_cur) = (c_stem, c_stem, c);
        let mut cells = Vec::new();
        let mut reduction_prev = false;
        for i in 0..layers {
            let reduction = is_reduction(i, layers);
            if reduction {
                c_cur *= 2;
            }
            let (made, c_out) = cell(rng, i, (c_pp, c_p, c_cur), reduction, reduction_prev)?;
            cells.push(made);
            reduction_prev = reduction;
            (c_pp, c_p) = (c_p, c_out);
        }
        Ok((stem, cells, c_p))
    }

    /// (s0, s1) for the first cell.
    pub(crate) fn forward(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
    ) -> Result<(Tensor, Tensor)> {
        let h = self.conv.forward(tape, x)?;
        let stem = self.bn.forward(tape, &h, ctx)?;
        Ok((stem.clone(), stem))
    }

    /// The stem (`stem.0`, `stem.1`) and the cells (`cells.{i}`), as upstream names them.
    pub(crate) fn visit_with_cells<'a, C: Module>(
        &'a self,
        prefix: &str,
        cells: &'a [C],
        f: &mut dyn FnMut(&str, Slot<'a>),
    ) {
        self.conv.visit(&join(prefix, "stem.0"), f);
        self.bn.visit(&join(prefix, "stem.1"), f);
        for (i, cell) in cells.iter().enumerate() {
            cell.visit(&join(prefix, &format!("cells.{i}")), f);
        }
    }
}

/// A DARTS cell's preprocessing of its inputs c_{k-2} (halved after a reduction cell) and
/// c_{k-1} to C channels, shared by the search and the retraining cells.
pub(crate) struct CellInputs {
    pre0: Preprocess,
    pre1: ReluConvBn,
}

impl CellInputs {
    pub(crate) fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        (c_pp, c_p, c): (usize, usize, usize),
        reduction_prev: bool,
        affine: bool,
    ) -> Result<Self> {
        let pre0 = Preprocess::new(gpu, rng, c_pp, c, reduction_prev, affine)?;
        let pre1 = ReluConvBn::new(gpu, rng, ConvShape::new([c_p, c, 1], 1, 0), affine)?;
        Ok(CellInputs { pre0, pre1 })
    }

    /// The cell's first two states.
    pub(crate) fn forward(
        &self,
        tape: &mut Tape,
        s0: &Tensor,
        s1: &Tensor,
        ctx: Ctx,
    ) -> Result<Vec<Tensor>> {
        let s0 = self.pre0.forward(tape, s0, ctx)?;
        let s1 = self.pre1.forward(tape, s1, ctx)?;
        Ok(vec![s0, s1])
    }

    /// The preprocessing and then the cell's `ops` (`_ops.{k}`), as upstream names them.
    pub(crate) fn visit_with_ops<'a, M: Module>(
        &'a self,
        prefix: &str,
        ops: &'a [M],
        f: &mut dyn FnMut(&str, Slot<'a>),
    ) {
        self.pre0.visit(&join(prefix, "preprocess0"), f);
        self.pre1.visit(&join(prefix, "preprocess1"), f);
        for (k, op) in ops.iter().enumerate() {
            op.visit(&join(prefix, &format!("_ops.{k}")), f);
        }
    }
}

pub struct SearchCell {
    pub reduction: bool,
    inputs: CellInputs,
    pub edges: Vec<MixedOp>,
    nodes: usize,
}

impl SearchCell {
    fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        cfg: &DartsConfig,
        (c_pp, c_p, c): (usize, usize, usize),
        (reduction, reduction_prev): (bool, bool),
        noise: Option<&Rc<NoiseSource>>,
    ) -> Result<Self> {
        let inputs = CellInputs::new(gpu, rng, (c_pp, c_p, c), reduction_prev, false)?;
        let lists = cfg.edge_ops(reduction)?;
        let mut edges = Vec::new();
        for i in 0..cfg.nodes {
            for j in 0..i + 2 {
                let stride = if reduction && j < 2 { 2 } else { 1 };
                let ops = lists[edges.len()];
                edges.push(MixedOp::new(gpu, rng, ops, c, stride, cfg.aux, noise)?);
            }
        }
        Ok(SearchCell {
            reduction,
            inputs,
            edges,
            nodes: cfg.nodes,
        })
    }

    fn forward(
        &self,
        tape: &mut Tape,
        s0: &Tensor,
        s1: &Tensor,
        w: &Tensor,
        beta: Beta,
        ctx: Ctx,
    ) -> Result<Tensor> {
        let mut states = self.inputs.forward(tape, s0, s1, ctx)?;
        let mut offset = 0;
        let mut pools = SharedPools::default();
        for _ in 0..self.nodes {
            let mut node = NodeSum::default();
            for (j, h) in states.iter().enumerate() {
                let ew = EdgeWeights {
                    table: w,
                    edge: offset + j,
                    beta,
                };
                node.add_edge(tape, &self.edges[offset + j], h, ew, &mut pools, ctx)?;
            }
            offset += states.len();
            states.push(node.finish(tape)?);
        }
        let outs: Vec<&Tensor> = states[2..].iter().collect();
        tape.concat(&outs)
    }
}

impl Module for SearchCell {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.inputs.visit_with_ops(prefix, &self.edges, f);
    }
}

/// The DARTS supernet.
pub struct DartsNetwork {
    pub config: DartsConfig,
    stem: Stem,
    pub cells: Vec<SearchCell>,
    classifier: Linear,
    pub alphas_normal: Tensor,
    pub alphas_reduce: Tensor,
    /// Where the `noise` candidates draw from (spaces that have them).
    noise: Option<Rc<NoiseSource>>,
}

impl DartsNetwork {
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, config: DartsConfig) -> Result<Self> {
        if config.channels == 0 || config.layers < 3 || config.nodes == 0 || config.classes < 2 {
            return Err(Error::Invalid(format!(
                "invalid DARTS network: C = {}, {} cells, {} nodes, {} classes (need C ≥ 1, at least 3 cells so both reduction cells exist, ≥ 1 node, ≥ 2 classes)",
                config.channels, config.layers, config.nodes, config.classes
            )));
        }
        // Every list is known before any weight is drawn: a bad space stops here.
        config.edge_ops(false)?;
        let noise = match config.candidates.has_noise() {
            true => Some(NoiseSource::new(gpu)?),
            false => None,
        };
        let c = config.channels;
        let (stem, cells, c_p) = Stem::with_cells(
            gpu,
            rng,
            c,
            config.layers,
            |rng, _, chans, reduction, prev| {
                let cell =
                    SearchCell::new(gpu, rng, &config, chans, (reduction, prev), noise.as_ref())?;
                Ok((cell, config.nodes * chans.2))
            },
        )?;
        let classifier = Linear::new(gpu, rng, c_p, config.classes)?;
        let (e, k) = (config.edges(), config.candidates.width());
        let mut alpha = || -> Result<Tensor> {
            let data: Vec<f32> = (0..e * k)
                .map(|_| 1e-3 * Distribution::<f64>::sample(&StandardNormal, &mut *rng) as f32)
                .collect();
            Tensor::parameter(gpu, &[e, k], &data)
        };
        let alphas_normal = alpha()?;
        let alphas_reduce = alpha()?;
        Ok(DartsNetwork {
            config,
            stem,
            cells,
            classifier,
            alphas_normal,
            alphas_reduce,
            noise,
        })
    }
}

impl Module for DartsNetwork {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.stem.visit_with_cells(prefix, &self.cells, f);
        self.classifier.visit(&join(prefix, "classifier"), f);
    }
}

impl Supernet for DartsNetwork {
    fn forward(&self, tape: &mut Tape, x: &Tensor, beta: Beta, ctx: Ctx) -> Result<Tensor> {
        let (_, ch, _, _) = x.nchw("DARTS network input")?;
        if ch != 3 {
            return Err(Error::shape(
                "DARTS network input",
                format!("expected 3 colour channels, got {ch}"),
            ));
        }
        let beta = if self.config.aux { beta } else { None };
        let w_normal = tape.softmax_rows(&self.alphas_normal)?;
        let w_reduce = tape.softmax_rows(&self.alphas_reduce)?;
        let (mut s0, mut s1) = self.stem.forward(tape, x, ctx)?;
        for cell in &self.cells {
            let w = if cell.reduction { &w_reduce } else { &w_normal };
            let out = cell.forward(tape, &s0, &s1, w, beta, ctx)?;
            (s0, s1) = (s1, out);
        }
        drop(s0);
        let pooled = tape.global_avg_pool(&s1)?;
        self.classifier.forward(tape, &pooled)
    }

    fn alphas(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("alphas_normal", &self.alphas_normal),
            ("alphas_reduce", &self.alphas_reduce),
        ]
    }

    fn edge_ops(&self) -> Result<Vec<EdgeOps>> {
        Ok(vec![
            ("alphas_normal", self.config.edge_ops(false)?),
            ("alphas_reduce", self.config.edge_ops(true)?),
        ])
    }

    fn noise(&self) -> Option<&NoiseSource> {
        self.noise.as_deref()
    }
}
