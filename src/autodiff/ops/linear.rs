//! Fully connected layer y = x·Wᵀ + b (PyTorch layout: W is (out, in)); forward and backward
//! side by side. Kernels: `shaders/matmul.wgsl`.

use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, KernelParams, MatmulParams};

pub(crate) struct LinearNode {
    /// Values kept only when W needs its gradient.
    x: Saved,
    w: Saved,
    b: Option<Saved>,
}

/// C (m×n) = A·B (+ bias) with A[i,k] = a[i·ars + k·acs], B[k,j] = b[k·brs + j·bcs].
#[allow(clippy::too_many_arguments)]
fn matmul(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&GpuBuffer>,
    c: &Tensor,
    m: usize,
    n: usize,
    k: usize,
    strides: [usize; 4],
) -> Result<()> {
    let [a_rs, a_cs, b_rs, b_cs] = strides.map(|v| v as u32);
    let p = MatmulParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        has_bias: bias.is_some() as u32,
        a_rs,
        a_cs,
        b_rs,
        b_cs,
    };
    let bias = bias.unwrap_or(a.buffer());
    a.gpu().launch(
        "matmul",
        "matmul",
        p.words(),
        &[a.buffer(), b.buffer(), bias, c.buffer()],
        m * n,
    )
}

impl Tape {
    /// x: (n, in), w: (out, in), b: (out) → (n, out).
    pub fn linear(&mut self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let (&[n, fin], &[fout, fin2]) = (x.shape(), w.shape()) else {
            return Err(Error::shape(
                "linear",
                format!(
                    "expected x (n, in) and weight (out, in), got {:?} and {:?}",
                    x.shape(),
                    w.shape()
                ),
            ));
        };
        if fin != fin2 || b.is_some_and(|b| b.shape() != [fout]) {
            return Err(Error::shape(
                "linear",
                format!(
                    "x {:?}, weight {:?}, bias {:?} do not agree",
                    x.shape(),
                    w.shape(),
                    b.map(|b| b.shape().to_vec())
                ),
            ));
        }
        let y = Tensor::empty(self.gpu(), &[n, fout], "linear output")?;
        self.add_macs((n * fout * fin) as u64);
        // B = Wᵀ: B[k, j] = W[j, k] = w[j·in + k].
        matmul(
            x,
            w,
            b.map(|b| b.buffer()),
            &y,
            n,
            fout,
            fin,
            [fin, 1, 1, fin],
        )?;
        let mut inputs = vec![x, w];
        inputs.extend(b);
        Ok(self.record(&inputs, y, || {
            Op::Linear(LinearNode {
                x: Saved::keep_if(x, w.requires_grad()),
                w: Saved::keep(w),
                b: b.map(Saved::key_only),
            })
        }))
    }
}

impl LinearNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let gpu = gy.gpu();
        let (n, fin) = (self.x.shape()[0], self.x.shape()[1]);
        let fout = self.w.shape()[0];
        let mut out = Vec::new();
        if self.x.requires_grad() {
            // dx (n, in) = gy (n, out) · W (out, in)
            let dx = Tensor::empty(gpu, self.x.shape(), "linear dx")?;
            matmul(
                gy,
                self.w.data()?,
                None,
                &dx,
                n,
                fin,
                fout,
                [fout, 1, fin, 1],
            )?;
            out.push((self.x.key(), dx));
        }
        if self.w.requires_grad() {
            // dW (out, in) = gyᵀ (out, n) · x (n, in)
            let dw = Tensor::empty(gpu, self.w.shape(), "linear dw")?;
            matmul(
                gy,
                self.x.data()?,
                None,
                &dw,
                fout,
                fin,
                n,
                [1, fout, fin, 1],
            )?;
            out.push((self.w.key(), dw));
        }
        if let Some(b) = self.b.as_ref().filter(|b| b.requires_grad()) {
            let db = Tensor::empty(gpu, b.shape(), "linear db")?;
            gpu.launch(
                "matmul",
                "col_sum",
                // col_sum of gy (n, out): m = n rows, n = out columns.
                MatmulParams {
                    m: n as u32,
                    n: fout as u32,
                    ..MatmulParams::default()
                }
                .words(),
                &[gy.buffer(), db.buffer()],
                fout,
            )?;
            out.push((b.key(), db));
        }
        Ok(out)
    }
}
