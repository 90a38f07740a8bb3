//! Elementwise ops and sums: relu, sum of n tensors, product, scaling by a constant or by a
//! GPU-resident scalar (β), and the sum of all elements; forward and backward side by side.
//! Kernels: `shaders/elementwise.wgsl`; the Σ of several terms (a sum of three or more, the
//! tape's gradient accumulation) uses mixed.wgsl's weighted sum, whose mixed-edge op is in
//! `nn/mixed/`.

use super::reduce::reduce_into;
use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};
use crate::gpu::{ElementwiseParams, KernelParams, MixedParams};

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            op,
            format!("shapes differ: {:?} and {:?}", a.shape(), b.shape()),
        ));
    }
    Ok(())
}

fn ew_params(n: usize, idx: usize, factor: f32) -> ElementwiseParams {
    ElementwiseParams {
        n: n as u32,
        idx: idx as u32,
        factor,
        value: 0.0,
    }
}

/// a + b into a new tensor, outside the tape (gradient accumulation).
pub(crate) fn add_raw(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(a.gpu(), a.shape(), "sum")?;
    a.gpu().launch(
        "elementwise",
        "add",
        ew_params(a.numel(), 0, 0.0).words(),
        &[a.buffer(), b.buffer(), out.buffer()],
        a.numel(),
    )?;
    Ok(out)
}

/// factor · s[idx] · x into a new tensor, outside the tape.
pub(crate) fn scale_by_raw(x: &Tensor, s: &Tensor, idx: usize, factor: f32) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), x.shape(), "scaled")?;
    x.gpu().launch(
        "elementwise",
        "scale_by",
        ew_params(x.numel(), idx, factor).words(),
        &[x.buffer(), s.buffer(), out.buffer()],
        x.numel(),
    )?;
    Ok(out)
}

/// A term's coefficient: `table[idx]`, or 1 (None).
type Coef<'a> = Option<(&'a Tensor, usize)>;

/// The largest table index a pair packs ([`pack_pair`]: 16 bits each).
pub(crate) const PAIR_INDEX_MAX: u32 = 0xffff;

/// Two (index, table) coefficients of one tensor packed into one term's (idx, tab), as
/// `mixed.wgsl` decodes a pair: idx = i1 | i2 << 16, tab = t1 | t2 << 2. None where an index
/// does not fit 16 bits.
pub(crate) fn pack_pair((i1, t1): (u32, u32), (i2, t2): (u32, u32)) -> Option<(u32, u32)> {
    (i1 <= PAIR_INDEX_MAX && i2 <= PAIR_INDEX_MAX).then_some((i1 | i2 << 16, t1 | t2 << 2))
}

/// out = Σ_k s_k·y_k in term order, eight (or four) terms per launch: s_k = table[idx] for a
/// scaled term, 1 for a plain one; a tensor in two terms is read once, at its first term's
/// place, with the sum of both coefficients. The scaled terms may use at most two distinct
/// tables (checked).
pub(crate) fn weighted_sum_into(terms: &[(&Tensor, Coef)], out: &Tensor) -> Result<()> {
    let mut tables: Vec<&Tensor> = Vec::new();
    for (_, s) in terms {
        if let Some((t, _)) = s {
            if !tables.iter().any(|k| k.id() == t.id()) {
                tables.push(t);
            }
        }
    }
    if tables.len() > 2 {
        return Err(Error::shape(
            "weighted_sum",
            "the weights must come from at most two tables",
        ));
    }
    let Some(&(first, _)) = terms.first() else {
        return Err(Error::shape("weighted_sum", "needs at least one tensor"));
    };
    // A tensor in two terms (an edge's skip and its β·x; a gradient's two scalings) is read
    // once, with the sum of both coefficients, at its first term's place.
    let mut merged: Vec<(&Tensor, Coef, Option<Coef>)> = Vec::new();
    for &(y, s) in terms {
        match merged
            .iter_mut()
            .find(|(m, _, second)| m.id() == y.id() && second.is_none())
        {
            Some((_, _, second)) => *second = Some(s),
            None => merged.push((y, s, None)),
        }
    }
    // Without scaled terms the table bindings are placeholders (never read).
    let table_a = tables.first().copied().unwrap_or(first);
    let table_b = tables.get(1).copied().unwrap_or(table_a);
    let n = out.numel();
    let gpu = out.gpu();
    // Eight terms a launch (a mixed edge's seven candidates in one) where the adapter binds
    // the eleven buffers that takes, else four.
    let per = gpu.policy().weighted_sum_terms(n);
    let eight = per == 8;
    // (index, table: 0 A, 1 B, 2 none) of one coefficient.
    let code = |s: Option<(&Tensor, usize)>| match s {
        Some((t, i)) => (i as u32, (t.id() != table_a.id()) as u32),
        None => (0, 2),
    };
    for (c, chunk) in merged.chunks(per).enumerate() {
        let mut p = MixedParams {
            n: n as u32,
            m: chunk.len() as u32,
            accumulate: (c > 0) as u32,
            ..Default::default()
        };
        let mut pairs = 0u32;
        for (k, &(_, s1, second)) in chunk.iter().enumerate() {
            let (idx, tab) = match second {
                None => code(s1),
                Some(s2) => {
                    let Some(packed) = pack_pair(code(s1), code(s2)) else {
                        return Err(Error::shape("weighted_sum", "a table past 65,536 entries"));
                    };
                    pairs |= 1 << k;
                    packed
                }
            };
            if k < 4 {
                (p.idx[k], p.tab[k]) = (idx, tab);
            } else {
                (p.idx2[k - 4], p.tab2[k - 4]) = (idx, tab);
            }
        }
        let y = |k: usize| chunk.get(k).unwrap_or(&chunk[0]).0.buffer();
        let mut bufs = vec![y(0), y(1), y(2), y(3)];
        bufs.extend([table_a.buffer(), table_b.buffer(), out.buffer()]);
        let (entry, threads) = if eight {
            bufs.extend([y(4), y(5), y(6), y(7)]);
            ("weighted_sum8_vec4", n / 4)
        } else if n.is_multiple_of(4) {
            ("weighted_sum4_vec4", n / 4)
        } else {
            ("weighted_sum4", n)
        };
        match pairs {
            0 => gpu.launch("mixed", entry, p.words(), &bufs, threads)?,
            _ => {
                let consts = [("PAIRS", pairs)];
                gpu.launch_spec("mixed", entry, &consts, p.words(), &bufs, threads)?
            }
        }
    }
    Ok(())
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
        ew_params(x.numel(), row, 1.0).words(),
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
            ew_params(x.numel(), 0, 0.0).words(),
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
            [a, b] => add_raw(a, b)?,
            // Three or more (a cell's node over its edges): unscaled terms of one weighted
            // sum, up to eight a launch, in order.
            _ => {
                let y = Tensor::empty(self.gpu(), first.shape(), "sum")?;
                let terms: Vec<(&Tensor, Option<(&Tensor, usize)>)> =
                    xs.iter().map(|&x| (x, None)).collect();
                weighted_sum_into(&terms, &y)?;
                y
            }
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
            ew_params(a.numel(), 0, 0.0).words(),
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
            ew_params(x.numel(), 0, factor).words(),
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

    /// `s[idx] · x`, where `s` is a GPU-resident scalar table (β lives there, so a replayed step
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

    /// `y[b, …] = s[b] · x[b, …]`: per-sample scaling by a constant vector `s` (drop path's
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
            ew_params(dx.numel(), 0, 0.0).words(),
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
                    ew_params(d.numel(), 0, 0.0).words(),
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
            ew_params(dx.numel(), 0, self.factor).words(),
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
