//! Plain 1×1 convolutions (stride 1, no padding, one group; a bias where planes are of vec4s)
//! as batched matrix products: forward, input gradient and weight gradient (with the bias
//! gradient from the same launches). Kernels: `shaders/pointwise.wgsl`.

use super::{relu_consts, Fwd, InGrad, WGrad};
use crate::autodiff::ops::norm::ChannelStats;
use crate::autodiff::Tensor;
use crate::error::{Error, Result};
use crate::gpu::Work;
use crate::gpu::{ConvParams, KernelParams, PointwiseParams};

/// The matrix shapes of a plain 1×1 convolution.
#[derive(Clone, Copy, Debug)]
struct Gemm {
    n: usize,
    cin: usize,
    /// Pixels per image plane.
    hw: usize,
    cout: usize,
}

/// Whether `p` is a plain 1×1 convolution (with a bias only where `gemm4`, which adds it,
/// runs).
pub(super) fn applies(p: &ConvParams) -> bool {
    let one = p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0;
    one && p.groups == 1 && (p.has_bias == 0 || (p.h * p.w).is_multiple_of(4))
}

impl Gemm {
    fn of(p: &ConvParams) -> Self {
        Gemm {
            n: p.n as usize,
            cin: p.cin as usize,
            hw: (p.h * p.w) as usize,
            cout: p.cout as usize,
        }
    }
}

/// y = w·relu?(x) (+ b) per image; with `stats`, y's batch-norm statistics where the policy
/// wants them from the producer.
pub(super) fn forward(p: &ConvParams, f: &Fwd) -> Result<Option<ChannelStats>> {
    let Gemm { n, cin, hw, cout } = Gemm::of(p);
    let stats = f.stats && f.x.gpu().policy().stats_in_producer(cout, n * hw);
    let io = Io {
        x: f.x,
        a: f.w,
        y: f.y,
        bias: f.b,
        mask: None,
    };
    gemm(io, [n, cout, cin, hw], [cin, 1], f.relu, stats)
}

/// A product's tensors: y = a·relu?(x) (+ bias per row), written where mask > 0.
struct Io<'a> {
    x: &'a Tensor,
    a: &'a Tensor,
    y: &'a Tensor,
    bias: Option<&'a Tensor>,
    mask: Option<&'a Tensor>,
}

/// dx = Wᵀ·dy per image, through the folded ReLU's `mask` (x > 0) where there is one.
pub(super) fn input_grad(p: &ConvParams, g: &InGrad) -> Result<()> {
    let Gemm { n, cin, hw, cout } = Gemm::of(p);
    let io = Io {
        x: g.gy,
        a: g.w,
        y: g.dx,
        bias: None,
        mask: g.mask,
    };
    gemm(io, [n, cin, cout, hw], [1, cin], false, false)?;
    Ok(())
}

/// dw = Σ dy·relu?(x)ᵀ: `weight_grad_partial(4)` over chunks of positions, then
/// `weight_grad_sum` unless one chunk writes dw directly; with `db` (a bias, so planes of
/// vec4s) db = Σ dy from the same launches.
pub(super) fn weight_grad(p: &ConvParams, g: &WGrad, db: Option<&Tensor>) -> Result<()> {
    let WGrad { x, gy, dw, relu } = *g;
    let gpu = gy.gpu();
    let Gemm { n, cin, hw, cout } = Gemm::of(p);
    let blocks = cin.div_ceil(4) * cout.div_ceil(4);
    // Enough (block, chunk) threads to fill the device, chunks of ≥ 64 positions and of a
    // multiple of 4 (the vec4 variant reads 4 at a time); or one chunk (no second pass) where
    // that serial work costs less than a launch and leaves no CPU thread idle.
    let policy = gpu.policy();
    let one_pass = policy.weight_grad_one_pass(n * hw * 16, blocks, 256);
    // Else, on CPU adapters of several threads: one equal workgroup (a chunk) per thread.
    let split = match one_pass {
        true => None,
        false => policy.weight_grad_split(blocks, (n * hw) / 4),
    };
    let chunk = match split {
        _ if one_pass => (n * hw).next_multiple_of(4),
        Some((chunks, _)) => (n * hw).div_ceil(chunks).next_multiple_of(4),
        None => (n * hw * blocks)
            .div_ceil(policy.weight_grad_threads)
            .max(64)
            .next_multiple_of(4),
    };
    let chunks = (n * hw).div_ceil(chunk);
    let pp = PointwiseParams {
        n: n as u32,
        m: cout as u32,
        k: cin as u32,
        hw: hw as u32,
        a_rs: 0,
        a_cs: 0,
        per: chunk as u32,
        chunks: chunks as u32,
    };
    let bias_parts = db.map_or(0, |_| cout.div_ceil(4) * chunks * 4);
    let part = if chunks == 1 {
        dw.buffer().clone()
    } else {
        gpu.alloc(
            "pointwise weight-gradient partials",
            blocks * chunks * 16 + bias_parts,
        )?
    };
    let mut bufs = vec![gy.buffer(), x.buffer(), &part];
    // The vec4 kernel (planes of a multiple of 4) has the lane path and the bias's sums: db
    // (written directly with one chunk) at 4 where there is one, else dw's partials.
    let (entry, lanes) = match (hw.is_multiple_of(4), db) {
        (true, db) => {
            bufs.push(db.map_or(&part, |d| d.buffer()));
            let lanes = super::weight_grad_lanes(&policy, cout, cin);
            ("weight_grad_partial4", lanes)
        }
        (false, None) => ("weight_grad_partial", &[][..]),
        (false, Some(_)) => {
            return Err(Error::shape(
                "conv2d",
                "a 1×1 bias gradient needs planes of a multiple of 4",
            ))
        }
    };
    let direct: &[(&str, u32)] = if chunks == 1 { &[("DIRECT", 1)] } else { &[] };
    let bias: &[(&str, u32)] = if db.is_some() { &[("DB", 1)] } else { &[] };
    // Only the vec4 entry takes a workgroup size (WPG); the other stays at 256.
    let (group, wpg): (usize, &[(&str, u32)]) = match (entry, split) {
        ("weight_grad_partial4", Some((_, g))) => (g, &[("WPG", g as u32)]),
        _ => (256, &[]),
    };
    let consts = [relu_consts(relu), direct, bias, lanes, wpg].concat();
    let groups = (blocks * chunks).div_ceil(group);
    gpu.launch_spec(
        "pointwise",
        entry,
        &consts,
        pp.words(),
        &bufs,
        Work::Groups(groups),
    )?;
    if chunks > 1 {
        let (entries, n) = match db {
            Some(db) => (
                ["weight_grad_sum_bias", "weight_grad_sum_bias_wg"],
                dw.numel() + db.numel(),
            ),
            None => (["weight_grad_sum", "weight_grad_sum_wg"], dw.numel()),
        };
        let mut bufs = vec![&part, dw.buffer()];
        bufs.extend(db.map(|d| d.buffer()));
        let (entry, work) = super::chunk_sum(&policy, chunks, entries, n);
        gpu.launch("pointwise", entry, pp.words(), &bufs, work)?;
    }
    Ok(())
}

/// y[b] (m × hw) = A (m × k, strides `a`) · relu?(x[b]) (k × hw) (+ bias per row), for every
/// image b. `relu` reads x through a ReLU; `mask` writes y only where mask > 0.
/// With `stats` (and no mask) on planes of a multiple of 4, `gemm4_stats` also writes the
/// batch-norm statistics of y's rows, returned for `Tape::batch_norm_with_stats`.
fn gemm(
    io: Io,
    [n, m, k, hw]: [usize; 4],
    [a_rs, a_cs]: [usize; 2],
    relu: bool,
    stats: bool,
) -> Result<Option<ChannelStats>> {
    let Io {
        x,
        a,
        y,
        bias,
        mask,
    } = io;
    let gpu = x.gpu();
    let pp = PointwiseParams {
        n: n as u32,
        m: m as u32,
        k: k as u32,
        hw: hw as u32,
        a_rs: a_rs as u32,
        a_cs: a_cs as u32,
        per: 0,
        chunks: 0,
    };
    let pp = pp.words();
    // Without MASK binding 4 is unused: x (also only read) stands in.
    let bufs = [
        a.buffer(),
        x.buffer(),
        y.buffer(),
        mask.unwrap_or(x).buffer(),
    ];
    let mc: &[(&str, u32)] = if mask.is_some() { &[("MASK", 1)] } else { &[] };
    if !hw.is_multiple_of(4) {
        // `applies` sends no bias here.
        debug_assert!(bias.is_none());
        let consts = [relu_consts(relu), mc].concat();
        let grid = [(n * hw).div_ceil(256), m.div_ceil(4), 1];
        gpu.launch_spec("pointwise", "gemm", &consts, pp, &bufs, grid)?;
        return Ok(None);
    }
    // Four pixels per thread (they always fall in one image), up to 16 output rows; a
    // workgroup column of 1,024 positions is one chunk of the statistics.
    // On GPUs no more rows per thread than still leave the policy's threads (C=64 at 8×8,
    // batch 64: 16 rows a thread gave 16 workgroups for an H200's 132 multiprocessors).
    let most = gpu.policy().channels_per_thread(n * hw / 4, m);
    let rb = [16, 8, 4]
        .into_iter()
        .find(|&r| m >= r && r <= most)
        .unwrap_or(4);
    // a read from its uniform window where it has one; x stands in for a missing bias.
    let (window, uw) = gpu.window_for(a.buffer());
    let bufs = [&bufs[..], &[&uw, bias.unwrap_or(x).buffer()]].concat();
    let consts = [
        relu_consts(relu),
        mc,
        &[
            ("RB", rb as u32),
            ("UW", window as u32),
            ("BIAS", bias.is_some() as u32),
        ],
        gpu.policy().lanes_consts(),
    ]
    .concat();
    if !stats || mask.is_some() {
        let qw = gpu.policy().quads_per_group(n * hw / 4);
        let consts = [&consts[..], &[("QW", qw as u32)]].concat();
        let grid = [(n * hw / 4).div_ceil(qw), m.div_ceil(rb), 1];
        gpu.launch_spec("pointwise", "gemm4", &consts, pp, &bufs, grid)?;
        return Ok(None);
    }
    let parts = (n * hw).div_ceil(1024);
    let grid = [parts, m.div_ceil(rb), 1];
    let part = Tensor::empty(gpu, &[3 * m * parts], "conv2d output statistics")?;
    let bufs = [&bufs[..], &[part.buffer()]].concat();
    gpu.launch_spec("pointwise", "gemm4_stats", &consts, pp, &bufs, grid)?;
    Ok(Some(ChannelStats::new(part, parts, y)))
}
