//! One search step (SPEC §5): the α step (Adam on the validation loss, weights frozen) and
//! the w step (SGD with momentum on the training loss, gradients clipped, α frozen), queued
//! in the space's order. Queuing only, so that a step can be recorded and replayed.

use super::settings::StepOrder;
use super::trainer::Search;
use crate::autodiff::ops::elementwise::add_raw;
use crate::autodiff::ops::softmax::rank_tensor;
use crate::autodiff::{Grads, Labels, Tape, Tensor};
use crate::error::{Error, Result};
use crate::nn::Ctx;
use crate::run::{read_stats, StepStats};

impl Search {
    /// One Adam step on α from the loss on `(x, y)` (the model in train mode).
    pub fn arch_step(&mut self, x: &Tensor, y: &Labels) -> Result<()> {
        self.adam.prepare()?;
        self.encode_arch_step(x, y)
    }

    /// Queues the α step; Adam's step terms must have been written ([`Adam::prepare`]).
    fn encode_arch_step(&self, x: &Tensor, y: &Labels) -> Result<()> {
        // Only α needs a gradient here: frozen weights skip their gradient kernels, and ops
        // upstream of the first mixed edge are not even recorded.
        let weights: Vec<Tensor> = self.weights.iter().map(|(_, t)| t.clone()).collect();
        let grads = self.frozen_pass(&weights, x, y, |tape, _, loss| tape.backward(&loss))?;
        let alphas = self.alpha_tensors();
        let gs = alpha_grads(&alphas, &grads)?;
        // What PyTorch leaves in α.grad until the next α step (see `clip_alpha`).
        for (g, kept) in gs.iter().zip(&self.arch_grads) {
            self.gpu
                .copy_range(g.buffer(), 0, kept.buffer(), 0, g.numel());
        }
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
        // α is fixed in this step: freezing it skips the mixed edges' weight reductions,
        // unless its gradient counts in the clipping norm.
        let alphas = self.alpha_tensors();
        let frozen = if self.settings.clip_alpha {
            &[][..]
        } else {
            &alphas[..]
        };
        let (grads, loss, ranks) = self.frozen_pass(frozen, x, y, |tape, logits, loss| {
            let ranks = rank_tensor(logits, y)?;
            Ok((tape.backward(&loss)?, loss, ranks))
        })?;
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
        // α.grad as PyTorch has it at the clip: this step's gradient added to the last α step's.
        let alpha_sums = if self.settings.clip_alpha {
            alpha_grads(&alphas, &grads)?
                .into_iter()
                .zip(&self.arch_grads)
                .map(|(g, kept)| add_raw(g, kept))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let norm_only: Vec<&Tensor> = alpha_sums.iter().collect();
        self.sgd.encode_clipped_norm_with(
            &params,
            &gs,
            &norm_only,
            self.settings.sgd.grad_clip as f32,
        )?;
        Ok((loss, ranks))
    }

    /// Records a train-mode forward pass and its loss on `(x, y)` with `frozen` out of the
    /// gradient, and `finish`es it (the backward pass) before `frozen` is thawed, even on an
    /// error.
    fn frozen_pass<T>(
        &self,
        frozen: &[Tensor],
        x: &Tensor,
        y: &Labels,
        finish: impl FnOnce(Tape, &Tensor, Tensor) -> Result<T>,
    ) -> Result<T> {
        frozen.iter().for_each(|t| t.set_requires_grad(false));
        let result = (|| {
            let mut tape = Tape::new(&self.gpu);
            tape.set_recompute(self.recompute);
            let logits = self
                .net
                .forward(&mut tape, x, self.beta(), Ctx { train: true })?;
            let loss = tape.cross_entropy(&logits, y)?;
            finish(tape, &logits, loss)
        })();
        frozen.iter().for_each(|t| t.set_requires_grad(true));
        result
    }

    /// Queues a whole search step on uploaded batches, in the configured order.
    pub(super) fn encode_step(
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
}

/// The gradient of each α in `grads`.
fn alpha_grads<'a>(alphas: &[Tensor], grads: &'a Grads) -> Result<Vec<&'a Tensor>> {
    alphas
        .iter()
        .map(|a| {
            grads
                .get(a)
                .ok_or_else(|| Error::Invalid("α received no gradient".into()))
        })
        .collect()
}
