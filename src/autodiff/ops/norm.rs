//! Batch normalisation (train: batch statistics and running-statistics update; eval: running
//! statistics), with or without affine parameters; forward and backward side by side.
//! Kernels: `shaders/batchnorm.wgsl`.

use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Running statistics and hyperparameters of one batch-norm layer.
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
        let parts = if train {
            gpu.channel_split(c, n * hw)
        } else {
            1
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
        if train && parts == 1 {
            // Without affine parameters, x stands in for them (read-only, never read).
            let (g, b) = affine.unwrap_or((x, x));
            // Statistics and normalisation in one launch: one workgroup per channel.
            let bufs = [
                x.buffer(),
                saved.buffer(),
                running[0],
                running[1],
                g.buffer(),
                b.buffer(),
                y.buffer(),
            ];
            let ([entry, _], groups) = fused_entries(&gpu, [n, c, hw]);
            gpu.launch_groups("batchnorm", entry, &params, &bufs, groups)?;
        } else {
            if train {
                // Each channel split over `parts` workgroups, then combined per channel.
                let part = gpu.alloc("batch_norm partial statistics", 3 * c * parts)?;
                let bufs = [x.buffer(), &part];
                gpu.launch_groups("batchnorm", "stats_partial", &params, &bufs, c * parts)?;
                let bufs = [&part, saved.buffer(), running[0], running[1]];
                gpu.launch("batchnorm", "stats_finish", &params, &bufs, c)?;
            } else {
                let bufs = [running[0], running[1], saved.buffer()];
                gpu.launch("batchnorm", "eval_stats", &params, &bufs, c)?;
            }
            let (g, b) = affine.unwrap_or((&saved, &saved));
            gpu.launch(
                "batchnorm",
                "normalize",
                &params,
                &[
                    x.buffer(),
                    saved.buffer(),
                    g.buffer(),
                    b.buffer(),
                    y.buffer(),
                ],
                y.numel(),
            )?;
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

/// Values per channel up to which one thread per channel does a train-mode batch norm where
/// launches are costly (CPU adapters): below it the serial loop costs less than the barriers
/// of a workgroup per channel (lavapipe, 2 cores: 4×64×8×8 in 72 µs against 195 µs,
/// 16×16×16×16 in 144 µs against 188; past it few channels leave a core idle).
const SERIAL_MAX: usize = 4096;

/// The one-launch train kernels, forward and backward, and their workgroups: the vec4
/// variants for planes of a multiple of 4 values (every plane of 32×32 images down to 8×8),
/// one workgroup per channel, or for small channels where launches are costly one thread per
/// channel.
fn fused_entries(gpu: &Gpu, [n, c, hw]: [usize; 3]) -> ([&'static str; 2], usize) {
    if !hw.is_multiple_of(4) {
        (["train_forward", "backward_fused"], c)
    } else if gpu.launches_are_costly() && n * hw <= SERIAL_MAX {
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
    /// path folds the factor into its kernel; the others scale gy first.
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
        let gy = match scale {
            Some((table, idx)) if !fused => {
                scaled_gy = super::elementwise::scale_by_raw(gy, table, idx, 1.0)?;
                &scaled_gy
            }
            _ => gy,
        };
        if fused {
            // The channel sums and dx in one launch: one workgroup per channel. Without
            // affine parameters, dy stands in for γ (read-only, never read).
            let g = match &self.gamma {
                Some(g) => g.data()?,
                None => gy,
            };
            let dx = Tensor::empty(gpu, self.x.shape(), "batch_norm dx")?;
            let mut params = self.params;
            // Without a scale, dy stands in for the table (read-only, never read).
            let table = match scale {
                Some((table, idx)) => {
                    params[11] = 1;
                    params[12] = idx as u32;
                    table
                }
                None => gy,
            };
            let bufs = [
                src,
                gy.buffer(),
                self.saved.buffer(),
                g.buffer(),
                dx.buffer(),
                table.buffer(),
            ];
            let nch = [0, 1, 2].map(|i| self.params[i] as usize);
            let ([_, entry], groups) = fused_entries(gpu, nch);
            gpu.launch_groups("batchnorm", entry, &params, &bufs, groups)?;
            out.push((self.x.key(), dx));
        } else {
            // Σ dy and Σ dy·x̂ per channel into the saved block.
            if parts == 1 {
                let bufs = [src, gy.buffer(), self.saved.buffer()];
                gpu.launch_groups("batchnorm", "backward_reduce", &self.params, &bufs, c)?;
            } else {
                let part = gpu.alloc("batch_norm partial gradient sums", 2 * c * parts)?;
                let bufs = [src, gy.buffer(), self.saved.buffer(), &part];
                gpu.launch_groups("batchnorm", "grad_partial", &self.params, &bufs, c * parts)?;
                let bufs = [&part, self.saved.buffer()];
                gpu.launch("batchnorm", "grad_finish", &self.params, &bufs, c)?;
            }
            if self.x.requires_grad() {
                let g = match &self.gamma {
                    Some(g) => g.data()?,
                    None => &self.saved,
                };
                let dx = Tensor::empty(gpu, self.x.shape(), "batch_norm dx")?;
                let bufs = [
                    src,
                    gy.buffer(),
                    self.saved.buffer(),
                    g.buffer(),
                    dx.buffer(),
                ];
                gpu.launch("batchnorm", "backward_dx", &self.params, &bufs, dx.numel())?;
                out.push((self.x.key(), dx));
            }
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
