//! Max, average (count_include_pad = False) and global average pooling, forward and backward
//! side by side. Kernels: `shaders/pool.wgsl`.

use super::conv::out_size;
use super::norm::ChannelStats;
use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Work;
use crate::gpu::{Gpu, GpuBuffer, KernelParams, PoolParams};

/// Square pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolCfg {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PoolCfg {
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        PoolCfg {
            kernel,
            stride,
            padding,
        }
    }
}

pub(crate) struct PoolNode {
    /// Max pooling keeps x (usually alive anyway: the edge's convolutions read it too) and
    /// recomputes the argmax in backward instead of holding it between the passes.
    x: Saved,
    params: PoolParams,
}

pub(crate) struct GlobalPoolNode {
    x: Saved,
    params: PoolParams,
}

fn params(x: &Tensor, cfg: PoolCfg, op: &'static str) -> Result<(PoolParams, [usize; 4])> {
    let (n, c, h, w) = x.nchw(op)?;
    if cfg.kernel == 0 || cfg.stride == 0 || 2 * cfg.padding > cfg.kernel {
        return Err(Error::shape(
            op,
            format!("invalid window {cfg:?} (padding must be at most half the kernel)"),
        ));
    }
    let (Some(ho), Some(wo)) = (
        out_size(h, cfg.kernel, cfg.stride, cfg.padding, 1),
        out_size(w, cfg.kernel, cfg.stride, cfg.padding, 1),
    ) else {
        return Err(Error::shape(
            op,
            format!("window {} does not fit input {h}x{w}", cfg.kernel),
        ));
    };
    let [k, s, pad] = [cfg.kernel, cfg.stride, cfg.padding].map(|v| v as u32);
    let p = PoolParams {
        n: n as u32,
        c: c as u32,
        h: h as u32,
        w: w as u32,
        ho: ho as u32,
        wo: wo as u32,
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        ph: pad,
        pw: pad,
    };
    Ok((p, [n, c, ho, wo]))
}

/// The stride when the 3×3, padding-1 vec4 kernels apply (stride 1 or 2, input and output rows
/// of a multiple of 4): the pooling DARTS uses.
fn pool3(p: &PoolParams) -> Option<u32> {
    let PoolParams {
        w,
        wo,
        kh: k,
        sh: s,
        ph: pad,
        ..
    } = *p;
    (k == 3 && pad == 1 && (s == 1 || s == 2) && w % 4 == 0 && wo % 4 == 0).then_some(s)
}

/// 2×2 windows at stride 2 without padding on rows of a multiple of 4 (NAS-Bench-201's
/// residual shortcut): the backward takes a quad of inputs a thread (`avg2_backward4`), without
/// the general entry's per-element index divisions.
fn pool2(p: &PoolParams) -> bool {
    let PoolParams {
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        w,
        ..
    } = *p;
    (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0) && w.is_multiple_of(4)
}

/// Whether the 3×3 vec4 kernels at stride `s` take the columns either side of a lane's own
/// from its neighbouring lanes (SHARE: stride 1, input rows as wide as the output's, whole rows
/// in each 8-lane subgroup); there the forwards (`strip3`) get SHARE = 1 and the backwards run
/// `max3_backward4_shared` and `avg3_backward4_shared`.
fn shares_columns(gpu: &Gpu, p: &PoolParams, s: u32) -> bool {
    s == 1 && p.w == p.wo && gpu.policy().shares_rows(p.wo, 4)
}

/// The pipeline constants of a 3×3 vec4 forward (`strip3`) at stride `s`: PS and SHARE.
fn forward3_consts(gpu: &Gpu, p: &PoolParams, s: u32) -> [(&'static str, u32); 2] {
    [("PS", s), ("SHARE", shares_columns(gpu, p, s) as u32)]
}

/// Launches `general` over `threads`, or its 3×3 vec4 variant `fast` over a quarter of them
/// (a forward, `strip3`, with `forward`: it takes SHARE too).
fn launch_pool(
    gpu: &Gpu,
    params: &PoolParams,
    general: &'static str,
    fast: &'static str,
    bufs: &[&GpuBuffer],
    (threads, forward): (usize, bool),
) -> Result<()> {
    let p = params.words();
    match pool3(params) {
        Some(s) => {
            let groups = (threads / 4).div_ceil(256);
            let consts = forward3_consts(gpu, params, s);
            let consts = if forward { &consts[..] } else { &consts[..1] };
            gpu.launch_spec("pool", fast, consts, p, bufs, Work::Groups(groups))
        }
        None => gpu.launch("pool", general, p, bufs, threads),
    }
}

impl Tape {
    /// Max pooling; padding counts as −inf.
    pub fn max_pool2d(&mut self, x: &Tensor, cfg: PoolCfg) -> Result<Tensor> {
        let (params, shape) = params(x, cfg, "max_pool2d")?;
        let y = Tensor::empty(self.gpu(), &shape, "max_pool2d output")?;
        let bufs = [x.buffer(), y.buffer()];
        launch_pool(
            self.gpu(),
            &params,
            "max_forward",
            "max3_forward4",
            &bufs,
            (y.numel(), true),
        )?;
        Ok(self.record(&[x], y, || {
            Op::MaxPool(PoolNode {
                x: Saved::keep(x),
                params,
            })
        }))
    }

    /// Average pooling dividing by the in-bounds count (count_include_pad = False).
    pub fn avg_pool2d(&mut self, x: &Tensor, cfg: PoolCfg) -> Result<Tensor> {
        let (params, shape) = params(x, cfg, "avg_pool2d")?;
        let y = Tensor::empty(self.gpu(), &shape, "avg_pool2d output")?;
        let bufs = [x.buffer(), y.buffer()];
        launch_pool(
            self.gpu(),
            &params,
            "avg_forward",
            "avg3_forward4",
            &bufs,
            (y.numel(), true),
        )?;
        Ok(self.record(&[x], y, || {
            Op::AvgPool(PoolNode {
                x: Saved::key_only(x),
                params,
            })
        }))
    }

    /// [`Tape::max_pool2d`] and [`Tape::avg_pool2d`] of one input: for the 3×3, padding-1
    /// windows on rows of a multiple of 4 both come from one launch (one read of x).
    pub fn max_avg_pool2d(&mut self, x: &Tensor, cfg: PoolCfg) -> Result<(Tensor, Tensor)> {
        let (max, avg, _) = self.max_avg_pool2d_impl(x, cfg, false)?;
        Ok((max, avg))
    }

    /// [`Tape::max_avg_pool2d`] for train-mode batch norms to follow (a mixed edge's pooling
    /// candidates): where those would split their reductions (GPUs), the pooling kernel also
    /// writes both outputs' statistics, for [`Tape::batch_norm_with_stats`].
    pub fn max_avg_pool2d_with_stats(
        &mut self,
        x: &Tensor,
        cfg: PoolCfg,
    ) -> Result<(Tensor, Tensor, Option<[ChannelStats; 2]>)> {
        self.max_avg_pool2d_impl(x, cfg, true)
    }

    fn max_avg_pool2d_impl(
        &mut self,
        x: &Tensor,
        cfg: PoolCfg,
        stats: bool,
    ) -> Result<(Tensor, Tensor, Option<[ChannelStats; 2]>)> {
        let (params, shape) = params(x, cfg, "max_avg_pool2d")?;
        let Some(s) = pool3(&params) else {
            return Ok((self.max_pool2d(x, cfg)?, self.avg_pool2d(x, cfg)?, None));
        };
        let gpu = self.gpu().clone();
        let max = Tensor::empty(&gpu, &shape, "max_pool2d output")?;
        let avg = Tensor::empty(&gpu, &shape, "avg_pool2d output")?;
        let [n, c, ho, wo] = shape;
        let mut channel_stats = None;
        if stats && gpu.policy().stats_in_producer(c, n * ho * wo) {
            // Workgroups (channel, chunk of 256 strips of 4 outputs): the statistics' chunks.
            let parts = (n * ho * wo / 4).div_ceil(256);
            let part = |name| Tensor::empty(&gpu, &[3 * c * parts], name);
            let (pm, pa) = (
                part("max_pool2d statistics")?,
                part("avg_pool2d statistics")?,
            );
            let bufs = [
                x.buffer(),
                max.buffer(),
                avg.buffer(),
                pm.buffer(),
                pa.buffer(),
            ];
            let e = "maxavg3_forward4_stats";
            let p = params.words();
            let consts = forward3_consts(&gpu, &params, s);
            gpu.launch_spec("pool", e, &consts, p, &bufs, Work::Groups(c * parts))?;
            channel_stats = Some((pm, pa, parts));
        } else {
            let bufs = [x.buffer(), max.buffer(), avg.buffer()];
            let groups = (max.numel() / 4).div_ceil(256);
            let e = "maxavg3_forward4";
            let p = params.words();
            let consts = forward3_consts(&gpu, &params, s);
            gpu.launch_spec("pool", e, &consts, p, &bufs, Work::Groups(groups))?;
        }
        let max = self.record(&[x], max, || {
            Op::MaxPool(PoolNode {
                x: Saved::keep(x),
                params,
            })
        });
        let avg = self.record(&[x], avg, || {
            Op::AvgPool(PoolNode {
                x: Saved::key_only(x),
                params,
            })
        });
        let channel_stats = channel_stats.map(|(pm, pa, parts)| {
            [
                ChannelStats::new(pm, parts, &max),
                ChannelStats::new(pa, parts, &avg),
            ]
        });
        Ok((max, avg, channel_stats))
    }

    /// Mean over the spatial dimensions: (n, c, h, w) → (n, c).
    pub fn global_avg_pool(&mut self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.nchw("global_avg_pool")?;
        // One window of the whole plane per output.
        let [n32, c32, h, w] = [n, c, h, w].map(|v| v as u32);
        let params = PoolParams {
            n: n32,
            c: c32,
            h,
            w,
            ho: 1,
            wo: 1,
            kh: h,
            kw: w,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
        };
        let y = Tensor::empty(self.gpu(), &[n, c], "global_avg_pool output")?;
        self.gpu().launch(
            "pool",
            "global_forward",
            params.words(),
            &[x.buffer(), y.buffer()],
            n * c,
        )?;
        Ok(self.record(&[x], y, || {
            Op::GlobalAvgPool(GlobalPoolNode {
                x: Saved::key_only(x),
                params,
            })
        }))
    }
}

impl PoolNode {
    pub(crate) fn backward_max(&self, gy: &Tensor) -> Result<InputGrads> {
        let gpu = gy.gpu();
        let argmax = gpu.alloc("max_pool2d argmax", gy.numel())?;
        let p = &self.params;
        let bufs = [self.x.data()?.buffer(), &argmax];
        launch_pool(
            gpu,
            p,
            "max_argmax",
            "max3_argmax4",
            &bufs,
            (gy.numel(), true),
        )?;
        let dx = Tensor::empty(gpu, self.x.shape(), "max_pool2d dx")?;
        let bufs = [&argmax, gy.buffer(), dx.buffer()];
        // Where the forwards share columns between lanes, so does this entry of its own (dy
        // and the argmax bound as vec4s there).
        let fast = if pool3(p).is_some_and(|s| shares_columns(gpu, p, s)) {
            "max3_backward4_shared"
        } else {
            "max3_backward4"
        };
        launch_pool(gpu, p, "max_backward", fast, &bufs, (dx.numel(), false))?;
        Ok(vec![(self.x.key(), dx)])
    }

    pub(crate) fn backward_avg(&self, gy: &Tensor) -> Result<InputGrads> {
        let gpu = gy.gpu();
        let dx = Tensor::empty(gpu, self.x.shape(), "avg_pool2d dx")?;
        let bufs = [gy.buffer(), dx.buffer()];
        let p = &self.params;
        if pool2(p) {
            gpu.launch("pool", "avg2_backward4", p.words(), &bufs, dx.numel() / 4)?;
            return Ok(vec![(self.x.key(), dx)]);
        }
        // As max's: its own entry where the forwards share columns (dy bound as vec4s).
        let fast = if pool3(p).is_some_and(|s| shares_columns(gpu, p, s)) {
            "avg3_backward4_shared"
        } else {
            "avg3_backward4"
        };
        launch_pool(gpu, p, "avg_backward", fast, &bufs, (dx.numel(), false))?;
        Ok(vec![(self.x.key(), dx)])
    }
}

impl GlobalPoolNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let dx = Tensor::empty(gy.gpu(), self.x.shape(), "global_avg_pool dx")?;
        gy.gpu().launch(
            "pool",
            "global_backward",
            self.params.words(),
            &[gy.buffer(), dx.buffer()],
            dx.numel(),
        )?;
        Ok(vec![(self.x.key(), dx)])
    }
}
