//! 2-D convolution (dense, 1×1, grouped/depthwise, any stride, padding, dilation, optional
//! bias): forward and the backward rule side by side. Kernels: `shaders/conv.wgsl`.

use super::layout::SliceCfg;
use super::norm::ChannelStats;
use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer};

/// Stride, padding, dilation and groups of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dCfg {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
    /// Convolve relu(x) instead of x: the ReLU is folded into the kernels' loads, so it needs
    /// no pass and no buffer of its own (DARTS' ReLU → conv pairs).
    pub relu_input: bool,
}

impl Conv2dCfg {
    pub fn new(stride: usize, padding: usize) -> Self {
        Conv2dCfg {
            stride,
            padding,
            dilation: 1,
            groups: 1,
            relu_input: false,
        }
    }
    pub fn relu_input(mut self, on: bool) -> Self {
        self.relu_input = on;
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// ⌊(h + 2p − d(k−1) − 1)/s⌋ + 1, or None when the kernel does not fit.
pub fn out_size(h: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    (h + 2 * p >= span).then(|| (h + 2 * p - span) / s + 1)
}

pub(crate) struct Conv2dNode {
    /// Values kept only when the weight needs its gradient (not in the α step).
    x: Saved,
    w: Saved,
    b: Option<Saved>,
    params: [u32; 17],
    /// The input went through a folded ReLU (see [`Conv2dCfg::relu_input`]).
    relu: bool,
}

fn params(
    x: &Tensor,
    w: &Tensor,
    cfg: Conv2dCfg,
    has_bias: bool,
) -> Result<([u32; 17], [usize; 4])> {
    let (n, cin, h, wd) = x.nchw("conv2d")?;
    params_for([n, cin, h, wd], w, cfg, has_bias)
}

/// [`params`] for an input of shape `xs` (n, c, h, w).
fn params_for(
    xs: [usize; 4],
    w: &Tensor,
    cfg: Conv2dCfg,
    has_bias: bool,
) -> Result<([u32; 17], [usize; 4])> {
    let [n, cin, h, wd] = xs;
    let [cout, cinpg, kh, kw] = match w.shape() {
        &[a, b, c, d] => [a, b, c, d],
        s => {
            return Err(Error::shape(
                "conv2d",
                format!("weight must be 4-D, got {s:?}"),
            ))
        }
    };
    let g = cfg.groups;
    if g == 0 || cin % g != 0 || cout % g != 0 || cinpg != cin / g {
        return Err(Error::shape(
            "conv2d",
            format!(
                "input {:?} and weight {:?} do not agree for groups = {g}",
                xs,
                w.shape()
            ),
        ));
    }
    if cfg.stride == 0 || cfg.dilation == 0 {
        return Err(Error::shape(
            "conv2d",
            "stride and dilation must be at least 1",
        ));
    }
    let ho = out_size(h, kh, cfg.stride, cfg.padding, cfg.dilation);
    let wo = out_size(wd, kw, cfg.stride, cfg.padding, cfg.dilation);
    let (Some(ho), Some(wo)) = (ho, wo) else {
        return Err(Error::shape(
            "conv2d",
            format!(
                "kernel {kh}x{kw} (dilation {}) does not fit input {h}x{wd} with padding {}",
                cfg.dilation, cfg.padding
            ),
        ));
    };
    let p = [
        n,
        cin,
        h,
        wd,
        cout,
        ho,
        wo,
        kh,
        kw,
        cfg.stride,
        cfg.stride,
        cfg.padding,
        cfg.padding,
        cfg.dilation,
        cfg.dilation,
        g,
        has_bias as usize,
    ]
    .map(|v| v as u32);
    Ok((p, [n, cout, ho, wo]))
}

/// (n, cin, h·w, cout) when the conv is a plain 1×1 (stride 1, no padding, one group, no
/// bias): those run as a batched matrix product.
fn pointwise(p: &[u32; 17]) -> Option<(usize, usize, usize, usize)> {
    let one = p[7] == 1 && p[8] == 1 && p[9] == 1 && p[10] == 1 && p[11] == 0 && p[12] == 0;
    (one && p[15] == 1 && p[16] == 0).then(|| {
        (
            p[0] as usize,
            p[1] as usize,
            (p[2] * p[3]) as usize,
            p[4] as usize,
        )
    })
}

/// Pipeline constants K, S, D of a depthwise kernel.
type DepthwiseConsts = [(&'static str, u32); 3];

/// Parameters and pipeline constants when the conv is depthwise with a square kernel of at
/// most 5×5, equal strides, dilations and paddings, and no bias.
fn depthwise(p: &[u32; 17]) -> Option<([u32; 8], DepthwiseConsts)> {
    let [n, cin, h, w, cout, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw, g, bias] = *p;
    // The forward kernel keeps a row window of 3·s + (k−1)·d + 1 ≤ 16 values in registers.
    let ok = g == cin
        && g == cout
        && kh == kw
        && kh <= 5
        && 3 * sh + (kh - 1) * dh < 16
        && sh == sw
        && ph == pw
        && dh == dw
        && bias == 0;
    ok.then_some((
        [n, cin, h, w, ho, wo, ph, 0],
        [("K", kh), ("S", sh), ("D", dh)],
    ))
}

/// Pipeline constants for a kernel reading its input through a folded ReLU (none otherwise,
/// so the plain pipelines stay the ones already compiled).
fn relu_consts(relu: bool) -> &'static [(&'static str, u32)] {
    if relu {
        &[("RELU", 1)]
    } else {
        &[]
    }
}

/// Workgroups of a depthwise `forward` launch: one thread per strip of 4 outputs of a row.
fn depthwise_forward_groups(dp: &[u32; 8]) -> usize {
    let [n, c, _, _, ho, wo, _, _] = dp.map(|v| v as usize);
    (n * c * ho * wo.div_ceil(4)).div_ceil(256)
}

/// Floats a vec4 depthwise thread needs from one input row for `out` outputs, counted from
/// its aligned window start (A − PAD before the first tap, A = PAD rounded up to 4); the
/// kernels' window holds 32.
fn vec4_window(pad: usize, out: usize, k: usize, s: usize, d: usize) -> usize {
    pad.div_ceil(4) * 4 - pad + (out - 1) * s + (k - 1) * d + 1
}

/// K, S, D of a depthwise pass from its pipeline constants.
fn ksd(consts: &[(&'static str, u32)]) -> (usize, usize, usize) {
    let get = |name: &str| {
        consts
            .iter()
            .find(|c| c.0 == name)
            .map_or(1, |c| c.1 as usize)
    };
    (get("K"), get("S"), get("D"))
}

/// (depthwise parameters, pipeline constants, workgroups) of a `dw_pw4` launch.
type DwPwLaunch = ([u32; 8], Vec<(&'static str, u32)>, usize);

/// The fused `dw_pw4` launch for a depthwise pass with parameters `p_dw` followed by the 1×1
/// weight `w_pw`, when it applies: `forward4`'s rows, at most 16 depthwise channels and 64
/// outputs.
fn fused_dw_pw(p_dw: &[u32; 17], w_pw: &Tensor) -> Option<DwPwLaunch> {
    let (dp, consts) = depthwise(p_dw)?;
    let (extra, _) = depthwise_forward4(&dp, &consts)?;
    let [n, c, _, _, ho, wo, _, _] = dp.map(|v| v as usize);
    let &[co, ci, 1, 1] = w_pw.shape() else {
        return None;
    };
    (ci == c && c <= 16 && co <= 64).then(|| {
        let out = extra[1].1 as usize;
        let mut all = [&consts[..], &extra[..]].concat();
        all.extend([("CH", c as u32), ("CO", co as u32)]);
        (dp, all, (n * ho * (wo / out)).div_ceil(64))
    })
}

/// The vec4 `forward4` launch of a depthwise forward (or flipped input-gradient) pass when its
/// rows allow it: pipeline constants PAD and OUT (outputs per thread) and the workgroup count.
fn depthwise_forward4(
    dp: &[u32; 8],
    consts: &[(&'static str, u32)],
) -> Option<([(&'static str, u32); 2], usize)> {
    let [n, c, _, w, ho, wo, pad, _] = dp.map(|v| v as usize);
    let (k, s, d) = ksd(consts);
    let out = [8, 4].into_iter().find(|o| wo % o == 0)?;
    (w % 4 == 0 && vec4_window(pad, out, k, s, d) <= 32).then(|| {
        let groups = c * (n * ho * (wo / out)).div_ceil(64);
        ([("PAD", pad as u32), ("OUT", out as u32)], groups)
    })
}

/// Launches a depthwise forward pass (`forward4` where the rows allow, `forward` otherwise);
/// buffers: input, weight, output, mask.
fn depthwise_forward(
    gpu: &Gpu,
    dp: &[u32; 8],
    consts: &[(&'static str, u32)],
    bufs: &[&GpuBuffer; 4],
) -> Result<()> {
    match depthwise_forward4(dp, consts) {
        Some((extra, groups)) => {
            let consts = [consts, &extra[..]].concat();
            gpu.launch_specialized("depthwise", "forward4", &consts, dp, bufs, groups)
        }
        None => {
            let groups = depthwise_forward_groups(dp);
            gpu.launch_specialized("depthwise", "forward", consts, dp, bufs, groups)
        }
    }
}

/// y[b] (m × hw) = A (m × k, strides `a`) · relu?(x[b]) (k × hw), for every image b.
/// y = a·x per image; `relu` reads x through a ReLU; `mask` writes y only where mask > 0.
/// With `stats` (and no mask) on planes of a multiple of 4, `gemm4_stats` also writes the
/// batch-norm statistics of y's rows, returned for [`Tape::batch_norm_with_stats`].
#[allow(clippy::too_many_arguments)]
fn gemm(
    x: &Tensor,
    a: &Tensor,
    y: &Tensor,
    [n, m, k, hw]: [usize; 4],
    [a_rs, a_cs]: [usize; 2],
    relu: bool,
    mask: Option<&Tensor>,
    stats: bool,
) -> Result<Option<ChannelStats>> {
    let gpu = x.gpu();
    let pp = [n, m, k, hw, a_rs, a_cs, 0, 0].map(|v| v as u32);
    // Without MASK binding 4 is unused: x (also only read) stands in.
    let bufs = [
        a.buffer(),
        x.buffer(),
        y.buffer(),
        mask.unwrap_or(x).buffer(),
    ];
    let mc: &[(&str, u32)] = if mask.is_some() { &[("MASK", 1)] } else { &[] };
    if !hw.is_multiple_of(4) {
        let consts = [relu_consts(relu), mc].concat();
        let grid = [(n * hw).div_ceil(256), m.div_ceil(4), 1];
        gpu.launch_spec("pointwise", "gemm", &consts, &pp, &bufs, grid)?;
        return Ok(None);
    }
    // Four pixels per thread (they always fall in one image), up to 16 output rows; a
    // workgroup column of 1,024 positions is one chunk of the statistics.
    let rb = [16, 8, 4].into_iter().find(|&r| m >= r).unwrap_or(4);
    let consts = [relu_consts(relu), mc, &[("RB", rb as u32)]].concat();
    let parts = (n * hw).div_ceil(1024);
    let grid = [parts, m.div_ceil(rb), 1];
    if !stats || mask.is_some() {
        gpu.launch_spec("pointwise", "gemm4", &consts, &pp, &bufs, grid)?;
        return Ok(None);
    }
    let part = Tensor::empty(gpu, &[3 * m * parts], "conv2d output statistics")?;
    let bufs = [&bufs[..], &[part.buffer()]].concat();
    gpu.launch_spec("pointwise", "gemm4_stats", &consts, &pp, &bufs, grid)?;
    Ok(Some(ChannelStats::new(part, parts, y)))
}

/// Whether a dense convolution runs on conv.wgsl's `forward4` / `weight_partial4` (one
/// group, output rows of a multiple of 4).
fn dense4(p: &[u32; 17]) -> bool {
    p[15] == 1 && p[6].is_multiple_of(4)
}

/// `forward4` on `bufs` (x, weight, bias, y, mask), up to 16 output channels per thread;
/// with `stats_of` (the output y, MASK off) `forward4_stats` where the batch norm to follow
/// would split its reductions, returning y's statistics for [`Tape::batch_norm_with_stats`].
fn dense_forward4(
    gpu: &Gpu,
    p: &[u32; 17],
    consts: &[(&'static str, u32)],
    bufs: &[&GpuBuffer; 5],
    stats_of: Option<&Tensor>,
) -> Result<Option<ChannelStats>> {
    let [n, cout, ho, wo] = [p[0], p[4], p[5], p[6]].map(|v| v as usize);
    let quads = n * ho * wo / 4;
    // Where launches are costly (CPU adapters) the most channels per thread, for the fewest
    // loads per multiply-add; on GPUs as many as still leave 2^16 threads to fill the device.
    let rb = gpu.policy().channels_per_thread(quads, cout);
    let ks: &[(&str, u32)] = if p[7] == p[8] && p[7] <= 7 {
        &[("KS", p[7])]
    } else {
        &[]
    };
    let consts = [consts, &[("RB", rb as u32)], ks].concat();
    let grid = [quads.div_ceil(256), cout.div_ceil(rb), 1];
    let stats_of = stats_of.filter(|_| gpu.policy().stats_in_producer(cout, n * ho * wo));
    let Some(y) = stats_of else {
        gpu.launch_spec("conv", "forward4", &consts, p, bufs, grid)?;
        return Ok(None);
    };
    // A workgroup column of 1,024 positions is one chunk of the statistics.
    let part = Tensor::empty(gpu, &[3 * cout * grid[0]], "conv2d output statistics")?;
    let bufs = [&bufs[..], &[part.buffer()]].concat();
    gpu.launch_spec("conv", "forward4_stats", &consts, p, &bufs, grid)?;
    Ok(Some(ChannelStats::new(part, grid[0], y)))
}

/// The parameters of a dense convolution's input gradient as a `forward4` (FLIP = 1) over dy,
/// with its stride as the pipeline constant TS, where that applies: equal strides, rows of
/// dx of a multiple of 4 and padding ≤ d·(k − 1).
fn dense_input_grad(p: &[u32; 17]) -> Option<([u32; 17], u32)> {
    let [n, cin, h, w, cout, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw, g, _] = *p;
    let ok = g == 1 && sh == sw && w % 4 == 0 && ph <= dh * (kh - 1) && pw <= dw * (kw - 1);
    if !ok {
        return None;
    }
    let (ph, pw) = (dh * (kh - 1) - ph, dw * (kw - 1) - pw);
    Some((
        [
            n, cout, ho, wo, cin, h, w, kh, kw, 1, 1, ph, pw, dh, dw, 1, 0,
        ],
        sh,
    ))
}

/// A dense convolution's weight gradient (`weight_partial4`, then `weight_sum` over the
/// chunks of output rows unless one chunk does it), with `db` its bias gradient too (partials
/// and `weight_sum_bias` always).
fn dense_weight_grad(
    gpu: &Gpu,
    p: &[u32; 17],
    relu: bool,
    x: &Tensor,
    gy: &Tensor,
    dw: &Tensor,
    db: Option<&Tensor>,
) -> Result<()> {
    let [n, cin, cout, ho, wo] = [p[0], p[1], p[4], p[5], p[6]].map(|v| v as usize);
    let blocks = cout.div_ceil(4) * cin.div_ceil(4) * (p[7] * p[8]) as usize;
    let rows = n * ho;
    // Enough (block, chunk) threads to fill a GPU; one chunk (no second pass) where that
    // serial work costs about a launch.
    let per = if gpu.policy().weight_grad_one_pass(rows * wo * 16) {
        rows
    } else {
        rows.div_ceil(
            gpu.policy()
                .weight_grad_threads
                .div_ceil(blocks)
                .clamp(1, rows),
        )
    };
    let chunks = rows.div_ceil(per);
    let mut pp = [0u32; 20];
    pp[..17].copy_from_slice(p);
    pp[17] = per as u32;
    pp[18] = chunks as u32;
    let direct = chunks == 1 && db.is_none();
    let part = if direct {
        dw.buffer().clone()
    } else {
        let bias_parts = if db.is_some() {
            cout.div_ceil(4) * chunks * 4
        } else {
            0
        };
        let len = blocks * chunks * 16 + bias_parts;
        gpu.alloc("conv2d weight-gradient partials", len)?
    };
    let mode: &[(&str, u32)] = match (direct, db.is_some()) {
        (true, _) => &[("DIRECT", 1)],
        (false, true) => &[("BIAS", 1)],
        (false, false) => &[],
    };
    let consts = [relu_consts(relu), mode].concat();
    let bufs = [x.buffer(), gy.buffer(), &part];
    let groups = (blocks * chunks).div_ceil(256);
    gpu.launch_specialized("conv", "weight_partial4", &consts, &pp, &bufs, groups)?;
    match db {
        Some(db) => {
            let bufs = [&part, dw.buffer(), db.buffer()];
            let n = dw.numel() + db.numel();
            gpu.launch("conv", "weight_sum_bias", &pp, &bufs, n)?;
        }
        None if !direct => {
            gpu.launch("conv", "weight_sum", &pp, &[&part, dw.buffer()], dw.numel())?;
        }
        None => {}
    }
    Ok(())
}

/// Runs conv2d's forward kernels (the 1×1, depthwise or general path) into a new tensor,
/// outside the tape; with `stats` a 1×1 or dense convolution also writes its output's
/// batch-norm statistics where it can.
fn conv_forward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    params: &[u32; 17],
    out_shape: &[usize],
    relu: bool,
    stats: bool,
) -> Result<(Tensor, Option<ChannelStats>)> {
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, out_shape, "conv2d output")?;
    let mut channel_stats = None;
    if let Some((n, cin, hw, cout)) = pointwise(params) {
        // (A 1×1 convolution with a bias takes the general path.)
        let stats = stats && gpu.policy().stats_in_producer(cout, n * hw);
        channel_stats = gemm(x, w, &y, [n, cout, cin, hw], [cin, 1], relu, None, stats)?;
    } else if let Some((dp, consts)) = depthwise(params) {
        let consts = [&consts[..], relu_consts(relu)].concat();
        // Binding 4 (the mask) is unused without MASK: x stands in.
        let bufs = [x.buffer(), w.buffer(), y.buffer(), x.buffer()];
        depthwise_forward(gpu, &dp, &consts, &bufs)?;
    } else if dense4(params) {
        // The bias binding is a placeholder (w) without a bias, and so is the mask (x).
        let bufs = [x, w, b.unwrap_or(w), &y, x].map(|t| t.buffer());
        let stats_of = stats.then_some(&y);
        channel_stats = dense_forward4(gpu, params, relu_consts(relu), &bufs, stats_of)?;
    } else {
        let bias = b.unwrap_or(w);
        gpu.launch_specialized(
            "conv",
            "forward",
            relu_consts(relu),
            params,
            &[x.buffer(), w.buffer(), bias.buffer(), y.buffer()],
            y.numel().div_ceil(256),
        )?;
    }
    Ok((y, channel_stats))
}

/// A depthwise convolution followed by a 1×1 one (DARTS' sep_conv and dil_conv halves),
/// recorded as one node that keeps the depthwise input and, where [`Tape::dw_pw`] says so, the
/// depthwise output; otherwise backward recomputes that output (one extra depthwise pass)
/// instead of holding it between the passes.
pub(crate) struct DwPwNode {
    x: Saved,
    w_dw: Saved,
    w_pw: Saved,
    /// The intermediate, when kept instead of recomputed.
    mid: Option<Tensor>,
    p_dw: [u32; 17],
    p_pw: [u32; 17],
    mid_shape: [usize; 4],
    relu: bool,
}

impl Tape {
    /// pw(dw(x)): `w_dw` a depthwise (or any) convolution with `cfg_dw`, then the 1×1
    /// convolution `w_pw`. Where the shapes allow (a depthwise pass of ≤ 16 channels on rows
    /// of a multiple of 4) both run in one kernel, `dw_pw4`. The intermediate is needed in
    /// backward only for the 1×1 weight's gradient (not in the α step). With recomputation on
    /// (the default) backward recomputes it, except that where launches are costly one of at
    /// most 65,536 values is kept (written by the fused kernel on the way); with it off it is
    /// kept (by the fused kernel, or as a node of its own).
    pub fn dw_pw(
        &mut self,
        x: &Tensor,
        w_dw: &Tensor,
        cfg_dw: Conv2dCfg,
        w_pw: &Tensor,
    ) -> Result<Tensor> {
        Ok(self.dw_pw_impl(x, w_dw, cfg_dw, w_pw, false)?.0)
    }

    /// [`Tape::dw_pw`] for a train-mode batch norm to follow: where that batch norm would
    /// split its reductions (GPUs) the 1×1 kernel also writes the output's statistics
    /// (`dw_pw4_stats`, `gemm4_stats`), for [`Tape::batch_norm_with_stats`].
    pub fn dw_pw_with_stats(
        &mut self,
        x: &Tensor,
        w_dw: &Tensor,
        cfg_dw: Conv2dCfg,
        w_pw: &Tensor,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        self.dw_pw_impl(x, w_dw, cfg_dw, w_pw, true)
    }

    fn dw_pw_impl(
        &mut self,
        x: &Tensor,
        w_dw: &Tensor,
        cfg_dw: Conv2dCfg,
        w_pw: &Tensor,
        stats: bool,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        let pw_cfg = Conv2dCfg::new(1, 0);
        let wants = self.wants(&[x, w_dw, w_pw]);
        let (p_dw, mid_shape) = params(x, w_dw, cfg_dw, false)?;
        let fused = fused_dw_pw(&p_dw, w_pw);
        // The intermediate kept for the 1×1 weight's gradient, written by the fused kernel on
        // the way: with recomputation off, or where launches are costly and it is small (the
        // recomputing launch costs more there than the memory is worth).
        let mid_numel: usize = mid_shape.iter().product();
        let small = self.gpu().policy().keep_intermediate(mid_numel);
        let keep_mid =
            wants && w_pw.requires_grad() && fused.is_some() && (!self.recompute() || small);
        // One node whose backward needs no intermediate (the 1×1 weight frozen: the α step),
        // recomputes it, or has it kept; otherwise (unfused, intermediate kept) two nodes.
        let one_node = wants && (!w_pw.requires_grad() || self.recompute() || keep_mid);
        // Without a tape, one fused launch serves too.
        let fused_inference = fused.is_some() && !wants;
        if !(one_node || fused_inference) {
            let mid = self.conv2d(x, w_dw, None, cfg_dw)?;
            return self.conv2d_impl(&mid, w_pw, None, pw_cfg, stats);
        }
        let (p_pw, out_shape) = params_for(mid_shape, w_pw, pw_cfg, false)?;
        if pointwise(&p_pw).is_none() {
            return Err(Error::shape(
                "dw_pw",
                format!("the second weight must be 1×1, got {:?}", w_pw.shape()),
            ));
        }
        let [n, co, ho, wo] = out_shape[..] else {
            return Err(Error::Invalid("internal: dw_pw output not 4-D".into()));
        };
        let stats = stats && self.gpu().policy().stats_in_producer(co, n * ho * wo);
        let mut kept = None;
        let (y, channel_stats) = match fused {
            // Both convolutions in one launch; the intermediate stays in registers (or is
            // also written out, to be kept).
            Some((dp, consts, groups)) => {
                let gpu = self.gpu().clone();
                let y = Tensor::empty(&gpu, &out_shape, "dw_pw output")?;
                let keep: &[(&str, u32)] = if keep_mid { &[("KEEP", 1)] } else { &[] };
                let consts = [&consts[..], relu_consts(cfg_dw.relu_input), keep].concat();
                let mid = if keep_mid {
                    Tensor::empty(&gpu, &mid_shape, "dw_pw intermediate")?
                } else {
                    Tensor::empty(&gpu, &[4], "dw_pw unused intermediate")?
                };
                let bufs = [
                    x.buffer(),
                    w_dw.buffer(),
                    y.buffer(),
                    w_pw.buffer(),
                    mid.buffer(),
                ];
                // With statistics, the workgroups are their chunks.
                let part = if stats {
                    let name = "dw_pw output statistics";
                    Some(Tensor::empty(&gpu, &[3 * co * groups], name)?)
                } else {
                    None
                };
                let bufs = [&bufs[..], part.as_ref().map(|t| t.buffer()).as_slice()].concat();
                let entry = if part.is_some() {
                    "dw_pw4_stats"
                } else {
                    "dw_pw4"
                };
                gpu.launch_specialized("depthwise", entry, &consts, &dp, &bufs, groups)?;
                kept = keep_mid.then_some(mid);
                let channel_stats = part.map(|part| ChannelStats::new(part, groups, &y));
                (y, channel_stats)
            }
            None => {
                let relu = cfg_dw.relu_input;
                let mid = conv_forward(x, w_dw, None, &p_dw, &mid_shape, relu, false)?.0;
                conv_forward(&mid, w_pw, None, &p_pw, &out_shape, false, stats)?
            }
        };
        self.add_macs(mid_numel as u64 * w_dw.numel() as u64 / w_dw.shape()[0] as u64);
        self.add_macs(y.numel() as u64 * w_pw.numel() as u64 / w_pw.shape()[0] as u64);
        let y = self.record(&[x, w_dw, w_pw], y, || {
            Op::DwPw(DwPwNode {
                x: Saved::keep(x),
                w_dw: Saved::keep(w_dw),
                w_pw: Saved::keep(w_pw),
                mid: kept,
                p_dw,
                p_pw,
                mid_shape,
                relu: cfg_dw.relu_input,
            })
        });
        Ok((y, channel_stats))
    }

    /// y = conv2d(x, w) (+ b). x: (n, cin, h, w); w: (cout, cin/groups, kh, kw); b: (cout).
    pub fn conv2d(
        &mut self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dCfg,
    ) -> Result<Tensor> {
        Ok(self.conv2d_impl(x, w, b, cfg, false)?.0)
    }

    /// [`Tape::conv2d`] for a train-mode batch norm to follow: where that batch norm would
    /// split its reductions (GPUs), a 1×1 convolution without bias (`gemm4_stats`) or a dense
    /// one on rows of a multiple of 4 (`forward4_stats`) also writes its output's statistics,
    /// for [`Tape::batch_norm_with_stats`].
    pub fn conv2d_with_stats(
        &mut self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dCfg,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        self.conv2d_impl(x, w, b, cfg, true)
    }

    fn conv2d_impl(
        &mut self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        cfg: Conv2dCfg,
        stats: bool,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        let (params, out_shape) = params(x, w, cfg, b.is_some())?;
        // A strided 1×1 conv only reads every s-th pixel: subsample, then a plain matrix
        // product (cheaper than the general kernel's gather, forward and backward).
        if params[7] == 1
            && params[8] == 1
            && cfg.stride > 1
            && cfg.padding == 0
            && cfg.groups == 1
            && b.is_none()
        {
            let sub = self.slice2d(
                x,
                SliceCfg {
                    offset: 0,
                    stride: cfg.stride,
                },
            )?;
            return self.conv2d_impl(
                &sub,
                w,
                None,
                Conv2dCfg::new(1, 0).relu_input(cfg.relu_input),
                stats,
            );
        }
        if let Some(b) = b {
            if b.shape() != [out_shape[1]] {
                return Err(Error::shape(
                    "conv2d",
                    format!("bias must be ({}), got {:?}", out_shape[1], b.shape()),
                ));
            }
        }
        let (y, channel_stats) = conv_forward(x, w, b, &params, &out_shape, cfg.relu_input, stats)?;
        self.add_macs(y.numel() as u64 * w.numel() as u64 / w.shape()[0] as u64);
        let mut inputs = vec![x, w];
        inputs.extend(b);
        let y = self.record(&inputs, y, || {
            Op::Conv2d(Conv2dNode {
                // The weight gradient reads x, and so does the folded ReLU's mask.
                x: Saved::keep_if(
                    x,
                    w.requires_grad() || (cfg.relu_input && x.requires_grad()),
                ),
                w: Saved::keep(w),
                b: b.map(Saved::key_only),
                params,
                relu: cfg.relu_input,
            })
        });
        Ok((y, channel_stats))
    }
}

impl DwPwNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        // The intermediate is read only for the 1×1 weight's gradient: recomputed for it, not
        // at all when that weight is frozen (the α step).
        let mid = if let (true, Some(mid)) = (self.w_pw.requires_grad(), &self.mid) {
            Saved::keep(&mid.with_grad())
        } else if self.w_pw.requires_grad() {
            let x = self.x.data()?;
            let mid = conv_forward(
                x,
                self.w_dw.data()?,
                None,
                &self.p_dw,
                &self.mid_shape,
                self.relu,
                false,
            )?
            .0
            .with_grad();
            Saved::keep(&mid)
        } else {
            Saved::virtual_input(&self.mid_shape)
        };
        let mid_id = mid.key().id();
        let pw = Conv2dNode {
            x: mid,
            w: self.w_pw.clone(),
            b: None,
            params: self.p_pw,
            relu: false,
        };
        let mut out = Vec::new();
        let mut dmid = None;
        for (key, g) in pw.backward(gy)? {
            if key.id() == mid_id {
                dmid = Some(g);
            } else {
                out.push((key, g));
            }
        }
        drop(pw);
        let dmid = dmid.ok_or_else(|| Error::Gpu("internal: dw_pw lost its gradient".into()))?;
        let dw = Conv2dNode {
            x: self.x.clone(),
            w: self.w_dw.clone(),
            b: None,
            params: self.p_dw,
            relu: self.relu,
        };
        out.extend(dw.backward(&dmid)?);
        Ok(out)
    }
}

impl Conv2dNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let gpu = gy.gpu();
        let mut out = Vec::new();
        let pw = pointwise(&self.params);
        let dwc = depthwise(&self.params);
        let p = &self.params;
        if self.x.requires_grad() {
            let dx = Tensor::empty(gpu, self.x.shape(), "conv2d dx")?;
            // Depthwise kernels apply the folded ReLU's mask as they write dx.
            let mut masked = false;
            if let Some((n, cin, hw, cout)) = pw {
                // dx = Wᵀ·dy per image, through the folded ReLU's mask (x > 0).
                let mask = if self.relu {
                    Some(self.x.data()?)
                } else {
                    None
                };
                gemm(
                    gy,
                    self.w.data()?,
                    &dx,
                    [n, cin, cout, hw],
                    [1, cin],
                    false,
                    mask,
                    false,
                )?;
                masked = self.relu;
            } else if let Some((dp, consts)) = &dwc {
                let groups = dx.numel().div_ceil(256);
                let [n, c, h, w, ho, wo, pad, _] = *dp;
                let (k, d) = (consts[0].1, consts[2].1);
                // With a folded ReLU, x (> 0) masks dx; otherwise the binding is a placeholder.
                let mask = if self.relu {
                    self.x.data()?.buffer()
                } else {
                    gy.buffer()
                };
                let mc: &[(&'static str, u32)] = if self.relu { &[("MASK", 1)] } else { &[] };
                masked = self.relu;
                let wb = self.w.data()?.buffer();
                if consts[1].1 == 1 && pad <= d * (k - 1) {
                    // Stride 1: the input gradient is a forward pass with the rotated kernel.
                    let fp = [n, c, ho, wo, h, w, d * (k - 1) - pad, 0];
                    let fc = [&[consts[0], consts[1], consts[2], ("FLIP", 1)][..], mc].concat();
                    depthwise_forward(gpu, &fp, &fc, &[gy.buffer(), wb, dx.buffer(), mask])?;
                } else {
                    let bc = [&consts[..], mc].concat();
                    let bufs = [gy.buffer(), wb, dx.buffer(), mask];
                    // Stride 2 on rows of a multiple of 4: 4 pixels per thread, taps resolved
                    // at compile time (a window of at most 8 dy values per row).
                    let cmin = pad as i64 - ((k - 1) * d) as i64;
                    let (e0, e1) = (cmin + (cmin & 1), (3 + pad as i64) & !1);
                    let window = (e1 - e0) / 2 + 1;
                    if consts[1].1 == 2 && w % 4 == 0 && window <= 8 {
                        let bc = [&bc[..], &[("PAD", pad)]].concat();
                        let groups = (c * (n * h * w / 4).div_ceil(64)) as usize;
                        let e = "backward_input2";
                        gpu.launch_specialized("depthwise", e, &bc, dp, &bufs, groups)?;
                    } else {
                        gpu.launch_specialized(
                            "depthwise",
                            "backward_input",
                            &bc,
                            dp,
                            &bufs,
                            groups,
                        )?;
                    }
                }
            } else if let Some((fp, ts)) = dense_input_grad(p) {
                // dx = dy (zero-dilated by the stride) convolved with the transposed, rotated
                // weight, masked by x > 0 through a folded ReLU (else the mask binding is a
                // placeholder).
                let mask = if self.relu { self.x.data()? } else { gy };
                let wt = self.w.data()?;
                let bufs = [gy, wt, wt, &dx, mask].map(|t| t.buffer());
                let mc: &[(&str, u32)] = if self.relu { &[("MASK", 1)] } else { &[] };
                let consts = [&[("FLIP", 1), ("TS", ts)], mc].concat();
                dense_forward4(gpu, &fp, &consts, &bufs, None)?;
                masked = self.relu;
            } else {
                let entry = if p[9] == 1 && p[10] == 1 {
                    "backward_input_s1"
                } else {
                    "backward_input"
                };
                gpu.launch(
                    "conv",
                    entry,
                    p,
                    &[gy.buffer(), self.w.data()?.buffer(), dx.buffer()],
                    dx.numel(),
                )?;
            }
            let dx = if self.relu && !masked {
                // Through the folded ReLU: pass the gradient where x > 0.
                let masked = Tensor::empty(gpu, dx.shape(), "conv2d dx")?;
                gpu.launch(
                    "elementwise",
                    "relu_backward",
                    &[dx.numel() as u32, 0, 0, 0],
                    &[self.x.data()?.buffer(), dx.buffer(), masked.buffer()],
                    dx.numel(),
                )?;
                masked
            } else {
                dx
            };
            out.push((self.x.key(), dx));
        }
        // Set where the weight-gradient launches also produce the bias gradient.
        let mut db = None;
        if self.w.requires_grad() {
            let dw = Tensor::empty(gpu, self.w.shape(), "conv2d dw")?;
            if let Some((n, cin, hw, cout)) = pw {
                let blocks = cin.div_ceil(4) * cout.div_ceil(4);
                // Enough (block, chunk) threads to fill the device, chunks of ≥ 64 positions
                // and of a multiple of 4 (the vec4 variant reads 4 at a time); or one chunk
                // (no second pass) where that serial work costs less than a launch.
                let chunk = if gpu.policy().weight_grad_one_pass(n * hw * 16) {
                    (n * hw).next_multiple_of(4)
                } else {
                    (n * hw * blocks)
                        .div_ceil(gpu.policy().weight_grad_threads)
                        .max(64)
                        .next_multiple_of(4)
                };
                let chunks = (n * hw).div_ceil(chunk);
                let pp = [n, cout, cin, hw, 0, 0, chunk, chunks].map(|v| v as u32);
                let part = if chunks == 1 {
                    dw.buffer().clone()
                } else {
                    gpu.alloc("pointwise weight-gradient partials", blocks * chunks * 16)?
                };
                let bufs = [gy.buffer(), self.x.data()?.buffer(), &part];
                let entry = if hw.is_multiple_of(4) {
                    "weight_grad_partial4"
                } else {
                    "weight_grad_partial"
                };
                let direct: &[(&str, u32)] = if chunks == 1 { &[("DIRECT", 1)] } else { &[] };
                let consts = [relu_consts(self.relu), direct].concat();
                let groups = (blocks * chunks).div_ceil(256);
                gpu.launch_specialized("pointwise", entry, &consts, &pp, &bufs, groups)?;
                if chunks > 1 {
                    let bufs = [&part, dw.buffer()];
                    gpu.launch("pointwise", "weight_grad_sum", &pp, &bufs, dw.numel())?;
                }
            } else if let Some((mut dp, consts)) = dwc {
                let (c, rows) = (p[4] as usize, (p[0] * p[5]) as usize);
                let taps = (p[7] * p[8]) as usize;
                // Chunks of output rows so that channels × chunks fills the device; or one
                // chunk, whose partials are dw itself, where that costs less than a launch.
                let wo = p[6] as usize;
                let per = if gpu.policy().weight_grad_one_pass(rows * wo * taps) {
                    rows
                } else {
                    (rows * c).div_ceil(gpu.policy().weight_grad_chunk).max(1)
                };
                let chunks = rows.div_ceil(per);
                dp[7] = per as u32;
                let part = if chunks == 1 {
                    dw.buffer().clone()
                } else {
                    gpu.alloc("depthwise weight-gradient partials", c * chunks * taps)?
                };
                let bufs = [self.x.data()?.buffer(), gy.buffer(), &part];
                let wconsts = [&consts[..], relu_consts(self.relu)].concat();
                // Rows of a multiple of 4: strips of 4 outputs against vec4 input windows.
                let (k, s) = (p[7] as usize, p[9] as usize);
                let (pad, d) = (p[11] as usize, p[13] as usize);
                let rows_of_4 = p[3].is_multiple_of(4) && p[6].is_multiple_of(4);
                if rows_of_4 && vec4_window(pad, 4, k, s, d) <= 32 {
                    let wconsts = [&wconsts[..], &[("PAD", pad as u32), ("OUT", 4)]].concat();
                    let groups = (c * chunks).div_ceil(64);
                    let e = "weight_partial4";
                    gpu.launch_specialized("depthwise", e, &wconsts, &dp, &bufs, groups)?;
                } else {
                    let groups = (c * chunks).div_ceil(256);
                    let e = "weight_partial";
                    gpu.launch_specialized("depthwise", e, &wconsts, &dp, &bufs, groups)?;
                }
                if chunks > 1 {
                    let groups = dw.numel().div_ceil(256);
                    let bufs = [&part, dw.buffer()];
                    let e = "weight_sum";
                    gpu.launch_specialized("depthwise", e, &consts, &dp, &bufs, groups)?;
                }
            } else if dense4(p) {
                // The bias gradient comes out of the same two launches.
                if let Some(b) = self.b.as_ref().filter(|b| b.requires_grad()) {
                    db = Some(Tensor::empty(gpu, b.shape(), "conv2d db")?);
                }
                let x = self.x.data()?;
                dense_weight_grad(gpu, p, self.relu, x, gy, &dw, db.as_ref())?;
            } else {
                let bufs = [self.x.data()?.buffer(), gy.buffer(), dw.buffer()];
                gpu.launch_specialized(
                    "conv",
                    "backward_weight",
                    relu_consts(self.relu),
                    p,
                    &bufs,
                    dw.numel(),
                )?;
            }
            out.push((self.w.key(), dw));
        }
        if let Some(b) = self.b.as_ref().filter(|b| b.requires_grad()) {
            let db = match db {
                Some(db) => db,
                None => {
                    let db = Tensor::empty(gpu, b.shape(), "conv2d db")?;
                    let bufs = [gy.buffer(), db.buffer()];
                    let p = &self.params;
                    gpu.launch_groups("conv", "backward_bias", p, &bufs, db.numel())?;
                    db
                }
            };
            out.push((b.key(), db));
        }
        Ok(out)
    }
}
