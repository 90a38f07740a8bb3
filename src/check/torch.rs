//! Agreement with PyTorch: fixtures written by `tools/make_fixtures.py` (torch in float64)
//! and embedded in the binary, so `darts-minus check` needs no files. A DARTS- mixed edge
//! (all eight candidates plus β·aux, stride 1 and 2: output, input and α gradients, every
//! weight gradient and running statistic) and one whole search step of a small DARTS-
//! network (α step, then w step: every weight, α and statistic afterwards), each under both
//! launch strategies; and that step in RobustDARTS' S1 and S4 (PyTorch's noise fed in).

use super::{Check, CheckLine, Tolerance};
use crate::autodiff::{Grads, Tape, Tensor};
use crate::checkpoint::{self, load_module, module_entries, Entry, Named};
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Strategy};
use crate::nn::darts_ops::{DartsSpace, DARTS_OPS};
use crate::nn::mixed::MixedOp;
use crate::nn::{parameters, Ctx, Module, Slot};
use crate::search::darts_net::DartsConfig;
use crate::search::trainer::{Search, SearchSettings, Space};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;

type Fixture = BTreeMap<String, Named>;

const MIXED_EDGE_S1: &[u8] = include_bytes!("../../tests/fixtures/mixed_edge_s1.safetensors");
const MIXED_EDGE_S2: &[u8] = include_bytes!("../../tests/fixtures/mixed_edge_s2.safetensors");
const STEP_INIT: &[u8] = include_bytes!("../../tests/fixtures/search_step_init.safetensors");
const STEP_AFTER: &[u8] = include_bytes!("../../tests/fixtures/search_step_after.safetensors");
const STEP_S1: &[u8] = include_bytes!("../../tests/fixtures/search_step_s1.safetensors");
const STEP_S4: &[u8] = include_bytes!("../../tests/fixtures/search_step_s4.safetensors");

/// Forward values: f32 against torch's float64.
const FWD: Tolerance = Tolerance::FORWARD;
/// Gradients pass through several batch norms and reductions of f32 sums.
const GRAD: Tolerance = Tolerance::GRADIENT;

fn fixture(name: &str, bytes: &[u8]) -> Result<Fixture> {
    Ok(checkpoint::read_bytes(bytes, Path::new(name))?.0)
}

fn get<'a>(m: &'a Fixture, k: &str) -> Result<&'a Named> {
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

fn with_strategy(
    gpu: &Gpu,
    s: (Strategy, usize, &str),
    f: impl FnOnce() -> Result<Vec<CheckLine>>,
) -> Result<Vec<CheckLine>> {
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
            &w,
            edge,
            Some((&beta, 0)),
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

/// One α step and one w step of a small DARTS- network (C=4, 5 cells, 16×16 images) from the
/// reference's initial weights and α: the loss, then every weight, α and statistic.
pub fn search_step(gpu: &Gpu, strategy: (Strategy, usize, &str)) -> Result<Vec<CheckLine>> {
    let check = format!("torch: DARTS- search step [{} strategy]", strategy.2);
    with_strategy(gpu, strategy, || {
        let fx = fixture("search_step_after.safetensors", STEP_AFTER)?;
        let init = fixture("search_step_init.safetensors", STEP_INIT)?;
        let source = Path::new("search_step_init.safetensors");
        step_lines(gpu, &check, DartsSpace::Darts, (&init, source), &fx)
    })
}

/// [`search_step`] in RobustDARTS' S1 (each edge its own pair) or S4 (`noise`, fed the values
/// PyTorch drew, in draw order).
pub fn search_step_space(
    gpu: &Gpu,
    space: DartsSpace,
    strategy: (Strategy, usize, &str),
) -> Result<Vec<CheckLine>> {
    let (name, bytes) = match space {
        DartsSpace::S1 => ("search_step_s1.safetensors", STEP_S1),
        DartsSpace::S4 => ("search_step_s4.safetensors", STEP_S4),
        other => {
            return Err(Error::Invalid(format!(
                "no PyTorch search-step fixture for the {} space",
                other.label()
            )))
        }
    };
    let check = format!(
        "torch: DARTS- search step, {} [{} strategy]",
        space.label(),
        strategy.2
    );
    with_strategy(gpu, strategy, || {
        let fx = fixture(name, bytes)?;
        step_lines(gpu, &check, space, (&fx, Path::new(name)), &fx)
    })
}

/// Loads `init` into a small network of `space`, runs one step on the fixture's batches (fed
/// its `noise.<i>` draws, if any), and compares with its `after.*`.
fn step_lines(
    gpu: &Gpu,
    check: &str,
    space: DartsSpace,
    (init, source): (&Fixture, &Path),
    fx: &Fixture,
) -> Result<Vec<CheckLine>> {
    let mut settings = SearchSettings::darts_paper();
    settings.space = Space::Darts(DartsConfig {
        channels: 4,
        layers: 5,
        classes: 10,
        nodes: 4,
        aux: true,
        candidates: space,
    });
    let mut search = Search::new(gpu, settings)?;
    search.init_from_tensors(init, source)?;
    search.set_image_size(16, 16)?;
    search.set_epoch(0)?;
    let noise: Vec<Vec<f32>> = (0..)
        .map_while(|i| fx.get(&format!("noise.{i}")))
        .map(|n| n.data.iter().map(|&v| v as f32).collect())
        .collect();
    let draws = noise.len();
    if draws > 0 {
        search.feed_noise(noise)?;
    }
    let batch = |x: &str, y: &str| -> Result<Batch> {
        Ok(Batch {
            x: get(fx, x)?.data.iter().map(|&v| v as f32).collect(),
            y: get(fx, y)?.data.iter().map(|&v| v as u32).collect(),
            indices: Vec::new(),
        })
    };
    let stats = search.step(&batch("x_train", "y_train")?, &batch("x_val", "y_val")?)?;
    let want_loss = get(fx, "loss_weights")?.data[0];
    let loss_tol = Tolerance {
        rel: 1e-4,
        abs: 0.0,
    };
    let mut lines = vec![CheckLine::compare(
        check,
        "w-step loss",
        loss_tol,
        &[stats.loss],
        &[want_loss],
    )];
    if draws > 0 {
        // Every draw PyTorch made was taken, in the same shapes (a shape differing fails the
        // step itself).
        let left = search.noise_fed_left().unwrap_or(draws);
        let exact = Tolerance { rel: 0.0, abs: 0.0 };
        let what = format!("noise draws left of {draws}");
        lines.push(CheckLine::compare(
            check,
            &what,
            exact,
            &[left as f32],
            &[0.0],
        ));
    }
    // Weights move by lr·(momentum buffer): an absolute part scaled to each tensor, since
    // f32 gradients through 5 cells agree with float64 to about 1e-4.
    let mut wl = Vec::new();
    for (name, entry) in module_entries(search.network(), "")? {
        let want = get(fx, &format!("after.{name}"))?;
        wl.push(match entry {
            Entry::F32 { data, .. } => {
                CheckLine::compare(check, &name, FWD.scaled(&want.data), &data, &want.data)
            }
            Entry::I64 { data, .. } => {
                let exact = Tolerance { rel: 0.0, abs: 0.0 };
                CheckLine::compare(check, &name, exact, &[data[0] as f32], &want.data)
            }
        });
    }
    lines.push(CheckLine::merge(
        check,
        "weights and statistics after the step",
        wl,
    ));
    let mut al = Vec::new();
    for (name, t) in search.network().alphas() {
        let want = get(fx, &format!("after.{name}"))?;
        al.push(CheckLine::compare(
            check,
            name,
            FWD,
            &t.to_vec()?,
            &want.data,
        ));
    }
    lines.push(CheckLine::merge(check, "α after the step", al));
    Ok(lines)
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
        l.extend(search_step(gpu, s)?);
    }
    Ok(l)
}

fn robust_step_checks(gpu: &Gpu) -> Result<Vec<CheckLine>> {
    let mut l = Vec::new();
    for space in [DartsSpace::S1, DartsSpace::S4] {
        for s in STRATEGIES {
            l.extend(search_step_space(gpu, space, s)?);
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
            name: "torch: RobustDARTS S1, S4 search steps",
            kind: "torch",
            run: robust_step_checks,
        },
    ]
}
