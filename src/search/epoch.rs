//! A search epoch for the run loop (SPEC §5): the cosine learning rate and β set once, the
//! training split in (reshuffled) batches, each paired with a batch from the validation
//! queue for the α step, then a validation pass in eval mode, softmax(α) and the genotype.

use super::derived::{derive_from_alphas, Derived};
use super::nb201::Nb201Entry;
use super::settings::ValPairing;
use super::trainer::Search;
use crate::data::{drawn, epoch_batches, shuffled, sub_seed, Augment, Batch, BatchStream, Dataset};
use crate::error::{Error, Result};
use crate::run::metrics::{prefix_train, prefix_val};
use crate::run::Timing;
use crate::run::{
    self, nan_if_null, EpochPlan, EpochSteps, Limits, Position, Progress, Scores, StepStats,
    Trainer,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const TAG_EPOCH: u64 = 1000;

/// One epoch's results: a line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub beta: f64,
    pub steps: usize,
    #[serde(flatten, with = "prefix_train")]
    pub train: Scores,
    #[serde(flatten, with = "prefix_val")]
    pub val: Scores,
    /// The median step's time (a search step: α step + w step), images/s, the epoch's time.
    #[serde(flatten)]
    pub timing: Timing,
    /// softmax(α) of every edge, per α table.
    pub alphas: BTreeMap<String, Vec<Vec<f32>>>,
    /// The candidate names of every edge (α's columns), per α table; edges of RobustDARTS'
    /// S1 each have their own. Absent from lines written before it existed.
    #[serde(default)]
    pub edge_ops: BTreeMap<String, Vec<Vec<String>>>,
    pub genotype: Derived,
    /// The Python `Genotype(...)` string or the NAS-Bench-201 arch string.
    pub genotype_text: String,
    pub nb201: Option<Nb201Entry>,
}

/// A search and its data, as the run loop drives them.
pub(super) struct SearchEpochs<'a> {
    search: &'a mut Search,
    data: &'a Arc<Dataset>,
    /// (train, val) image indices.
    split: &'a (Vec<usize>, Vec<usize>),
}

/// What the steps of one search epoch share.
pub(super) struct SearchEpoch {
    lr: f64,
    beta: f64,
    seed: u64,
    train: BatchStream,
    /// The α steps' batches: the validation queue, reshuffled on each pass, or validation
    /// images drawn at random, one per training image (`ValPairing`).
    val: BatchStream,
    pass: u64,
}

impl<'a> SearchEpochs<'a> {
    pub(super) fn new(
        search: &'a mut Search,
        data: &'a Arc<Dataset>,
        split: &'a (Vec<usize>, Vec<usize>),
    ) -> Self {
        SearchEpochs {
            search,
            data,
            split,
        }
    }

    fn augment(&self) -> Augment {
        let s = &self.search.settings;
        if s.augment {
            Augment {
                mean: s.mean,
                std: s.std,
                ..Augment::cifar_search()
            }
        } else {
            Augment::none(s.mean, s.std)
        }
    }

    fn order(&self, idx: &[usize], seed: u64) -> Vec<usize> {
        if self.search.settings.shuffle {
            shuffled(idx, seed)
        } else {
            idx.to_vec()
        }
    }

    /// The validation images in batches, in the order of `seed`.
    fn val_batches(&self, order_seed: u64, batch_seed: u64) -> Result<BatchStream> {
        epoch_batches(
            self.data.clone(),
            self.order(&self.split.1, order_seed),
            self.search.settings.batch_size,
            self.augment(),
            batch_seed,
        )
    }
}

impl Trainer for SearchEpochs<'_> {
    /// A training batch (w step) and a validation batch (α step).
    type Input = (Batch, Batch);
    type Epoch = SearchEpoch;
    type Record = EpochRecord;

    fn bounds(&self) -> (Limits, Position) {
        let s = &self.search;
        (s.settings.limits(), Position::new(s.epoch, s.step))
    }

    fn start_epoch(&mut self, e: usize) -> Result<EpochPlan<SearchEpoch>> {
        let data = self.data;
        let classes = self.search.settings.space.classes();
        if data.num_classes() != classes {
            return Err(Error::Invalid(format!(
                "the data has {} classes but the network was built for {classes}",
                data.num_classes(),
            )));
        }
        self.search.set_image_size(data.height, data.width)?;
        let (lr, beta) = self.search.set_epoch(e)?;
        let seed = sub_seed(self.search.settings.seed, TAG_EPOCH + e as u64);
        let bs = self.search.settings.batch_size;
        let train_order = self.order(&self.split.0, sub_seed(seed, 1));
        let steps = train_order.len().div_ceil(bs);
        let train = epoch_batches(
            data.clone(),
            train_order,
            bs,
            self.augment(),
            sub_seed(seed, 2),
        )?;
        let val = match self.search.settings.val_pairing {
            ValPairing::Queue => self.val_batches(sub_seed(seed, 3), sub_seed(seed, 4))?,
            // As many validation images as training images, so every training batch has a
            // validation batch of its own size.
            ValPairing::Random => epoch_batches(
                data.clone(),
                drawn(&self.split.1, self.split.0.len(), sub_seed(seed, 3)),
                bs,
                self.augment(),
                sub_seed(seed, 4),
            )?,
        };
        Ok(EpochPlan {
            state: SearchEpoch {
                lr,
                beta,
                seed,
                train,
                val,
                pass: 0,
            },
            steps,
            lr,
            beta: Some(beta),
        })
    }

    fn next_input(&mut self, ep: &mut SearchEpoch) -> Result<Option<(Batch, Batch)>> {
        let Some(tb) = ep.train.next() else {
            return Ok(None);
        };
        let vb = match ep.val.next() {
            Some(b) => b,
            None => {
                ep.pass += 1;
                let s = sub_seed(ep.seed, 100 + ep.pass);
                ep.val = self.val_batches(s, sub_seed(s, 1))?;
                ep.val
                    .next()
                    .ok_or_else(|| Error::Invalid("the validation split is empty".into()))?
            }
        };
        Ok(Some((tb, vb)))
    }

    fn step(&mut self, _: &mut SearchEpoch, (tb, vb): (Batch, Batch)) -> Result<StepStats> {
        self.search.step(&tb, &vb)
    }

    fn finish_epoch(
        &mut self,
        ep: SearchEpoch,
        steps: EpochSteps,
        observe: &mut dyn FnMut(Progress),
    ) -> Result<EpochRecord> {
        let bs = self.search.settings.batch_size;
        let trained = steps.stats.len();
        let mut eval_order = self.order(&self.split.1, sub_seed(ep.seed, 5));
        if self.search.settings.max_steps.is_some() && trained < steps.steps_total {
            // A step-limited run (a comparison, a smoke test) validates on as many batches
            // as it trained on, not the whole split.
            eval_order.truncate(trained.max(1) * bs);
        }
        observe(Progress::Validating {
            batches: eval_order.len().div_ceil(bs),
        });
        let v = self.search.evaluate(epoch_batches(
            self.data.clone(),
            eval_order,
            bs,
            self.augment(),
            sub_seed(ep.seed, 6),
        )?)?;
        let at = Position::new(self.search.epoch, self.search.step);
        run::check_loss("validation", v.loss, at, super::trainer::SEARCH_HINT)?;
        let alphas = self.search.alphas_softmax()?;
        let genotype = derive_from_alphas(&self.search.settings.space, &alphas)?;
        Ok(EpochRecord {
            epoch: steps.epoch,
            lr: ep.lr,
            beta: ep.beta,
            steps: trained,
            train: Scores::of(&steps.stats),
            val: v,
            timing: steps.timing(),
            alphas,
            edge_ops: self.search.edge_op_names()?,
            genotype_text: genotype.text(),
            nb201: genotype.nb201_entry(),
            genotype,
        })
    }

    fn completed(&mut self, record: EpochRecord) {
        self.search.epoch += 1;
        self.search.history.push(record);
    }
}
