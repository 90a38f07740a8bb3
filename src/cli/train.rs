//! `darts-minus train`: retrain a genotype from scratch.

use super::args::{RunArgs, RunFiles};
use super::checkpoint_path;
use super::progress::{
    absolute, epoch_bar, follow, refuse_on_resume, resume_claim, resume_dir, resumed_data,
    timestamped, training_data,
};
use clap::Args;
use darts_minus::data::{Dataset, Split};
use darts_minus::gpu::AdapterChoice;
use darts_minus::nn::darts_ops::DartsSpace;
use darts_minus::report::{self, EpochPoint};
use darts_minus::run::metrics::write_jsonl;
use darts_minus::run::outdir::{Claim, OutDir};
use darts_minus::search::genotype::Genotype;
use darts_minus::search::nb201::Nb201Arch;
use darts_minus::train::darts_eval::EvalConfig;
use darts_minus::train::trainer::{Retrain, TrainSettings};
use darts_minus::train::Arch;
use darts_minus::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Options of `darts-minus train`. Unset values take the paper's recipe for real data, or a
/// small quick setting on the built-in mini set.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The architecture: a search's genotype.json (or its output directory), a file or string
    /// holding the upstream `Genotype(...)` or a NAS-Bench-201 arch string, or a name:
    /// DARTS_V1, DARTS_V2, DARTS_MINUS.
    #[arg(long)]
    pub genotype: Option<String>,
    #[command(flatten)]
    pub files: RunFiles,
    /// Test data; default: the test split beside --data, or the built-in test set.
    #[arg(long)]
    pub test_data: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Cells (DARTS), or cells per stage (NAS-Bench-201).
    #[arg(long)]
    pub layers: Option<usize>,
    /// No auxiliary head.
    #[arg(long)]
    pub no_auxiliary: bool,
    #[arg(long)]
    pub auxiliary_weight: Option<f64>,
    /// Final drop-path probability (rises linearly from 0).
    #[arg(long)]
    pub drop_path: Option<f64>,
    /// Cutout side in pixels (0 = off).
    #[arg(long)]
    pub cutout: Option<usize>,
}

/// The architecture named by `spec`: a file (or run directory), a Python `Genotype(...)`
/// string, JSON, a NAS-Bench-201 arch string, or a name.
pub fn resolve_arch(spec: &str) -> Result<Arch> {
    let path = Path::new(spec);
    let file = if path.is_dir() {
        path.join("genotype.json")
    } else {
        path.to_path_buf()
    };
    let text = if file.is_file() {
        std::fs::read_to_string(&file).map_err(|e| Error::File {
            path: file.clone(),
            msg: format!("cannot read: {e}"),
        })?
    } else {
        spec.to_string()
    };
    let text = text.trim();
    // A search's genotype.json wraps the architecture: {"genotype": {"darts": {...}}, ...}.
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(g) = v.get("genotype") {
            let arch = serde_json::from_value::<Arch>(g.clone())
                .or_else(|_| serde_json::from_value::<Genotype>(g.clone()).map(Arch::Darts))
                .map_err(|e| {
                    Error::Invalid(format!(
                        "{spec}: no DARTS genotype or NAS-Bench-201 cell in it: {e}"
                    ))
                })?;
            // A search's genotype names its space: every op must be its edge's candidate.
            let space = v.get("space").and_then(|s| s.as_str());
            if let (Arch::Darts(g), Some(space)) = (&arch, space.and_then(DartsSpace::from_name)) {
                g.validate()
                    .and_then(|_| g.check_space(space))
                    .map_err(|e| Error::Invalid(format!("{spec}: {e}")))?;
            }
            return Ok(arch);
        }
    }
    let parsed = if text.starts_with('|') {
        Nb201Arch::parse(text).map(Arch::Nb201)
    } else {
        Genotype::parse(text).map(Arch::Darts)
    };
    parsed.map_err(|e| {
        if file.is_file() {
            Error::File {
                path: file,
                msg: e.to_string(),
            }
        } else {
            e
        }
    })
}

fn settings(a: &TrainArgs, quick: bool, classes: usize) -> Result<TrainSettings> {
    let spec = a.genotype.as_deref().unwrap_or("DARTS_MINUS");
    let mut s = TrainSettings::paper(resolve_arch(spec)?);
    if quick {
        // The laptop-sized version (SPEC §8): small network, few epochs.
        s.network = match s.arch {
            Arch::Darts(_) => EvalConfig {
                channels: 8,
                layers: 8,
                classes,
                auxiliary: true,
            },
            Arch::Nb201(_) => EvalConfig {
                channels: 8,
                layers: 1,
                classes,
                auxiliary: false,
            },
        };
        s.epochs = 5;
        s.batch_size = 64;
    }
    s.network.classes = classes;
    s.network.channels = a.run.channels.unwrap_or(s.network.channels);
    s.network.layers = a.layers.unwrap_or(s.network.layers);
    s.network.auxiliary &= !a.no_auxiliary;
    s.epochs = a.run.epochs.unwrap_or(s.epochs);
    s.batch_size = a.run.batch_size.unwrap_or(s.batch_size);
    a.run.sgd.apply(&mut s.sgd);
    s.auxiliary_weight = a.auxiliary_weight.unwrap_or(s.auxiliary_weight);
    s.drop_path = a.drop_path.unwrap_or(s.drop_path);
    s.cutout = a.cutout.unwrap_or(s.cutout);
    s.augment = !a.run.no_augment;
    s.seed = a.run.seed.unwrap_or(s.seed);
    s.max_steps = a.run.max_steps;
    s.validate()?;
    Ok(s)
}

/// The training data, the test data (beside it, or `--test-data`), and whether the training
/// data is the built-in mini set.
fn load(train: Option<&PathBuf>, test: Option<&PathBuf>) -> Result<(Dataset, Dataset, bool)> {
    let (tr, builtin) = training_data(train)?;
    let te = match (test, train) {
        (Some(t), _) | (None, Some(t)) => Dataset::open(t, Split::Test)?,
        (None, None) => Dataset::builtin_test()?,
    };
    Ok((tr, te, builtin))
}

/// The checkpoint (first, so metrics never run ahead of it), metrics.jsonl and curves.svg.
fn write_outputs(run: &Retrain, dir: &Path) -> Result<()> {
    run.save(&dir.join("checkpoint.safetensors"))?;
    write_jsonl(&dir.join("metrics.jsonl"), &run.history)?;
    let points: Vec<EpochPoint> = run
        .history
        .iter()
        .map(|h| EpochPoint {
            epoch: h.epoch,
            train_loss: h.train.loss,
            val_loss: h.test.loss,
            train_acc: h.train.acc,
            val_acc: h.test.acc,
            beta: None,
        })
        .collect();
    report::curves_chart(&dir.join("curves.svg"), &points)
}

/// (flag, given) of every flag a resumed retraining cannot take.
fn settings_given(a: &TrainArgs) -> Vec<(&'static str, bool)> {
    let mut given = vec![
        ("--genotype", a.genotype.is_some()),
        ("--layers", a.layers.is_some()),
        ("--no-auxiliary", a.no_auxiliary),
        ("--auxiliary-weight", a.auxiliary_weight.is_some()),
        ("--drop-path", a.drop_path.is_some()),
        ("--cutout", a.cutout.is_some()),
    ];
    given.extend(a.run.settings_given());
    given
}

/// Training and test data must agree on their classes.
fn check_classes(train: &Dataset, test: &Dataset) -> Result<()> {
    if train.num_classes() != test.num_classes() {
        return Err(Error::Invalid(format!(
            "the training data has {} classes but the test data {}",
            train.num_classes(),
            test.num_classes()
        )));
    }
    Ok(())
}

pub fn train(a: &TrainArgs, choice: &AdapterChoice) -> Result<()> {
    let (mut run, train, test, out) = match &a.files.resume {
        Some(p) => {
            refuse_on_resume(&settings_given(a))?;
            let ckpt = checkpoint_path(p);
            let gpu = super::open_gpu(choice)?;
            let run = Retrain::resume(&gpu, &ckpt)?;
            // The data the run was started on, unless --data / --test-data say otherwise.
            let s = &run.settings;
            let data = resumed_data(a.files.data.as_ref(), s.data.as_ref(), "--data");
            let test_data = match (&a.test_data, &a.files.data) {
                (Some(t), _) => resumed_data(Some(t), s.test_data.as_ref(), "--test-data"),
                (None, Some(_)) => None,
                (None, None) => s.test_data.clone(),
            };
            let (train, test, _) = load(data.as_ref(), test_data.as_ref())?;
            check_classes(&train, &test)?;
            let dir = resume_dir(a.files.out.as_ref(), &ckpt);
            let claim = resume_claim(&dir, &ckpt, a.run.overwrite);
            (run, train, test, OutDir::claim(&dir, claim)?)
        }
        None => {
            let (train, test, builtin) = load(a.files.data.as_ref(), a.test_data.as_ref())?;
            check_classes(&train, &test)?;
            // Settings (and so the genotype) are checked before the GPU is opened.
            let mut s = settings(a, builtin && !a.run.paper, train.num_classes())?;
            s.data = a.files.data.as_deref().map(absolute);
            s.test_data = a.test_data.as_deref().map(absolute);
            let dir = a.files.out.clone().unwrap_or_else(|| timestamped("train"));
            let out = OutDir::claim(
                &dir,
                Claim::New {
                    overwrite: a.run.overwrite,
                },
            )?;
            let gpu = super::open_gpu(choice)?;
            (Retrain::new(&gpu, s)?, train, test, out)
        }
    };
    let dir = out.path.clone();
    run.set_image_size(train.height, train.width)?;
    let s = &run.settings;
    let params = run.net.count_without_aux();
    let macs = run.multiply_adds()?;
    println!(
        "darts-minus train · C={} {} cells{} · {:.3} M weights (without the auxiliary head) · {:.1} M multiply-adds per image · {} epochs, batch {}",
        s.network.channels,
        s.network.layers,
        if s.network.auxiliary { " + auxiliary head" } else { "" },
        params as f64 / 1e6,
        macs as f64 / 1e6,
        s.epochs,
        s.batch_size
    );
    let named = |p: &Option<PathBuf>| p.as_ref().map(|p| format!(" from {}", p.display()));
    println!(
        "  {}\n  {} training images{} / {} test images{} · output {}",
        s.arch.text(),
        train.len,
        named(&s.data).unwrap_or_else(|| " (built-in)".into()),
        test.len,
        named(&s.test_data).unwrap_or_default(),
        dir.display()
    );
    let (train, test) = (Arc::new(train), Arc::new(test));
    let bar = epoch_bar("{prefix} [{bar:30}] {pos}/{len} · loss {msg} · ETA {eta}")?;
    let t0 = Instant::now();
    let epochs = run.settings.epochs;
    let mut observe = follow(
        &bar,
        epochs,
        |_, _| None,
        |stats, _| format!("{:.3}", stats.loss),
        None,
    );
    if run.finished() && !run.history.is_empty() {
        println!(
            "  the run already finished ({} epochs, step {}): its outputs are written to {}",
            run.epoch,
            run.step,
            dir.display()
        );
        write_outputs(&run, &dir)?;
    }
    while !run.finished() {
        let r = run.run_epoch(&train, &test, &mut observe)?;
        bar.finish_and_clear();
        write_outputs(&run, &dir)?;
        println!(
            "epoch {:>3}/{epochs} · train loss {:.4} acc {:5.1}% · test loss {:.4} acc {:5.1}% (top-5 {:5.1}%) · lr {:.4} · drop path {:.3} · {:.1} img/s",
            r.epoch + 1,
            r.train.loss,
            100.0 * r.train.acc,
            r.test.loss,
            100.0 * r.test.acc,
            100.0 * r.test.top5,
            r.lr,
            r.drop_path,
            r.timing.images_per_sec
        );
    }
    if let Some(last) = run.history.last() {
        println!(
            "\nTrained in {:.1} min: test accuracy {:.2}% (error {:.2}%), {:.3} M weights, {:.1} M multiply-adds. Outputs in {}",
            t0.elapsed().as_secs_f64() / 60.0,
            100.0 * last.test.acc,
            100.0 * (1.0 - last.test.acc),
            params as f64 / 1e6,
            macs as f64 / 1e6,
            dir.display()
        );
    }
    Ok(())
}
