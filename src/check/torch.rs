//! Agreement with PyTorch: fixtures written by `tools/make_fixtures.py` (torch in float64)
//! and embedded in the binary, so `darts-minus check` needs no files. A DARTS- mixed edge
//! (all eight candidates plus β·aux, stride 1 and 2: output, input and α gradients, every
//! weight gradient and running statistic), and two whole search steps of a small DARTS-
//! network and of a small NAS-Bench-201 network ([`super::search_steps`]: what each step
//! changed), each under both launch strategies; and one step in RobustDARTS' S1 and S4
//! ([`super::robust_steps`], PyTorch's noise fed in).

use super::{robust_steps, search_steps};
use super::{Check, CheckLine, Tolerance};
use crate::autodiff::{Grads, Tape, Tensor};
use crate::checkpoint::{self, load_module, Named};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Strategy};
use crate::nn::darts_ops::{DartsSpace, DARTS_OPS};
use crate::nn::mixed::{EdgeWeights, MixedOp, SharedPools};
use crate::nn::{parameters, Ctx, Module, Slot};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;

pub use super::robust_steps::search_step_space;
pub use super::search_steps::{
    darts_steps, nb201_step, nb201_steps, nb201_steps_with, search_step, Nb201Fixture, StepRun,
    CHANGE, NB201_MINUS_BETA, STEPS,
};

pub(super) type Fixture = BTreeMap<String, Named>;

const MIXED_EDGE_S1: &[u8] = include_bytes!("../../tests/fixtures/mixed_edge_s1.safetensors");
const MIXED_EDGE_S2: &[u8] = include_bytes!("../../tests/fixtures/mixed_edge_s2.safetensors");

/// Forward values: f32 against torch's float64.
pub(super) const FWD: Tolerance = Tolerance::FORWARD;
/// Gradients pass through several batch norms and reductions of f32 sums.
const GRAD: Tolerance = Tolerance::GRADIENT;

pub(super) fn fixture(name: &str, bytes: &[u8]) -> Result<Fixture> {
    Ok(checkpoint::read_bytes(bytes, Path::new(name))?.0)
}

pub(super) fn get<'a>(m: &'a Fixture, k: &str) -> Result<&'a Named> {
    m.get(k)
        .ok_or_else(|| Error::Invalid(format!("the fixture lacks '{k}'")))
}

fn tensor(g: &Gpu, n: &Named) -> Result<Tensor> {
    let data: Vec<f32> = n.data.iter().map(|&v| v as f32).collect();
    let shape = if n.shape.is_empty() {
        vec![1]
    } else {
        n.shape.clone()
    };
    Tensor::from_slice(g, &shape, &data)
}

/// `t` against `want`, the tolerance's absolute part scaled to `want`'s magnitude.
fn close(check: &str, what: &str, tol: Tolerance, t: &Tensor, want: &Named) -> Result<CheckLine> {
    let tol = tol.scaled(&want.data);
    Ok(CheckLine::compare(
        check,
        what,
        tol,
        &t.to_vec()?,
        &want.data,
    ))
}

/// The launch strategies a fixture check runs under, with the per-channel reductions in one
/// workgroup (fused tails) or split over four (statistics from the producing kernels).
pub const STRATEGIES: [(Strategy, usize, &str); 2] =
    [(Strategy::Cpu, 1, "cpu"), (Strategy::Gpu, 4, "gpu")];

pub(super) fn with_strategy<T>(
    gpu: &Gpu,
    s: (Strategy, usize, &str),
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    gpu.set_strategy(Some(s.0));
    gpu.set_channel_split(Some(s.1));
    let out = f();
    gpu.set_channel_split(None);
    gpu.set_strategy(None);
    out
}

/// Every parameter gradient and running statistic of `module` against the fixture, as two
/// lines.
fn state_lines(
    check: &str,
    module: &dyn Module,
    grads: &Grads,
    m: &Fixture,
) -> Result<Vec<CheckLine>> {
    let mut gl = Vec::new();
    for (name, p) in parameters(module, "") {
        let what = format!("grad of {name}");
        gl.push(match grads.get(&p) {
            Some(g) => close(check, &what, GRAD, g, get(m, &format!("grad.{name}"))?)?,
            None => CheckLine::failed(check, &what, "no gradient".into()),
        });
    }
    let mut sl = Vec::new();
    let mut err = None;
    module.visit("", &mut |name, slot| {
        let line = match slot {
            Slot::Buffer(t) => {
                get(m, &format!("after.{name}")).and_then(|w| close(check, name, FWD, t, w))
            }
            Slot::Counter(c) => get(m, &format!("after.{name}")).map(|w| {
                let (got, want) = (c.get() as f64, w.data[0]);
                CheckLine::compare(
                    check,
                    name,
                    Tolerance { rel: 0.0, abs: 0.0 },
                    &[got as f32],
                    &[want],
                )
            }),
            Slot::Param(_) => return,
        };
        match line {
            Ok(l) => sl.push(l),
            Err(e) => err = err.take().or(Some(e)),
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    Ok(vec![
        CheckLine::merge(check, "weight gradients", gl),
        CheckLine::merge(check, "batch-norm statistics after the pass", sl),
    ])
}

/// A DARTS- mixed edge at `stride` (fixture `mixed_edge_s{stride}`), forward and backward.
pub fn mixed_edge(
    gpu: &Gpu,
    stride: usize,
    strategy: (Strategy, usize, &str),
) -> Result<Vec<CheckLine>> {
    let (name, bytes) = match stride {
        1 => ("mixed_edge_s1.safetensors", MIXED_EDGE_S1),
        _ => ("mixed_edge_s2.safetensors", MIXED_EDGE_S2),
    };
    let check = format!(
        "torch: mixed edge, stride {stride} [{} strategy]",
        strategy.2
    );
    with_strategy(gpu, strategy, || {
        let m = fixture(name, bytes)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let op = MixedOp::new(gpu, &mut rng, &DARTS_OPS, 4, stride, true, None)?;
        load_module(&op, "", &m, Path::new(name))?;
        let x = tensor(gpu, get(&m, "x")?)?.with_grad();
        let alphas = tensor(gpu, get(&m, "alphas")?)?.with_grad();
        let beta = tensor(gpu, get(&m, "beta")?)?;
        let c = tensor(gpu, get(&m, "c")?)?;
        let edge = get(&m, "edge")?.data[0] as usize;
        let mut tape = Tape::new(gpu);
        let w = tape.softmax_rows(&alphas)?;
        let out = op.forward(
            &mut tape,
            &x,
            EdgeWeights {
                table: &w,
                edge,
                beta: Some((&beta, 0)),
            },
            &mut SharedPools::default(),
            Ctx { train: true },
        )?;
        let mut lines = vec![close(&check, "output", FWD, &out, get(&m, "out")?)?];
        let weighted = tape.mul(&out, &c)?;
        let loss = tape.sum_all(&weighted)?;
        let grads = tape.backward(&loss)?;
        for (what, t, key) in [
            ("grad of x", &x, "grad.x"),
            ("grad of α", &alphas, "grad.alphas"),
        ] {
            lines.push(match grads.get(t) {
                Some(g) => close(&check, what, GRAD, g, get(&m, key)?)?,
                None => CheckLine::failed(&check, what, "no gradient".into()),
            });
        }
        lines.extend(state_lines(&check, &op, &grads, &m)?);
        Ok(lines)
    })
}

fn mixed_edge_checks(gpu: &Gpu) -> Result<Vec<CheckLine>> {
    let mut l = Vec::new();
    for stride in [1, 2] {
        for s in STRATEGIES {
            l.extend(mixed_edge(gpu, stride, s)?);
        }
    }
    Ok(l)
}

fn search_step_checks(gpu: &Gpu) -> Result<Vec<CheckLine>> {
    let mut l = Vec::new();
    for s in STRATEGIES {
        l.extend(search_steps::search_step(gpu, s)?);
    }
    Ok(l)
}

fn nb201_step_checks(gpu: &Gpu) -> Result<Vec<CheckLine>> {
    let mut l = Vec::new();
    for s in STRATEGIES {
        for fixture in [Nb201Fixture::Darts, Nb201Fixture::DartsMinus] {
            l.extend(search_steps::nb201_step(gpu, s, fixture)?);
        }
    }
    Ok(l)
}

fn robust_step_checks(gpu: &Gpu) -> Result<Vec<CheckLine>> {
    let mut l = Vec::new();
    for space in [DartsSpace::S1, DartsSpace::S4] {
        for s in STRATEGIES {
            l.extend(robust_steps::search_step_space(gpu, space, s)?);
        }
    }
    Ok(l)
}

pub(super) fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "torch: mixed edge",
            kind: "torch",
            run: mixed_edge_checks,
        },
        Check {
            name: "torch: search step",
            kind: "torch",
            run: search_step_checks,
        },
        Check {
            name: "torch: NAS-Bench-201 search steps (DARTS, DARTS-)",
            kind: "torch",
            run: nb201_step_checks,
        },
        Check {
            name: "torch: RobustDARTS S1, S4 search steps",
            kind: "torch",
            run: robust_step_checks,
        },
    ]
}
