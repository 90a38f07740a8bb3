//! What every candidate operation provides ([`CandidateOp`]) and the handle networks hold
//! ([`Candidate`]).

use super::{DilConv, FactorizedReduce, Identity, NoiseSource, Pool, ReluConvBn, SepConv, Zero};
use crate::autodiff::{ChannelStats, Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{BatchNorm2d, BeforeBn, Ctx, Module, Slot};
use rand::Rng;
use std::rc::Rc;

/// A cell state's max and avg 3×3 pooling at one stride, done once for every pooling candidate
/// of every edge that reads that state (see `nn::mixed::SharedPools`), each with its batch
/// norm's statistics where the pooling kernel wrote them. `None`: not needed by any edge yet.
#[derive(Default)]
pub struct Pooled {
    pub max: Option<(Tensor, Option<ChannelStats>)>,
    pub avg: Option<(Tensor, Option<ChannelStats>)>,
}

impl Pooled {
    /// The max (`max`) or avg pooling, where computed.
    pub fn get(&self, max: bool) -> Option<&(Tensor, Option<ChannelStats>)> {
        match max {
            true => self.max.as_ref(),
            false => self.avg.as_ref(),
        }
    }
}

/// A candidate's output for a mixed edge: either whole (`bn` None), or up to a final batch
/// norm (no affine part; train mode, or eval mode in an inference pass) that the edge applies
/// inside its weighted sum, with the statistics a train-mode one needs where the producing
/// kernel wrote them.
pub struct Split<'a> {
    pub y: Tensor,
    pub bn: Option<&'a BatchNorm2d>,
    pub stats: Option<ChannelStats>,
}

impl<'a> Split<'a> {
    pub fn whole(y: Tensor) -> Split<'a> {
        Split {
            y,
            bn: None,
            stats: None,
        }
    }

    /// Whether a final batch norm `bn` can be left to the edge: one without affine parameters
    /// (what every search candidate ends in), in train mode or in an inference pass (eval
    /// mode with nothing to differentiate), the two normalisations the edge's sums fold in.
    pub fn can_leave(bn: &BatchNorm2d, ctx: Ctx, tape: &Tape) -> bool {
        bn.affine.is_none() && (ctx.train || tape.is_inference())
    }
}

/// One candidate operation. A new one implements this in its own file and gets a row in its
/// space's table (`darts_ops/mod.rs`); nothing else names it.
pub trait CandidateOp: Module {
    fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor>;

    /// The output as the mixed edge wants it (see [`Split`]); a pooling candidate takes its
    /// pooled input from `pooled` when given. By default the whole output.
    fn forward_split(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
        _pooled: Option<&Pooled>,
    ) -> Result<Split<'_>> {
        Ok(Split::whole(self.forward(tape, x, ctx)?))
    }

    /// (max, stride) of a 3×3 pooling the edge may share with another pooling candidate.
    fn pooling(&self) -> Option<(bool, usize)> {
        None
    }

    /// The `none` op: its output is zero, so a mixed edge skips it.
    fn is_zero(&self) -> bool {
        false
    }
}

/// A candidate that ends in a batch norm (the conv candidates, FactorizedReduce): its whole
/// output and its split both follow from the part before that batch norm.
pub trait EndsInBn: Module {
    fn final_bn(&self) -> &BatchNorm2d;

    /// Everything up to the final batch norm, with that batch norm's statistics where the
    /// producing kernel wrote them.
    fn before_bn(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<BeforeBn>;
}

impl<T: EndsInBn> CandidateOp for T {
    fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        let (h, stats) = self.before_bn(tape, x, ctx)?;
        self.final_bn().forward_with_stats(tape, &h, stats, ctx)
    }

    fn forward_split(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
        _: Option<&Pooled>,
    ) -> Result<Split<'_>> {
        let bn = self.final_bn();
        if !Split::can_leave(bn, ctx, tape) {
            return Ok(Split::whole(CandidateOp::forward(self, tape, x, ctx)?));
        }
        let (y, stats) = self.before_bn(tape, x, ctx)?;
        Ok(Split {
            y,
            bn: Some(bn),
            stats,
        })
    }
}

/// Which network a DARTS candidate is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A search network's mixed edge: batch norms without affine parameters, and a batch norm
    /// after each pooling.
    Search,
    /// A retrained network (and RobustDARTS S4's `noise`, which the reference retrains as pure
    /// noise too): affine batch norms.
    Retrain,
}

/// One candidate operation on an edge. The variants other modules name (retraining builds
/// `Conv` and tells `Identity` apart) stay an enum; a candidate added later is `Other`.
pub enum Candidate {
    Zero(Zero),
    Pool(Pool),
    Identity,
    /// ReLU → conv → BN (NAS-Bench-201's nor_conv).
    Conv(ReluConvBn),
    Reduce(FactorizedReduce),
    Sep(SepConv),
    Dil(DilConv),
    Other(Box<dyn CandidateOp>),
}

impl Candidate {
    /// The DARTS-cell operation `name` (any of [`super::DARTS_FAMILY`]) on `c` channels, built
    /// for `role`; `noise` is where a `noise` candidate draws from (without one, `noise` is
    /// refused by name).
    pub fn darts(
        gpu: &Gpu,
        rng: &mut impl Rng,
        name: &str,
        (c, stride): (usize, usize),
        role: Role,
        noise: Option<&Rc<NoiseSource>>,
    ) -> Result<Candidate> {
        let search = role == Role::Search;
        let mut b = super::Build {
            gpu,
            rng,
            c,
            stride,
            affine: !search,
            search,
            noise,
        };
        super::DARTS_FAMILY.build(name, &mut b)
    }

    /// The NAS-Bench-201 operation `name` on `c` channels (stride 1, search: BN affine=False).
    pub fn nb201(gpu: &Gpu, rng: &mut impl Rng, name: &str, c: usize) -> Result<Candidate> {
        let mut b = super::Build {
            gpu,
            rng,
            c,
            stride: 1,
            affine: false,
            search: true,
            noise: None,
        };
        super::NB201.build(name, &mut b)
    }

    /// The operation behind the handle.
    pub fn op(&self) -> &dyn CandidateOp {
        match self {
            Candidate::Zero(op) => op,
            Candidate::Pool(op) => op,
            Candidate::Identity => &Identity,
            Candidate::Conv(op) => op,
            Candidate::Reduce(op) => op,
            Candidate::Sep(op) => op,
            Candidate::Dil(op) => op,
            Candidate::Other(op) => op.as_ref(),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.op().is_zero()
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        self.op().forward(tape, x, ctx)
    }
}

impl Module for Candidate {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.op().visit(prefix, f)
    }
}
