//! One search step in RobustDARTS' S1 and S4 against PyTorch (tools/make_fixtures.py): the
//! fixture holds the initial weights and α, the batches, for S4 every noise draw PyTorch made,
//! and the state after one α step and one w step of DARTS-.

use super::search_steps::fixture_settings;
use super::torch::{fixture, get, with_strategy, Fixture, FWD};
use super::{CheckLine, Tolerance};
use crate::checkpoint::{module_entries, Entry};
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Strategy};
use crate::nn::darts_ops::DartsSpace;
use crate::search::trainer::Search;
use std::path::Path;

const STEP_S1: &[u8] = include_bytes!("../../tests/fixtures/search_step_s1.safetensors");
const STEP_S4: &[u8] = include_bytes!("../../tests/fixtures/search_step_s4.safetensors");

/// One α step and one w step of a small network (C=4, 5 cells, 16×16 images) in RobustDARTS'
/// S1 (each edge its own pair) or S4 (`noise`, fed the values PyTorch drew, in draw order)
/// from the fixture's initial weights and α: the loss, then every weight, α and statistic.
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
    let mut search = Search::new(gpu, fixture_settings(space))?;
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
