//! Dense convolutions (one group) on rows of a multiple of 4: `forward4` (4 outputs of a row ×
//! up to 16 output channels per thread), the input gradient as a flipped `forward4` over dy,
//! and the weight (and bias) gradient `weight_partial4` + `weight_sum(_bias)`.
//! Kernels: `shaders/conv.wgsl`.

use super::{relu_consts, Fwd, InGrad, WGrad};
use crate::autodiff::ops::norm::ChannelStats;
use crate::autodiff::Tensor;
use crate::error::Result;
use crate::gpu::Work;
use crate::gpu::{ConvParams, Gpu, GpuBuffer, KernelParams};

/// Whether forward and weight gradient run on `forward4` / `weight_partial4`: one group,
/// output rows of a multiple of 4.
pub(super) fn rows4(p: &ConvParams) -> bool {
    p.groups == 1 && p.wo.is_multiple_of(4)
}

/// A dense convolution's input gradient as `forward4` (FLIP = 1) over dy: that convolution's
/// parameters, and the original stride as the pipeline constant TS.
struct Flipped {
    p: ConvParams,
    ts: u32,
}

/// Whether the input gradient runs flipped: one group, equal strides, rows of dx of a
/// multiple of 4 and padding ≤ d·(k − 1).
pub(super) fn flipped_applies(p: &ConvParams) -> bool {
    p.groups == 1
        && p.sh == p.sw
        && p.w.is_multiple_of(4)
        && p.ph <= p.dh * (p.kh - 1)
        && p.pw <= p.dw * (p.kw - 1)
}

impl Flipped {
    fn of(p: &ConvParams) -> Self {
        Flipped {
            p: ConvParams {
                n: p.n,
                cin: p.cout,
                h: p.ho,
                w: p.wo,
                cout: p.cin,
                ho: p.h,
                wo: p.w,
                kh: p.kh,
                kw: p.kw,
                sh: 1,
                sw: 1,
                ph: p.dh * (p.kh - 1) - p.ph,
                pw: p.dw * (p.kw - 1) - p.pw,
                dh: p.dh,
                dw: p.dw,
                groups: 1,
                ..ConvParams::default()
            },
            ts: p.sh,
        }
    }
}

/// y = conv(relu?(x), w) (+ b) by `forward4`; with `stats`, y's batch-norm statistics where
/// the policy wants them from the producer.
pub(super) fn forward(p: &ConvParams, f: &Fwd) -> Result<Option<ChannelStats>> {
    let Fwd { x, w, b, y, .. } = *f;
    // The bias binding is a placeholder (w) without a bias, and so is the mask (x).
    let bufs = [x, w, b.unwrap_or(w), y, x].map(|t| t.buffer());
    forward4(x.gpu(), p, relu_consts(f.relu), &bufs, f.stats.then_some(y))
}

/// dx = dy (zero-dilated by the stride) convolved with the transposed, rotated weight, masked
/// by the folded ReLU's `mask` (x > 0) where there is one.
pub(super) fn input_grad(p: &ConvParams, g: &InGrad) -> Result<()> {
    let InGrad { gy, w, dx, mask } = *g;
    let f = Flipped::of(p);
    // Without a folded ReLU the mask binding is a placeholder.
    let bufs = [gy, w, w, dx, mask.unwrap_or(gy)].map(|t| t.buffer());
    let mc: &[(&str, u32)] = if mask.is_some() { &[("MASK", 1)] } else { &[] };
    let consts = [&[("FLIP", 1), ("TS", f.ts)], mc].concat();
    forward4(gy.gpu(), &f.p, &consts, &bufs, None)?;
    Ok(())
}

/// `forward4` on `bufs` (x, weight, bias, y, mask), up to 16 output channels per thread, the
/// weight read from its uniform window where it has one;
/// with `stats_of` (the output y, MASK off) `forward4_stats` where the batch norm to follow
/// would split its reductions, returning y's statistics for `Tape::batch_norm_with_stats`.
fn forward4(
    gpu: &Gpu,
    p: &ConvParams,
    consts: &[(&'static str, u32)],
    bufs: &[&GpuBuffer; 5],
    stats_of: Option<&Tensor>,
) -> Result<Option<ChannelStats>> {
    let [n, cout, ho, wo] = [p.n, p.cout, p.ho, p.wo].map(|v| v as usize);
    let quads = n * ho * wo / 4;
    // Where launches are costly (CPU adapters) the most channels per thread, for the fewest
    // loads per multiply-add; on GPUs as many as still leave 2^16 threads to fill the device.
    let rb = gpu.policy().channels_per_thread(quads, cout);
    let square = p.kh == p.kw && p.kh <= 7;
    // Column stride and dilation 1, dy not zero-dilated: neighbouring taps share inputs.
    let unit =
        square && p.sw == 1 && p.dw == 1 && !consts.iter().any(|&(k, v)| k == "TS" && v != 1);
    // Whole rows of as many columns as the input's in each 8-lane subgroup: lanes take their
    // neighbours' columns (SHARE).
    let share = unit && p.w == p.wo && 2 * p.pw + 1 == p.kw && gpu.policy().shares_rows(p.wo, 4);
    let ks: &[(&str, u32)] = match (square, unit, share) {
        (true, true, true) => &[("KS", p.kh), ("UNIT", 1), ("SHARE", 1)],
        (true, true, false) => &[("KS", p.kh), ("UNIT", 1)],
        (true, false, _) => &[("KS", p.kh)],
        _ => &[],
    };
    let (window, uw) = gpu.window_for(bufs[1]);
    let lanes = gpu.policy().lanes_consts();
    let consts = [
        consts,
        &[("RB", rb as u32), ("UW", window as u32)],
        ks,
        lanes,
    ]
    .concat();
    // x again at 7, as SHARE's vec4 view (bound either way).
    let bufs = [&bufs[..], &[&uw, bufs[0]]].concat();
    let grid = [quads.div_ceil(256), cout.div_ceil(rb), 1];
    let stats_of = stats_of.filter(|_| gpu.policy().stats_in_producer(cout, n * ho * wo));
    let Some(y) = stats_of else {
        let qw = gpu.policy().quads_per_group(quads);
        let consts = [&consts[..], &[("QW", qw as u32)]].concat();
        let grid = [quads.div_ceil(qw), grid[1], 1];
        gpu.launch_spec("conv", "forward4", &consts, p.words(), &bufs, grid)?;
        return Ok(None);
    };
    // A workgroup column of 1,024 positions is one chunk of the statistics.
    let part = Tensor::empty(gpu, &[3 * cout * grid[0]], "conv2d output statistics")?;
    let bufs = [&bufs[..], &[part.buffer()]].concat();
    gpu.launch_spec("conv", "forward4_stats", &consts, p.words(), &bufs, grid)?;
    Ok(Some(ChannelStats::new(part, grid[0], y)))
}

/// The weight gradient (`weight_partial4`, then `weight_sum` over the chunks of output rows
/// unless one chunk does it), with `db` the bias gradient too (partials and `weight_sum_bias`
/// always).
pub(super) fn weight_grad(p: &ConvParams, g: &WGrad, db: Option<&Tensor>) -> Result<()> {
    let WGrad { x, gy, dw, relu } = *g;
    let gpu = gy.gpu();
    let [n, cin, cout, ho, wo] = [p.n, p.cin, p.cout, p.ho, p.wo].map(|v| v as usize);
    let blocks = cout.div_ceil(4) * cin.div_ceil(4) * (p.kh * p.kw) as usize;
    let rows = n * ho;
    // Enough (block, chunk) threads to fill a GPU; one chunk (no second pass) where that
    // serial work costs about a launch and leaves no CPU thread idle.
    let policy = gpu.policy();
    let lanes = super::weight_grad_lanes(&policy, cout, cin);
    // With lanes, a thread takes a whole kernel row of 3 taps where the columns step by 1
    // (each dy load serves 3 taps), and a whole 3×3 kernel where there are 3 rows (9 taps).
    let row3 = !lanes.is_empty() && p.kw == 3 && p.sw == 1 && p.dw == 1;
    let k3 = row3 && p.kh == 3;
    // The same chunks either way: a whole kernel a thread at 3× the chunks (as many threads
    // as rows of 3) was no faster on lavapipe (the second pass sums 3× the partials).
    let block_threads = match (k3, row3) {
        (true, _) => blocks / 9,
        (false, true) => blocks / 3,
        (false, false) => blocks,
    };
    let one_pass = policy.weight_grad_one_pass(rows * wo * 16, blocks, 256);
    // Else, on CPU adapters of several threads: one equal workgroup (a chunk) per thread.
    let split = match one_pass {
        true => None,
        false => policy.weight_grad_split(block_threads, rows),
    };
    let per = match split {
        _ if one_pass => rows,
        Some((chunks, _)) => rows.div_ceil(chunks),
        None => rows.div_ceil(policy.weight_grad_threads.div_ceil(blocks).clamp(1, rows)),
    };
    let chunks = rows.div_ceil(per);
    // The split's workgroup size (WPG), else the kernels' 256.
    let (group, wpg): (usize, &[(&str, u32)]) = match split {
        Some((_, g)) => (g, &[("WPG", g as u32)]),
        None => (256, &[]),
    };
    let pp = ConvParams {
        per: per as u32,
        chunks: chunks as u32,
        ..*p
    };
    let pp = pp.words();
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
    // Whole input quads for the whole-kernel form's 4-output-block layout: x again as vec4s.
    let four = lanes.contains(&("OB", 4));
    let quads: &[(&str, u32)] = match k3 && four && p.pw == 1 && p.w.is_multiple_of(4) {
        true => &[("XQ", 1)],
        false => &[],
    };
    let consts = [relu_consts(relu), mode, lanes, quads, wpg].concat();
    let mut bufs = vec![x.buffer(), gy.buffer(), &part];
    if k3 {
        bufs.push(x.buffer());
    }
    let entry = match (k3, row3) {
        (true, _) => "weight_partial4_k3",
        (false, true) => "weight_partial4_row3",
        (false, false) => "weight_partial4",
    };
    let groups = (block_threads * chunks).div_ceil(group);
    gpu.launch_spec("conv", entry, &consts, pp, &bufs, Work::Groups(groups))?;
    match db {
        Some(db) => {
            let bufs = [&part, dw.buffer(), db.buffer()];
            let entries = ["weight_sum_bias", "weight_sum_bias_wg"];
            let n = dw.numel() + db.numel();
            let (entry, work) = super::chunk_sum(&policy, chunks, entries, n);
            gpu.launch("conv", entry, pp, &bufs, work)?;
        }
        None if !direct => {
            let entries = ["weight_sum", "weight_sum_wg"];
            let (entry, work) = super::chunk_sum(&policy, chunks, entries, dw.numel());
            gpu.launch("conv", entry, pp, &[&part, dw.buffer()], work)?;
        }
        None => {}
    }
    Ok(())
}
