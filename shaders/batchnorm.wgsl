// batchnorm.wgsl: batch normalisation over (n, hw) per channel, train and eval mode.
// x, y, dy, dx: (n, c, hw) f32. saved: 4*c floats [mean | invstd | sum(dy) | sum(dy*xhat)],
// filled by the train entries or eval_stats (eval) and by backward_reduce. gamma, beta: (c),
// dummies when p.affine == 0. running_mean / running_var: (c), updated in train mode as
// running = (1 - momentum) * running + momentum * batch, the variance unbiased (m / (m - 1));
// normalisation uses the biased variance. With p.x_is_xhat = 1 the backward entries get the
// normalised output (x̂, what a BN without affine returns) in place of x, so the input need
// not be kept for backward.
// Entries and bindings (0 = params):
//   eval_stats       1 running_mean, 2 running_var, 3 saved       one thread per channel
//   normalize        1 x, 2 saved, 3 gamma, 4 beta, 5 y           one thread per element
//   normalize4       eval mode for planes of a multiple of 4 values, without eval_stats:
//                    1 x, 2 running_mean, 3 running_var, 4 gamma, 5 beta, 6 y (x, y as vec4
//                    arrays; mean and invstd from the running statistics as eval_stats
//                    computes them)                                one thread per 4 values
//   backward_reduce  1 x, 2 dy, 3 saved                           one workgroup per channel
//   backward_dx      1 x, 2 dy, 3 saved, 4 gamma, 5 dx, 6 scale table (p.scaled, below)
//                                                                 one thread per element
//   train_forward    statistics + normalize in one launch: 1 x, 2 saved, 3 running_mean,
//                    4 running_var, 5 gamma, 6 beta, 7 y          one workgroup per channel
//   backward_fused   backward_reduce + backward_dx (train mode): 1 x, 2 dy, 3 saved, 4 gamma,
//                    5 dx, 6 scale table                           one workgroup per channel
//                    With p.scaled = 1 the gradient is dy·table[p.sidx] (a mixed edge's weight
//                    times its output gradient), folded in here instead of materialised.
//   train_forward4, backward_fused4: the same for planes of a multiple of 4 values, with x, y,
//                    dy, dx bound as vec4 arrays; workgroups of LW = 64 threads, each walking
//                    its own contiguous run of vec4s. On CPU adapters (lavapipe executes a
//                    storage load lane by lane) that takes 2–4× less time than a 256-wide
//                    workgroup striding over scalars.
//   train_forward_serial4, backward_serial4: the same with one thread per channel and no
//                    barriers (workgroups of 8 channels), for small channels on CPU adapters.
// On GPUs one workgroup per channel leaves most of the device idle, so the reductions split
// each channel's n·hw values into p.parts chunks of p.len (workgroup = (channel, chunk)):
//   stats_partial    1 x, 2 part (3 per chunk: count, chunk mean, chunk Σ(x − mean)²); a
//                    1×1 kernel producing x may have written these already (gemm4_stats,
//                    dw_pw4_stats)
//   normalize_split  train_forward's bindings, 8 part: workgroup (channel, chunk) combines
//                    the channel's chunks (Chan's formula, stable like the two-pass one),
//                    chunk 0 stores the statistics, and each normalises its own chunk
//   grad_partial     1 x, 2 dy, 3 saved (read-write binding, only read), 4 part (2 per chunk:
//                    Σ dy, Σ dy·x̂)
//   backward_dx_split  backward_fused's bindings, 7 part: the same for the gradient sums
//                    (scaled by table[p.sidx] with p.scaled = 1) and dx
//   grad_finish      1 part, 2 saved, 3 scale table               one thread per channel:
//                    the sums alone, for the affine gradients when x needs no dx
// The per-channel loops walk (image, pixel) by increments: no division per element.
// Workgroup size 256 (64 for the vec4 variants).

struct P {
    n: u32, c: u32, hw: u32, affine: u32,
    eps: f32, momentum: f32, update_running: u32, train: u32,
    x_is_xhat: u32, parts: u32, len: u32, scaled: u32,
    sidx: u32,
}
@group(0) @binding(0) var<uniform> p: P;

// Offset of the t-th value of channel `ch` (t over images × pixels), for t = li, li + WG, …:
// `start` gives the first (image, pixel), `next` advances by step = (WG / hw, WG % hw).
fn walk_start(li: u32) -> vec2<u32> {
    return vec2<u32>(li / p.hw, li % p.hw);
}
fn walk_next(at: vec2<u32>, step: vec2<u32>) -> vec2<u32> {
    var b = at.x + step.x;
    var px = at.y + step.y;
    if (px >= p.hw) { px = px - p.hw; b = b + 1u; }
    return vec2<u32>(b, px);
}

@group(0) @binding(1) var<storage, read> st_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> st_saved: array<f32>;
@group(0) @binding(3) var<storage, read_write> st_rm: array<f32>;
@group(0) @binding(4) var<storage, read_write> st_rv: array<f32>;
// Mean and Σ(x − mean)² of values [start, end) of channel `ch` (t over images × pixels);
// every thread of the workgroup gets them. The second pass over centred values is stable
// where E[x²] − E[x]² is not.
fn chunk_mean_m2(ch: u32, start: u32, end: u32, li: u32) -> vec2<f32> {
    let cc = min(ch, p.c - 1u);
    let step = vec2<u32>(WG / p.hw, WG % p.hw);
    var acc = 0.0;
    var at = walk_start(start + li);
    for (var t = start + li; t < end; t = t + WG) {
        acc = acc + st_x[(at.x * p.c + cc) * p.hw + at.y];
        at = walk_next(at, step);
    }
    let mean = tree_sum(li, acc) / max(f32(max(end, start) - start), 1.0);
    var acc2 = 0.0;
    at = walk_start(start + li);
    for (var t = start + li; t < end; t = t + WG) {
        let d = st_x[(at.x * p.c + cc) * p.hw + at.y] - mean;
        acc2 = acc2 + d * d;
        at = walk_next(at, step);
    }
    return vec2<f32>(mean, tree_sum(li, acc2));
}

// Stores channel `ch`'s mean and 1/sqrt(var + eps) in saved and, in train mode, moves the
// running statistics towards the batch's (the variance made unbiased).
fn store_stats(ch: u32, mean: f32, var_b: f32, invstd: f32) {
    st_saved[ch] = mean;
    st_saved[p.c + ch] = invstd;
    if (p.update_running != 0u) {
        let m = p.n * p.hw;
        let unbiased = var_b * f32(m) / f32(max(m, 2u) - 1u);
        st_rm[ch] = (1.0 - p.momentum) * st_rm[ch] + p.momentum * mean;
        st_rv[ch] = (1.0 - p.momentum) * st_rv[ch] + p.momentum * unbiased;
    }
}

// Batch mean and 1/sqrt(var + eps) of channel `ch` (every thread gets them); thread 0 also
// stores them (store_stats).
fn channel_stats(ch: u32, li: u32) -> vec2<f32> {
    let m = p.n * p.hw;
    let mm2 = chunk_mean_m2(ch, 0u, m, li);
    let mean = mm2.x;
    let var_b = mm2.y / f32(m);
    let invstd = 1.0 / sqrt(var_b + p.eps);
    if (li == 0u && ch < p.c) { store_stats(ch, mean, var_b, invstd); }
    return vec2<f32>(mean, invstd);
}

@group(0) @binding(5) var<storage, read> tf_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> tf_beta: array<f32>;
@group(0) @binding(7) var<storage, read_write> tf_y: array<f32>;

// stats and normalize in one launch: the workgroup that owns a channel normalises it.
@compute @workgroup_size(256)
fn train_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg);
    let s = channel_stats(ch, li);
    if (ch >= p.c) { return; }
    normalize_chunk(ch, 0u, p.n * p.hw, li, s.x, s.y);
}

// y = (x − mean)·invstd (·γ + β) for values [start, end) of channel `ch` (t over images ×
// pixels, thread li from start + li by WG).
fn normalize_chunk(ch: u32, start: u32, end: u32, li: u32, mean: f32, invstd: f32) {
    let step = vec2<u32>(WG / p.hw, WG % p.hw);
    var at = walk_start(start + li);
    for (var t = start + li; t < end; t = t + WG) {
        let k = (at.x * p.c + ch) * p.hw + at.y;
        var v = (st_x[k] - mean) * invstd;
        if (p.affine != 0u) { v = v * tf_gamma[ch] + tf_beta[ch]; }
        tf_y[k] = v;
        at = walk_next(at, step);
    }
}

@group(0) @binding(1) var<storage, read> es_rm: array<f32>;
@group(0) @binding(2) var<storage, read> es_rv: array<f32>;
@group(0) @binding(3) var<storage, read_write> es_saved: array<f32>;
@compute @workgroup_size(256)
fn eval_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = gid(wg, nwg, li);
    if (ch >= p.c) { return; }
    es_saved[ch] = es_rm[ch];
    es_saved[p.c + ch] = 1.0 / sqrt(es_rv[ch] + p.eps);
}

@group(0) @binding(1) var<storage, read> nm_x: array<f32>;
@group(0) @binding(2) var<storage, read> nm_saved: array<f32>;
@group(0) @binding(3) var<storage, read> nm_gamma: array<f32>;
@group(0) @binding(4) var<storage, read> nm_beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> nm_y: array<f32>;
@compute @workgroup_size(256)
fn normalize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * p.hw) { return; }
    let ch = (i / p.hw) % p.c;
    var v = (nm_x[i] - nm_saved[ch]) * nm_saved[p.c + ch];
    if (p.affine != 0u) { v = v * nm_gamma[ch] + nm_beta[ch]; }
    nm_y[i] = v;
}

// Eval mode where nothing needs the statistics afterwards (an inference pass): the channel's
// mean and invstd straight from the running statistics, four values a thread (one channel:
// p.hw is a multiple of 4), so a batch norm is one launch and a quarter of the loads.
@group(0) @binding(1) var<storage, read> n4_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> n4_rm: array<f32>;
@group(0) @binding(3) var<storage, read> n4_rv: array<f32>;
@group(0) @binding(4) var<storage, read> n4_gamma: array<f32>;
@group(0) @binding(5) var<storage, read> n4_beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> n4_y: array<vec4<f32>>;
@compute @workgroup_size(256)
fn normalize4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * (p.hw / 4u)) { return; }
    let ch = (i / (p.hw / 4u)) % p.c;
    let invstd = 1.0 / sqrt(n4_rv[ch] + p.eps);
    var v = (n4_x[i] - vec4<f32>(n4_rm[ch])) * invstd;
    if (p.affine != 0u) { v = v * n4_gamma[ch] + n4_beta[ch]; }
    n4_y[i] = v;
}

@group(0) @binding(1) var<storage, read> br_x: array<f32>;
@group(0) @binding(2) var<storage, read> br_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> br_saved: array<f32>;
// Σ dy and Σ dy·x̂ over values [start, end) of channel `ch`; every thread gets them.
fn chunk_grad_sums(ch: u32, start: u32, end: u32, li: u32) -> vec2<f32> {
    let cc = min(ch, p.c - 1u);
    let mean = br_saved[cc];
    let invstd = br_saved[p.c + cc];
    var s1 = 0.0;
    var s2 = 0.0;
    let step = vec2<u32>(WG / p.hw, WG % p.hw);
    var at = walk_start(start + li);
    for (var t = start + li; t < end; t = t + WG) {
        let k = (at.x * p.c + cc) * p.hw + at.y;
        at = walk_next(at, step);
        let g = br_dy[k];
        s1 = s1 + g;
        var xhat = (br_x[k] - mean) * invstd;
        if (p.x_is_xhat != 0u) { xhat = br_x[k]; }
        s2 = s2 + g * xhat;
    }
    return vec2<f32>(tree_sum(li, s1), tree_sum(li, s2));
}

// Σ dy and Σ dy·x̂ of channel `ch` (every thread gets them); thread 0 stores them in saved.
fn channel_grad_sums(ch: u32, li: u32) -> vec2<f32> {
    let sums = chunk_grad_sums(ch, 0u, p.n * p.hw, li);
    let sum_dy = sums.x;
    let sum_dyx = sums.y;
    if (li == 0u && ch < p.c) {
        br_saved[2u * p.c + ch] = sum_dy;
        br_saved[3u * p.c + ch] = sum_dyx;
    }
    return vec2<f32>(sum_dy, sum_dyx);
}

@compute @workgroup_size(256)
fn backward_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    channel_grad_sums(group_index(wg, nwg), li);
}

@group(0) @binding(4) var<storage, read> bf_gamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> bf_dx: array<f32>;
@group(0) @binding(6) var<storage, read> bf_scale: array<f32>;

// The factor on dy: table[p.sidx] when the gradient comes scaled, else 1.
fn dy_factor() -> f32 {
    if (p.scaled != 0u) { return bf_scale[p.sidx]; }
    return 1.0;
}

// backward_reduce and backward_dx (train mode) in one launch, one workgroup per channel.
@compute @workgroup_size(256)
fn backward_fused(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg);
    let sg = dy_factor();
    let raw = chunk_grad_sums(ch, 0u, p.n * p.hw, li);
    let sums = sg * raw;
    if (ch >= p.c) { return; }
    if (li == 0u) {
        br_saved[2u * p.c + ch] = sums.x;
        br_saved[3u * p.c + ch] = sums.y;
    }
    dx_chunk(ch, 0u, p.n * p.hw, li, sg, sums);
}

// dx for values [start, end) of channel `ch` (t over images × pixels, thread li from start +
// li by WG) from the (scaled) sums Σ dy and Σ dy·x̂ and the dy factor sg.
fn dx_chunk(ch: u32, start: u32, end: u32, li: u32, sg: f32, sums: vec2<f32>) {
    let mean = br_saved[ch];
    let invstd = br_saved[p.c + ch];
    var scale = invstd;
    if (p.affine != 0u) { scale = scale * bf_gamma[ch]; }
    let m = f32(p.n * p.hw);
    let step = vec2<u32>(WG / p.hw, WG % p.hw);
    var at = walk_start(start + li);
    for (var t = start + li; t < end; t = t + WG) {
        let k = (at.x * p.c + ch) * p.hw + at.y;
        at = walk_next(at, step);
        var xhat = (br_x[k] - mean) * invstd;
        if (p.x_is_xhat != 0u) { xhat = br_x[k]; }
        bf_dx[k] = scale * (sg * br_dy[k] - sums.x / m - xhat * sums.y / m);
    }
}

@group(0) @binding(1) var<storage, read> bd_x: array<f32>;
@group(0) @binding(2) var<storage, read> bd_dy: array<f32>;
@group(0) @binding(3) var<storage, read> bd_saved: array<f32>;
@group(0) @binding(4) var<storage, read> bd_gamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> bd_dx: array<f32>;
@compute @workgroup_size(256)
fn backward_dx(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * p.hw) { return; }
    let ch = (i / p.hw) % p.c;
    let invstd = bd_saved[p.c + ch];
    var scale = invstd;
    if (p.affine != 0u) { scale = scale * bd_gamma[ch]; }
    if (p.train != 0u) {
        let m = f32(p.n * p.hw);
        var xhat = (bd_x[i] - bd_saved[ch]) * invstd;
        if (p.x_is_xhat != 0u) { xhat = bd_x[i]; }
        bd_dx[i] = scale * (dy_factor() * bd_dy[i] - bd_saved[2u * p.c + ch] / m - xhat * bd_saved[3u * p.c + ch] / m);
    } else {
        bd_dx[i] = scale * dy_factor() * bd_dy[i];
    }
}

// Split reductions (GPUs): see the header.
@group(0) @binding(2) var<storage, read_write> sp_part: array<f32>;

@compute @workgroup_size(256)
fn stats_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let start = (g % p.parts) * p.len;
    let end = min(start + p.len, p.n * p.hw);
    let mm2 = chunk_mean_m2(g / p.parts, start, end, li);
    if (li == 0u && g < p.c * p.parts) {
        sp_part[3u * g] = f32(max(end, start) - start);
        sp_part[3u * g + 1u] = mm2.x;
        sp_part[3u * g + 2u] = mm2.y;
    }
}


// The statistics and the normalisation in one launch: workgroup (channel, chunk) = (g / parts,
// g % parts) combines the channel's chunk statistics at 8 (every workgroup of the channel the
// same way, so they agree) and normalises values [chunk·len, +len) of the channel; chunk 0
// stores the statistics and moves the running ones. Bindings as train_forward's, plus 8 part.
@group(0) @binding(8) var<storage, read> ns_part: array<f32>;

@compute @workgroup_size(256)
fn normalize_split(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let ch = min(g / p.parts, p.c - 1u);
    let m = f32(p.n * p.hw);
    var acc = 0.0;
    for (var k = li; k < p.parts; k = k + WG) {
        let q = 3u * (ch * p.parts + k);
        acc = acc + ns_part[q] * ns_part[q + 1u];
    }
    let mean = tree_sum(li, acc) / m;
    var acc2 = 0.0;
    for (var k = li; k < p.parts; k = k + WG) {
        let q = 3u * (ch * p.parts + k);
        let d = ns_part[q + 1u] - mean;
        acc2 = acc2 + ns_part[q + 2u] + ns_part[q] * d * d;
    }
    let var_b = tree_sum(li, acc2) / m;
    let invstd = 1.0 / sqrt(var_b + p.eps);
    if (g >= p.c * p.parts) { return; }
    if (li == 0u && g % p.parts == 0u) { store_stats(ch, mean, var_b, invstd); }
    let start = (g % p.parts) * p.len;
    normalize_chunk(ch, start, min(start + p.len, p.n * p.hw), li, mean, invstd);
}

@group(0) @binding(4) var<storage, read_write> gp_part: array<f32>;

@compute @workgroup_size(256)
fn grad_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let start = (g % p.parts) * p.len;
    let end = min(start + p.len, p.n * p.hw);
    let sums = chunk_grad_sums(g / p.parts, start, end, li);
    if (li == 0u && g < p.c * p.parts) {
        gp_part[2u * g] = sums.x;
        gp_part[2u * g + 1u] = sums.y;
    }
}

@group(0) @binding(1) var<storage, read> gf_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> gf_saved: array<f32>;
@group(0) @binding(3) var<storage, read> gf_scale: array<f32>;

@compute @workgroup_size(256)
fn grad_finish(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = gid(wg, nwg, li);
    if (ch >= p.c) { return; }
    var s1 = 0.0;
    var s2 = 0.0;
    for (var k = 0u; k < p.parts; k = k + 1u) {
        s1 = s1 + gf_part[2u * (ch * p.parts + k)];
        s2 = s2 + gf_part[2u * (ch * p.parts + k) + 1u];
    }
    // The sums are linear in dy: the partials stay unscaled and the factor applies here.
    var sg = 1.0;
    if (p.scaled != 0u) { sg = gf_scale[p.sidx]; }
    gf_saved[2u * p.c + ch] = sg * s1;
    gf_saved[3u * p.c + ch] = sg * s2;
}

// grad_finish and backward_dx (train mode) in one launch: workgroup (channel, chunk) sums the
// channel's partial Σ dy and Σ dy·x̂ at 7 and writes dx for values [chunk·len, +len) of the
// channel; chunk 0 stores the (scaled) sums. Bindings as backward_fused's, plus 7 part.
@group(0) @binding(7) var<storage, read> bs_part: array<f32>;

@compute @workgroup_size(256)
fn backward_dx_split(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let ch = min(g / p.parts, p.c - 1u);
    var s1 = 0.0;
    var s2 = 0.0;
    for (var k = li; k < p.parts; k = k + WG) {
        s1 = s1 + bs_part[2u * (ch * p.parts + k)];
        s2 = s2 + bs_part[2u * (ch * p.parts + k) + 1u];
    }
    let sg = dy_factor();
    let sums = sg * vec2<f32>(tree_sum(li, s1), tree_sum(li, s2));
    if (g >= p.c * p.parts) { return; }
    if (li == 0u && g % p.parts == 0u) {
        br_saved[2u * p.c + ch] = sums.x;
        br_saved[3u * p.c + ch] = sums.y;
    }
    let start = (g % p.parts) * p.len;
    dx_chunk(ch, start, min(start + p.len, p.n * p.hw), li, sg, sums);
}

// vec4 variants (see the header). A channel's values are n planes of q = hw / 4 vec4s; thread
// li walks items [start, end) of the n·q, image by image.
const LW: u32 = 64u;

fn lane_run(li: u32) -> Run {
    return run_of(li, LW, p.n, p.hw);
}

// The vec4 index of the run's current item in channel `ch`.
fn run_at(r: Run, ch: u32) -> u32 {
    return run_index(r, p.c, ch);
}

@group(0) @binding(1) var<storage, read> t4_x: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> t4_y: array<vec4<f32>>;

@compute @workgroup_size(64)
fn train_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg);
    let cc = min(ch, p.c - 1u);
    let m = p.n * p.hw;
    var acc = 0.0;
    var r = lane_run(li);
    for (var t = r.start; t < r.end; t = t + 1u) {
        acc = acc + hsum(t4_x[run_at(r, cc)]);
        run_next(&r);
    }
    let mean = tree_sum_n(li, acc, LW) / f32(m);
    var acc2 = 0.0;
    r = lane_run(li);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let d = t4_x[run_at(r, cc)] - mean;
        acc2 = acc2 + dot(d, d);
        run_next(&r);
    }
    let var_b = tree_sum_n(li, acc2, LW) / f32(m);
    let invstd = 1.0 / sqrt(var_b + p.eps);
    if (ch >= p.c) { return; }
    if (li == 0u) { store_stats(ch, mean, var_b, invstd); }
    normalize_run(lane_run(li), ch, mean, invstd);
}

// y = (x − mean)·invstd (·γ + β) over run r0 of channel ch.
fn normalize_run(r0: Run, ch: u32, mean: f32, invstd: f32) {
    var gamma = 1.0;
    var beta = 0.0;
    if (p.affine != 0u) {
        gamma = tf_gamma[ch];
        beta = tf_beta[ch];
    }
    var r = r0;
    for (var t = r.start; t < r.end; t = t + 1u) {
        let k = run_at(r, ch);
        var v = (t4_x[k] - mean) * invstd;
        if (p.affine != 0u) { v = v * gamma + beta; }
        t4_y[k] = v;
        run_next(&r);
    }
}

@group(0) @binding(1) var<storage, read> b4_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4_dy: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> b4_dx: array<vec4<f32>>;

// x̂ at vec4 k: the saved output itself (p.x_is_xhat) or the normalised input.
fn xhat4(k: u32, mean: f32, invstd: f32) -> vec4<f32> {
    if (p.x_is_xhat != 0u) { return b4_x[k]; }
    return (b4_x[k] - mean) * invstd;
}

@compute @workgroup_size(64)
fn backward_fused4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg);
    let cc = min(ch, p.c - 1u);
    let mean = br_saved[cc];
    let invstd = br_saved[p.c + cc];
    var s1 = 0.0;
    var s2 = 0.0;
    var r = lane_run(li);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let k = run_at(r, cc);
        let g = b4_dy[k];
        let xhat = xhat4(k, mean, invstd);
        s1 = s1 + hsum(g);
        s2 = s2 + dot(g, xhat);
        run_next(&r);
    }
    let sg = dy_factor();
    let sum_dy = sg * tree_sum_n(li, s1, LW);
    let sum_dyx = sg * tree_sum_n(li, s2, LW);
    if (ch >= p.c) { return; }
    if (li == 0u) {
        br_saved[2u * p.c + ch] = sum_dy;
        br_saved[3u * p.c + ch] = sum_dyx;
    }
    var scale = invstd;
    if (p.affine != 0u) { scale = scale * bf_gamma[ch]; }
    let m = f32(p.n * p.hw);
    r = lane_run(li);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let k = run_at(r, ch);
        let xhat = xhat4(k, mean, invstd);
        b4_dx[k] = scale * (sg * b4_dy[k] - sum_dy / m - xhat * sum_dyx / m);
        run_next(&r);
    }
}

// train_forward_serial4, backward_serial4: the same as train_forward4 / backward_fused4 with
// one thread per channel walking all its vec4s, so no barriers. On CPU adapters a barrier
// turns every lane group of the workgroup into a coroutine, which for small channels (a few
// hundred values) costs several times the arithmetic. Workgroups of LW threads = LW channels.
fn whole_run() -> Run {
    return run_whole(p.n, p.hw);
}

const SW: u32 = 8u;

@compute @workgroup_size(8)
fn train_forward_serial4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg) * SW + li;
    if (ch >= p.c) { return; }
    let m = f32(p.n * p.hw);
    var acc = vec4<f32>(0.0);
    var r = whole_run();
    for (var t = r.start; t < r.end; t = t + 1u) {
        acc = acc + t4_x[run_at(r, ch)];
        run_next(&r);
    }
    let mean = hsum(acc) / m;
    var acc2 = vec4<f32>(0.0);
    r = whole_run();
    for (var t = r.start; t < r.end; t = t + 1u) {
        let d = t4_x[run_at(r, ch)] - mean;
        acc2 = acc2 + d * d;
        run_next(&r);
    }
    let var_b = hsum(acc2) / m;
    let invstd = 1.0 / sqrt(var_b + p.eps);
    store_stats(ch, mean, var_b, invstd);
    normalize_run(whole_run(), ch, mean, invstd);
}

@compute @workgroup_size(8)
fn backward_serial4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg) * SW + li;
    if (ch >= p.c) { return; }
    let mean = br_saved[ch];
    let invstd = br_saved[p.c + ch];
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var r = whole_run();
    for (var t = r.start; t < r.end; t = t + 1u) {
        let k = run_at(r, ch);
        let g = b4_dy[k];
        s1 = s1 + g;
        s2 = s2 + g * xhat4(k, mean, invstd);
        run_next(&r);
    }
    let sg = dy_factor();
    let sum_dy = sg * hsum(s1);
    let sum_dyx = sg * hsum(s2);
    br_saved[2u * p.c + ch] = sum_dy;
    br_saved[3u * p.c + ch] = sum_dyx;
    var scale = invstd;
    if (p.affine != 0u) { scale = scale * bf_gamma[ch]; }
    let m = f32(p.n * p.hw);
    r = whole_run();
    for (var t = r.start; t < r.end; t = t + 1u) {
        let k = run_at(r, ch);
        b4_dx[k] = scale * (sg * b4_dy[k] - sum_dy / m - xhat4(k, mean, invstd) * sum_dyx / m);
        run_next(&r);
    }
}
