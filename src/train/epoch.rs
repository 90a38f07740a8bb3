//! A retraining epoch for the run loop (SPEC §8): the cosine learning rate and the drop-path
//! probability set once, the training set reshuffled in augmented batches (cutout), then the
//! test set in eval mode.

use super::drop_path_prob;
use super::trainer::Retrain;
use crate::data::{epoch_batches, shuffled, sub_seed, Augment, Batch, BatchStream, Dataset};
use crate::error::Result;
use crate::run::metrics::{prefix_test, prefix_train};
use crate::run::Timing;
use crate::run::{
    self, nan_if_null, EpochPlan, EpochSteps, Limits, Position, Progress, Scores, StepStats,
    Trainer,
};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One epoch of a retraining run: a line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    pub epoch: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub drop_path: f64,
    pub steps: usize,
    #[serde(flatten, with = "prefix_train")]
    pub train: Scores,
    #[serde(flatten, with = "prefix_test")]
    pub test: Scores,
    #[serde(flatten)]
    pub timing: Timing,
}

/// A retraining run and its data, as the run loop drives them.
pub(super) struct RetrainEpochs<'a> {
    pub(super) run: &'a mut Retrain,
    pub(super) train: &'a Arc<Dataset>,
    pub(super) test: &'a Arc<Dataset>,
}

/// What the steps of one retraining epoch share.
pub(super) struct RetrainEpoch {
    lr: f64,
    drop_p: f64,
    batches: BatchStream,
    /// Drop path's per-step masks.
    rng: rand_chacha::ChaCha8Rng,
}

impl Trainer for RetrainEpochs<'_> {
    type Input = Batch;
    type Epoch = RetrainEpoch;
    type Record = TrainRecord;

    fn bounds(&self) -> (Limits, Position) {
        (
            self.run.settings.limits(),
            Position::new(self.run.epoch, self.run.step),
        )
    }

    fn start_epoch(&mut self, e: usize) -> Result<EpochPlan<RetrainEpoch>> {
        let train = self.train;
        self.run.set_image_size(train.height, train.width)?;
        let s = &self.run.settings;
        let lr = s.sgd.lr_at(e, s.epochs);
        let drop_p = drop_path_prob(s.drop_path, e, s.epochs);
        let seed = sub_seed(s.seed, 1000 + e as u64);
        let order = shuffled(&(0..train.len).collect::<Vec<_>>(), sub_seed(seed, 1));
        let bs = s.batch_size;
        let steps = order.len().div_ceil(bs);
        let mut aug = if s.augment {
            Augment {
                mean: s.mean,
                std: s.std,
                ..Augment::cifar_search()
            }
        } else {
            self.run.test_augment()
        };
        if s.cutout > 0 {
            aug = aug.with_cutout(s.cutout);
        }
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(sub_seed(seed, 2));
        let batches = epoch_batches(train.clone(), order, bs, aug, sub_seed(seed, 3))?;
        self.run.set_lr(lr);
        Ok(EpochPlan {
            state: RetrainEpoch {
                lr,
                drop_p,
                batches,
                rng,
            },
            steps,
            lr,
            beta: None,
        })
    }

    fn next_input(&mut self, ep: &mut RetrainEpoch) -> Result<Option<Batch>> {
        Ok(ep.batches.next())
    }

    fn step(&mut self, ep: &mut RetrainEpoch, b: Batch) -> Result<StepStats> {
        self.run.train_step(&b, ep.drop_p, &mut ep.rng)
    }

    fn finish_epoch(
        &mut self,
        ep: RetrainEpoch,
        steps: EpochSteps,
        _: &mut dyn FnMut(Progress),
    ) -> Result<TrainRecord> {
        let test = self.test;
        let bs = self.run.settings.batch_size;
        let test_order: Vec<usize> = (0..test.len).collect();
        let ev = self.run.evaluate(
            epoch_batches(test.clone(), test_order, bs, self.run.test_augment(), 0)?,
            test.num_classes(),
        )?;
        let at = Position::new(self.run.epoch, self.run.step);
        run::check_loss("test", ev.loss, at, "lower --lr")?;
        Ok(TrainRecord {
            epoch: steps.epoch,
            lr: ep.lr,
            drop_path: ep.drop_p,
            steps: steps.stats.len(),
            train: Scores::of(&steps.stats),
            test: Scores {
                loss: ev.loss,
                acc: ev.top1,
                top5: ev.top5,
            },
            timing: steps.timing(),
        })
    }

    fn completed(&mut self, record: TrainRecord) {
        self.run.epoch += 1;
        self.run.history.push(record);
    }
}
