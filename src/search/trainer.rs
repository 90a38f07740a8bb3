//! A search in progress (SPEC §5): the supernet, its weights and α with their optimisers,
//! the per-epoch learning rate and β, and the step run through the recorder (one program
//! per batch shape). The maths of a step is in [`super::step`], the epoch in
//! [`super::epoch`], checkpoints in [`super::state`]; the loop itself is [`crate::run`].

use super::darts_net::DartsNetwork;
use super::nb201_net::Nb201Network;
use super::supernet::Supernet;
use crate::autodiff::ops::softmax::rank_tensor;
use crate::autodiff::{Labels, Tape, Tensor};
use crate::data::{sub_seed, Batch, Dataset};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::Ctx;
use crate::optim::{Adam, Sgd};
use crate::run::metrics::Scores;
use crate::run::{self, read_stats, EvalRecorder, Recorder};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::sync::Arc;

// Where the types of a search used to live; callers keep their paths.
pub use super::derived::{derive_from_alphas, softmax_rows, Derived};
pub use super::epoch::EpochRecord;
pub use super::settings::{SearchSettings, Space, StepOrder, ValPairing};
pub use crate::run::{upload_batch, Progress, StepStats};

/// The inputs of a recorded step: training images and labels, validation images and labels.
type StepInputs = (Tensor, Labels, Tensor, Labels);
/// (train batch size, validation batch size, image height, image width).
type StepShape = (usize, usize, usize, usize);

/// A search in progress.
pub struct Search {
    pub(super) gpu: Gpu,
    pub settings: SearchSettings,
    pub(super) net: Box<dyn Supernet>,
    pub(super) weights: Vec<(String, Tensor)>,
    pub(super) sgd: Sgd,
    pub(super) adam: Adam,
    /// α's gradient from the latest α step, kept for the w step's clipping norm where
    /// `clip_alpha` is set (empty otherwise).
    pub(super) arch_grads: Vec<Tensor>,
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
    /// The step's program and its (loss, label ranks) outputs.
    recorder: Recorder<StepShape, StepInputs, (Tensor, Tensor)>,
    /// The evaluation forward's program per batch shape (batch size, height, width), with
    /// its images and labels in and (loss, label ranks) out: an epoch's validation replays
    /// it batch after batch instead of building the forward afresh for each.
    eval_recorder: EvalRecorder,
}

/// Seed stream of the initial weights (noise draws take 2: `NoiseSource::start_at`).
const TAG_INIT: u64 = 1;

/// What to change when a search diverges.
pub(super) const SEARCH_HINT: &str = "lower --lr or --arch-lr, or check the data";

impl Search {
    /// A fresh search: network initialised from the seed.
    pub fn new(gpu: &Gpu, settings: SearchSettings) -> Result<Search> {
        settings.validate()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sub_seed(settings.seed, TAG_INIT));
        let net: Box<dyn Supernet> = match settings.space {
            Space::Darts(c) => Box::new(DartsNetwork::new(gpu, &mut rng, c)?),
            Space::Nb201(c) => Box::new(Nb201Network::new(gpu, &mut rng, c)?),
        };
        let (weights, sgd) = settings.sgd.weights_and_sgd(gpu, net.as_ref())?;
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
        let arch_grads = match settings.clip_alpha {
            true => alphas
                .iter()
                .map(|a| Tensor::zeros(gpu, a.shape()))
                .collect::<Result<_>>()?,
            false => Vec::new(),
        };
        let beta_table = Tensor::full(gpu, &[1], settings.beta.at(0) as f32)?;
        Ok(Search {
            gpu: gpu.clone(),
            settings,
            net,
            weights,
            sgd,
            adam,
            arch_grads,
            beta_table,
            image_size: (32, 32),
            epoch: 0,
            step: 0,
            history: Vec::new(),
            replay: true,
            recompute: true,
            recorder: Recorder::default(),
            eval_recorder: EvalRecorder::default(),
        })
    }

    pub fn network(&self) -> &dyn Supernet {
        self.net.as_ref()
    }

    /// Number of trainable weights (α excluded).
    pub fn weight_count(&self) -> usize {
        self.weights.iter().map(|(_, t)| t.numel()).sum()
    }

    /// Adam's first and second moments of each α, in [`Supernet::alphas`] order.
    pub fn arch_optimizer_state(&self) -> (&[Tensor], &[Tensor]) {
        self.adam.state()
    }

    pub(super) fn alpha_tensors(&self) -> Vec<Tensor> {
        self.net
            .alphas()
            .into_iter()
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Sets the learning rate and β for epoch `e` (SPEC §4, §5).
    pub fn set_epoch(&mut self, e: usize) -> Result<(f64, f64)> {
        let lr = self.settings.sgd.lr_at(e, self.settings.epochs);
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

    pub(super) fn beta(&self) -> Option<(&Tensor, usize)> {
        self.settings.space.aux().then_some((&self.beta_table, 0))
    }

    /// Sets the (height, width) of the images that batches hold; refuses a size the network
    /// cannot take.
    pub fn set_image_size(&mut self, h: usize, w: usize) -> Result<()> {
        run::check_image_size(h, w, "search network")?;
        self.image_size = (h, w);
        Ok(())
    }

    pub(super) fn upload(&self, b: &Batch) -> Result<(Tensor, Labels)> {
        upload_batch(&self.gpu, b, self.image_size)
    }

    /// Runs one step: replays the recorded step when the batch shapes match, otherwise
    /// records (or, with replay off, just runs) a new one.
    fn run_step(&mut self, train: &Batch, val: &Batch) -> Result<StepStats> {
        // Adam's step terms and the noise key change every step; the learning rate is set by
        // `set_epoch`.
        self.adam.prepare()?;
        self.start_noise(true, 0)?;
        let (h, w) = self.image_size;
        let key = (train.y.len(), val.y.len(), h, w);
        // The recorder's closures borrow the search; it is put back afterwards.
        let mut recorder = std::mem::take(&mut self.recorder);
        let this = &*self;
        let stats = recorder.run(
            &this.gpu,
            this.net.as_ref(),
            this.replay.then_some(key),
            |(xt, yt, xv, yv)| {
                xt.write(&train.x)?;
                yt.write(&this.gpu, &train.y)?;
                xv.write(&val.x)?;
                yv.write(&this.gpu, &val.y)
            },
            || {
                let (xt, yt) = this.upload(train)?;
                let (xv, yv) = this.upload(val)?;
                Ok((xt, yt, xv, yv))
            },
            |(xt, yt, xv, yv)| this.encode_step((xt, yt), (xv, yv)),
            |(loss, ranks)| read_stats(loss, ranks),
        );
        self.recorder = recorder;
        stats
    }

    /// Dispatches in the recorded step (0 before the first step or with replay off).
    pub fn recorded_dispatches(&self) -> usize {
        self.recorder.dispatches()
    }

    /// Step programs recorded so far: one per batch shape (the full batch and an epoch's
    /// smaller last one), however many epochs ran.
    pub fn programs_recorded(&self) -> usize {
        self.recorder.recorded()
    }

    /// Validation forward programs recorded so far: one per batch shape, however many epochs
    /// validated.
    pub fn eval_programs_recorded(&self) -> usize {
        self.eval_recorder.recorded()
    }

    /// One search step: α step on `val`, w step on `train`, in the configured order.
    pub fn step(&mut self, train: &Batch, val: &Batch) -> Result<StepStats> {
        let stats = self.run_step(train, val)?;
        self.step += 1;
        let at = run::Position::new(self.epoch, self.step);
        run::check_loss("training", stats.loss as f64, at, SEARCH_HINT)?;
        Ok(stats)
    }

    /// Loss and accuracy over `batches` in eval mode (running statistics, β still applied).
    /// The forward of each batch shape is recorded once and replayed (unless replay is off).
    pub fn evaluate(&mut self, batches: impl Iterator<Item = Batch>) -> Result<Scores> {
        // The recorder's closures borrow the search; it is put back afterwards.
        let mut recorder = std::mem::take(&mut self.eval_recorder);
        let this = &*self;
        let all = batches
            .enumerate()
            .map(|(i, b)| {
                this.start_noise(false, i)?;
                recorder.evaluate(
                    &this.gpu,
                    this.net.as_ref(),
                    this.replay,
                    &b,
                    this.image_size,
                    |x, y| {
                        let mut tape = Tape::inference(&this.gpu);
                        let ctx = Ctx { train: false };
                        let logits = this.net.forward(&mut tape, x, this.beta(), ctx)?;
                        Ok((tape.cross_entropy(&logits, y)?, rank_tensor(&logits, y)?))
                    },
                    read_stats,
                )
            })
            .collect::<Result<Vec<_>>>();
        self.eval_recorder = recorder;
        Ok(Scores::of(&all?))
    }

    /// softmax(α) of every table, read from the GPU.
    pub fn alphas_softmax(&self) -> Result<BTreeMap<String, Vec<Vec<f32>>>> {
        self.net
            .alphas()
            .into_iter()
            .map(|(name, t)| {
                let cols = t.shape().last().copied().unwrap_or(1);
                Ok((name.to_string(), softmax_rows(&t.to_vec()?, cols)))
            })
            .collect()
    }

    /// Each α table's candidate names per edge (row).
    pub fn edge_ops(&self) -> Result<Vec<super::supernet::EdgeOps>> {
        self.net.edge_ops()
    }

    /// [`Search::edge_ops`] as owned names by α table (for metrics and genotype.json).
    pub fn edge_op_names(&self) -> Result<BTreeMap<String, Vec<Vec<String>>>> {
        Ok(self
            .net
            .edge_ops()?
            .into_iter()
            .map(|(name, lists)| {
                let lists = lists
                    .iter()
                    .map(|l| l.iter().map(|s| s.to_string()).collect())
                    .collect();
                (name.to_string(), lists)
            })
            .collect())
    }

    /// Sets the noise key of the coming train-mode forwards (`train`: the step `self.step`)
    /// or of evaluation batch `batch` of epoch `self.epoch`, from the run's seed: the values
    /// follow from the seed and the position alone, so a resumed run draws what an
    /// uninterrupted one would.
    pub(super) fn start_noise(&self, train: bool, batch: usize) -> Result<()> {
        match self.net.noise() {
            Some(n) => n.start_at(self.settings.seed, train, (self.epoch, self.step), batch),
            None => Ok(()),
        }
    }

    /// Makes the `noise` candidates hand out `values` in draw order instead of drawing
    /// (comparisons with PyTorch's draws); the step is then built eagerly, never replayed.
    pub fn feed_noise(&mut self, values: Vec<Vec<f32>>) -> Result<()> {
        let noise = self.net.noise().ok_or_else(|| {
            Error::Invalid(format!(
                "the {} space has no noise candidate",
                self.settings.space.label()
            ))
        })?;
        noise.feed(values);
        self.replay = false;
        Ok(())
    }

    /// Fed noise values not drawn yet (None when none were fed).
    pub fn noise_fed_left(&self) -> Option<usize> {
        self.net.noise().and_then(|n| n.fed_left())
    }

    pub fn derive(&self) -> Result<Derived> {
        derive_from_alphas(&self.settings.space, &self.alphas_softmax()?)
    }

    /// Runs the next epoch over `data` split into (train, val) index lists.
    pub fn run_epoch(
        &mut self,
        data: &Arc<Dataset>,
        split: &(Vec<usize>, Vec<usize>),
        observe: &mut dyn FnMut(Progress),
    ) -> Result<EpochRecord> {
        run::run_epoch(
            &mut super::epoch::SearchEpochs::new(self, data, split),
            observe,
        )
    }

    /// Whether the run has finished (all epochs, or the step budget spent).
    pub fn finished(&self) -> bool {
        run::finished(
            self.settings.limits(),
            run::Position::new(self.epoch, self.step),
        )
    }
}
