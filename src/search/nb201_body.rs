//! The NAS-Bench-201 network around its cells, shared by the supernet (cells of mixed ops) and
//! the retrained network (cells of fixed ops): stem, 3 stages of cells joined by residual
//! blocks, BN → ReLU, pooling, classifier. Both keep upstream's state names (`stem.0`,
//! `cells.{k}`, `lastact.0`, `classifier`) and draw weights from the RNG in the same order.

use crate::autodiff::{PoolCfg, Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::darts_ops::ReluConvBn;
use crate::nn::ConvShape;
use crate::nn::{join, BatchNorm2d, Conv2d, Ctx, Linear, Module, Slot};
use rand::Rng;

/// a = ReLUConvBN(in→out, 3×3, s2), b = ReLUConvBN(out→out, 3×3); shortcut = avgpool 2 → 1×1.
struct ResBlock {
    conv_a: ReluConvBn,
    conv_b: ReluConvBn,
    shortcut: Conv2d,
}

enum Block<C> {
    Cell(C),
    Res(Box<ResBlock>),
}

/// Everything of a NAS-Bench-201 network but what is inside its cells (`C`).
pub(crate) struct Nb201Body<C> {
    stem_conv: Conv2d,
    stem_bn: BatchNorm2d,
    blocks: Vec<Block<C>>,
    last_bn: BatchNorm2d,
    classifier: Linear,
}

/// How a cell visits its parameters below the block's prefix.
pub(crate) type VisitCell<'a, C> = dyn Fn(&'a C, &str, &mut dyn FnMut(&str, Slot<'a>));

impl<C> Nb201Body<C> {
    /// `cell(rng, c)` builds one cell of `c` channels, in network order.
    pub(crate) fn new<R: Rng>(
        gpu: &Gpu,
        rng: &mut R,
        channels: usize,
        cells_per_stage: usize,
        classes: usize,
        mut cell: impl FnMut(&mut R, usize) -> Result<C>,
    ) -> Result<Self> {
        let stem_conv = Conv2d::new(gpu, rng, ConvShape::new([3, channels, 3], 1, 1), false)?;
        let stem_bn = BatchNorm2d::new(gpu, channels, true)?;
        let mut blocks = Vec::new();
        let mut c = channels;
        for stage in 0..3 {
            if stage > 0 {
                blocks.push(Block::Res(Box::new(ResBlock {
                    conv_a: ReluConvBn::nb201(gpu, rng, ConvShape::new([c, 2 * c, 3], 2, 1), true)?,
                    conv_b: ReluConvBn::nb201(
                        gpu,
                        rng,
                        ConvShape::new([2 * c, 2 * c, 3], 1, 1),
                        true,
                    )?,
                    shortcut: Conv2d::new(gpu, rng, ConvShape::new([c, 2 * c, 1], 1, 0), false)?,
                })));
                c *= 2;
            }
            for _ in 0..cells_per_stage {
                blocks.push(Block::Cell(cell(rng, c)?));
            }
        }
        let last_bn = BatchNorm2d::new(gpu, c, true)?;
        let classifier = Linear::new(gpu, rng, c, classes)?;
        Ok(Nb201Body {
            stem_conv,
            stem_bn,
            blocks,
            last_bn,
            classifier,
        })
    }

    /// Logits for `x`; `cell(tape, cell, h)` runs one cell on its input.
    pub(crate) fn forward(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
        mut cell: impl FnMut(&mut Tape, &C, Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let h = self.stem_conv.forward(tape, x)?;
        let mut h = self.stem_bn.forward(tape, &h, ctx)?;
        for b in &self.blocks {
            h = match b {
                Block::Cell(c) => cell(tape, c, h)?,
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

    pub(crate) fn visit<'a>(
        &'a self,
        prefix: &str,
        f: &mut dyn FnMut(&str, Slot<'a>),
        cell: &VisitCell<'a, C>,
    ) {
        self.stem_conv.visit(&join(prefix, "stem.0"), f);
        self.stem_bn.visit(&join(prefix, "stem.1"), f);
        for (k, b) in self.blocks.iter().enumerate() {
            let p = join(prefix, &format!("cells.{k}"));
            match b {
                Block::Cell(c) => cell(c, &p, f),
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
