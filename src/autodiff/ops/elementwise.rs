//! Elementwise ops and sums: relu, sum of n tensors, product, scaling by a constant or by a
//! GPU-resident scalar (β), the mixed-edge weighted sum Σ_k w_k·y_k, and the sum of all
//! elements; forward and backward side by side. Kernels: `shaders/elementwise.wgsl`.

use super::reduce::reduce_into;
use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            op,
            format!("shapes differ: {:?} and {:?}", a.shape(), b.shape()),
        ));
    }
    Ok(())
}

fn ew_params(n: usize, idx: usize, factor: f32) -> [u32; 4] {
    [n as u32, idx as u32, factor.to_bits(), 0]
}

/// a + b into a new tensor, outside the tape (gradient accumulation).
pub(crate) fn add_raw(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(a.gpu(), a.shape(), "sum")?;
    a.gpu().launch(
        "elementwise",
        "add",
        &ew_params(a.numel(), 0, 0.0),
        &[a.buffer(), b.buffer(), out.buffer()],
        a.numel(),
    )?;
    Ok(out)
}

/// factor · s[idx] · x into a new tensor, outside the tape.
fn scale_by_raw(x: &Tensor, s: &Tensor, idx: usize, factor: f32) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), x.shape(), "scaled")?;
    x.gpu().launch(
        "elementwise",
        "scale_by",
        &ew_params(x.numel(), idx, factor),
        &[x.buffer(), s.buffer(), out.buffer()],
        x.numel(),
    )?;
    Ok(out)
}

pub(crate) struct ReluNode {
    x: Saved,
}
pub(crate) struct SumNode {
    xs: Vec<Saved>,
}
pub(crate) struct MulNode {
    a: Saved,
    b: Saved,
}
pub(crate) struct ScaleNode {
    x: Saved,
    factor: f32,
}
pub(crate) struct ScaleByNode {
    x: Saved,
    s: Tensor,
    idx: usize,
    factor: f32,
}
pub(crate) struct WeightedSumNode {
    /// Values kept only when w needs its gradient (the α step).
    ys: Vec<Saved>,
    w: Saved,
    idx: Vec<usize>,
}
pub(crate) struct ScaleRowsNode {
    x: Saved,
    s: Tensor,
}

fn scale_rows_raw(x: &Tensor, s: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), x.shape(), "scaled rows")?;
    let row = x.numel() / s.numel().max(1);
    x.gpu().launch(
        "elementwise",
        "scale_rows",
        &ew_params(x.numel(), row, 1.0),
        &[x.buffer(), s.buffer(), out.buffer()],
        x.numel(),
    )?;
    Ok(out)
}

pub(crate) struct SumAllNode {
    x: Saved,
}

impl Tape {
    pub fn relu(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = Tensor::empty(self.gpu(), x.shape(), "relu output")?;
        self.gpu().launch(
            "elementwise",
            "relu_forward",
            &ew_params(x.numel(), 0, 0.0),
            &[x.buffer(), y.buffer()],
            x.numel(),
        )?;
        Ok(self.record(&[x], y, || Op::Relu(ReluNode { x: Saved::keep(x) })))
    }

    /// Σ xs (all the same shape).
    pub fn sum(&mut self, xs: &[&Tensor]) -> Result<Tensor> {
        let Some(first) = xs.first() else {
            return Err(Error::shape("sum", "needs at least one tensor"));
        };
        for x in xs {
            same_shape("sum", first, x)?;
        }
        let y = match xs {
            [only] => only.duplicate()?,
            [a, rest @ ..] => {
                let y = add_raw(a, rest[0])?;
                for x in &rest[1..] {
                    self.gpu().launch(
                        "elementwise",
                        "accumulate",
                        &ew_params(y.numel(), 0, 0.0),
                        &[x.buffer(), y.buffer()],
                        y.numel(),
                    )?;
                }
                y
            }
            [] => unreachable!(),
        };
        Ok(self.record(xs, y, || {
            Op::Sum(SumNode {
                xs: xs.iter().map(|t| Saved::key_only(t)).collect(),
            })
        }))
    }

    /// a ⊙ b.
    pub fn mul(&mut self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        same_shape("mul", a, b)?;
        let y = Tensor::empty(self.gpu(), a.shape(), "mul output")?;
        self.gpu().launch(
            "elementwise",
            "mul",
            &ew_params(a.numel(), 0, 0.0),
            &[a.buffer(), b.buffer(), y.buffer()],
            a.numel(),
        )?;
        Ok(self.record(&[a, b], y, || {
            Op::Mul(MulNode {
                a: Saved::keep_if(a, b.requires_grad()),
                b: Saved::keep_if(b, a.requires_grad()),
            })
        }))
    }

    /// factor · x.
    pub fn scale(&mut self, x: &Tensor, factor: f32) -> Result<Tensor> {
        let y = Tensor::empty(self.gpu(), x.shape(), "scale output")?;
        self.gpu().launch(
            "elementwise",
            "scale_const",
            &ew_params(x.numel(), 0, factor),
            &[x.buffer(), y.buffer()],
            x.numel(),
        )?;
        Ok(self.record(&[x], y, || {
            Op::Scale(ScaleNode {
                x: Saved::key_only(x),
                factor,
            })
        }))
    }

    /// s[idx] · x, where `s` is a GPU-resident scalar table (β lives there, so a replayed step
    /// can change it). No gradient flows to `s`.
    pub fn scale_by(&mut self, x: &Tensor, s: &Tensor, idx: usize) -> Result<Tensor> {
        if idx >= s.numel() {
            return Err(Error::shape(
                "scale_by",
                format!("scalar index {idx} outside a table of {}", s.numel()),
            ));
        }
        let y = scale_by_raw(x, s, idx, 1.0)?;
        Ok(self.record(&[x], y, || {
            Op::ScaleBy(ScaleByNode {
                x: Saved::key_only(x),
                s: s.clone(),
                idx,
                factor: 1.0,
            })
        }))
    }

    /// Σ_k w[idx[k]] · ys[k]: the mixed-edge sum (w a softmax table, idx the flat positions
    /// of this edge's ops), with gradients to every y_k and to w.
    pub fn weighted_sum(&mut self, ys: &[&Tensor], w: &Tensor, idx: &[usize]) -> Result<Tensor> {
        let Some(first) = ys.first() else {
            return Err(Error::shape("weighted_sum", "needs at least one tensor"));
        };
        for y in ys {
            same_shape("weighted_sum", first, y)?;
        }
        if idx.len() != ys.len() || idx.iter().any(|&i| i >= w.numel()) {
            return Err(Error::shape(
                "weighted_sum",
                format!(
                    "{} terms with weight indices {idx:?} into weights {:?}",
                    ys.len(),
                    w.shape()
                ),
            ));
        }
        let out = scale_by_raw(first, w, idx[0], 1.0)?;
        for (y, &i) in ys.iter().zip(idx).skip(1) {
            self.gpu().launch(
                "elementwise",
                "axpy",
                &ew_params(out.numel(), i, 1.0),
                &[y.buffer(), w.buffer(), out.buffer()],
                out.numel(),
            )?;
        }
        let mut inputs: Vec<&Tensor> = ys.to_vec();
        inputs.push(w);
        Ok(self.record(&inputs, out, || {
            Op::WeightedSum(WeightedSumNode {
                ys: ys
                    .iter()
                    .map(|t| Saved::keep_if(t, w.requires_grad()))
                    .collect(),
                w: Saved::keep(w),
                idx: idx.to_vec(),
            })
        }))
    }

    /// y[b, …] = s[b] · x[b, …]: per-sample scaling by a constant vector `s` (drop path's
    /// mask / keep probability). No gradient flows to `s`.
    pub fn scale_rows(&mut self, x: &Tensor, s: &Tensor) -> Result<Tensor> {
        let n = x.shape().first().copied().unwrap_or(0);
        if s.numel() != n || n == 0 {
            return Err(Error::shape(
                "scale_rows",
                format!("{} scales for a batch of {n}", s.numel()),
            ));
        }
        let y = scale_rows_raw(x, s)?;
        Ok(self.record(&[x], y, || {
            Op::ScaleRows(ScaleRowsNode {
                x: Saved::key_only(x),
                s: s.clone(),
            })
        }))
    }

    /// Σ of all elements, as a 1-element tensor.
    pub fn sum_all(&mut self, x: &Tensor) -> Result<Tensor> {
        let y = Tensor::empty(self.gpu(), &[1], "sum_all output")?;
        reduce_into(
            self.gpu(),
            x.buffer(),
            None,
            x.numel(),
            y.buffer(),
            0,
            false,
            1.0,
        )?;
        Ok(self.record(&[x], y, || {
            Op::SumAll(SumAllNode {
                x: Saved::key_only(x),
            })
        }))
    }
}

impl ReluNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let dx = Tensor::empty(gy.gpu(), self.x.shape(), "relu dx")?;
        gy.gpu().launch(
            "elementwise",
            "relu_backward",
            &ew_params(dx.numel(), 0, 0.0),
            &[self.x.data()?.buffer(), gy.buffer(), dx.buffer()],
            dx.numel(),
        )?;
        Ok(vec![(self.x.key(), dx)])
    }
}

impl SumNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        // The same gradient flows to every term; accumulation never writes in place.
        Ok(self.xs.iter().map(|x| (x.key(), gy.clone())).collect())
    }
}

impl MulNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let mut out = Vec::new();
        for (this, other) in [(&self.a, &self.b), (&self.b, &self.a)] {
            if this.requires_grad() {
                let d = Tensor::empty(gy.gpu(), this.shape(), "mul grad")?;
                gy.gpu().launch(
                    "elementwise",
                    "mul",
                    &ew_params(d.numel(), 0, 0.0),
                    &[gy.buffer(), other.data()?.buffer(), d.buffer()],
                    d.numel(),
                )?;
                out.push((this.key(), d));
            }
        }
        Ok(out)
    }
}

impl ScaleNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let dx = Tensor::empty(gy.gpu(), gy.shape(), "scale dx")?;
        gy.gpu().launch(
            "elementwise",
            "scale_const",
            &ew_params(dx.numel(), 0, self.factor),
            &[gy.buffer(), dx.buffer()],
            dx.numel(),
        )?;
        Ok(vec![(self.x.key(), dx)])
    }
}

impl ScaleByNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        Ok(vec![(
            self.x.key(),
            scale_by_raw(gy, &self.s, self.idx, self.factor)?,
        )])
    }
}

impl WeightedSumNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let gpu = gy.gpu();
        let mut out = Vec::new();
        for (y, &i) in self.ys.iter().zip(&self.idx) {
            if y.requires_grad() {
                out.push((y.key(), scale_by_raw(gy, self.w.data()?, i, 1.0)?));
            }
        }
        if self.w.requires_grad() {
            // dw[idx[k]] = <gy, y_k>; the rest of dw is zero.
            let dw = Tensor::zeros(gpu, self.w.shape())?;
            for (y, &i) in self.ys.iter().zip(&self.idx) {
                reduce_into(
                    gpu,
                    gy.buffer(),
                    Some(y.data()?.buffer()),
                    gy.numel(),
                    dw.buffer(),
                    i,
                    false,
                    1.0,
                )?;
            }
            out.push((self.w.key(), dw));
        }
        Ok(out)
    }
}

impl ScaleRowsNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        Ok(vec![(self.x.key(), scale_rows_raw(gy, &self.s)?)])
    }
}

impl SumAllNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let ones = Tensor::full(gy.gpu(), self.x.shape(), 1.0)?;
        Ok(vec![(self.x.key(), scale_by_raw(&ones, gy, 0, 1.0)?)])
    }
}
