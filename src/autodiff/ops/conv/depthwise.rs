//! Depthwise convolutions (one k×k filter per channel, k ≤ 5, no bias): forward, input
//! gradient and weight gradient, and the fused depthwise + 1×1 forward of `Tape::dw_pw`.
//! Kernels: `shaders/depthwise.wgsl`.

use super::{relu_consts, Fwd, InGrad, WGrad};
use crate::autodiff::Tensor;
use crate::error::Result;
use crate::gpu::Work;
use crate::gpu::{ConvParams, DepthwiseParams, Gpu, GpuBuffer, KernelParams};

/// Kernel size, stride and dilation: the kernels' pipeline constants K, S, D (the tap loops
/// unroll, the weight-gradient accumulators stay in registers).
#[derive(Clone, Copy, Debug)]
struct Taps {
    k: u32,
    s: u32,
    d: u32,
}

impl Taps {
    fn consts(self) -> [(&'static str, u32); 3] {
        [("K", self.k), ("S", self.s), ("D", self.d)]
    }
}

/// A depthwise convolution's parameters and taps.
#[derive(Clone, Copy, Debug)]
struct Depthwise {
    p: DepthwiseParams,
    taps: Taps,
}

/// Whether `p` is depthwise with a square kernel of at most 5×5, equal strides, dilations
/// and paddings, and no bias.
pub(super) fn applies(p: &ConvParams) -> bool {
    // The forward kernel keeps a row window of 3·s + (k−1)·d + 1 ≤ 16 values in registers.
    p.groups == p.cin
        && p.groups == p.cout
        && p.kh == p.kw
        && p.kh <= 5
        && 3 * p.sh + (p.kh - 1) * p.dh < 16
        && p.sh == p.sw
        && p.ph == p.pw
        && p.dh == p.dw
        && p.has_bias == 0
}

impl Depthwise {
    fn of(p: &ConvParams) -> Self {
        Depthwise {
            p: DepthwiseParams {
                n: p.n,
                c: p.cin,
                h: p.h,
                w: p.w,
                ho: p.ho,
                wo: p.wo,
                pad: p.ph,
                per: 0,
            },
            taps: Taps {
                k: p.kh,
                s: p.sh,
                d: p.dh,
            },
        }
    }
}

/// y = depthwise(relu?(x)).
pub(super) fn forward(p: &ConvParams, f: &Fwd) -> Result<()> {
    let Fwd { x, w, y, .. } = *f;
    let plan = &Depthwise::of(p);
    let consts = [&plan.taps.consts()[..], relu_consts(f.relu)].concat();
    // Binding 4 (the mask) is unused without MASK: x stands in.
    let bufs = [x.buffer(), w.buffer(), y.buffer(), x.buffer()];
    launch_forward(x.gpu(), &plan.p, plan.taps, &consts, &bufs)
}

/// dx, written through the folded ReLU's `mask` (x > 0) where there is one.
pub(super) fn input_grad(p: &ConvParams, g: &InGrad) -> Result<()> {
    let InGrad { gy, w, dx, mask } = *g;
    let plan = &Depthwise::of(p);
    let gpu = gy.gpu();
    let groups = dx.numel().div_ceil(256);
    let DepthwiseParams {
        n,
        c,
        h,
        w: wd,
        ho,
        wo,
        pad,
        ..
    } = plan.p;
    let Taps { k, s, d } = plan.taps;
    let consts = plan.taps.consts();
    // Without a folded ReLU the mask binding is a placeholder.
    let mc: &[(&'static str, u32)] = if mask.is_some() { &[("MASK", 1)] } else { &[] };
    let bufs = [
        gy.buffer(),
        w.buffer(),
        dx.buffer(),
        mask.unwrap_or(gy).buffer(),
    ];
    if s == 1 && pad <= d * (k - 1) {
        // Stride 1: the input gradient is a forward pass with the rotated kernel.
        let fp = DepthwiseParams {
            n,
            c,
            h: ho,
            w: wo,
            ho: h,
            wo: wd,
            pad: d * (k - 1) - pad,
            per: 0,
        };
        let fc = [&[consts[0], consts[1], consts[2], ("FLIP", 1)][..], mc].concat();
        return launch_forward(gpu, &fp, plan.taps, &fc, &bufs);
    }
    let bc = [&consts[..], mc].concat();
    // Stride 2 on rows of a multiple of 4: 4 pixels per thread, taps resolved at compile time
    // (a window of at most 8 dy values per row).
    let cmin = pad as i64 - ((k - 1) * d) as i64;
    let (e0, e1) = (cmin + (cmin & 1), (3 + pad as i64) & !1);
    let window = (e1 - e0) / 2 + 1;
    let p = plan.p.words();
    if s == 2 && wd % 4 == 0 && window <= 8 {
        let bc = [&bc[..], &[("PAD", pad)], gpu.policy().lanes_consts()].concat();
        let groups = (c * (n * h * wd / 4).div_ceil(64)) as usize;
        gpu.launch_spec(
            "depthwise",
            "backward_input2",
            &bc,
            p,
            &bufs,
            Work::Groups(groups),
        )
    } else {
        gpu.launch_spec(
            "depthwise",
            "backward_input",
            &bc,
            p,
            &bufs,
            Work::Groups(groups),
        )
    }
}

/// dw = Σ dy ⋆ relu?(x) per channel: `weight_partial(4)` over chunks of output rows, then
/// `weight_sum` unless one chunk writes dw directly.
pub(super) fn weight_grad(p: &ConvParams, g: &WGrad) -> Result<()> {
    let WGrad { x, gy, dw, relu } = *g;
    let plan = &Depthwise::of(p);
    let gpu = gy.gpu();
    let mut dp = plan.p;
    let (c, rows, wo) = (dp.c as usize, (dp.n * dp.ho) as usize, dp.wo as usize);
    let Taps { k, s, d } = plan.taps;
    let taps = (k * k) as usize;
    // Chunks of output rows so that channels × chunks fills the device; or one chunk, whose
    // partials are dw itself, where that costs less than a launch and leaves no CPU thread
    // idle (a thread per channel, workgroups of 64).
    let policy = gpu.policy();
    let per = if policy.weight_grad_one_pass(rows * wo * taps, c, 64) {
        rows
    } else {
        (rows * c).div_ceil(policy.weight_grad_chunk).max(1)
    };
    let chunks = rows.div_ceil(per);
    dp.per = per as u32;
    let part = if chunks == 1 {
        dw.buffer().clone()
    } else {
        gpu.alloc("depthwise weight-gradient partials", c * chunks * taps)?
    };
    let bufs = [x.buffer(), gy.buffer(), &part];
    let consts = plan.taps.consts();
    let wconsts = [&consts[..], relu_consts(relu)].concat();
    // Rows of a multiple of 4: strips of 4 outputs against vec4 input windows.
    let (k, s, d, pad) = (k as usize, s as usize, d as usize, dp.pad as usize);
    // Strips of 8 where the rows allow: one window per 8 outputs instead of per 4 (a third
    // fewer loads a kernel row at 3×3).
    let rows_of_4 = dp.w.is_multiple_of(4) && dp.wo.is_multiple_of(4);
    let out = match dp.wo.is_multiple_of(8) && vec4_window(pad, 8, k, s, d) <= 32 {
        true => 8,
        false => 4,
    };
    let (entry, wconsts, threads) = if rows_of_4 && vec4_window(pad, 4, k, s, d) <= 32 {
        let strips = [&wconsts[..], &[("PAD", pad as u32), ("OUT", out)]].concat();
        ("weight_partial4", strips, 64)
    } else {
        ("weight_partial", wconsts, 256)
    };
    let groups = Work::Groups((c * chunks).div_ceil(threads));
    gpu.launch_spec("depthwise", entry, &wconsts, dp.words(), &bufs, groups)?;
    if chunks > 1 {
        let entries = ["weight_sum", "weight_sum_wg"];
        let (e, work) = super::chunk_sum(&policy, chunks, entries, dw.numel());
        let bufs = [&part, dw.buffer()];
        gpu.launch_spec("depthwise", e, &consts, dp.words(), &bufs, work)?;
    }
    Ok(())
}

/// Workgroups of a depthwise `forward` launch: one thread per strip of 4 outputs of a row.
fn forward_groups(dp: &DepthwiseParams) -> usize {
    let [n, c, ho, wo] = [dp.n, dp.c, dp.ho, dp.wo].map(|v| v as usize);
    (n * c * ho * wo.div_ceil(4)).div_ceil(256)
}

/// Floats a vec4 depthwise thread needs from one input row for `out` outputs, counted from
/// its aligned window start (A − PAD before the first tap, A = PAD rounded up to 4); the
/// kernels' window holds 32.
fn vec4_window(pad: usize, out: usize, k: usize, s: usize, d: usize) -> usize {
    pad.div_ceil(4) * 4 - pad + (out - 1) * s + (k - 1) * d + 1
}

/// The vec4 `forward4` launch of a depthwise forward (or flipped input-gradient) pass when its
/// rows allow it: pipeline constants PAD and OUT (outputs per thread) and the workgroup count.
fn forward4(dp: &DepthwiseParams, taps: Taps) -> Option<([(&'static str, u32); 2], usize)> {
    let [n, c, w, ho, wo, pad] = [dp.n, dp.c, dp.w, dp.ho, dp.wo, dp.pad].map(|v| v as usize);
    let [k, s, d] = [taps.k, taps.s, taps.d].map(|v| v as usize);
    let out = [8, 4].into_iter().find(|o| wo % o == 0)?;
    (w % 4 == 0 && vec4_window(pad, out, k, s, d) <= 32).then(|| {
        let groups = c * (n * ho * (wo / out)).div_ceil(64);
        ([("PAD", pad as u32), ("OUT", out as u32)], groups)
    })
}

/// Whether `forward4` / `dw_pw4` (OUT outputs a thread) take the columns either side of a
/// lane's own from its neighbouring lanes (SHARE): 8-lane subgroups (the policy's lanes) that
/// hold whole rows of 8 outputs a lane, stride 1, the input as wide as the output.
fn shares_columns(gpu: &Gpu, dp: &DepthwiseParams, taps: Taps, out: u32) -> bool {
    taps.s == 1
        && out == 8
        && dp.w == dp.wo
        && 2 * dp.pad == (taps.k - 1) * taps.d
        && dp.pad <= 4
        && gpu.policy().shares_rows(dp.wo, out)
}

/// Launches a depthwise forward pass (`forward4` where the rows allow, `forward` otherwise)
/// with `consts` (K, S, D first); buffers: input, weight, output, mask.
fn launch_forward(
    gpu: &Gpu,
    dp: &DepthwiseParams,
    taps: Taps,
    consts: &[(&'static str, u32)],
    bufs: &[&GpuBuffer; 4],
) -> Result<()> {
    match forward4(dp, taps) {
        Some((extra, groups)) => {
            // The weight from its uniform window where it has one.
            let (window, uw) = gpu.window_for(bufs[1]);
            let lanes = gpu.policy().lanes_consts();
            let share = shares_columns(gpu, dp, taps, extra[1].1);
            let consts = [
                consts,
                &extra[..],
                &[("UW", window as u32), ("SHARE", share as u32)],
                lanes,
            ]
            .concat();
            let bufs = [&bufs[..], &[&uw]].concat();
            gpu.launch_spec(
                "depthwise",
                "forward4",
                &consts,
                dp.words(),
                &bufs,
                Work::Groups(groups),
            )
        }
        None => {
            let groups = forward_groups(dp);
            gpu.launch_spec(
                "depthwise",
                "forward",
                consts,
                dp.words(),
                bufs,
                Work::Groups(groups),
            )
        }
    }
}

/// The fused `dw_pw4` launch of a depthwise pass followed by a 1×1 convolution: parameters,
/// pipeline constants and workgroups.
pub(super) struct Fused {
    p: DepthwiseParams,
    taps: Taps,
    out: u32,
    consts: Vec<(&'static str, u32)>,
    groups: usize,
}

/// The fused launch for the depthwise pass `p` followed by the 1×1 weight `w_pw`, when it
/// applies: `forward4`'s rows, at most 16 depthwise channels and 64 outputs.
pub(super) fn fused(p: &ConvParams, w_pw: &Tensor) -> Option<Fused> {
    let plan = &Depthwise::of(p);
    let (extra, _) = forward4(&plan.p, plan.taps)?;
    let dp = plan.p;
    let [n, c, ho, wo] = [dp.n, dp.c, dp.ho, dp.wo].map(|v| v as usize);
    let &[co, ci, 1, 1] = w_pw.shape() else {
        return None;
    };
    (ci == c && c <= 16 && co <= 64).then(|| {
        let out = extra[1].1 as usize;
        let mut consts = [&plan.taps.consts()[..], &extra[..]].concat();
        consts.extend([("CH", c as u32), ("CO", co as u32)]);
        Fused {
            p: dp,
            taps: plan.taps,
            out: out as u32,
            consts,
            groups: (n * ho * (wo / out)).div_ceil(64),
        }
    })
}

impl Fused {
    /// Workgroups of the launch: with statistics, also their chunks.
    pub(super) fn groups(&self) -> usize {
        self.groups
    }

    /// y = pw(dw(relu?(x))) in one launch; the intermediate stays in registers, or with `keep`
    /// is also written to `mid`. With `part` (`3·co·groups` floats) `dw_pw4_stats` also
    /// writes y's batch-norm statistics.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &self,
        x: &Tensor,
        w_dw: &Tensor,
        w_pw: &Tensor,
        y: &Tensor,
        mid: &Tensor,
        relu: bool,
        keep: bool,
        part: Option<&Tensor>,
    ) -> Result<()> {
        let keep: &[(&str, u32)] = if keep { &[("KEEP", 1)] } else { &[] };
        // Both weights from their uniform windows where they have them.
        let gpu = x.gpu();
        let (uw, dw_window) = gpu.window_for(w_dw.buffer());
        let (uwp, pw_window) = gpu.window_for(w_pw.buffer());
        let share = shares_columns(gpu, &self.p, self.taps, self.out);
        let windows = [
            ("UW", uw as u32),
            ("UWP", uwp as u32),
            ("SHARE", share as u32),
        ];
        let lanes = gpu.policy().lanes_consts();
        let consts = [&self.consts[..], relu_consts(relu), keep, &windows, lanes].concat();
        let bufs = [
            x.buffer(),
            w_dw.buffer(),
            y.buffer(),
            w_pw.buffer(),
            mid.buffer(),
            &dw_window,
            &pw_window,
        ];
        let bufs = [&bufs[..], part.map(|t| t.buffer()).as_slice()].concat();
        let entry = if part.is_some() {
            "dw_pw4_stats"
        } else {
            "dw_pw4"
        };
        let p = self.p.words();
        gpu.launch_spec(
            "depthwise",
            entry,
            &consts,
            p,
            &bufs,
            Work::Groups(self.groups),
        )
    }
}
