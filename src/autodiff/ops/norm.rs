//! Batch normalisation (train: batch statistics and running-statistics update; eval: running
//! statistics), with or without affine parameters; forward and backward side by side.
//! Kernels: `shaders/batchnorm.wgsl`.

use crate::autodiff::tape::{GradTerm, InputGrads, Op, Tape};
use crate::autodiff::tensor::TensorKey;
use crate::autodiff::{Saved, Tensor, TensorId};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer};

/// Running statistics and hyperparameters of one batch-norm layer.
#[derive(Clone)]
pub struct BnState<'a> {
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub momentum: f32,
    pub eps: f32,
}

pub(crate) struct BatchNormNode {
    /// The input's values are kept only when `xhat` is not.
    x: Saved,
    /// Train mode without affine: the output is x̂ itself, so backward reads it instead of
    /// the input (bit-identical), and the input is freed as soon as its consumers are done.
    xhat: Option<Tensor>,
    gamma: Option<Saved>,
    beta: Option<Saved>,
    /// [mean | invstd | sum dy | sum dy·xhat], 4·c floats.
    saved: Tensor,
    /// The kernels' parameter block (see batchnorm.wgsl's P).
    params: [u32; 13],
}

/// Batch-norm statistics of a tensor's channels, written by the kernel that produced it: per
/// (channel, chunk of positions) the chunk's count, mean and Σ(x − mean)² (batchnorm.wgsl's
/// `stats_partial` layout). A train-mode [`Tape::batch_norm_with_stats`] of that tensor
/// combines them instead of reading the tensor once more for its statistics.
#[derive(Clone)]
pub struct ChannelStats {
    part: Tensor,
    parts: usize,
    of: TensorId,
}

impl ChannelStats {
    /// Statistics of `of`, in `part` (3 floats per (channel, chunk), `parts` chunks).
    pub(crate) fn new(part: Tensor, parts: usize, of: &Tensor) -> ChannelStats {
        ChannelStats {
            part,
            parts,
            of: of.id(),
        }
    }
}

impl Tape {
    /// y = (x − mean)·invstd (·γ + β). `train`: batch statistics, running statistics updated
    /// in place; otherwise the running statistics normalise. x: (n, c, h, w) or (n, c).
    pub fn batch_norm(
        &mut self,
        x: &Tensor,
        affine: Option<(&Tensor, &Tensor)>,
        state: BnState<'_>,
        train: bool,
    ) -> Result<Tensor> {
        self.batch_norm_with_stats(x, None, affine, state, train)
    }

    /// [`Tape::batch_norm`] with x's statistics already computed by the kernel that produced
    /// it (`stats`, used in train mode; None computes them here).
    pub fn batch_norm_with_stats(
        &mut self,
        x: &Tensor,
        stats: Option<ChannelStats>,
        affine: Option<(&Tensor, &Tensor)>,
        state: BnState<'_>,
        train: bool,
    ) -> Result<Tensor> {
        let (n, c, hw) = match x.shape() {
            &[n, c, h, w] => (n, c, h * w),
            &[n, c] => (n, c, 1),
            s => {
                return Err(Error::shape(
                    "batch_norm",
                    format!("expected (n, c, h, w) or (n, c), got {s:?}"),
                ))
            }
        };
        for (name, t) in [
            ("running_mean", state.running_mean),
            ("running_var", state.running_var),
        ]
        .into_iter()
        .chain(
            affine
                .into_iter()
                .flat_map(|(g, b)| [("weight", g), ("bias", b)]),
        ) {
            if t.shape() != [c] {
                return Err(Error::shape(
                    "batch_norm",
                    format!("{name} must have shape ({c}), got {:?}", t.shape()),
                ));
            }
        }
        if train && n * hw < 2 {
            return Err(Error::shape(
                "batch_norm",
                format!(
                    "training needs more than one value per channel, got input {:?}",
                    x.shape()
                ),
            ));
        }
        let gpu = self.gpu().clone();
        let stats = stats.filter(|_| train);
        if let Some(st) = &stats {
            if st.of != x.id() || st.part.numel() != 3 * c * st.parts {
                return Err(Error::Invalid(format!(
                    "internal: batch_norm given statistics of another tensor than its input {:?}",
                    x.shape()
                )));
            }
        }
        let parts = match &stats {
            Some(st) => st.parts,
            None if train => gpu.policy().bn_split(c, n * hw),
            None => 1,
        };
        let params = [
            n as u32,
            c as u32,
            hw as u32,
            affine.is_some() as u32,
            state.eps.to_bits(),
            state.momentum.to_bits(),
            1,
            train as u32,
            0,
            parts as u32,
            (n * hw).div_ceil(parts) as u32,
            0,
            0,
        ];
        let saved = Tensor::empty(&gpu, &[4 * c], "batch_norm stats")?;
        let y = Tensor::empty(&gpu, x.shape(), "batch_norm output")?;
        let running = [state.running_mean.buffer(), state.running_var.buffer()];
        if train {
            // Without affine parameters, x stands in for them (read-only, never read).
            let (g, b) = affine.unwrap_or((x, x));
            let bufs = [
                x.buffer(),
                saved.buffer(),
                running[0],
                running[1],
                g.buffer(),
                b.buffer(),
                y.buffer(),
            ];
            if parts == 1 && stats.is_none() {
                // Statistics and normalisation in one launch: one workgroup per channel.
                let ([entry, _], groups) = fused_entries(&gpu, [n, c, hw]);
                gpu.launch_groups("batchnorm", entry, &params, &bufs, groups)?;
            } else {
                // Split reductions: the chunks' statistics (the producer's, or a pass of
                // their own), combined per channel by every workgroup of the normalising
                // launch.
                let own;
                let part = match &stats {
                    Some(st) => st.part.buffer(),
                    None => {
                        own = gpu.alloc("batch_norm partial statistics", 3 * c * parts)?;
                        let pb = [x.buffer(), &own];
                        gpu.launch_groups("batchnorm", "stats_partial", &params, &pb, c * parts)?;
                        &own
                    }
                };
                let bufs = [&bufs[..], &[part]].concat();
                gpu.launch_groups("batchnorm", "normalize_split", &params, &bufs, c * parts)?;
            }
        } else {
            let bufs = [running[0], running[1], saved.buffer()];
            gpu.launch("batchnorm", "eval_stats", &params, &bufs, c)?;
            let (g, b) = affine.unwrap_or((&saved, &saved));
            let bufs = [
                x.buffer(),
                saved.buffer(),
                g.buffer(),
                b.buffer(),
                y.buffer(),
            ];
            gpu.launch("batchnorm", "normalize", &params, &bufs, y.numel())?;
        }
        let mut inputs = vec![x];
        if let Some((g, b)) = affine {
            inputs.push(g);
            inputs.push(b);
        }
        let from_output = train && affine.is_none();
        let xhat = from_output.then(|| y.clone());
        let mut params = params;
        params[8] = from_output as u32;
        Ok(self.record(&inputs, y, || {
            Op::BatchNorm(BatchNormNode {
                x: Saved::keep_if(x, !from_output),
                xhat,
                gamma: affine.map(|a| Saved::keep(a.0)),
                beta: affine.map(|a| Saved::key_only(a.1)),
                saved,
                params,
            })
        }))
    }
}

/// The one-launch train kernels, forward and backward, and their workgroups: the vec4
/// variants for planes of a multiple of 4 values (every plane of 32×32 images down to 8×8),
/// one workgroup per channel, or for small channels where launches are costly one thread per
/// channel.
fn fused_entries(gpu: &Gpu, [n, c, hw]: [usize; 3]) -> ([&'static str; 2], usize) {
    if !hw.is_multiple_of(4) {
        (["train_forward", "backward_fused"], c)
    } else if gpu.policy().bn_serial(n * hw) {
        (["train_forward_serial4", "backward_serial4"], c.div_ceil(8))
    } else {
        (["train_forward4", "backward_fused4"], c)
    }
}

impl BatchNormNode {
    /// What backward reads for x̂: the saved output, or the input.
    fn source(&self) -> Result<&Tensor> {
        match &self.xhat {
            Some(y) => Ok(y),
            None => self.x.data(),
        }
    }

    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        self.backward_scaled(gy, None)
    }

    /// Backward for the output gradient gy·table[idx] (`scale`), or gy. The one-launch train
    /// path and the split one fold the factor into their kernels; the others scale gy first.
    pub(crate) fn backward_scaled(
        &self,
        gy: &Tensor,
        scale: Option<(&Tensor, usize)>,
    ) -> Result<InputGrads> {
        let gpu = gy.gpu();
        let c = self.params[1] as usize;
        let train = self.params[7] != 0;
        let parts = self.params[9] as usize;
        let src = self.source()?.buffer();
        let mut out = Vec::new();
        let fused = train && parts == 1 && self.x.requires_grad();
        let scaled_gy;
        let (gy, folded) = match scale {
            Some((table, idx)) if !fused && parts == 1 => {
                scaled_gy = super::elementwise::scale_by_raw(gy, table, idx, 1.0)?;
                (&scaled_gy, None)
            }
            _ => (gy, scale),
        };
        // The fused and the split kernels apply table[idx] themselves; without a scale, dy
        // stands in for the table (read-only, never read).
        let mut scaled_params = self.params;
        let table = match folded {
            Some((table, idx)) => {
                scaled_params[11] = 1;
                scaled_params[12] = idx as u32;
                table
            }
            None => gy,
        };
        // Σ dy and Σ dy·x̂ per channel: inside the fused dx launch; as split partials, combined
        // by every workgroup of the dx launch (or by grad_finish without dx); or by one
        // workgroup per channel into the saved block, before dx.
        let part = if fused {
            None
        } else if parts > 1 {
            let part = gpu.alloc("batch_norm partial gradient sums", 2 * c * parts)?;
            let bufs = [src, gy.buffer(), self.saved.buffer(), &part];
            gpu.launch_groups("batchnorm", "grad_partial", &self.params, &bufs, c * parts)?;
            Some(part)
        } else {
            let bufs = [src, gy.buffer(), self.saved.buffer()];
            gpu.launch_groups("batchnorm", "backward_reduce", &self.params, &bufs, c)?;
            None
        };
        if self.x.requires_grad() {
            // Without affine parameters dy stands in for γ (read-only, never read).
            let g = match &self.gamma {
                Some(g) => g.data()?,
                None => gy,
            };
            let dx = Tensor::empty(gpu, self.x.shape(), "batch_norm dx")?;
            let bufs = [
                src,
                gy.buffer(),
                self.saved.buffer(),
                g.buffer(),
                dx.buffer(),
                table.buffer(),
            ];
            if fused {
                // One workgroup per channel: the sums and dx in one launch.
                let nch = [0, 1, 2].map(|i| self.params[i] as usize);
                let ([_, entry], groups) = fused_entries(gpu, nch);
                gpu.launch_groups("batchnorm", entry, &scaled_params, &bufs, groups)?;
            } else if let Some(part) = &part {
                let bufs = [&bufs[..], &[part]].concat();
                let e = "backward_dx_split";
                gpu.launch_groups("batchnorm", e, &scaled_params, &bufs, c * parts)?;
            } else {
                gpu.launch(
                    "batchnorm",
                    "backward_dx",
                    &scaled_params,
                    &bufs,
                    dx.numel(),
                )?;
            }
            out.push((self.x.key(), dx));
        } else if let Some(part) = &part {
            let bufs = [part, self.saved.buffer(), table.buffer()];
            gpu.launch("batchnorm", "grad_finish", &scaled_params, &bufs, c)?;
        }
        // dγ = Σ dy·xhat and dβ = Σ dy sit in the saved block; copy them out.
        for (param, slot) in [(&self.gamma, 3usize), (&self.beta, 2usize)] {
            if let Some(p) = param.as_ref().filter(|p| p.requires_grad()) {
                let d = Tensor::empty(gpu, &[c], "batch_norm affine grad")?;
                super::layout::copy_channels(&self.saved, 4, slot, &d, 1, 0, 1, 1, c)?;
                out.push((p.key(), d));
            }
        }
        Ok(out)
    }
}

/// One term of [`Tape::normalized_sum`]: `table[idx]` times `x`, or times the train-mode batch
/// norm (no affine) of `x` when `bn` gives its running statistics.
pub struct SumTerm<'a> {
    pub x: &'a Tensor,
    pub bn: Option<BnState<'a>>,
    /// x's statistics from the kernel that produced it, for a batch norm that runs on its own
    /// ([`Tape::batch_norm_with_stats`]); None computes them (the fused path always does).
    pub stats: Option<&'a ChannelStats>,
    pub table: &'a Tensor,
    pub idx: usize,
}

/// Most normalised and plain terms one fused launch takes (its bindings).
const MAX_NORMALIZED: usize = 6;
const MAX_PLAIN: usize = 2;

pub(crate) struct NormalizedSumNode {
    /// Per term: its input (kept for normalised terms, whose x̂ backward recomputes, and for
    /// plain ones whose weight needs a gradient), table and index.
    terms: Vec<(Saved, Saved, usize, bool)>,
    /// [mean | invstd | Σgy | Σgy·x̂] per normalised term, 4·c floats each.
    saved: Tensor,
    params: [u32; 44],
}

impl Tape {
    /// `Σ_t table_t[idx_t] · v_t` in term order, v_t = batch_norm(x_t) (train mode, no affine,
    /// running statistics updated) or x_t: a mixed edge's candidates, most ending in such a
    /// batch norm. Where launches are costly and the channels are small, the statistics, the
    /// normalisation and the sum take one launch (and backward one, plus one for the weights'
    /// gradient), bit for bit what separate batch norms and a weighted sum give; elsewhere it
    /// is exactly those.
    pub fn normalized_sum(&mut self, terms: &[SumTerm]) -> Result<Tensor> {
        // More normalised terms than one launch binds (a reduction edge's seven): the last
        // ones normalise on their own and join as plain terms, where those slots allow.
        let normalized = terms.iter().filter(|t| t.bn.is_some()).count();
        let excess = normalized.saturating_sub(MAX_NORMALIZED);
        if excess > 0 && terms.len() - normalized + excess <= MAX_PLAIN {
            let mut seen = 0;
            let mut own: Vec<Option<Tensor>> = Vec::with_capacity(terms.len());
            for t in terms {
                own.push(match &t.bn {
                    Some(state) => {
                        seen += 1;
                        if seen > MAX_NORMALIZED {
                            Some(self.term_batch_norm(t, state)?)
                        } else {
                            None
                        }
                    }
                    None => None,
                });
            }
            let fewer: Vec<SumTerm> = terms
                .iter()
                .zip(&own)
                .map(|(t, y)| match y {
                    Some(y) => SumTerm {
                        x: y,
                        bn: None,
                        stats: None,
                        table: t.table,
                        idx: t.idx,
                    },
                    None => SumTerm {
                        x: t.x,
                        bn: t.bn.clone(),
                        stats: t.stats,
                        table: t.table,
                        idx: t.idx,
                    },
                })
                .collect();
            return self.normalized_sum(&fewer);
        }
        if !self.can_fuse_sum(terms)? {
            let mut normalized = Vec::with_capacity(terms.len());
            for t in terms {
                normalized.push(match &t.bn {
                    Some(state) => self.term_batch_norm(t, state)?,
                    None => t.x.clone(),
                });
            }
            let ws: Vec<(&Tensor, &Tensor, usize)> = normalized
                .iter()
                .zip(terms)
                .map(|(y, t)| (y, t.table, t.idx))
                .collect();
            return self.weighted_sum_terms(&ws);
        }
        let gpu = self.gpu().clone();
        let x0 = terms[0].x;
        let (n, c, h, w) = x0.nchw("normalized_sum")?;
        let table_a = terms
            .iter()
            .find(|t| t.bn.is_some())
            .expect("checked")
            .table;
        let table_b = terms
            .iter()
            .map(|t| t.table)
            .find(|t| t.id() != table_a.id())
            .unwrap_or(table_a);
        let norm: Vec<&SumTerm> = terms.iter().filter(|t| t.bn.is_some()).collect();
        let plain: Vec<&SumTerm> = terms.iter().filter(|t| t.bn.is_none()).collect();
        let (g, z) = (norm.len(), plain.len());
        let state0 = norm[0].bn.as_ref().expect("normalised");
        let mut p = [0u32; 44];
        p[..8].copy_from_slice(&[n, c, h * w, g, z, terms.len(), 0, 0].map(|v| v as u32));
        p[8] = state0.eps.to_bits();
        p[9] = state0.momentum.to_bits();
        let (mut k, mut j) = (0u32, 0u32);
        for (t, term) in terms.iter().enumerate() {
            p[12 + t] = if term.bn.is_some() {
                k += 1;
                k - 1
            } else {
                j += 1;
                16 + j - 1
            };
            p[20 + t] = (term.table.id() != table_a.id()) as u32;
            p[28 + t] = term.idx as u32;
        }
        for (k, term) in norm.iter().enumerate() {
            p[36 + k] = term.idx as u32;
        }
        // The running statistics, gathered into one buffer for the launch and copied back.
        let running = Tensor::empty(&gpu, &[g * 2 * c], "normalized_sum running statistics")?;
        let states: Vec<&BnState> = norm.iter().map(|t| t.bn.as_ref().expect("bn")).collect();
        for (k, s) in states.iter().enumerate() {
            gpu.copy_range(s.running_mean.buffer(), 0, running.buffer(), 2 * k * c, c);
            gpu.copy_range(
                s.running_var.buffer(),
                0,
                running.buffer(),
                (2 * k + 1) * c,
                c,
            );
        }
        let saved = Tensor::empty(&gpu, &[g * 4 * c], "normalized_sum statistics")?;
        let out = Tensor::empty(&gpu, x0.shape(), "normalized_sum output")?;
        let xb = |k: usize| norm.get(k).unwrap_or(&norm[0]).x.buffer();
        let zb = |j: usize| plain.get(j).map_or(x0, |t| t.x).buffer();
        let bufs = [
            xb(0),
            xb(1),
            xb(2),
            xb(3),
            xb(4),
            xb(5),
            saved.buffer(),
            running.buffer(),
            table_a.buffer(),
            table_b.buffer(),
            out.buffer(),
            zb(0),
            zb(1),
        ];
        gpu.launch_groups("batchnorm", "sum_forward4", &p, &bufs, c.div_ceil(8))?;
        for (k, s) in states.iter().enumerate() {
            gpu.copy_range(running.buffer(), 2 * k * c, s.running_mean.buffer(), 0, c);
            gpu.copy_range(
                running.buffer(),
                (2 * k + 1) * c,
                s.running_var.buffer(),
                0,
                c,
            );
        }
        let mut inputs: Vec<&Tensor> = terms.iter().map(|t| t.x).collect();
        inputs.push(table_a);
        if table_b.id() != table_a.id() {
            inputs.push(table_b);
        }
        Ok(self.record(&inputs, out, || {
            Op::NormalizedSum(NormalizedSumNode {
                terms: terms
                    .iter()
                    .map(|t| {
                        let keep = t.bn.is_some() || t.table.requires_grad();
                        (
                            Saved::keep_if(t.x, keep),
                            Saved::keep(t.table),
                            t.idx,
                            t.bn.is_some(),
                        )
                    })
                    .collect(),
                saved,
                params: p,
            })
        }))
    }

    /// A normalised term's batch norm on its own (train mode, no affine), with the statistics
    /// its producer wrote where it did.
    fn term_batch_norm(&mut self, t: &SumTerm, state: &BnState) -> Result<Tensor> {
        self.batch_norm_with_stats(t.x, t.stats.cloned(), None, state.clone(), true)
    }

    /// Whether [`Tape::normalized_sum`] can run `terms` fused; shape errors are errors.
    fn can_fuse_sum(&self, terms: &[SumTerm]) -> Result<bool> {
        let Some(first) = terms.first() else {
            return Err(Error::shape("normalized_sum", "needs at least one term"));
        };
        let (n, c, h, w) = first.x.nchw("normalized_sum")?;
        for t in terms {
            if t.x.shape() != first.x.shape() {
                return Err(Error::shape(
                    "normalized_sum",
                    format!(
                        "terms of shapes {:?} and {:?}",
                        first.x.shape(),
                        t.x.shape()
                    ),
                ));
            }
            if t.idx >= t.table.numel() {
                return Err(Error::shape(
                    "normalized_sum",
                    format!("weight index {} into a table of {}", t.idx, t.table.numel()),
                ));
            }
        }
        let norm: Vec<&SumTerm> = terms.iter().filter(|t| t.bn.is_some()).collect();
        let Some(first_norm) = norm.first() else {
            return Ok(false);
        };
        let s0 = first_norm.bn.as_ref().expect("normalised");
        let same_bn = norm.iter().all(|t| {
            let s = t.bn.as_ref().expect("normalised");
            t.table.id() == first_norm.table.id() && s.eps == s0.eps && s.momentum == s0.momentum
        });
        let mut tables: Vec<u64> = terms.iter().map(|t| t.table.id()).collect();
        tables.sort_unstable();
        tables.dedup();
        // One thread per channel does every term (see LaunchPolicy::fuse_normalized_sum).
        Ok(self.gpu().policy().fuse_normalized_sum(n * h * w)
            && same_bn
            && tables.len() <= 2
            && norm.len() <= MAX_NORMALIZED
            && terms.len() - norm.len() <= MAX_PLAIN
            && (h * w).is_multiple_of(4)
            && n * h * w >= 2
            && c > 0)
    }
}

impl NormalizedSumNode {
    /// Input gradients: one launch for every normalised term's dx (and, where the weights
    /// need a gradient, one for theirs); plain terms get gy scaled by their weight, lazily.
    pub(crate) fn backward_terms(&self, gy: &Tensor) -> Result<Vec<(TensorKey, GradTerm)>> {
        let gpu = gy.gpu();
        let p = &self.params;
        let c = p[1] as usize;
        let norm: Vec<&(Saved, Saved, usize, bool)> = self.terms.iter().filter(|t| t.3).collect();
        let table_a = &norm[0].1;
        let mut params = *p;
        let mut out = Vec::new();
        let mut dx = Vec::with_capacity(MAX_NORMALIZED);
        for (k, t) in norm.iter().enumerate() {
            if t.0.requires_grad() {
                params[6] |= 1 << k;
                dx.push(Tensor::empty(gpu, t.0.shape(), "normalized_sum dx")?);
            } else {
                // Never written (its `need` bit is clear): a minimal stand-in.
                dx.push(Tensor::empty(gpu, &[4], "normalized_sum unused dx")?);
            }
        }
        while dx.len() < MAX_NORMALIZED {
            dx.push(Tensor::empty(gpu, &[4], "normalized_sum unused dx")?);
        }
        let xb = |k: usize| -> Result<&GpuBuffer> {
            Ok(norm.get(k).unwrap_or(&norm[0]).0.data()?.buffer())
        };
        let bufs = [
            xb(0)?,
            xb(1)?,
            xb(2)?,
            xb(3)?,
            xb(4)?,
            xb(5)?,
            gy.buffer(),
            self.saved.buffer(),
            table_a.data()?.buffer(),
            dx[0].buffer(),
            dx[1].buffer(),
            dx[2].buffer(),
            dx[3].buffer(),
            dx[4].buffer(),
            dx[5].buffer(),
        ];
        gpu.launch_groups("batchnorm", "sum_backward4", &params, &bufs, c.div_ceil(8))?;
        for (k, t) in norm.iter().enumerate() {
            if t.0.requires_grad() {
                out.push((t.0.key(), GradTerm::plain(dx[k].clone())));
            }
        }
        // Plain terms lazily; the weights' gradients: normalised terms' from the sums the
        // backward launch left in `saved`, plain ones' by dot products with gy.
        let plain: Vec<(&Saved, &Saved, usize)> = self
            .terms
            .iter()
            .filter(|t| !t.3)
            .map(|(x, t, i, _)| (x, t, *i))
            .collect();
        let tables = self.terms.iter().map(|t| &t.1);
        let a = table_a.key().id();
        out.extend(super::elementwise::lazy_sum_grads(
            gy,
            &plain,
            tables,
            |table, d| {
                if table.key().id() == a {
                    let bufs = [self.saved.buffer(), d.buffer()];
                    gpu.launch_groups("batchnorm", "sum_alpha", &params, &bufs, 1)?;
                }
                Ok(())
            },
        )?);
        Ok(out)
    }
}
