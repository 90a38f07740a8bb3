//! A retraining run in progress (SPEC §8): the evaluation network, SGD with momentum, the
//! training step (CE + w_aux·CE_aux, drop path, clipping folded into the update) and the
//! test pass with its confusion matrix; checkpoints to continue exactly. The epoch is in
//! [`super::epoch`]; the loop itself is [`crate::run`].

use super::darts_eval::{DartsEvalNetwork, EvalCtx};
use super::drop_path_scales;
use super::epoch::RetrainEpochs;
use super::nb201_eval::Nb201EvalNetwork;
use super::{Arch, EvalNet};
use crate::autodiff::ops::softmax::rank_tensor;
use crate::autodiff::{Labels, Tape, Tensor};
use crate::checkpoint::{self, Entry};
use crate::data::{sub_seed, Augment, Batch, Dataset};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::Ctx;
use crate::optim::Sgd;
use crate::run::state::{self as run_state, momentum_entries, Saved};
use crate::run::{self, read_stats, upload_batch, EvalRecorder, Progress, StepStats};
use rand::SeedableRng;
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

// Where the types of a retraining run used to live; callers keep their paths.
pub use super::epoch::TrainRecord;
pub use super::settings::TrainSettings;

const FORMAT: &str = "darts-minus train checkpoint v1";

/// Loss and accuracy over a set of images, with per-class counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    pub n: usize,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
}

/// A retraining run in progress.
pub struct Retrain {
    gpu: Gpu,
    pub settings: TrainSettings,
    pub net: Box<dyn EvalNet>,
    weights: Vec<(String, Tensor)>,
    sgd: Sgd,
    image_size: (usize, usize),
    pub epoch: usize,
    pub step: usize,
    pub history: Vec<TrainRecord>,
    /// Record the test forward of each batch shape once and replay it for every batch (the
    /// default); off, every batch is built eagerly. Both compute exactly the same values.
    pub replay: bool,
    /// The test forward's program per batch shape (batch size, height, width): images and
    /// labels in, (loss, logits) out.
    eval_recorder: EvalRecorder,
}

impl Retrain {
    pub fn new(gpu: &Gpu, settings: TrainSettings) -> Result<Retrain> {
        settings.validate()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sub_seed(settings.seed, 1));
        let c = settings.network;
        let net: Box<dyn EvalNet> = match &settings.arch {
            Arch::Darts(g) => Box::new(DartsEvalNetwork::new(gpu, &mut rng, g, c)?),
            // For NAS-Bench-201, `layers` is the number of cells per stage.
            Arch::Nb201(a) => Box::new(Nb201EvalNetwork::new(
                gpu, &mut rng, a, c.channels, c.layers, c.classes,
            )?),
        };
        let (weights, sgd) = settings.sgd.weights_and_sgd(gpu, net.as_ref())?;
        Ok(Retrain {
            gpu: gpu.clone(),
            settings,
            net,
            weights,
            sgd,
            image_size: (32, 32),
            epoch: 0,
            step: 0,
            history: Vec::new(),
            replay: true,
            eval_recorder: EvalRecorder::default(),
        })
    }

    /// Multiply-adds of one forward pass of a single image (no auxiliary head).
    pub fn multiply_adds(&self) -> Result<u64> {
        let (h, w) = self.image_size;
        let x = Tensor::zeros(&self.gpu, &[1, 3, h, w])?;
        let mut tape = Tape::inference(&self.gpu);
        self.net.forward(&mut tape, &x, EvalCtx::inference())?;
        Ok(tape.macs())
    }

    /// Sets the (height, width) of the images that batches hold; refuses a size the network
    /// cannot take.
    pub fn set_image_size(&mut self, h: usize, w: usize) -> Result<()> {
        run::check_image_size(h, w, "network")?;
        let aux = self.settings.network.auxiliary && matches!(self.settings.arch, Arch::Darts(_));
        // DARTS' auxiliary head pools the 2/3-depth features (a quarter of the image) 5×5 at
        // stride 3 to 2×2, then a 2×2 convolution to 1×1 × 768: quarters of 8 to 10 pixels.
        if aux && !((32..=40).contains(&h) && (32..=40).contains(&w)) {
            return Err(Error::Invalid(format!(
                "images of {h}×{w} pixels do not fit DARTS' auxiliary head, which needs 32 to 40 \
                 pixels a side (as CIFAR's 32×32); pass --no-auxiliary for other sizes"
            )));
        }
        self.image_size = (h, w);
        Ok(())
    }

    /// The learning rate of the coming steps.
    pub(super) fn set_lr(&mut self, lr: f64) {
        self.sgd.lr = lr as f32;
    }

    fn upload(&self, b: &Batch) -> Result<(Tensor, Labels)> {
        upload_batch(&self.gpu, b, self.image_size)
    }

    /// One SGD step on a batch; returns its loss and top-k counts.
    pub fn train_step(
        &mut self,
        b: &Batch,
        drop_p: f64,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<StepStats> {
        let (x, y) = self.upload(b)?;
        let n = b.y.len();
        let rng = RefCell::new(rng);
        let gpu = self.gpu.clone();
        let drop = move || -> Result<Tensor> {
            Tensor::from_slice(
                &gpu,
                &[n],
                &drop_path_scales(n, drop_p, &mut **rng.borrow_mut()),
            )
        };
        let ec = EvalCtx {
            ctx: Ctx { train: true },
            drop: (drop_p > 0.0).then_some(&drop as &dyn Fn() -> Result<Tensor>),
        };
        self.start_noise(true, 0)?;
        let mut tape = Tape::new(&self.gpu);
        let (logits, aux) = self.net.forward(&mut tape, &x, ec)?;
        let mut loss = tape.cross_entropy(&logits, &y)?;
        if let Some(aux) = aux {
            let side = tape.cross_entropy(&aux, &y)?;
            let side = tape.scale(&side, self.settings.auxiliary_weight as f32)?;
            loss = tape.sum(&[&loss, &side])?;
        }
        let ranks = rank_tensor(&logits, &y)?;
        let grads = tape.backward(&loss)?;
        let params: Vec<Tensor> = self.weights.iter().map(|(_, t)| t.clone()).collect();
        // Weights off the path to the output (a NAS-Bench-201 node that feeds nothing) get no
        // gradient and, as in PyTorch, no update.
        let gs: Vec<Option<&Tensor>> = params.iter().map(|t| grads.get(t)).collect();
        if gs.iter().all(|g| g.is_none()) {
            return Err(Error::Invalid("no weight received a gradient".into()));
        }
        // Clipping is folded into the update: the clipped gradients are never written out.
        self.sgd.prepare()?;
        self.sgd
            .encode_clipped_norm(&params, &gs, self.settings.sgd.grad_clip as f32)?;
        // Loss and ranks come back together: one wait per step.
        let stats = read_stats(&loss, &ranks)?;
        self.step += 1;
        let at = run::Position::new(self.epoch, self.step);
        run::check_loss("training", stats.loss as f64, at, "lower --lr")?;
        Ok(stats)
    }

    /// Keys the `noise` genes' next draws (networks without them: nothing): a training step by
    /// the step number, evaluation batch `batch` by the epoch, so a resumed run draws what an
    /// uninterrupted one would.
    fn start_noise(&self, train: bool, batch: usize) -> Result<()> {
        match self.net.noise() {
            Some(n) => n.start_at(self.settings.seed, train, (self.epoch, self.step), batch),
            None => Ok(()),
        }
    }

    /// Loss, top-1/top-5 accuracy and the confusion matrix over `batches` (eval mode). The
    /// forward of each batch shape is recorded once and replayed (unless replay is off).
    pub fn evaluate(
        &mut self,
        batches: impl Iterator<Item = Batch>,
        classes: usize,
    ) -> Result<Evaluation> {
        let mut recorder = std::mem::take(&mut self.eval_recorder);
        let result = self.evaluate_with(&mut recorder, batches, classes);
        self.eval_recorder = recorder;
        result
    }

    /// Test forward programs recorded so far: one per batch shape, however many passes ran.
    pub fn eval_programs_recorded(&self) -> usize {
        self.eval_recorder.recorded()
    }

    fn evaluate_with(
        &self,
        recorder: &mut EvalRecorder,
        batches: impl Iterator<Item = Batch>,
        classes: usize,
    ) -> Result<Evaluation> {
        let mut confusion = vec![vec![0u64; classes]; classes];
        let (mut loss_sum, mut n, mut t1, mut t5) = (0.0, 0usize, 0usize, 0usize);
        for (i, b) in batches.enumerate() {
            self.start_noise(false, i)?;
            // One readback of the loss and logits gives the prediction and the label's rank
            // (ties in the label's favour, as the GPU rank kernel counts them).
            let mut back = recorder.evaluate(
                &self.gpu,
                self.net.as_ref(),
                self.replay,
                &b,
                self.image_size,
                |x, y| {
                    let mut tape = Tape::inference(&self.gpu);
                    let (logits, _) = self.net.forward(&mut tape, x, EvalCtx::inference())?;
                    Ok((tape.cross_entropy(&logits, y)?, logits))
                },
                |loss, logits| Tensor::read_all(&[loss, logits]),
            )?;
            let scores = back.pop().unwrap_or_default();
            let loss = back[0][0];
            for (i, &label) in b.y.iter().enumerate() {
                let row = &scores[i * classes..(i + 1) * classes];
                let pred = row
                    .iter()
                    .enumerate()
                    .fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
                confusion[label as usize][pred] += 1;
                // Non-finite scores are never right (no score compares above a NaN).
                let rank = match row.iter().all(|v| v.is_finite()) {
                    true => row.iter().filter(|&&v| v > row[label as usize]).count(),
                    false => classes,
                };
                t1 += (rank < 1) as usize;
                t5 += (rank < 5) as usize;
            }
            loss_sum += loss as f64 * b.y.len() as f64;
            n += b.y.len();
        }
        let d = n.max(1) as f64;
        Ok(Evaluation {
            loss: loss_sum / d,
            top1: t1 as f64 / d,
            top5: t5 as f64 / d,
            n,
            confusion,
        })
    }

    pub(super) fn test_augment(&self) -> Augment {
        Augment::none(self.settings.mean, self.settings.std)
    }

    /// Runs the next epoch on `train`, then evaluates on `test`.
    pub fn run_epoch(
        &mut self,
        train: &Arc<Dataset>,
        test: &Arc<Dataset>,
        observe: &mut dyn FnMut(Progress),
    ) -> Result<TrainRecord> {
        let mut epochs = RetrainEpochs {
            run: self,
            train,
            test,
        };
        run::run_epoch(&mut epochs, observe)
    }

    pub fn finished(&self) -> bool {
        run::finished(
            self.settings.limits(),
            run::Position::new(self.epoch, self.step),
        )
    }

    /// Weights and BN statistics under the reference names, momentum buffers, progress and
    /// settings, written atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut entries = checkpoint::module_entries(self.net.as_ref(), "")?;
        entries.extend(momentum_entries(&self.weights, &self.sgd)?);
        entries.push(("train.epoch".into(), Entry::scalar(self.epoch as u64)));
        entries.push(("train.step".into(), Entry::scalar(self.step as u64)));
        run_state::save(path, &entries, FORMAT, &self.settings, &self.history)
    }

    /// A run restored from [`Retrain::save`]'s checkpoint (weights, optimiser, progress).
    pub fn resume(gpu: &Gpu, path: &Path) -> Result<Retrain> {
        let saved = Saved::read(path)?;
        saved.expect_format(FORMAT)?;
        let settings: TrainSettings =
            saved.settings("not a darts-minus train checkpoint (no settings)")?;
        let mut run = Retrain::new(gpu, settings)?;
        checkpoint::load_module(run.net.as_ref(), "", &saved.tensors, path)?;
        saved.load_momentum(&run.weights, &run.sgd)?;
        run.epoch = saved.int("train.epoch")? as usize;
        run.step = saved.int("train.step")? as usize;
        run.history = saved.history()?;
        Ok(run)
    }
}
