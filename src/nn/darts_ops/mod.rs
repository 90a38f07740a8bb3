//! The candidate operations of the search spaces (SPEC §2), with the reference state names
//! (`op.1.weight`, `conv_1.weight`, `_ops.k.1.running_mean`, …), and one table per space:
//! each candidate's name (α column order), constructor and chart colour. Network
//! construction, name lists, genotype checks and report colours all read these tables, so a
//! new candidate is its own file plus a row here.

mod candidate;
mod dil_conv;
mod factorized_reduce;
mod noise;
mod pool;
mod preprocess;
mod relu_conv_bn;
mod sep_conv;
mod spaces;
mod trivial;

pub use candidate::{Candidate, CandidateOp, EndsInBn, Pooled, Role, Split};
pub use dil_conv::DilConv;
pub use factorized_reduce::FactorizedReduce;
pub use noise::{Noise, NoiseSource};
pub use pool::Pool;
pub use preprocess::Preprocess;
pub use relu_conv_bn::ReluConvBn;
pub use sep_conv::SepConv;
pub use spaces::DartsSpace;
pub use trivial::{Identity, Zero};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::ConvShape;
use rand::RngCore;
use std::rc::Rc;

/// An sRGB colour (report::Rgb).
pub type Rgb = (u8, u8, u8);

/// What a constructor gets: channels (in = out), stride, whether batch norms have affine
/// parameters, whether the op is built for a search (DARTS adds a BN after pooling), and the
/// search network's noise source (`noise` draws from it; none outside a search).
pub struct Build<'a> {
    pub gpu: &'a Gpu,
    pub rng: &'a mut dyn RngCore,
    pub c: usize,
    pub stride: usize,
    pub affine: bool,
    pub search: bool,
    pub noise: Option<&'a Rc<NoiseSource>>,
}

/// One row of a space's table.
#[derive(Clone, Copy)]
pub struct CandidateSpec {
    pub name: &'static str,
    pub build: fn(&mut Build) -> Result<Candidate>,
    /// Its colour in every chart and cell drawing (a name keeps one colour across spaces).
    pub colour: Rgb,
}

/// A search space's candidates, in α column order.
pub struct Space {
    /// How errors name the space.
    pub label: &'static str,
    pub ops: &'static [CandidateSpec],
}

impl Space {
    pub fn get(&self, name: &str) -> Result<&'static CandidateSpec> {
        self.ops.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.ops.iter().map(|s| s.name).collect();
            Error::Invalid(format!(
                "unknown {} operation '{name}'; known: {}",
                self.label,
                known.join(", ")
            ))
        })
    }

    pub fn build(&self, name: &str, b: &mut Build) -> Result<Candidate> {
        (self.get(name)?.build)(b)
    }
}

/// A pooling candidate: its BN only in a DARTS search (NAS-Bench-201 has none).
fn pool(b: &Build, max: bool, bn: bool) -> Result<Candidate> {
    let bn = if bn {
        Some(crate::nn::BatchNorm2d::new(b.gpu, b.c, false)?)
    } else {
        None
    };
    Ok(Candidate::Pool(Pool {
        max,
        stride: b.stride,
        bn,
    }))
}

/// `sep_conv_k×k` (padding keeps the spatial size).
fn sep(b: &mut Build, k: usize) -> Result<Candidate> {
    let (c, s) = (b.c, b.stride);
    let op = SepConv::new(
        b.gpu,
        &mut b.rng,
        ConvShape::new([c, c, k], s, (k - 1) / 2),
        b.affine,
    )?;
    Ok(Candidate::Sep(op))
}

/// `dil_conv_k×k`: dilation 2, padding keeps the spatial size.
fn dil(b: &mut Build, k: usize) -> Result<Candidate> {
    let (c, s) = (b.c, b.stride);
    let shape = ConvShape::new([c, c, k], s, k - 1).dilation(2);
    let op = DilConv::new(b.gpu, &mut b.rng, shape, b.affine)?;
    Ok(Candidate::Dil(op))
}

/// NAS-Bench-201's `nor_conv_k×k` (padding keeps the spatial size).
fn nor_conv(b: &mut Build, k: usize) -> Result<Candidate> {
    let (c, s) = (b.c, b.stride);
    let shape = ConvShape::new([c, c, k], s, (k - 1) / 2);
    let op = ReluConvBn::nb201(b.gpu, &mut b.rng, shape, b.affine)?;
    Ok(Candidate::Conv(op))
}

/// DARTS' `skip_connect`: the identity, FactorizedReduce at stride 2.
fn skip(b: &mut Build) -> Result<Candidate> {
    Ok(if b.stride == 1 {
        Candidate::Identity
    } else {
        let fr = FactorizedReduce::new(b.gpu, &mut b.rng, b.c, b.c, b.affine)?;
        Candidate::Reduce(fr)
    })
}

/// RobustDARTS' `noise`: it draws from its network's source.
fn noise(b: &mut Build) -> Result<Candidate> {
    let source = b.noise.ok_or_else(|| {
        Error::Invalid(
            "'noise' (RobustDARTS S4's candidate, pure N(0, 1) output) needs its network's \
             noise source, and this network was built without one"
                .into(),
        )
    })?;
    Ok(Candidate::Other(Box::new(Noise {
        stride: b.stride,
        source: source.clone(),
    })))
}

/// One table row.
const fn spec(
    name: &'static str,
    build: fn(&mut Build) -> Result<Candidate>,
    colour: Rgb,
) -> CandidateSpec {
    CandidateSpec {
        name,
        build,
        colour,
    }
}

/// `none`, the same in every space.
const NONE: CandidateSpec = spec(
    "none",
    |b| Ok(Candidate::Zero(Zero { stride: b.stride })),
    (150, 150, 150),
);

const DARTS_TABLE: [CandidateSpec; 8] = [
    NONE,
    spec("max_pool_3x3", |b| pool(b, true, b.search), (31, 119, 180)),
    spec("avg_pool_3x3", |b| pool(b, false, b.search), (14, 150, 165)),
    spec("skip_connect", skip, (214, 39, 40)),
    spec("sep_conv_3x3", |b| sep(b, 3), (44, 160, 44)),
    spec("sep_conv_5x5", |b| sep(b, 5), (148, 103, 189)),
    spec("dil_conv_3x3", |b| dil(b, 3), (230, 115, 0)),
    spec("dil_conv_5x5", |b| dil(b, 5), (140, 86, 75)),
];

/// The DARTS candidates and RobustDARTS' `noise`: every op a DARTS-cell space (SPEC §10) may
/// put on an edge.
const DARTS_FAMILY_TABLE: [CandidateSpec; 9] = {
    let d = DARTS_TABLE;
    [
        d[0],
        d[1],
        d[2],
        d[3],
        d[4],
        d[5],
        d[6],
        d[7],
        spec("noise", noise, (227, 119, 194)),
    ]
};

const NB201_TABLE: [CandidateSpec; 5] = [
    NONE,
    spec("skip_connect", |_| Ok(Candidate::Identity), (214, 39, 40)),
    spec("nor_conv_1x1", |b| nor_conv(b, 1), (148, 103, 189)),
    spec("nor_conv_3x3", |b| nor_conv(b, 3), (44, 160, 44)),
    spec("avg_pool_3x3", |b| pool(b, false, false), (14, 150, 165)),
];

/// The DARTS space.
pub const DARTS: Space = Space {
    label: "DARTS",
    ops: &DARTS_TABLE,
};

/// Every candidate of the DARTS-cell spaces (DARTS, RobustDARTS S1–S4).
pub const DARTS_FAMILY: Space = Space {
    label: "DARTS-cell",
    ops: &DARTS_FAMILY_TABLE,
};

/// The NAS-Bench-201 space.
pub const NB201: Space = Space {
    label: "NAS-Bench-201",
    ops: &NB201_TABLE,
};

/// Every space, for lookups by name alone (colours).
pub const SPACES: [&Space; 3] = [&DARTS, &DARTS_FAMILY, &NB201];

const fn names<const N: usize>(table: &[CandidateSpec; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = table[i].name;
        i += 1;
    }
    out
}

/// Candidate operations of the DARTS space, in α column order.
pub const DARTS_OPS: [&str; 8] = names(&DARTS_TABLE);

/// Every op a DARTS-cell space may put on an edge.
pub const DARTS_FAMILY_OPS: [&str; 9] = names(&DARTS_FAMILY_TABLE);

/// Candidate operations of the NAS-Bench-201 space, in α column order.
pub const NB201_OPS: [&str; 5] = names(&NB201_TABLE);

/// The colour of a known candidate, by name.
pub fn colour_of(name: &str) -> Option<Rgb> {
    SPACES
        .iter()
        .flat_map(|s| s.ops)
        .find(|s| s.name == name)
        .map(|s| s.colour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_has_one_colour_in_every_space() {
        for space in SPACES {
            for op in space.ops {
                assert_eq!(colour_of(op.name), Some(op.colour), "{}", op.name);
            }
        }
    }

    #[test]
    fn unknown_names_list_the_space() {
        let Err(e) = NB201.get("sep_conv_3x3") else {
            panic!("sep_conv_3x3 is not in NAS-Bench-201")
        };
        assert_eq!(
            e.to_string(),
            "unknown NAS-Bench-201 operation 'sep_conv_3x3'; known: none, skip_connect, \
             nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"
        );
    }
}
