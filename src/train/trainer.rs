//! Training a genotype from scratch (SPEC §8): SGD with momentum and cosine learning rate to
//! zero, loss CE + w_aux·CE_aux, drop path rising linearly over the epochs, cutout, gradient
//! clipping; test accuracy every epoch; checkpoints to continue exactly.

use super::darts_eval::{DartsEvalNetwork, EvalConfig, EvalCtx};
use super::nb201_eval::Nb201EvalNetwork;
use super::{drop_path_prob, drop_path_scales};
use super::{Arch, EvalNet};
use crate::autodiff::ops::softmax::rank_tensor;
use crate::autodiff::{Labels, Tape, Tensor};
use crate::checkpoint::{self, Entry};
use crate::data::{epoch_batches, shuffled, sub_seed, Augment, Batch, Dataset};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{parameters, Ctx};
use crate::optim::Sgd;
use crate::search::schedule::cosine_lr;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Every setting of a retraining run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub arch: Arch,
    pub network: EvalConfig,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub lr_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub grad_clip: f64,
    pub auxiliary_weight: f64,
    pub drop_path: f64,
    /// Cutout side (0 = off).
    pub cutout: usize,
    pub augment: bool,
    pub seed: u64,
    pub max_steps: Option<usize>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl TrainSettings {
    /// The DARTS paper's CIFAR-10 recipe (SPEC §8) for a DARTS genotype; the benchmark's
    /// 200-epoch recipe (Nesterov SGD 0.1 → 0, weight decay 5e-4, batch 256, no auxiliary
    /// head, drop path or cutout) for a NAS-Bench-201 cell.
    pub fn paper(arch: Arch) -> Self {
        let darts = TrainSettings {
            arch: arch.clone(),
            network: EvalConfig::default(),
            epochs: 600,
            batch_size: 96,
            lr: 0.025,
            lr_min: 0.0,
            momentum: 0.9,
            weight_decay: 3e-4,
            nesterov: false,
            grad_clip: 5.0,
            auxiliary_weight: 0.4,
            drop_path: 0.2,
            cutout: 16,
            augment: true,
            seed: 0,
            max_steps: None,
            mean: crate::data::CIFAR10_MEAN,
            std: crate::data::CIFAR10_STD,
        };
        match arch {
            Arch::Darts(_) => darts,
            Arch::Nb201(_) => TrainSettings {
                network: EvalConfig {
                    channels: 16,
                    layers: 5,
                    classes: 10,
                    auxiliary: false,
                },
                epochs: 200,
                batch_size: 256,
                lr: 0.1,
                weight_decay: 5e-4,
                nesterov: true,
                drop_path: 0.0,
                cutout: 0,
                ..darts
            },
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size < 2 {
            return Err(Error::Invalid(format!(
                "need at least 1 epoch and a batch of 2 (got {} epochs, batch {})",
                self.epochs, self.batch_size
            )));
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(Error::Invalid(format!(
                "--drop-path must be in [0, 1), got {}",
                self.drop_path
            )));
        }
        if !(self.lr > 0.0 && self.grad_clip > 0.0) {
            return Err(Error::Invalid(
                "--lr and --grad-clip must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// One epoch of a retraining run: a line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    pub epoch: usize,
    pub lr: f64,
    pub drop_path: f64,
    pub steps: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    pub test_top5: f64,
    pub step_time_ms: f64,
    pub images_per_sec: f64,
    pub epoch_seconds: f64,
}

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
        let weights = parameters(net.as_ref(), "");
        let ws: Vec<Tensor> = weights.iter().map(|(_, t)| t.clone()).collect();
        let mut sgd = Sgd::new(
            gpu,
            &ws,
            settings.lr as f32,
            settings.momentum as f32,
            settings.weight_decay as f32,
        )?;
        sgd.nesterov = settings.nesterov;
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
        })
    }

    /// Multiply-adds of one forward pass of a single image (no auxiliary head).
    pub fn multiply_adds(&self) -> Result<u64> {
        let (h, w) = self.image_size;
        let x = Tensor::zeros(&self.gpu, &[1, 3, h, w])?;
        let mut tape = Tape::inference(&self.gpu);
        self.net.forward(
            &mut tape,
            &x,
            EvalCtx {
                ctx: Ctx { train: false },
                drop: None,
            },
        )?;
        Ok(tape.macs())
    }

    pub fn set_image_size(&mut self, h: usize, w: usize) {
        self.image_size = (h, w);
    }

    fn upload(&self, b: &Batch) -> Result<(Tensor, Labels)> {
        crate::search::trainer::upload_batch(&self.gpu, b, self.image_size)
    }

    /// One SGD step on a batch; returns (loss, top-1 correct).
    pub fn train_step(
        &mut self,
        b: &Batch,
        drop_p: f64,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<(f32, usize)> {
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
            .encode_clipped_norm(&params, &gs, self.settings.grad_clip as f32)?;
        // Loss and ranks come back together: one wait per step.
        let back = Tensor::read_all(&[&loss, &ranks])?;
        let loss = back[0][0];
        self.step += 1;
        if !loss.is_finite() {
            return Err(Error::Invalid(format!("training diverged: the loss is {loss} at step {}; lower --lr. Checkpoints of completed epochs are intact", self.step)));
        }
        Ok((loss, back[1].iter().filter(|&&r| r < 1.0).count()))
    }

    /// Loss, top-1/top-5 accuracy and the confusion matrix over `batches` (eval mode).
    pub fn evaluate(
        &self,
        batches: impl Iterator<Item = Batch>,
        classes: usize,
    ) -> Result<Evaluation> {
        let mut confusion = vec![vec![0u64; classes]; classes];
        let (mut loss_sum, mut n, mut t1, mut t5) = (0.0, 0usize, 0usize, 0usize);
        for b in batches {
            let (x, y) = self.upload(&b)?;
            let mut tape = Tape::inference(&self.gpu);
            let (logits, _) = self.net.forward(
                &mut tape,
                &x,
                EvalCtx {
                    ctx: Ctx { train: false },
                    drop: None,
                },
            )?;
            let loss = tape.cross_entropy(&logits, &y)?;
            // One readback of the loss and logits gives the prediction and the label's rank
            // (ties in the label's favour, as the GPU rank kernel counts them).
            let mut back = Tensor::read_all(&[&loss, &logits])?;
            let scores = back.pop().unwrap_or_default();
            let loss = back[0][0];
            for (i, &label) in b.y.iter().enumerate() {
                let row = &scores[i * classes..(i + 1) * classes];
                let pred = row
                    .iter()
                    .enumerate()
                    .fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
                confusion[label as usize][pred] += 1;
                let rank = row.iter().filter(|&&v| v > row[label as usize]).count();
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

    fn test_augment(&self) -> Augment {
        Augment::none(self.settings.mean, self.settings.std)
    }

    /// Runs the next epoch on `train`, then evaluates on `test`.
    pub fn run_epoch(
        &mut self,
        train: &Arc<Dataset>,
        test: &Arc<Dataset>,
        observe: &mut dyn FnMut(usize, usize, f32),
    ) -> Result<TrainRecord> {
        let e = self.epoch;
        let start = Instant::now();
        self.set_image_size(train.height, train.width);
        let lr = cosine_lr(
            self.settings.lr,
            self.settings.lr_min,
            e,
            self.settings.epochs,
        );
        self.sgd.lr = lr as f32;
        let drop_p = drop_path_prob(self.settings.drop_path, e, self.settings.epochs);
        let seed = sub_seed(self.settings.seed, 1000 + e as u64);
        let order = shuffled(&(0..train.len).collect::<Vec<_>>(), sub_seed(seed, 1));
        let bs = self.settings.batch_size;
        let total = order.len().div_ceil(bs);
        let steps = self
            .settings
            .max_steps
            .map_or(total, |m| total.min(m.saturating_sub(self.step)));
        let mut aug = if self.settings.augment {
            Augment {
                mean: self.settings.mean,
                std: self.settings.std,
                ..Augment::cifar_search()
            }
        } else {
            self.test_augment()
        };
        if self.settings.cutout > 0 {
            aug = aug.with_cutout(self.settings.cutout);
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sub_seed(seed, 2));
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let mut times = Vec::new();
        for (k, b) in epoch_batches(train.clone(), order, bs, aug, sub_seed(seed, 3))?
            .take(steps)
            .enumerate()
        {
            let t0 = Instant::now();
            let (loss, c) = self.train_step(&b, drop_p, &mut rng)?;
            times.push(t0.elapsed().as_secs_f64());
            loss_sum += loss as f64 * b.y.len() as f64;
            correct += c;
            seen += b.y.len();
            observe(k + 1, steps, loss);
        }
        let test_order: Vec<usize> = (0..test.len).collect();
        let ev = self.evaluate(
            epoch_batches(test.clone(), test_order, bs, self.test_augment(), 0)?,
            test.num_classes(),
        )?;
        times.sort_by(|a, b| a.total_cmp(b));
        let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        let r = TrainRecord {
            epoch: e,
            lr,
            drop_path: drop_p,
            steps: times.len(),
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            test_loss: ev.loss,
            test_acc: ev.top1,
            test_top5: ev.top5,
            step_time_ms: median * 1e3,
            images_per_sec: bs as f64 / median,
            epoch_seconds: start.elapsed().as_secs_f64(),
        };
        self.epoch += 1;
        self.history.push(r.clone());
        Ok(r)
    }

    pub fn finished(&self) -> bool {
        self.epoch >= self.settings.epochs
            || self.settings.max_steps.is_some_and(|m| self.step >= m)
    }

    /// Weights and BN statistics under the reference names, momentum buffers, progress and
    /// settings, written atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut entries = checkpoint::module_entries(self.net.as_ref(), "")?;
        for ((name, _), buf) in self.weights.iter().zip(self.sgd.state()) {
            entries.push((
                format!("optimizer.momentum_buffer.{name}"),
                Entry::tensor(buf)?,
            ));
        }
        entries.push(("train.epoch".into(), Entry::scalar(self.epoch as u64)));
        entries.push(("train.step".into(), Entry::scalar(self.step as u64)));
        let meta = checkpoint::run_metadata(
            "darts-minus train checkpoint v1",
            &self.settings,
            &self.history,
        )?;
        checkpoint::write_atomic(path, &entries, Some(meta))
    }

    /// A run restored from [`Retrain::save`]'s checkpoint (weights, optimiser, progress).
    pub fn resume(gpu: &Gpu, path: &Path) -> Result<Retrain> {
        let err = |m: String| Error::File {
            path: path.to_path_buf(),
            msg: m,
        };
        let (tensors, meta) = checkpoint::read_with_metadata(path)?;
        let settings: TrainSettings = meta
            .get("settings")
            .ok_or_else(|| err("not a darts-minus train checkpoint (no settings)".into()))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| err(format!("unreadable settings: {e}")))
            })?;
        let mut run = Retrain::new(gpu, settings)?;
        checkpoint::load_module(run.net.as_ref(), "", &tensors, path)?;
        for ((name, _), buf) in run.weights.iter().zip(run.sgd.state()) {
            let key = format!("optimizer.momentum_buffer.{name}");
            let t = tensors
                .get(&key)
                .ok_or_else(|| err(format!("missing '{key}'")))?;
            buf.write(&t.data.iter().map(|&v| v as f32).collect::<Vec<_>>())?;
        }
        let int = |k: &str| {
            tensors
                .get(k)
                .and_then(|t| t.data.first())
                .map(|&v| v as usize)
                .ok_or_else(|| err(format!("missing '{k}'")))
        };
        run.epoch = int("train.epoch")?;
        run.step = int("train.step")?;
        if let Some(h) = meta.get("history") {
            run.history =
                serde_json::from_str(h).map_err(|e| err(format!("unreadable history: {e}")))?;
        }
        Ok(run)
    }
}
