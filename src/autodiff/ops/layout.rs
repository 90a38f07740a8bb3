//! Data movement: channel concat, strided spatial slices (the `x[:, :, 1:, 1:]` crop and the
//! `::2` subsample), reshape; forward and backward side by side. Kernels: `shaders/layout.wgsl`.

use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};
use crate::gpu::{KernelParams, LayoutBlockParams, LayoutParams};

/// dst[b, d0 + c, :] = src[b, s0 + c, :] for c < cnt, b < n, over `hw` values per channel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_channels(
    src: &Tensor,
    cs: usize,
    s0: usize,
    dst: &Tensor,
    cd: usize,
    d0: usize,
    cnt: usize,
    n: usize,
    hw: usize,
) -> Result<()> {
    let gpu = src.gpu();
    // Each image's channels are one contiguous run on both sides: where launches are costly,
    // n copy commands (a memcpy each on a CPU adapter) beat one launch.
    if gpu.policy().copy_channels(n) {
        for b in 0..n {
            let (from, to) = ((b * cs + s0) * hw, (b * cd + d0) * hw);
            gpu.copy_range(src.buffer(), from, dst.buffer(), to, cnt * hw);
        }
        return Ok(());
    }
    let p = LayoutParams {
        n: n as u32,
        hw: hw as u32,
        cs: cs as u32,
        cd: cd as u32,
        s0: s0 as u32,
        d0: d0 as u32,
        cnt: cnt as u32,
        ..LayoutParams::default()
    };
    gpu.launch(
        "layout",
        "channel_copy",
        p.words(),
        &[src.buffer(), dst.buffer()],
        n * cnt * hw,
    )
}

/// layout.wgsl's `pc` block for `concat4` / `split4`: channel blocks of `cnts` (at most four)
/// at channel `base` of a tensor of `ctot` channels; `want[k]`: block k is written by split4.
fn block_params(
    cnts: &[usize],
    want: [bool; 4],
    n: usize,
    hw: usize,
    ctot: usize,
    base: usize,
) -> LayoutBlockParams {
    let mut p = LayoutBlockParams {
        n: n as u32,
        hw: hw as u32,
        ctot: ctot as u32,
        base: base as u32,
        gc: cnts.iter().sum::<usize>() as u32,
        ..LayoutBlockParams::default()
    };
    let mut off = 0;
    for (k, &wanted) in want.iter().enumerate() {
        let cnt = cnts.get(k).copied().unwrap_or(0);
        p.cnt[k] = cnt as u32;
        p.off[k] = off as u32;
        p.want[k] = wanted as u32;
        off += cnt;
    }
    p
}

pub(crate) struct ConcatNode {
    xs: Vec<Saved>,
}

/// Spatial slice y[.., i, j] = x[.., oy + i·s, ox + j·s].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceCfg {
    pub offset: usize,
    pub stride: usize,
}

pub(crate) struct SliceNode {
    x: Saved,
    params: LayoutParams,
}

pub(crate) struct ReshapeNode {
    x: Saved,
}

/// Whether a slice is the ::2 subsample (offset 0 or 1) on rows of a multiple of 8, which the
/// vec4 kernels `slice_forward2` / `slice_backward2` handle.
fn vec4_subsample(p: &LayoutParams) -> bool {
    p.s == 2 && p.oy <= 1 && p.ox == p.oy && p.w.is_multiple_of(8)
}

impl Tape {
    /// Concatenation along channels of NCHW tensors with equal n, h, w.
    pub fn concat(&mut self, xs: &[&Tensor]) -> Result<Tensor> {
        let Some(first) = xs.first() else {
            return Err(Error::shape("concat", "needs at least one tensor"));
        };
        let (n, _, h, w) = first.nchw("concat")?;
        let mut ctot = 0;
        for x in xs {
            let (n2, c2, h2, w2) = x.nchw("concat")?;
            if (n2, h2, w2) != (n, h, w) {
                return Err(Error::shape(
                    "concat",
                    format!(
                        "{:?} and {:?} differ outside the channel axis",
                        first.shape(),
                        x.shape()
                    ),
                ));
            }
            ctot += c2;
        }
        let y = Tensor::empty(self.gpu(), &[n, ctot, h, w], "concat output")?;
        let gpu = self.gpu().clone();
        if gpu.policy().concat_by_copy() {
            // Copy commands (see copy_channels).
            let mut d0 = 0;
            for x in xs {
                let c = x.shape()[1];
                copy_channels(x, c, 0, &y, ctot, d0, c, n, h * w)?;
                d0 += c;
            }
        } else {
            // Four inputs per launch.
            let mut base = 0;
            for group in xs.chunks(4) {
                let cnts: Vec<usize> = group.iter().map(|x| x.shape()[1]).collect();
                let p = block_params(&cnts, [true; 4], n, h * w, ctot, base);
                let src = |k: usize| group.get(k).unwrap_or(&group[0]).buffer();
                let bufs = [src(0), src(1), src(2), src(3), y.buffer()];
                let gc: usize = cnts.iter().sum();
                gpu.launch("layout", "concat4", p.words(), &bufs, n * gc * h * w)?;
                base += gc;
            }
        }
        Ok(self.record(xs, y, || {
            Op::Concat(ConcatNode {
                xs: xs.iter().map(|t| Saved::key_only(t)).collect(),
            })
        }))
    }

    /// Strided spatial slice: `offset` = 1, `stride` = 1 is `x[:, :, 1:, 1:]`; `offset` = 0,
    /// `stride` = 2 is `x[:, :, ::2, ::2]`.
    pub fn slice2d(&mut self, x: &Tensor, cfg: SliceCfg) -> Result<Tensor> {
        let (n, c, h, w) = x.nchw("slice2d")?;
        if cfg.stride == 0 || cfg.offset >= h || cfg.offset >= w {
            return Err(Error::shape(
                "slice2d",
                format!(
                    "offset {} / stride {} on input {h}x{w}",
                    cfg.offset, cfg.stride
                ),
            ));
        }
        let ho = (h - cfg.offset).div_ceil(cfg.stride);
        let wo = (w - cfg.offset).div_ceil(cfg.stride);
        let p = LayoutParams {
            h: h as u32,
            w: w as u32,
            ho: ho as u32,
            wo: wo as u32,
            oy: cfg.offset as u32,
            ox: cfg.offset as u32,
            s: cfg.stride as u32,
            planes: (n * c) as u32,
            ..LayoutParams::default()
        };
        let y = Tensor::empty(self.gpu(), &[n, c, ho, wo], "slice output")?;
        let (entry, per) = if vec4_subsample(&p) {
            ("slice_forward2", 4)
        } else {
            ("slice_forward", 1)
        };
        let bufs = [x.buffer(), y.buffer()];
        self.gpu()
            .launch("layout", entry, p.words(), &bufs, y.numel() / per)?;
        Ok(self.record(&[x], y, || {
            Op::Slice(SliceNode {
                x: Saved::key_only(x),
                params: p,
            })
        }))
    }

    /// Same data, new shape (same element count).
    pub fn reshape(&mut self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        let y = x.reshape(shape)?;
        Ok(self.record(&[x], y, || {
            Op::Reshape(ReshapeNode {
                x: Saved::key_only(x),
            })
        }))
    }
}

impl ConcatNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let (n, ctot, h, w) = gy.nchw("concat")?;
        let gpu = gy.gpu();
        let mut out = Vec::new();
        if gpu.policy().split_four_per_launch() {
            // Four channel blocks per launch; blocks without a gradient are skipped, their
            // bindings filled by one-value stand-ins.
            let mut base = 0;
            for group in self.xs.chunks(4) {
                let cnts: Vec<usize> = group.iter().map(|x| x.shape()[1]).collect();
                let gc: usize = cnts.iter().sum();
                let mut want = [false; 4];
                let mut dsts = Vec::with_capacity(4);
                for (k, wanted) in want.iter_mut().enumerate() {
                    let x = group.get(k).filter(|x| x.requires_grad());
                    *wanted = x.is_some();
                    dsts.push(match x {
                        Some(x) => Tensor::empty(gpu, x.shape(), "concat dx")?,
                        None => Tensor::empty(gpu, &[1], "concat dx stand-in")?,
                    });
                }
                if want.iter().any(|&w| w) {
                    let p = block_params(&cnts, want, n, h * w, ctot, base);
                    let bufs = [
                        gy.buffer(),
                        dsts[0].buffer(),
                        dsts[1].buffer(),
                        dsts[2].buffer(),
                        dsts[3].buffer(),
                    ];
                    gpu.launch("layout", "split4", p.words(), &bufs, n * gc * h * w)?;
                }
                for ((x, dx), &wanted) in group.iter().zip(dsts).zip(&want) {
                    if wanted {
                        out.push((x.key(), dx));
                    }
                }
                base += gc;
            }
            return Ok(out);
        }
        let mut s0 = 0;
        for x in &self.xs {
            let c = x.shape()[1];
            if x.requires_grad() {
                let dx = Tensor::empty(gy.gpu(), x.shape(), "concat dx")?;
                copy_channels(gy, ctot, s0, &dx, c, 0, c, n, h * w)?;
                out.push((x.key(), dx));
            }
            s0 += c;
        }
        Ok(out)
    }
}

impl SliceNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let dx = Tensor::empty(gy.gpu(), self.x.shape(), "slice dx")?;
        let (entry, per) = if vec4_subsample(&self.params) {
            ("slice_backward2", 4)
        } else {
            ("slice_backward", 1)
        };
        let bufs = [gy.buffer(), dx.buffer()];
        gy.gpu().launch(
            "layout",
            entry,
            self.params.words(),
            &bufs,
            dx.numel() / per,
        )?;
        Ok(vec![(self.x.key(), dx)])
    }
}

impl ReshapeNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        Ok(vec![(self.x.key(), gy.reshape(self.x.shape())?)])
    }
}
