//! The search loop (SPEC §5): per step an α step (Adam on the validation loss) and a w step
//! (SGD with momentum, clipped), in the order the space's reference uses; per epoch the
//! cosine learning rate and the β of the auxiliary skip, a validation pass in eval mode, and
//! the derived genotype. Checkpoints hold everything needed to continue exactly.

use super::darts_net::{DartsConfig, DartsNetwork};
use super::genotype::Genotype;
use super::nb201::{Nb201Arch, Nb201Entry, Nb201Table};
use super::nb201_net::{Nb201Config, Nb201Network};
use super::schedule::{cosine_lr, BetaSchedule};
use super::supernet::Supernet;
use crate::autodiff::ops::softmax::rank_tensor;
use crate::autodiff::{Labels, Tape, Tensor};
use crate::checkpoint::{self, Entry, Named};
use crate::data::{epoch_batches, shuffled, sub_seed, Augment, Batch, Dataset};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Program};
use crate::nn::{parameters, Ctx};
use crate::optim::{Adam, Sgd};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The search space and its network shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    Darts(DartsConfig),
    Nb201(Nb201Config),
}

impl Space {
    pub fn name(&self) -> &'static str {
        match self {
            Space::Darts(_) => "darts",
            Space::Nb201(_) => "nb201",
        }
    }

    pub fn classes(&self) -> usize {
        match self {
            Space::Darts(c) => c.classes,
            Space::Nb201(c) => c.classes,
        }
    }

    pub fn set_classes(&mut self, n: usize) {
        match self {
            Space::Darts(c) => c.classes = n,
            Space::Nb201(c) => c.classes = n,
        }
    }

    pub fn aux(&self) -> bool {
        match self {
            Space::Darts(c) => c.aux,
            Space::Nb201(c) => c.aux,
        }
    }
}

/// Which of the two updates of a step runs first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOrder {
    /// α step on a validation batch, then w step (the DARTS- paper's code).
    ArchFirst,
    /// w step, then α step (the NAS-Bench-201 DARTS baseline).
    WeightsFirst,
}

/// Every hyperparameter of a search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSettings {
    pub space: Space,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub lr_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub grad_clip: f64,
    pub arch_lr: f64,
    pub arch_betas: (f64, f64),
    pub arch_eps: f64,
    pub arch_weight_decay: f64,
    pub beta: BetaSchedule,
    pub order: StepOrder,
    pub seed: u64,
    pub augment: bool,
    pub shuffle: bool,
    /// Stop after this many steps in total (for step-by-step comparisons).
    pub max_steps: Option<usize>,
    /// Normalisation of the input images.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl SearchSettings {
    /// The DARTS- paper's search settings (SPEC §5).
    pub fn darts_paper() -> Self {
        SearchSettings {
            space: Space::Darts(DartsConfig::default()),
            epochs: 50,
            batch_size: 64,
            lr: 0.025,
            lr_min: 0.001,
            momentum: 0.9,
            weight_decay: 3e-4,
            nesterov: false,
            grad_clip: 5.0,
            arch_lr: 3e-4,
            arch_betas: (0.5, 0.999),
            arch_eps: 1e-8,
            arch_weight_decay: 1e-3,
            beta: BetaSchedule::linear(50),
            order: StepOrder::ArchFirst,
            seed: 2,
            augment: true,
            shuffle: true,
            max_steps: None,
            mean: crate::data::CIFAR10_MEAN,
            std: crate::data::CIFAR10_STD,
        }
    }

    /// The NAS-Bench-201 DARTS baseline's settings (SPEC §7), with the DARTS- aux path.
    pub fn nb201_benchmark() -> Self {
        SearchSettings {
            space: Space::Nb201(Nb201Config::default()),
            weight_decay: 5e-4,
            nesterov: true,
            order: StepOrder::WeightsFirst,
            ..Self::darts_paper()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return bad(format!(
                "--batch-size must be at least 2 (batch norm needs two samples), got {}",
                self.batch_size
            ));
        }
        for (name, v) in [
            ("lr", self.lr),
            ("arch-lr", self.arch_lr),
            ("grad-clip", self.grad_clip),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return bad(format!("--{name} must be a positive number, got {v}"));
            }
        }
        if self.beta.t_max <= self.beta.t_start {
            return bad(format!(
                "β schedule needs T_max > T_start (T_max = {}, T_start = {})",
                self.beta.t_max, self.beta.t_start
            ));
        }
        if self.std.iter().any(|&s| s <= 0.0) {
            return bad("normalisation std must be positive".into());
        }
        Ok(())
    }
}

/// The architecture read from α.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Derived {
    Darts(Genotype),
    Nb201(Nb201Arch),
}

impl Derived {
    /// The upstream Python `Genotype(...)` string, or the NAS-Bench-201 arch string.
    pub fn text(&self) -> String {
        match self {
            Derived::Darts(g) => g.to_python(),
            Derived::Nb201(a) => a.arch_string(),
        }
    }

    /// The benchmark's accuracies of a NAS-Bench-201 cell.
    pub fn nb201_entry(&self) -> Option<Nb201Entry> {
        match self {
            Derived::Nb201(a) => Nb201Table::builtin().lookup(a).cloned(),
            Derived::Darts(_) => None,
        }
    }
}

/// A batch of 3-channel images of `(h, w)` pixels and its labels, on the GPU.
pub fn upload_batch(gpu: &Gpu, b: &Batch, (h, w): (usize, usize)) -> Result<(Tensor, Labels)> {
    let n = b.y.len();
    if b.x.len() != n * 3 * h * w {
        return Err(Error::shape(
            "batch",
            format!("{} values for {n} images of 3×{h}×{w}", b.x.len()),
        ));
    }
    Ok((
        Tensor::from_slice(gpu, &[n, 3, h, w], &b.x)?,
        Labels::new(gpu, &b.y)?,
    ))
}

/// Row-wise softmax on the CPU (for logging and genotypes).
pub fn softmax_rows(x: &[f32], cols: usize) -> Vec<Vec<f32>> {
    x.chunks(cols)
        .map(|r| {
            let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = r.iter().map(|&v| ((v - m) as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|v| (v / s) as f32).collect()
        })
        .collect()
}

/// Derives the architecture from raw α tables (name → row-major values).
pub fn derive_from_alphas(
    space: &Space,
    alphas: &BTreeMap<String, Vec<Vec<f32>>>,
) -> Result<Derived> {
    let get = |name: &str| {
        alphas
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("no '{name}' among the architecture parameters")))
    };
    match space {
        Space::Darts(_) => {
            let ops: Vec<&str> = crate::nn::darts_ops::DARTS_OPS.to_vec();
            Ok(Derived::Darts(Genotype::derive(
                get("alphas_normal")?,
                get("alphas_reduce")?,
                &ops,
            )?))
        }
        Space::Nb201(_) => Ok(Derived::Nb201(Nb201Arch::derive(get("arch_parameters")?)?)),
    }
}

/// One epoch's results: a line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub beta: f64,
    pub steps: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub train_top5: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub val_top5: f64,
    /// Median wall time of one search step (α step + w step), milliseconds.
    pub step_time_ms: f64,
    /// Training images per second of search step (batch / step time).
    pub images_per_sec: f64,
    pub epoch_seconds: f64,
    /// softmax(α) of every edge, per α table.
    pub alphas: BTreeMap<String, Vec<Vec<f32>>>,
    pub genotype: Derived,
    /// The Python `Genotype(...)` string or the NAS-Bench-201 arch string.
    pub genotype_text: String,
    pub nb201: Option<Nb201Entry>,
}

/// What a step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    pub top1: usize,
    pub top5: usize,
    pub n: usize,
}

/// Progress events for a front end.
pub enum Progress<'a> {
    EpochStart {
        epoch: usize,
        steps: usize,
        lr: f64,
        beta: f64,
    },
    Step {
        step: usize,
        steps: usize,
        stats: &'a StepStats,
        seconds: f64,
    },
    Validating {
        batches: usize,
    },
}

/// A recorded search step (SPEC §5 step for one pair of batch sizes): replaying it only
/// needs the next batches written into its input tensors and the step's scalars set.
struct RecordedStep {
    /// (train batch size, validation batch size, image height, image width).
    key: (usize, usize, usize, usize),
    program: Program,
    xt: Tensor,
    yt: Labels,
    xv: Tensor,
    yv: Labels,
    loss: Tensor,
    ranks: Tensor,
}

/// Reads a step's loss and top-1/top-5 counts back from the GPU.
fn read_stats(loss: &Tensor, ranks: &Tensor) -> Result<StepStats> {
    let mut both = Tensor::read_all(&[loss, ranks])?;
    let ranks = both.pop().unwrap_or_default();
    Ok(StepStats {
        loss: both[0][0],
        top1: ranks.iter().filter(|&&r| r < 1.0).count(),
        top5: ranks.iter().filter(|&&r| r < 5.0).count(),
        n: ranks.len(),
    })
}

/// A search in progress.
pub struct Search {
    gpu: Gpu,
    pub settings: SearchSettings,
    net: Box<dyn Supernet>,
    weights: Vec<(String, Tensor)>,
    sgd: Sgd,
    adam: Adam,
    beta_table: Tensor,
    /// Height and width of the input images.
    image_size: (usize, usize),
    /// Epochs completed.
    pub epoch: usize,
    /// Steps completed over the whole run.
    pub step: usize,
    pub history: Vec<EpochRecord>,
    /// Record the first step of each batch shape and replay it afterwards (the default);
    /// off, every step is built eagerly. Both compute exactly the same values.
    pub replay: bool,
    /// Recompute cheap intermediates in backward instead of keeping them (the default; see
    /// [`Tape::set_recompute`]). Off trades memory for time; results are identical.
    pub recompute: bool,
    recorded: Option<RecordedStep>,
}

const TAG_INIT: u64 = 1;
const TAG_EPOCH: u64 = 1000;

fn loss_of(stats: &[StepStats]) -> (f64, f64, f64) {
    let n: usize = stats.iter().map(|s| s.n).sum();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let loss = stats
        .iter()
        .map(|s| s.loss as f64 * s.n as f64)
        .sum::<f64>()
        / n as f64;
    let t1 = stats.iter().map(|s| s.top1).sum::<usize>() as f64 / n as f64;
    let t5 = stats.iter().map(|s| s.top5).sum::<usize>() as f64 / n as f64;
    (loss, t1, t5)
}

impl Search {
    /// A fresh search: network initialised from the seed.
    pub fn new(gpu: &Gpu, settings: SearchSettings) -> Result<Search> {
        settings.validate()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sub_seed(settings.seed, TAG_INIT));
        let net: Box<dyn Supernet> = match settings.space {
            Space::Darts(c) => Box::new(DartsNetwork::new(gpu, &mut rng, c)?),
            Space::Nb201(c) => Box::new(Nb201Network::new(gpu, &mut rng, c)?),
        };
        let weights = parameters(net.as_ref(), "");
        let wts: Vec<Tensor> = weights.iter().map(|(_, t)| t.clone()).collect();
        let mut sgd = Sgd::new(
            gpu,
            &wts,
            settings.lr as f32,
            settings.momentum as f32,
            settings.weight_decay as f32,
        )?;
        sgd.nesterov = settings.nesterov;
        // The learning rate's GPU table; `set_epoch` rewrites it for each epoch's schedule.
        sgd.prepare()?;
        let alphas: Vec<Tensor> = net.alphas().into_iter().map(|(_, t)| t.clone()).collect();
        let adam = Adam::new(
            gpu,
            &alphas,
            settings.arch_lr as f32,
            (settings.arch_betas.0 as f32, settings.arch_betas.1 as f32),
            settings.arch_eps as f32,
            settings.arch_weight_decay as f32,
        )?;
        let beta_table = Tensor::full(gpu, &[1], settings.beta.at(0) as f32)?;
        Ok(Search {
            gpu: gpu.clone(),
            settings,
            net,
            weights,
            sgd,
            adam,
            beta_table,
            image_size: (32, 32),
            epoch: 0,
            step: 0,
            history: Vec::new(),
            replay: true,
            recompute: true,
            recorded: None,
        })
    }

    pub fn network(&self) -> &dyn Supernet {
        self.net.as_ref()
    }

    /// Number of trainable weights (α excluded).
    pub fn weight_count(&self) -> usize {
        self.weights.iter().map(|(_, t)| t.numel()).sum()
    }

    fn alpha_tensors(&self) -> Vec<Tensor> {
        self.net
            .alphas()
            .into_iter()
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Sets the learning rate and β for epoch `e` (SPEC §4, §5).
    pub fn set_epoch(&mut self, e: usize) -> Result<(f64, f64)> {
        let lr = cosine_lr(
            self.settings.lr,
            self.settings.lr_min,
            e,
            self.settings.epochs,
        );
        let beta = if self.settings.space.aux() {
            self.settings.beta.at(e)
        } else {
            0.0
        };
        self.sgd.lr = lr as f32;
        // Both change once per epoch: written here, not every step (a replayed step reads them).
        self.sgd.prepare()?;
        self.beta_table.write(&[beta as f32])?;
        Ok((lr, beta))
    }

    fn beta(&self) -> Option<(&Tensor, usize)> {
        self.settings.space.aux().then_some((&self.beta_table, 0))
    }

    /// Sets the (height, width) of the images that batches hold.
    pub fn set_image_size(&mut self, h: usize, w: usize) {
        self.image_size = (h, w);
    }

    fn upload(&self, b: &Batch) -> Result<(Tensor, Labels)> {
        upload_batch(&self.gpu, b, self.image_size)
    }

    /// One Adam step on α from the loss on `(x, y)` (the model in train mode).
    pub fn arch_step(&mut self, x: &Tensor, y: &Labels) -> Result<()> {
        self.adam.prepare()?;
        self.encode_arch_step(x, y)
    }

    /// Queues the α step; Adam's step terms must have been written ([`Adam::prepare`]).
    fn encode_arch_step(&self, x: &Tensor, y: &Labels) -> Result<()> {
        // Only α needs a gradient here: frozen weights skip their gradient kernels, and ops
        // upstream of the first mixed edge are not even recorded.
        self.weights
            .iter()
            .for_each(|(_, t)| t.set_requires_grad(false));
        let result = (|| {
            let mut tape = Tape::new(&self.gpu);
            tape.set_recompute(self.recompute);
            let logits = self
                .net
                .forward(&mut tape, x, self.beta(), Ctx { train: true })?;
            let loss = tape.cross_entropy(&logits, y)?;
            tape.backward(&loss)
        })();
        self.weights
            .iter()
            .for_each(|(_, t)| t.set_requires_grad(true));
        let grads = result?;
        let alphas = self.alpha_tensors();
        let gs = alphas
            .iter()
            .map(|a| {
                grads
                    .get(a)
                    .ok_or_else(|| Error::Invalid("α received no gradient".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        self.adam.encode(&alphas, &gs)
    }

    /// One SGD step on the weights from the loss on `(x, y)`, gradients clipped; returns the
    /// loss and top-k counts of this batch (one sync with the GPU).
    pub fn weight_step(&mut self, x: &Tensor, y: &Labels) -> Result<StepStats> {
        self.sgd.prepare()?;
        let (loss, ranks) = self.encode_weight_step(x, y)?;
        read_stats(&loss, &ranks)
    }

    /// Queues the w step (the learning rate must have been written, [`Sgd::prepare`]);
    /// returns the loss and the label ranks, still on the GPU.
    fn encode_weight_step(&self, x: &Tensor, y: &Labels) -> Result<(Tensor, Tensor)> {
        // α is fixed in this step: freezing it skips the mixed edges' weight reductions.
        let alphas = self.alpha_tensors();
        alphas.iter().for_each(|a| a.set_requires_grad(false));
        let result = (|| {
            let mut tape = Tape::new(&self.gpu);
            tape.set_recompute(self.recompute);
            let logits = self
                .net
                .forward(&mut tape, x, self.beta(), Ctx { train: true })?;
            let loss = tape.cross_entropy(&logits, y)?;
            let ranks = rank_tensor(&logits, y)?;
            Ok::<_, Error>((tape.backward(&loss)?, loss, ranks))
        })();
        alphas.iter().for_each(|a| a.set_requires_grad(true));
        let (grads, loss, ranks) = result?;
        let params: Vec<Tensor> = self.weights.iter().map(|(_, t)| t.clone()).collect();
        let gs = self
            .weights
            .iter()
            .map(|(n, t)| {
                grads
                    .get(t)
                    .map(Some)
                    .ok_or_else(|| Error::Invalid(format!("weight '{n}' received no gradient")))
            })
            .collect::<Result<Vec<_>>>()?;
        self.sgd
            .encode_clipped_norm(&params, &gs, self.settings.grad_clip as f32)?;
        Ok((loss, ranks))
    }

    /// Queues a whole search step on uploaded batches, in the configured order.
    fn encode_step(
        &self,
        (xt, yt): (&Tensor, &Labels),
        (xv, yv): (&Tensor, &Labels),
    ) -> Result<(Tensor, Tensor)> {
        match self.settings.order {
            StepOrder::ArchFirst => {
                self.encode_arch_step(xv, yv)?;
                self.encode_weight_step(xt, yt)
            }
            StepOrder::WeightsFirst => {
                let out = self.encode_weight_step(xt, yt)?;
                self.encode_arch_step(xv, yv)?;
                Ok(out)
            }
        }
    }

    /// Runs one step: replays the recorded step when the batch shapes match, otherwise
    /// records (or, with replay off, just runs) a new one.
    fn run_step(&mut self, train: &Batch, val: &Batch) -> Result<StepStats> {
        // Adam's step terms change every step; the learning rate is set by `set_epoch`.
        self.adam.prepare()?;
        let (h, w) = self.image_size;
        let key = (train.y.len(), val.y.len(), h, w);
        if let Some(r) = self
            .recorded
            .as_ref()
            .filter(|r| r.key == key && self.replay)
        {
            r.xt.write(&train.x)?;
            r.yt.write(&self.gpu, &train.y)?;
            r.xv.write(&val.x)?;
            r.yv.write(&self.gpu, &val.y)?;
            self.gpu.replay(&r.program);
            return read_stats(&r.loss, &r.ranks);
        }
        // A new shape (the last, smaller batch of an epoch, say): release the old program's
        // buffers before building the new step.
        self.recorded = None;
        let (xt, yt) = self.upload(train)?;
        let (xv, yv) = self.upload(val)?;
        if !self.replay {
            let (loss, ranks) = self.encode_step((&xt, &yt), (&xv, &yv))?;
            return read_stats(&loss, &ranks);
        }
        self.gpu.begin_recording();
        let out = self.encode_step((&xt, &yt), (&xv, &yv));
        let program = self.gpu.end_recording();
        let (loss, ranks) = out?;
        let stats = read_stats(&loss, &ranks)?;
        self.recorded = Some(RecordedStep {
            key,
            program,
            xt,
            yt,
            xv,
            yv,
            loss,
            ranks,
        });
        Ok(stats)
    }

    /// Dispatches in the recorded step (0 before the first step or with replay off).
    pub fn recorded_dispatches(&self) -> usize {
        self.recorded.as_ref().map_or(0, |r| r.program.dispatches())
    }

    /// One search step: α step on `val`, w step on `train`, in the configured order.
    pub fn step(&mut self, train: &Batch, val: &Batch) -> Result<StepStats> {
        let stats = self.run_step(train, val)?;
        self.step += 1;
        if !stats.loss.is_finite() {
            return Err(Error::Invalid(format!(
                "training diverged: the loss is {} at step {} of epoch {}; lower --lr or --arch-lr, or check the data. Checkpoints of completed epochs are intact",
                stats.loss,
                self.step,
                self.epoch + 1
            )));
        }
        Ok(stats)
    }

    /// Loss and accuracy over `batches` in eval mode (running statistics, β still applied).
    pub fn evaluate(&self, batches: impl Iterator<Item = Batch>) -> Result<StepStats> {
        let mut all = Vec::new();
        for b in batches {
            let (x, y) = self.upload(&b)?;
            let mut tape = Tape::inference(&self.gpu);
            let logits = self
                .net
                .forward(&mut tape, &x, self.beta(), Ctx { train: false })?;
            let loss = tape.cross_entropy(&logits, &y)?;
            all.push(read_stats(&loss, &rank_tensor(&logits, &y)?)?);
        }
        let (loss, t1, t5) = loss_of(&all);
        let n = all.iter().map(|s| s.n).sum();
        Ok(StepStats {
            loss: loss as f32,
            top1: (t1 * n as f64).round() as usize,
            top5: (t5 * n as f64).round() as usize,
            n,
        })
    }

    /// softmax(α) of every table, read from the GPU.
    pub fn alphas_softmax(&self) -> Result<BTreeMap<String, Vec<Vec<f32>>>> {
        let cols = self.net.op_names().len();
        self.net
            .alphas()
            .into_iter()
            .map(|(name, t)| Ok((name.to_string(), softmax_rows(&t.to_vec()?, cols))))
            .collect()
    }

    pub fn derive(&self) -> Result<Derived> {
        derive_from_alphas(&self.settings.space, &self.alphas_softmax()?)
    }

    fn augment(&self) -> Augment {
        if self.settings.augment {
            Augment {
                mean: self.settings.mean,
                std: self.settings.std,
                ..Augment::cifar_search()
            }
        } else {
            Augment::none(self.settings.mean, self.settings.std)
        }
    }

    fn order(&self, idx: &[usize], seed: u64) -> Vec<usize> {
        if self.settings.shuffle {
            shuffled(idx, seed)
        } else {
            idx.to_vec()
        }
    }

    /// Runs the next epoch over `data` split into (train, val) index lists.
    pub fn run_epoch(
        &mut self,
        data: &Arc<Dataset>,
        split: &(Vec<usize>, Vec<usize>),
        observe: &mut dyn FnMut(Progress),
    ) -> Result<EpochRecord> {
        let e = self.epoch;
        let start = Instant::now();
        self.set_image_size(data.height, data.width);
        if data.num_classes() != self.settings.space.classes() {
            return Err(Error::Invalid(format!(
                "the data has {} classes but the network was built for {}",
                data.num_classes(),
                self.settings.space.classes()
            )));
        }
        let (lr, beta) = self.set_epoch(e)?;
        let seed = sub_seed(self.settings.seed, TAG_EPOCH + e as u64);
        let bs = self.settings.batch_size;
        let train_order = self.order(&split.0, sub_seed(seed, 1));
        let steps_total = train_order.len().div_ceil(bs);
        let steps = match self.settings.max_steps {
            Some(m) => steps_total.min(m.saturating_sub(self.step)),
            None => steps_total,
        };
        observe(Progress::EpochStart {
            epoch: e,
            steps,
            lr,
            beta,
        });
        let train = epoch_batches(
            data.clone(),
            train_order,
            bs,
            self.augment(),
            sub_seed(seed, 2),
        )?;
        // The α steps cycle through the validation queue, reshuffled on each pass.
        let mut pass = 0u64;
        let mut val = epoch_batches(
            data.clone(),
            self.order(&split.1, sub_seed(seed, 3)),
            bs,
            self.augment(),
            sub_seed(seed, 4),
        )?;
        let mut stats = Vec::new();
        let mut times = Vec::new();
        for (k, tb) in train.take(steps).enumerate() {
            let vb = match val.next() {
                Some(b) => b,
                None => {
                    pass += 1;
                    let s = sub_seed(seed, 100 + pass);
                    val = epoch_batches(
                        data.clone(),
                        self.order(&split.1, s),
                        bs,
                        self.augment(),
                        sub_seed(s, 1),
                    )?;
                    val.next()
                        .ok_or_else(|| Error::Invalid("the validation split is empty".into()))?
                }
            };
            let t0 = Instant::now();
            let s = self.step(&tb, &vb)?;
            let dt = t0.elapsed().as_secs_f64();
            times.push(dt);
            stats.push(s);
            observe(Progress::Step {
                step: k + 1,
                steps,
                stats: &s,
                seconds: dt,
            });
        }
        let mut eval_order = self.order(&split.1, sub_seed(seed, 5));
        if self.settings.max_steps.is_some() && stats.len() < steps_total {
            // A step-limited run (a comparison, a smoke test) validates on as many batches
            // as it trained on, not the whole split.
            eval_order.truncate(stats.len().max(1) * bs);
        }
        observe(Progress::Validating {
            batches: eval_order.len().div_ceil(bs),
        });
        let v = self.evaluate(epoch_batches(
            data.clone(),
            eval_order,
            bs,
            self.augment(),
            sub_seed(seed, 6),
        )?)?;
        let (train_loss, train_acc, train_top5) = loss_of(&stats);
        times.sort_by(|a, b| a.total_cmp(b));
        let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        let alphas = self.alphas_softmax()?;
        let genotype = derive_from_alphas(&self.settings.space, &alphas)?;
        let record = EpochRecord {
            epoch: e,
            lr,
            beta,
            steps: stats.len(),
            train_loss,
            train_acc,
            train_top5,
            val_loss: v.loss as f64,
            val_acc: v.top1 as f64 / v.n.max(1) as f64,
            val_top5: v.top5 as f64 / v.n.max(1) as f64,
            step_time_ms: median * 1e3,
            images_per_sec: bs as f64 / median,
            epoch_seconds: start.elapsed().as_secs_f64(),
            alphas,
            genotype_text: genotype.text(),
            nb201: genotype.nb201_entry(),
            genotype,
        };
        self.epoch += 1;
        self.history.push(record.clone());
        Ok(record)
    }

    /// Whether the run has finished (all epochs, or the step budget spent).
    pub fn finished(&self) -> bool {
        self.epoch >= self.settings.epochs
            || self.settings.max_steps.is_some_and(|m| self.step >= m)
    }

    /// Writes a checkpoint: weights and BN statistics under the reference names, α, both
    /// optimisers' state, progress and settings (atomic).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut entries = checkpoint::module_entries(self.net.as_ref(), "")?;
        for (name, t) in self.net.alphas() {
            entries.push((name.to_string(), Entry::tensor(t)?));
        }
        for ((name, _), buf) in self.weights.iter().zip(self.sgd.state()) {
            entries.push((
                format!("optimizer.momentum_buffer.{name}"),
                Entry::tensor(buf)?,
            ));
        }
        let (m, v) = self.adam.state();
        for (((name, _), m), v) in self.net.alphas().iter().zip(m).zip(v) {
            entries.push((format!("arch_optimizer.exp_avg.{name}"), Entry::tensor(m)?));
            entries.push((
                format!("arch_optimizer.exp_avg_sq.{name}"),
                Entry::tensor(v)?,
            ));
        }
        entries.push(("arch_optimizer.step".into(), Entry::scalar(self.adam.t)));
        entries.push(("search.epoch".into(), Entry::scalar(self.epoch as u64)));
        entries.push(("search.step".into(), Entry::scalar(self.step as u64)));
        entries.push(("search.seed".into(), Entry::scalar(self.settings.seed)));
        let meta = checkpoint::run_metadata(
            "darts-minus search checkpoint v1",
            &self.settings,
            &self.history,
        )?;
        checkpoint::write_atomic(path, &entries, Some(meta))
    }

    /// Continues a search from a checkpoint written by [`Search::save`].
    pub fn resume(gpu: &Gpu, path: &Path) -> Result<Search> {
        let (tensors, meta) = checkpoint::read_with_metadata(path)?;
        let settings: SearchSettings = meta
            .get("settings")
            .ok_or_else(|| file_err(path, "not a darts-minus search checkpoint (no settings); use --init-from to start a new search from its weights"))
            .and_then(|s| serde_json::from_str(s).map_err(|e| file_err(path, &format!("unreadable settings: {e}"))))?;
        let mut search = Search::new(gpu, settings)?;
        search.load_weights(&tensors, path, true)?;
        for ((name, _), buf) in search.weights.iter().zip(search.sgd.state()) {
            write_named(
                buf,
                &tensors,
                &format!("optimizer.momentum_buffer.{name}"),
                path,
            )?;
        }
        let (m, v) = search.adam.state();
        for (((name, _), m), v) in search.net.alphas().iter().zip(m).zip(v) {
            write_named(m, &tensors, &format!("arch_optimizer.exp_avg.{name}"), path)?;
            write_named(
                v,
                &tensors,
                &format!("arch_optimizer.exp_avg_sq.{name}"),
                path,
            )?;
        }
        let int = |k: &str| -> Result<u64> {
            tensors
                .get(k)
                .and_then(|t| t.data.first())
                .map(|&v| v as u64)
                .ok_or_else(|| file_err(path, &format!("missing '{k}'")))
        };
        search.adam.t = int("arch_optimizer.step")?;
        search.epoch = int("search.epoch")? as usize;
        search.step = int("search.step")? as usize;
        if let Some(h) = meta.get("history") {
            search.history = serde_json::from_str(h)
                .map_err(|e| file_err(path, &format!("unreadable history: {e}")))?;
        }
        Ok(search)
    }

    /// Loads weights, BN statistics and (when present, or required) α from `tensors`.
    pub fn load_weights(
        &mut self,
        tensors: &BTreeMap<String, Named>,
        path: &Path,
        require_alphas: bool,
    ) -> Result<()> {
        let (darts, nb201) = (
            tensors.contains_key("alphas_normal"),
            tensors.contains_key("arch_parameters"),
        );
        let other = match self.settings.space {
            Space::Darts(_) if nb201 && !darts => Some("NAS-Bench-201"),
            Space::Nb201(_) if darts && !nb201 => Some("DARTS"),
            _ => None,
        };
        if let Some(other) = other {
            return Err(file_err(
                path,
                &format!("the checkpoint is from another search space ({other}) but this search uses the {} space; pass --space to match it", self.settings.space.name()),
            ));
        }
        checkpoint::load_module(self.net.as_ref(), "", tensors, path)?;
        for (name, t) in self.net.alphas() {
            match tensors.get(name) {
                Some(_) => write_named(t, tensors, name, path)?,
                None if require_alphas => return Err(file_err(path, &format!("missing '{name}'"))),
                None => log::warn!(
                    "{}: no '{name}'; α keeps its fresh initialisation",
                    path.display()
                ),
            }
        }
        Ok(())
    }

    /// Starts from the weights and α of a checkpoint (ours, or exported from the PyTorch
    /// reference with its state_dict names).
    pub fn init_from(&mut self, path: &Path) -> Result<()> {
        let tensors = checkpoint::read(path)?;
        self.load_weights(&tensors, path, false)
    }
}

fn file_err(path: &Path, msg: &str) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

fn write_named(
    dst: &Tensor,
    tensors: &BTreeMap<String, Named>,
    name: &str,
    path: &Path,
) -> Result<()> {
    let t = tensors
        .get(name)
        .ok_or_else(|| file_err(path, &format!("missing '{name}'")))?;
    if t.data.len() != dst.numel() {
        return Err(file_err(path, &format!("'{name}' has shape {:?} but {:?} is needed: the checkpoint is from another search space or configuration", t.shape, dst.shape())));
    }
    dst.write(&t.data.iter().map(|&v| v as f32).collect::<Vec<_>>())
}
