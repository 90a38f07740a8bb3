//! The DARTS evaluation network built from a genotype (SPEC §8): stem, cells whose nodes are
//! op1(h1) + op2(h2), affine batch norm, drop path on non-identity ops, an optional auxiliary
//! head after cell 2L/3, global pooling and classifier. State names follow the reference's
//! `NetworkCIFAR` (`cells.i._ops.k.op.1.weight`, `auxiliary_head.features.2.weight`, …).

use crate::autodiff::{PoolCfg, Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::darts_ops::{Candidate, NoiseSource, Role};
use crate::nn::ConvShape;
use crate::nn::{join, BatchNorm2d, Conv2d, Ctx, Linear, Module, Slot};
use crate::search::darts_net::{CellInputs, Stem};
use crate::search::genotype::Genotype;
use rand::Rng;
use std::rc::Rc;

/// Shape of an evaluation network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EvalConfig {
    pub channels: usize,
    pub layers: usize,
    pub classes: usize,
    pub auxiliary: bool,
}

impl Default for EvalConfig {
    /// The paper's CIFAR-10 network: C = 36, 20 cells, auxiliary head.
    fn default() -> Self {
        EvalConfig {
            channels: 36,
            layers: 20,
            classes: 10,
            auxiliary: true,
        }
    }
}

struct EvalCell {
    reduction: bool,
    inputs: CellInputs,
    ops: Vec<Candidate>,
    indices: Vec<usize>,
    concat: Vec<usize>,
}

/// Per-forward settings of the evaluation network.
#[derive(Clone, Copy)]
pub struct EvalCtx<'a> {
    pub ctx: Ctx,
    /// Drop-path scales per cell op call: (mask / keep) per sample, one tensor per use; None
    /// when drop path is off (eval mode, or p = 0).
    pub drop: Option<&'a dyn Fn() -> Result<Tensor>>,
}

impl EvalCtx<'_> {
    /// Eval mode without drop path: measuring the network, testing it.
    pub fn inference() -> Self {
        EvalCtx {
            ctx: Ctx { train: false },
            drop: None,
        }
    }
}

impl EvalCell {
    fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        (genes, concat): (&[(String, usize)], &[usize]),
        (c_pp, c_p, c): (usize, usize, usize),
        (reduction, reduction_prev): (bool, bool),
        noise: Option<&Rc<NoiseSource>>,
    ) -> Result<Self> {
        let inputs = CellInputs::new(gpu, rng, (c_pp, c_p, c), reduction_prev, true)?;
        let mut ops = Vec::new();
        let mut indices = Vec::new();
        for (name, index) in genes {
            let stride = if reduction && *index < 2 { 2 } else { 1 };
            ops.push(Candidate::darts(
                gpu,
                rng,
                name,
                (c, stride),
                Role::Retrain,
                noise,
            )?);
            indices.push(*index);
        }
        Ok(EvalCell {
            reduction,
            inputs,
            ops,
            indices,
            concat: concat.to_vec(),
        })
    }

    fn forward(&self, tape: &mut Tape, s0: &Tensor, s1: &Tensor, ec: EvalCtx) -> Result<Tensor> {
        let mut states = self.inputs.forward(tape, s0, s1, ec.ctx)?;
        for i in 0..self.ops.len() / 2 {
            let mut h = Vec::with_capacity(2);
            for k in [2 * i, 2 * i + 1] {
                let op = &self.ops[k];
                let mut y = op.forward(tape, &states[self.indices[k]], ec.ctx)?;
                if let (Some(drop), false) = (ec.drop, matches!(op, Candidate::Identity)) {
                    y = tape.scale_rows(&y, &drop()?)?;
                }
                h.push(y);
            }
            states.push(tape.sum(&[&h[0], &h[1]])?);
        }
        let outs: Vec<&Tensor> = self.concat.iter().map(|&i| &states[i]).collect();
        tape.concat(&outs)
    }
}

impl Module for EvalCell {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.inputs.visit_with_ops(prefix, &self.ops, f);
    }
}

/// ReLU → avgpool 5 s3 → 1×1 conv (→128) → BN → ReLU → 2×2 conv (→768) → BN → ReLU → linear.
struct AuxHead {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    classifier: Linear,
}

impl AuxHead {
    fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        let h = tape.relu(x)?;
        let h = tape.avg_pool2d(&h, PoolCfg::new(5, 3, 0))?;
        let h = self.conv1.forward(tape, &h)?;
        let h = self.bn1.forward(tape, &h, ctx)?;
        let h = tape.relu(&h)?;
        let h = self.conv2.forward(tape, &h)?;
        let h = self.bn2.forward(tape, &h, ctx)?;
        let h = tape.relu(&h)?;
        let (n, c, hh, ww) = h.nchw("auxiliary head")?;
        if hh * ww != 1 {
            return Err(Error::shape(
                "auxiliary head",
                format!("expects an 8×8 feature map (32×32 input), got {hh}×{ww} after pooling"),
            ));
        }
        let flat = tape.reshape(&h, &[n, c])?;
        self.classifier.forward(tape, &flat)
    }
}

impl Module for AuxHead {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.conv1.visit(&join(prefix, "features.2"), f);
        self.bn1.visit(&join(prefix, "features.3"), f);
        self.conv2.visit(&join(prefix, "features.5"), f);
        self.bn2.visit(&join(prefix, "features.6"), f);
        self.classifier.visit(&join(prefix, "classifier"), f);
    }
}

/// The discrete DARTS network for a genotype.
pub struct DartsEvalNetwork {
    pub config: EvalConfig,
    stem: Stem,
    cells: Vec<EvalCell>,
    aux_head: Option<AuxHead>,
    aux_after: usize,
    classifier: Linear,
    /// Where `noise` genes draw from (a genotype of RobustDARTS' S4 may have them).
    noise: Option<Rc<NoiseSource>>,
}

impl DartsEvalNetwork {
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        genotype: &Genotype,
        config: EvalConfig,
    ) -> Result<Self> {
        genotype.validate()?;
        let genes = genotype.normal.iter().chain(&genotype.reduce);
        let noise = match genes.clone().any(|(op, _)| op == "noise") {
            true => Some(NoiseSource::new(gpu)?),
            false => None,
        };
        let nodes = genotype.normal.len() / 2;
        for (kind, concat, n) in [
            ("normal", &genotype.normal_concat, nodes),
            ("reduce", &genotype.reduce_concat, genotype.reduce.len() / 2),
        ] {
            if concat.iter().any(|&i| i >= 2 + n) {
                return Err(Error::Invalid(format!(
                    "{kind}_concat {concat:?} names a state the cell does not have"
                )));
            }
        }
        if config.layers < 3 || config.channels == 0 || config.classes < 2 {
            return Err(Error::Invalid(format!(
                "invalid evaluation network {config:?}: need at least 3 cells, C ≥ 1, 2 classes"
            )));
        }
        let aux_after = 2 * config.layers / 3;
        let mut c_aux = 0;
        let (stem, cells, c_p) = Stem::with_cells(
            gpu,
            rng,
            config.channels,
            config.layers,
            |rng, i, chans, reduction, prev| {
                let (genes, concat) = if reduction {
                    (&genotype.reduce, &genotype.reduce_concat)
                } else {
                    (&genotype.normal, &genotype.normal_concat)
                };
                let kind = (reduction, prev);
                let cell = EvalCell::new(gpu, rng, (genes, concat), chans, kind, noise.as_ref())?;
                let c_out = concat.len() * chans.2;
                if i == aux_after {
                    c_aux = c_out;
                }
                Ok((cell, c_out))
            },
        )?;
        let aux_head = if config.auxiliary {
            Some(AuxHead {
                conv1: Conv2d::new(gpu, rng, ConvShape::new([c_aux, 128, 1], 1, 0), false)?,
                bn1: BatchNorm2d::new(gpu, 128, true)?,
                conv2: Conv2d::new(gpu, rng, ConvShape::new([128, 768, 2], 1, 0), false)?,
                bn2: BatchNorm2d::new(gpu, 768, true)?,
                classifier: Linear::new(gpu, rng, 768, config.classes)?,
            })
        } else {
            None
        };
        let classifier = Linear::new(gpu, rng, c_p, config.classes)?;
        Ok(DartsEvalNetwork {
            config,
            stem,
            cells,
            aux_head,
            aux_after,
            classifier,
            noise,
        })
    }

    /// Whether cell `i` is a reduction cell.
    pub fn is_reduction(&self, i: usize) -> bool {
        self.cells[i].reduction
    }
}

impl super::EvalNet for DartsEvalNetwork {
    /// Logits, and the auxiliary head's logits when it exists and `ec.ctx.train`.
    fn forward(&self, tape: &mut Tape, x: &Tensor, ec: EvalCtx) -> Result<super::Logits> {
        let (mut s0, mut s1) = self.stem.forward(tape, x, ec.ctx)?;
        let mut aux = None;
        for (i, cell) in self.cells.iter().enumerate() {
            let out = cell.forward(tape, &s0, &s1, ec)?;
            (s0, s1) = (s1, out);
            if i == self.aux_after && ec.ctx.train {
                if let Some(head) = &self.aux_head {
                    aux = Some(head.forward(tape, &s1, ec.ctx)?);
                }
            }
        }
        let pooled = tape.global_avg_pool(&s1)?;
        Ok((self.classifier.forward(tape, &pooled)?, aux))
    }

    fn count_without_aux(&self) -> usize {
        crate::nn::parameters(self, "")
            .iter()
            .filter(|(n, _)| !n.starts_with("auxiliary_head"))
            .map(|(_, t)| t.numel())
            .sum()
    }

    fn noise(&self) -> Option<&NoiseSource> {
        self.noise.as_deref()
    }
}

impl Module for DartsEvalNetwork {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.stem.visit_with_cells(prefix, &self.cells, f);
        if let Some(h) = &self.aux_head {
            h.visit(&join(prefix, "auxiliary_head"), f);
        }
        self.classifier.visit(&join(prefix, "classifier"), f);
    }
}
