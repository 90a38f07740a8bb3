//! Batch normalisation (train: batch statistics and running-statistics update; eval: running
//! statistics), with or without affine parameters; forward and backward side by side.
//! Kernels: `shaders/batchnorm.wgsl`.

use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor, TensorId};
use crate::error::{Error, Result};
use crate::gpu::Work;
use crate::gpu::{BatchNormParams, Gpu, KernelParams};

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
    /// The kernels' parameter block.
    params: BatchNormParams,
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
        let params = BatchNormParams {
            n: n as u32,
            c: c as u32,
            hw: hw as u32,
            affine: affine.is_some() as u32,
            eps: state.eps,
            momentum: state.momentum,
            update_running: 1,
            train: train as u32,
            x_is_xhat: 0,
            parts: parts as u32,
            len: (n * hw).div_ceil(parts) as u32,
            scaled: 0,
            sidx: 0,
        };
        let mut inputs = vec![x];
        if let Some((g, b)) = affine {
            inputs.push(g);
            inputs.push(b);
        }
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
                gpu.launch(
                    "batchnorm",
                    entry,
                    params.words(),
                    &bufs,
                    Work::Groups(groups),
                )?;
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
                        gpu.launch(
                            "batchnorm",
                            "stats_partial",
                            params.words(),
                            &pb,
                            Work::Groups(c * parts),
                        )?;
                        &own
                    }
                };
                let bufs = [&bufs[..], &[part]].concat();
                gpu.launch(
                    "batchnorm",
                    "normalize_split",
                    params.words(),
                    &bufs,
                    Work::Groups(c * parts),
                )?;
            }
        } else if hw % 4 == 0 && !self.wants(&inputs) {
            // Nothing reads `saved` after an inference pass: one launch, statistics inline.
            let (g, b) = affine.unwrap_or((x, x));
            let bufs = [
                x.buffer(),
                running[0],
                running[1],
                g.buffer(),
                b.buffer(),
                y.buffer(),
            ];
            gpu.launch(
                "batchnorm",
                "normalize4",
                params.words(),
                &bufs,
                y.numel() / 4,
            )?;
        } else {
            let bufs = [running[0], running[1], saved.buffer()];
            gpu.launch("batchnorm", "eval_stats", params.words(), &bufs, c)?;
            let (g, b) = affine.unwrap_or((&saved, &saved));
            let bufs = [
                x.buffer(),
                saved.buffer(),
                g.buffer(),
                b.buffer(),
                y.buffer(),
            ];
            gpu.launch("batchnorm", "normalize", params.words(), &bufs, y.numel())?;
        }
        let from_output = train && affine.is_none();
        let xhat = from_output.then(|| y.clone());
        let mut params = params;
        params.x_is_xhat = from_output as u32;
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
        let c = self.params.c as usize;
        let train = self.params.train != 0;
        let parts = self.params.parts as usize;
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
                scaled_params.scaled = 1;
                scaled_params.sidx = idx as u32;
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
            gpu.launch(
                "batchnorm",
                "grad_partial",
                self.params.words(),
                &bufs,
                Work::Groups(c * parts),
            )?;
            Some(part)
        } else {
            let bufs = [src, gy.buffer(), self.saved.buffer()];
            gpu.launch(
                "batchnorm",
                "backward_reduce",
                self.params.words(),
                &bufs,
                Work::Groups(c),
            )?;
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
                let nch = [self.params.n, self.params.c, self.params.hw].map(|v| v as usize);
                let ([_, entry], groups) = fused_entries(gpu, nch);
                gpu.launch(
                    "batchnorm",
                    entry,
                    scaled_params.words(),
                    &bufs,
                    Work::Groups(groups),
                )?;
            } else if let Some(part) = &part {
                let bufs = [&bufs[..], &[part]].concat();
                let e = "backward_dx_split";
                gpu.launch(
                    "batchnorm",
                    e,
                    scaled_params.words(),
                    &bufs,
                    Work::Groups(c * parts),
                )?;
            } else {
                gpu.launch(
                    "batchnorm",
                    "backward_dx",
                    scaled_params.words(),
                    &bufs,
                    dx.numel(),
                )?;
            }
            out.push((self.x.key(), dx));
        } else if let Some(part) = &part {
            let bufs = [part, self.saved.buffer(), table.buffer()];
            gpu.launch("batchnorm", "grad_finish", scaled_params.words(), &bufs, c)?;
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
