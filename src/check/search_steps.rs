//! Two whole search steps against the references, from the same initial weights and α (loaded
//! by the reference's state_dict names, as `--init-from` does) on the same batches: what each
//! step changed in every weight, batch-norm statistic and α, and Adam's moments of α (its
//! gradients: α's first Adam step is lr·sign(g), the second depends on |g| too).
//!
//! - DARTS- (SPEC §5): a small DARTS- network, α step then w step, against the project's
//!   PyTorch model (tools/make_fixtures.py, `search_step`).
//! - NAS-Bench-201 (SPEC §7): plain first-order DARTS against the benchmark's own network and
//!   step (xautodl's `TinyNetworkDarts`, stepped as its `DARTS-V1.py`: w step with the
//!   clipping norm over every parameter, α's gradient included, then α step).
//! - DARTS- on NAS-Bench-201 (SPEC §7): the same network and step with β·x added to every
//!   edge (β = 0.7), as `tools/nb201_reference_search.py --method darts-minus` runs it.

use super::step_change::{step_lines, ChangeTolerance, Kind, Tracked};
use super::torch::{fixture, get, with_strategy, Fixture};
use super::{CheckLine, Tolerance};
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Strategy};
use crate::nn::darts_ops::DartsSpace;
use crate::nn::Slot;
use crate::search::darts_net::DartsConfig;
use crate::search::nb201_net::Nb201Config;
use crate::search::trainer::{Search, SearchSettings, Space};
use std::path::Path;

const DARTS_INIT: &[u8] = include_bytes!("../../tests/fixtures/search_step_init.safetensors");
const DARTS_CHANGES: &[u8] = include_bytes!("../../tests/fixtures/search_step_changes.safetensors");
const NB201_INIT: &[u8] = include_bytes!("../../tests/fixtures/nb201_step_init.safetensors");
const NB201_CHANGES: &[u8] = include_bytes!("../../tests/fixtures/nb201_step_changes.safetensors");
const NB201_MINUS_INIT: &[u8] =
    include_bytes!("../../tests/fixtures/nb201_minus_step_init.safetensors");
const NB201_MINUS_CHANGES: &[u8] =
    include_bytes!("../../tests/fixtures/nb201_minus_step_changes.safetensors");

/// β of the DARTS- NAS-Bench-201 fixture: below 1, so a missing or misplaced factor shows
/// (the plain DARTS fixture has no auxiliary skip, so β is unused there).
pub const NB201_MINUS_BETA: f64 = 0.7;

/// Steps each fixture holds.
pub const STEPS: usize = 2;

/// The w-step loss: f32 against float64 through a whole network (measured: ≤ 2e-7).
const LOSS: Tolerance = Tolerance {
    rel: 1e-5,
    abs: 0.0,
};

/// Changes of f32 steps against float64 ones, per tensor (see [`ChangeTolerance`]). Measured on
/// lavapipe and llvmpipe under both launch strategies, both fixtures and steps, the part of a
/// tensor's error beyond the rounding floor, relative to its largest change, is at most
/// 7e-6 for weights, 5e-5 for batch-norm statistics (batch means near zero), 3e-5 for Adam's
/// moments of α and nil for α's change; 2e-4 leaves a margin of 4 and more. A 10% error in
/// the gradient of any one weight, statistic or α fails it (`tests/search_reference.rs`);
/// comparing the weights after the step, tolerance relative to the weight (rel 1e-4, abs
/// 1e-5), missed it in 654 of the 921 DARTS- weight tensors.
///
/// The floor is 8 ulps of the tensor after the step: NAS-Bench-201's convolution biases ahead
/// of its train-mode batch norms have a gradient of zero but for f32 noise, so their change is
/// weight decay plus that noise. PyTorch's own float32 run of the benchmark's network misses
/// the float64 reference there by up to 2.0 ulps of the bias (0.0038 of its largest change);
/// this project's summation orders by up to 4.6 (WebGPU limits, 4 terms a weighted sum). 8
/// ulps is ~5e-7 of the weight, far below the change of any weight with a real gradient.
pub const CHANGE: ChangeTolerance = ChangeTolerance {
    rel: 2e-4,
    ulps: 8.0,
};

/// One fixture's steps as the library ran them: for every step, our loss and every tracked
/// tensor next to the reference's values. [`StepRun::lines`] compares them.
pub struct StepRun {
    pub check: String,
    pub settings: SearchSettings,
    /// Per step: (our w-step loss, the reference's, the tracked tensors).
    pub steps: Vec<(f32, f64, Vec<Tracked>)>,
}

impl StepRun {
    pub fn lines(&self) -> Vec<CheckLine> {
        let mut lines = Vec::new();
        for (k, (loss, want, tracked)) in self.steps.iter().enumerate() {
            let what = format!("step {}: w-step loss", k + 1);
            lines.push(CheckLine::compare(
                &self.check,
                &what,
                LOSS,
                &[*loss],
                &[*want],
            ));
            lines.extend(step_lines(&self.check, k + 1, tracked, CHANGE));
        }
        lines
    }
}

/// Every piece of state of the search: (name, kind, values), network order, then α.
fn snapshot(search: &Search) -> Result<Vec<(String, Kind, Vec<f64>)>> {
    let mut slots = Vec::new();
    search.network().visit("", &mut |name, slot| {
        let s = match slot {
            Slot::Param(t) => Ok((Kind::Weight, t.clone())),
            Slot::Buffer(t) => Ok((Kind::Statistic, t.clone())),
            Slot::Counter(c) => Err(c.get()),
        };
        slots.push((name.to_string(), s));
    });
    let mut out = Vec::new();
    for (name, s) in slots {
        out.push(match s {
            Ok((kind, t)) => (name, kind, f64s(&t.to_vec()?)),
            Err(count) => (name, Kind::Counter, vec![count as f64]),
        });
    }
    for (name, t) in search.network().alphas() {
        out.push((name.to_string(), Kind::Alpha, f64s(&t.to_vec()?)));
    }
    Ok(out)
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn batch(fx: &Fixture, x: &str, y: &str) -> Result<Batch> {
    Ok(Batch {
        x: get(fx, x)?.data.iter().map(|&v| v as f32).collect(),
        y: get(fx, y)?.data.iter().map(|&v| v as u32).collect(),
        indices: Vec::new(),
    })
}

/// Runs the fixture's steps from its initial state; `image` is the images' side.
fn run_steps(
    gpu: &Gpu,
    check: String,
    settings: SearchSettings,
    (init_name, init): (&str, &[u8]),
    (name, changes): (&str, &[u8]),
    image: usize,
) -> Result<StepRun> {
    let init = fixture(init_name, init)?;
    let fx = fixture(name, changes)?;
    let mut search = Search::new(gpu, settings.clone())?;
    search.init_from_tensors(&init, Path::new(init_name))?;
    search.set_image_size(image, image)?;
    search.set_epoch(0)?;
    let mut steps = Vec::new();
    for k in 1..=STEPS {
        let before = snapshot(&search)?;
        let train = batch(
            &fx,
            &format!("step{k}.x_train"),
            &format!("step{k}.y_train"),
        )?;
        let val = batch(&fx, &format!("step{k}.x_val"), &format!("step{k}.y_val"))?;
        let stats = search.step(&train, &val)?;
        let after = snapshot(&search)?;
        let prefix = format!("step{k}.change.");
        let listed = fx.keys().filter(|n| n.starts_with(&prefix)).count();
        if listed != after.len() {
            return Err(Error::Invalid(format!(
                "{name} lists {listed} tensors for step {k} but the network has {}",
                after.len()
            )));
        }
        let mut tracked = Vec::new();
        for ((tname, kind, before), (_, _, after)) in before.into_iter().zip(after) {
            let want = get(&fx, &format!("{prefix}{tname}"))?.data.clone();
            tracked.push(Tracked {
                name: tname,
                kind,
                before,
                after,
                want,
            });
        }
        let (m, v) = search.arch_optimizer_state();
        for ((aname, _), (m, v)) in search.network().alphas().iter().zip(m.iter().zip(v)) {
            for (what, t) in [("exp_avg", m), ("exp_avg_sq", v)] {
                let after = f64s(&t.to_vec()?);
                tracked.push(Tracked {
                    name: format!("{what} of {aname}"),
                    kind: Kind::Moment,
                    before: vec![0.0; after.len()],
                    after,
                    want: get(&fx, &format!("step{k}.{what}.{aname}"))?.data.clone(),
                });
            }
        }
        let want_loss = get(&fx, &format!("step{k}.loss_weights"))?.data[0];
        steps.push((stats.loss, want_loss, tracked));
    }
    Ok(StepRun {
        check,
        settings,
        steps,
    })
}

/// The small DARTS- network of the PyTorch search-step fixtures (C=4, 5 cells, 4 nodes, 10
/// classes) with `space`'s candidates, under the paper's search settings.
pub(super) fn fixture_settings(space: DartsSpace) -> SearchSettings {
    let mut settings = SearchSettings::darts_paper();
    settings.space = Space::Darts(DartsConfig {
        channels: 4,
        layers: 5,
        classes: 10,
        nodes: 4,
        aux: true,
        candidates: space,
    });
    settings
}

/// Two DARTS- steps (C=4, 5 cells, 16×16 images, batch 6), α step then w step, against the
/// project's PyTorch model.
pub fn darts_steps(gpu: &Gpu, strategy: (Strategy, usize, &str)) -> Result<StepRun> {
    let settings = fixture_settings(DartsSpace::Darts);
    let check = format!("torch: DARTS- search steps [{} strategy]", strategy.2);
    with_strategy(gpu, strategy, || {
        run_steps(
            gpu,
            check,
            settings,
            ("search_step_init.safetensors", DARTS_INIT),
            ("search_step_changes.safetensors", DARTS_CHANGES),
            16,
        )
    })
}

/// The NAS-Bench-201 step fixtures: xautodl's network (C=2, one cell per stage, 8×8 images,
/// batch 4) stepped as the benchmark's DARTS-V1: w step (α's gradient in the clipping norm),
/// then α step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nb201Fixture {
    /// Plain first-order DARTS (the benchmark's settings, no auxiliary skip).
    Darts,
    /// DARTS-: β·x on every edge (β = [`NB201_MINUS_BETA`]), as the reference script runs it.
    DartsMinus,
}

impl Nb201Fixture {
    /// The settings the fixture was made with.
    pub fn settings(self) -> SearchSettings {
        let mut settings = SearchSettings::nb201_benchmark();
        settings.space = Space::Nb201(Nb201Config {
            channels: 2,
            cells_per_stage: 1,
            classes: 10,
            aux: self == Nb201Fixture::DartsMinus,
        });
        // β₀ of the linear decay is β at epoch 0.
        settings.beta.beta0 = NB201_MINUS_BETA;
        settings
    }

    fn name(self) -> &'static str {
        match self {
            Nb201Fixture::Darts => "NAS-Bench-201",
            Nb201Fixture::DartsMinus => "DARTS- NAS-Bench-201",
        }
    }

    /// (initial state, changes) by file name.
    fn files(self) -> [(&'static str, &'static [u8]); 2] {
        match self {
            Nb201Fixture::Darts => [
                ("nb201_step_init.safetensors", NB201_INIT),
                ("nb201_step_changes.safetensors", NB201_CHANGES),
            ],
            Nb201Fixture::DartsMinus => [
                ("nb201_minus_step_init.safetensors", NB201_MINUS_INIT),
                ("nb201_minus_step_changes.safetensors", NB201_MINUS_CHANGES),
            ],
        }
    }
}

/// Two steps of `fixture` against xautodl's network.
pub fn nb201_steps(
    gpu: &Gpu,
    strategy: (Strategy, usize, &str),
    fixture: Nb201Fixture,
) -> Result<StepRun> {
    nb201_steps_with(gpu, strategy, fixture, fixture.settings())
}

/// [`nb201_steps`] under other settings (to show what the comparison tells apart).
pub fn nb201_steps_with(
    gpu: &Gpu,
    strategy: (Strategy, usize, &str),
    fixture: Nb201Fixture,
    settings: SearchSettings,
) -> Result<StepRun> {
    let check = format!(
        "torch: {} search steps [{} strategy]",
        fixture.name(),
        strategy.2
    );
    let [init, changes] = fixture.files();
    with_strategy(gpu, strategy, || {
        run_steps(gpu, check, settings, init, changes, 8)
    })
}

/// The lines of [`darts_steps`].
pub fn search_step(gpu: &Gpu, strategy: (Strategy, usize, &str)) -> Result<Vec<CheckLine>> {
    Ok(darts_steps(gpu, strategy)?.lines())
}

/// The lines of [`nb201_steps`].
pub fn nb201_step(
    gpu: &Gpu,
    strategy: (Strategy, usize, &str),
    fixture: Nb201Fixture,
) -> Result<Vec<CheckLine>> {
    Ok(nb201_steps(gpu, strategy, fixture)?.lines())
}
