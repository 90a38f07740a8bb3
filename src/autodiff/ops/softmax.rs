//! Row softmax (α → mixing weights), log-softmax + mean cross-entropy, and top-k accuracy;
//! forward and backward side by side. Kernels: `shaders/softmax.wgsl`.

use super::reduce::reduce_into;
use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::tensor::Labels;
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};
use crate::gpu::{KernelParams, SoftmaxParams};

fn rows_cols(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    match x.shape() {
        &[r, c] if c > 0 => Ok((r, c)),
        s => Err(Error::shape(
            op,
            format!("expected a (rows, cols) matrix, got {s:?}"),
        )),
    }
}

fn params(rows: usize, cols: usize) -> SoftmaxParams {
    SoftmaxParams {
        rows: rows as u32,
        cols: cols as u32,
    }
}

pub(crate) struct SoftmaxNode {
    x: Saved,
    y: Tensor,
    params: SoftmaxParams,
}

pub(crate) struct CrossEntropyNode {
    logits: Saved,
    labels: Labels,
    /// [per-row loss | per-row log-sum-exp].
    rows: Tensor,
    params: SoftmaxParams,
}

impl Tape {
    /// Softmax over each row of a (rows, cols) matrix.
    pub fn softmax_rows(&mut self, x: &Tensor) -> Result<Tensor> {
        let (r, c) = rows_cols("softmax_rows", x)?;
        let params = params(r, c);
        let y = Tensor::empty(self.gpu(), x.shape(), "softmax output")?;
        self.gpu().launch(
            "softmax",
            "row_softmax_forward",
            params.words(),
            &[x.buffer(), y.buffer()],
            r,
        )?;
        let saved = y.clone();
        Ok(self.record(&[x], y, || {
            Op::Softmax(SoftmaxNode {
                x: Saved::key_only(x),
                y: saved,
                params,
            })
        }))
    }

    /// Mean over rows of `−log softmax(logits)[label]`: a 1-element tensor.
    pub fn cross_entropy(&mut self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        let (r, c) = rows_cols("cross_entropy", logits)?;
        if labels.len() != r {
            return Err(Error::shape(
                "cross_entropy",
                format!("{} labels for {r} rows of logits", labels.len()),
            ));
        }
        let params = params(r, c);
        let gpu = self.gpu().clone();
        let rows = Tensor::empty(&gpu, &[2 * r], "cross_entropy rows")?;
        gpu.launch(
            "softmax",
            "ce_forward",
            params.words(),
            &[logits.buffer(), &labels.buf, rows.buffer()],
            r,
        )?;
        let loss = Tensor::empty(&gpu, &[1], "loss")?;
        reduce_into(
            &gpu,
            rows.buffer(),
            None,
            r,
            loss.buffer(),
            0,
            false,
            1.0 / r as f32,
        )?;
        Ok(self.record(&[logits], loss, || {
            Op::CrossEntropy(CrossEntropyNode {
                logits: Saved::keep(logits),
                labels: labels.clone(),
                rows,
                params,
            })
        }))
    }
}

/// Rank of each row's label among its logits, as a tensor left on the GPU (0 = top-1
/// correct, < 5 = top-5 correct; ties count in the label's favour).
pub fn rank_tensor(logits: &Tensor, labels: &Labels) -> Result<Tensor> {
    let (r, c) = rows_cols("label_ranks", logits)?;
    if labels.len() != r {
        return Err(Error::shape(
            "label_ranks",
            format!("{} labels for {r} rows", labels.len()),
        ));
    }
    let out = Tensor::empty(logits.gpu(), &[r], "ranks")?;
    logits.gpu().launch(
        "softmax",
        "rank_of_label",
        params(r, c).words(),
        &[logits.buffer(), &labels.buf, out.buffer()],
        r,
    )?;
    Ok(out)
}

/// Rank of each row's label among its logits, read back.
pub fn label_ranks(logits: &Tensor, labels: &Labels) -> Result<Vec<u32>> {
    Ok(rank_tensor(logits, labels)?
        .to_vec()?
        .into_iter()
        .map(|v| v as u32)
        .collect())
}

/// (top-1, top-5) correct counts.
pub fn topk_correct(logits: &Tensor, labels: &Labels) -> Result<(usize, usize)> {
    let ranks = label_ranks(logits, labels)?;
    Ok((
        ranks.iter().filter(|&&k| k < 1).count(),
        ranks.iter().filter(|&&k| k < 5).count(),
    ))
}

impl SoftmaxNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let dx = Tensor::empty(gy.gpu(), self.x.shape(), "softmax dx")?;
        gy.gpu().launch(
            "softmax",
            "row_softmax_backward",
            self.params.words(),
            &[self.y.buffer(), gy.buffer(), dx.buffer()],
            self.params.rows as usize,
        )?;
        Ok(vec![(self.x.key(), dx)])
    }
}

impl CrossEntropyNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let dx = Tensor::empty(gy.gpu(), self.logits.shape(), "cross_entropy dx")?;
        gy.gpu().launch(
            "softmax",
            "ce_backward",
            self.params.words(),
            &[
                self.logits.data()?.buffer(),
                &self.labels.buf,
                self.rows.buffer(),
                gy.buffer(),
                dx.buffer(),
            ],
            dx.numel(),
        )?;
        Ok(vec![(self.logits.key(), dx)])
    }
}
