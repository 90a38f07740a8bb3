//! `darts-minus search`.

use super::args::{RunArgs, RunFiles, SpaceArgs};
use super::checkpoint_path;
use super::progress::{
    absolute, epoch_bar, follow, refuse_on_resume, resume_claim, resume_dir, resumed_data,
    timestamped, training_data,
};
use clap::{Args, ValueEnum};
use darts_minus::data::{search_split, Dataset, CIFAR10_MEAN, CIFAR10_STD};
use darts_minus::gpu::AdapterChoice;
use darts_minus::run::outdir::Claim;
use darts_minus::search::darts_net::DartsConfig;
use darts_minus::search::nb201_net::Nb201Config;
use darts_minus::search::outputs::RunDir;
use darts_minus::search::schedule::{BetaDecay, BetaSchedule};
use darts_minus::search::trainer::{Derived, Search, SearchSettings, Space, StepOrder, ValPairing};
use darts_minus::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OrderArg {
    ArchFirst,
    WeightsFirst,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PairingArg {
    /// The validation half in batches, reshuffled on each pass (DARTS-'s code).
    Queue,
    /// A validation image drawn at random per training image (NAS-Bench-201's code).
    Random,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BetaArg {
    Linear,
    Cosine,
    SlowCosine,
    Constant,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum NormArg {
    /// CIFAR-10 for 10-class 32×32 data, CIFAR-100 for 100 classes, else measured on the data.
    Auto,
    Cifar10,
    Cifar100,
    /// Mean and std measured on the training images.
    Dataset,
}

/// Options of `darts-minus search`. Unset values take the paper's settings for real data, or
/// a small quick setting on the built-in mini set.
#[derive(Args, Debug)]
pub struct SearchArgs {
    #[command(flatten)]
    pub files: RunFiles,
    #[command(flatten)]
    pub space: SpaceArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Cells of the DARTS network.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Intermediate nodes per DARTS cell.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Cells per stage of the NAS-Bench-201 network.
    #[arg(long)]
    pub cells_per_stage: Option<usize>,
    /// Final learning rate of the weights' cosine annealing.
    #[arg(long)]
    pub lr_min: Option<f64>,
    /// Nesterov momentum (the NAS-Bench-201 baseline's default).
    #[arg(long)]
    pub nesterov: Option<bool>,
    #[arg(long)]
    pub arch_lr: Option<f64>,
    #[arg(long)]
    pub arch_weight_decay: Option<f64>,
    /// Plain DARTS: no auxiliary skip (the collapse baseline).
    #[arg(long)]
    pub no_aux: bool,
    /// Decay of β, the weight of the auxiliary skip.
    #[arg(long, value_enum)]
    pub beta_schedule: Option<BetaArg>,
    /// β at the start.
    #[arg(long)]
    pub beta0: Option<f64>,
    /// Epoch at which β starts to decay (T_start).
    #[arg(long)]
    pub beta_start: Option<usize>,
    /// Epoch after which β stays fixed (T_stop; default: epochs).
    #[arg(long)]
    pub beta_stop: Option<usize>,
    /// T_max of the β formulas (default: epochs).
    #[arg(long)]
    pub beta_max: Option<usize>,
    /// Which update of a step comes first.
    #[arg(long, value_enum)]
    pub order: Option<OrderArg>,
    /// Batches in index order, no reshuffling.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Which validation images the α steps see [default: queue for the DARTS spaces, random
    /// for nb201, as each reference does].
    #[arg(long, value_enum)]
    pub val_pairing: Option<PairingArg>,
    /// Input normalisation [default: auto].
    #[arg(long, value_enum)]
    pub normalize: Option<NormArg>,
    /// Start from the weights and α of a checkpoint (ours or a PyTorch export).
    #[arg(long, conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
}

const CIFAR100_MEAN: [f32; 3] = [0.5071, 0.4865, 0.4409];
const CIFAR100_STD: [f32; 3] = [0.2673, 0.2564, 0.2762];

/// The settings a new search runs with.
fn settings(a: &SearchArgs, builtin: bool, data: &Dataset) -> Result<SearchSettings> {
    let quick = builtin && !a.run.paper;
    // RobustDARTS' spaces search with the DARTS- settings, on their own candidate lists.
    let mut s = match a.space.space().darts_cell() {
        Some(cells) => {
            let mut s = SearchSettings::darts_paper();
            if let Space::Darts(c) = &mut s.space {
                c.candidates = cells;
            }
            s
        }
        None => SearchSettings::nb201_benchmark(),
    };
    if quick {
        // Small enough that the built-in search finishes in minutes on a CPU adapter.
        s.epochs = 3;
        s.batch_size = 32;
        match &mut s.space {
            Space::Darts(c) => {
                *c = DartsConfig {
                    channels: 4,
                    layers: 5,
                    ..*c
                }
            }
            Space::Nb201(c) => {
                *c = Nb201Config {
                    channels: 4,
                    cells_per_stage: 1,
                    ..*c
                }
            }
        }
    }
    // A flag of the other space would be ignored: say so instead.
    let foreign: &[(&str, bool)] = match s.space {
        Space::Darts(_) => &[("--cells-per-stage", a.cells_per_stage.is_some())],
        Space::Nb201(_) => &[
            ("--layers", a.layers.is_some()),
            ("--nodes", a.nodes.is_some()),
        ],
    };
    if let Some((flag, _)) = foreign.iter().find(|f| f.1) {
        let sizes = match s.space {
            Space::Darts(_) => "--layers (cells) and --nodes",
            Space::Nb201(_) => "--cells-per-stage",
        };
        let space = s.space.label();
        return Err(Error::Invalid(format!(
            "{flag} does not apply to the {space} space, whose network size is set by {sizes}"
        )));
    }
    match &mut s.space {
        Space::Darts(c) => {
            c.channels = a.run.channels.unwrap_or(c.channels);
            c.layers = a.layers.unwrap_or(c.layers);
            c.nodes = a.nodes.unwrap_or(c.nodes);
            c.aux = !a.no_aux;
        }
        Space::Nb201(c) => {
            c.channels = a.run.channels.unwrap_or(c.channels);
            c.cells_per_stage = a.cells_per_stage.unwrap_or(c.cells_per_stage);
            c.aux = !a.no_aux;
        }
    }
    s.space.set_classes(data.num_classes());
    s.epochs = a.run.epochs.unwrap_or(s.epochs);
    s.batch_size = a.run.batch_size.unwrap_or(s.batch_size);
    a.run.sgd.apply(&mut s.sgd);
    s.sgd.lr_min = a.lr_min.unwrap_or(s.sgd.lr_min);
    s.sgd.nesterov = a.nesterov.unwrap_or(s.sgd.nesterov);
    s.arch_lr = a.arch_lr.unwrap_or(s.arch_lr);
    s.arch_weight_decay = a.arch_weight_decay.unwrap_or(s.arch_weight_decay);
    let decay = match a.beta_schedule {
        None | Some(BetaArg::Linear) => BetaDecay::Linear,
        Some(BetaArg::Cosine) => BetaDecay::Cosine,
        Some(BetaArg::SlowCosine) => BetaDecay::SlowCosine,
        Some(BetaArg::Constant) => BetaDecay::Constant,
    };
    s.beta = BetaSchedule {
        decay,
        beta0: a.beta0.unwrap_or(1.0),
        t_start: a.beta_start.unwrap_or(0),
        t_stop: a.beta_stop.unwrap_or(s.epochs),
        t_max: a.beta_max.unwrap_or(s.epochs),
    };
    if let Some(o) = a.order {
        s.order = match o {
            OrderArg::ArchFirst => StepOrder::ArchFirst,
            OrderArg::WeightsFirst => StepOrder::WeightsFirst,
        };
    }
    s.seed = a.run.seed.unwrap_or(s.seed);
    s.augment = !a.run.no_augment;
    s.shuffle = !a.no_shuffle;
    s.val_pairing = match a.val_pairing {
        Some(PairingArg::Queue) => ValPairing::Queue,
        Some(PairingArg::Random) => ValPairing::Random,
        None => s.val_pairing,
    };
    s.max_steps = a.run.max_steps;
    let auto_cifar = data.height == 32 && data.width == 32;
    (s.mean, s.std) = match a.normalize.unwrap_or(NormArg::Auto) {
        NormArg::Cifar10 => (CIFAR10_MEAN, CIFAR10_STD),
        NormArg::Cifar100 => (CIFAR100_MEAN, CIFAR100_STD),
        NormArg::Dataset => data.channel_mean_std()?,
        NormArg::Auto if builtin || (auto_cifar && data.num_classes() == 10) => {
            (CIFAR10_MEAN, CIFAR10_STD)
        }
        NormArg::Auto if auto_cifar && data.num_classes() == 100 => (CIFAR100_MEAN, CIFAR100_STD),
        NormArg::Auto => data.channel_mean_std()?,
    };
    s.validate()?;
    Ok(s)
}

/// (flag, given) of every flag a resumed search cannot take: they would change what its
/// checkpoint fixes.
fn settings_given(a: &SearchArgs) -> Vec<(&'static str, bool)> {
    let mut given = vec![
        ("--space", a.space.space.is_some()),
        ("--layers", a.layers.is_some()),
        ("--nodes", a.nodes.is_some()),
        ("--cells-per-stage", a.cells_per_stage.is_some()),
        ("--lr-min", a.lr_min.is_some()),
        ("--nesterov", a.nesterov.is_some()),
        ("--arch-lr", a.arch_lr.is_some()),
        ("--arch-weight-decay", a.arch_weight_decay.is_some()),
        ("--no-aux", a.no_aux),
        ("--beta-schedule", a.beta_schedule.is_some()),
        ("--beta0", a.beta0.is_some()),
        ("--beta-start", a.beta_start.is_some()),
        ("--beta-stop", a.beta_stop.is_some()),
        ("--beta-max", a.beta_max.is_some()),
        ("--order", a.order.is_some()),
        ("--no-shuffle", a.no_shuffle),
        ("--val-pairing", a.val_pairing.is_some()),
        ("--normalize", a.normalize.is_some()),
    ];
    given.extend(a.run.settings_given());
    given
}

pub fn run(a: &SearchArgs, choice: &AdapterChoice) -> Result<()> {
    let (mut search, run_dir, data, gpu) = match &a.files.resume {
        Some(p) => {
            refuse_on_resume(&settings_given(a))?;
            let ckpt = checkpoint_path(p);
            let gpu = super::open_gpu(choice)?;
            let search = Search::resume(&gpu, &ckpt)?;
            // The data the run was started on, unless --data says otherwise.
            let recorded = search.settings.data.as_ref();
            let data_path = resumed_data(a.files.data.as_ref(), recorded, "--data");
            let (data, _) = training_data(data_path.as_ref())?;
            let dir = resume_dir(a.files.out.as_ref(), &ckpt);
            let claim = resume_claim(&dir, &ckpt, a.run.overwrite);
            (search, RunDir::claim(&dir, claim)?, data, gpu)
        }
        None => {
            let (data, builtin) = training_data(a.files.data.as_ref())?;
            let mut s = settings(a, builtin, &data)?;
            s.data = a.files.data.as_deref().map(absolute);
            let dir = a
                .files
                .out
                .clone()
                .unwrap_or_else(|| timestamped(&format!("search-{}", s.space.name())));
            // Claimed before the GPU opens: a taken --out stops the run before any work.
            let run_dir = RunDir::claim(
                &dir,
                Claim::New {
                    overwrite: a.run.overwrite,
                },
            )?;
            let gpu = super::open_gpu(choice)?;
            let mut search = Search::new(&gpu, s)?;
            if let Some(p) = &a.init_from {
                search.init_from(&checkpoint_path(p))?;
            }
            (search, run_dir, data, gpu)
        }
    };
    if data.num_classes() != search.settings.space.classes() {
        return Err(Error::Invalid(format!(
            "the data has {} classes but the checkpoint's network has {}",
            data.num_classes(),
            search.settings.space.classes()
        )));
    }
    let data = Arc::new(data);
    let split = search_split(data.len);
    let s = &search.settings;
    let ad = gpu.adapter();
    println!(
        "darts-minus search · {} space{} · {} on {} ({})",
        s.space.name(),
        if s.space.aux() {
            " (DARTS-, auxiliary skip)"
        } else {
            " (plain DARTS)"
        },
        match &search.settings.data {
            Some(p) => p.display().to_string(),
            None if a.files.data.is_some() => a
                .files
                .data
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            None => "built-in CIFAR-10 mini set".into(),
        },
        ad.name,
        ad.backend
    );
    println!(
        "  {} weights · {} train / {} val images ({}) · batch {} · {} epochs · output {}",
        search.weight_count(),
        split.0.len(),
        split.1.len(),
        match (s.val_pairing, s.shuffle) {
            (ValPairing::Queue, true) => "α steps on a reshuffled queue",
            (ValPairing::Queue, false) => "α steps on a queue in index order",
            (ValPairing::Random, _) => "α steps on random draws",
        },
        s.batch_size,
        s.epochs,
        run_dir.path.display()
    );
    if search.finished() && !search.history.is_empty() {
        println!(
            "  the run already finished ({} epochs, step {}): its outputs are written to {}",
            search.epoch,
            search.step,
            run_dir.path.display()
        );
        run_dir.write_epoch(&search)?;
    } else if search.epoch > 0 {
        println!(
            "  resuming after epoch {} (step {})",
            search.epoch, search.step
        );
    }
    let t_start = Instant::now();
    let bar = epoch_bar("{prefix} [{bar:30}] {pos}/{len} · {msg} · ETA {eta}")?;
    let epochs = search.settings.epochs;
    let mut observe = follow(
        &bar,
        epochs,
        |lr, beta| Some(format!("lr {lr:.4} β {:.3}", beta.unwrap_or(0.0))),
        |stats, seconds| {
            format!(
                "loss {:.3} acc {:.0}% · {:.1} img/s",
                stats.loss,
                100.0 * stats.top1 as f64 / stats.n.max(1) as f64,
                stats.n as f64 / seconds
            )
        },
        Some("validating"),
    );
    while !search.finished() {
        let record = search.run_epoch(&data, &split, &mut observe)?;
        bar.finish_and_clear();
        run_dir.write_epoch(&search)?;
        println!(
            "epoch {:>3}/{epochs} · train loss {:.4} acc {:5.1}% · val loss {:.4} acc {:5.1}% · β {:.3} · {:.0} ms/step · {:.1} img/s · {}",
            record.epoch + 1,
            record.train.loss,
            100.0 * record.train.acc,
            record.val.loss,
            100.0 * record.val.acc,
            record.beta,
            record.timing.step_time_ms,
            record.timing.images_per_sec,
            short(&record.genotype)
        );
        if let Some(nb) = &record.nb201 {
            println!("            NAS-Bench-201: CIFAR-10 test {:.2}% · CIFAR-100 test {:.2}% · ImageNet16-120 test {:.2}%", nb.cifar10_test, nb.cifar100_test, nb.imagenet16_test);
        }
    }
    summary(&search, &run_dir, t_start.elapsed().as_secs_f64());
    Ok(())
}

fn short(d: &Derived) -> String {
    match d {
        Derived::Darts(g) => {
            let count =
                |ops: &[(String, usize)], op: &str| ops.iter().filter(|(o, _)| o == op).count();
            format!(
                "normal cell: {} skip, {} sep_conv",
                count(&g.normal, "skip_connect"),
                g.normal
                    .iter()
                    .filter(|(o, _)| o.starts_with("sep_conv"))
                    .count()
            )
        }
        Derived::Nb201(a) => a.arch_string(),
    }
}

fn summary(search: &Search, dir: &RunDir, secs: f64) {
    let Some(last) = search.history.last() else {
        return;
    };
    let best = search.history.iter().map(|r| r.val.acc).fold(0.0, f64::max);
    let took = if secs < 120.0 {
        format!("{secs:.0} s")
    } else {
        format!("{:.1} min", secs / 60.0)
    };
    println!(
        "\nSearch finished in {took}: {} epochs, {} steps, best val acc {:.1}%",
        search.epoch,
        search.step,
        100.0 * best
    );
    println!(
        "Derived architecture (epoch {}):\n  {}",
        last.epoch + 1,
        last.genotype_text
    );
    if let Some(nb) = &last.nb201 {
        println!(
            "NAS-Bench-201 #{}: CIFAR-10 valid {:.2}% / test {:.2}% · CIFAR-100 test {:.2}% · ImageNet16-120 test {:.2}%",
            nb.index, nb.cifar10_valid, nb.cifar10_test, nb.cifar100_test, nb.imagenet16_test
        );
    }
    println!("Outputs in {}: genotype.json/.txt, metrics.jsonl, curves.svg, alpha charts, cell drawings, checkpoint.safetensors", dir.path.display());
}
