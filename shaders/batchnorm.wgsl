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
//   sum_forward4, sum_backward4, sum_alpha: a mixed edge's batch norms and weighted sum in one
//                    launch each way (bindings and parameter block MS at the end of the file).
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

struct Run { start: u32, end: u32, img: u32, j: u32, q: u32 }

fn lane_run(li: u32) -> Run {
    let q = p.hw / 4u;
    let m4 = p.n * q;
    let per = (m4 + LW - 1u) / LW;
    let start = min(li * per, m4);
    return Run(start, min(start + per, m4), start / q, start % q, q);
}

fn run_next(r: ptr<function, Run>) {
    (*r).j = (*r).j + 1u;
    if ((*r).j == (*r).q) { (*r).j = 0u; (*r).img = (*r).img + 1u; }
}

// The vec4 index of the run's current item in channel `ch`.
fn run_at(r: Run, ch: u32) -> u32 {
    return (r.img * p.c + ch) * r.q + r.j;
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
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
    let q = p.hw / 4u;
    return Run(0u, p.n * q, 0u, 0u, q);
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

// ---- Normalised sums: a mixed edge's tail in one launch each way ----
// out = Σ_t w_t · v_t in term order, v_t = batch_norm(x_k) (train mode, no affine) for a
// normalised term (slot k < ms.g) or z_j for a plain one (slot j < ms.z); w_t = table A or B at
// ms.idx[t]. One thread per channel, no barriers (CPU adapters, small channels).
//   sum_forward4   1..6 x0..x5, 7 saved (g × 4c: mean | invstd | Σgy | Σgy·x̂ per slot),
//                  8 running (g × 2c: mean | var, gathered from the modules by copies),
//                  9 table A, 10 table B, 11 out, 12..13 z0..z1
//   sum_backward4  1..6 x0..x5, 7 gy, 8 saved, 9 table A, 10..15 dx0..dx5 (written where bit k
//                  of ms.need is set): dx_k = invstd_k·w_k·(gy − Σgy/m − x̂_k·Σ(gy·x̂_k)/m),
//                  leaving Σgy and Σgy·x̂_k (unscaled) in saved
//   sum_alpha      1 saved, 2 d table A: d[idx_k] += Σ_c Σ(gy·x̂_k), one thread
// Unused slots are bound to any buffer of the right access and never touched.
struct MS {
    n: u32, c: u32, hw: u32, g: u32,
    z: u32, m: u32, need: u32, _p: u32,
    eps: f32, momentum: f32, _q: u32, _r: u32,
    // Per term: kind (slot k for x_k, 16 + j for z_j), table (0 = A, 1 = B), index.
    kind: array<vec4<u32>, 2>,
    tab: array<vec4<u32>, 2>,
    idx: array<vec4<u32>, 2>,
    // Per normalised slot: its weight's index in table A.
    sidx: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> ms: MS;

@group(0) @binding(1) var<storage, read> ms_x0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ms_x1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> ms_x2: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> ms_x3: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> ms_x4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> ms_x5: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> ms_saved: array<f32>;
@group(0) @binding(8) var<storage, read_write> ms_run: array<f32>;
@group(0) @binding(9) var<storage, read> ms_a: array<f32>;
@group(0) @binding(10) var<storage, read> ms_b: array<f32>;
@group(0) @binding(11) var<storage, read_write> ms_out: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> ms_z0: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> ms_z1: array<vec4<f32>>;

fn ms_x(k: u32, i: u32) -> vec4<f32> {
    switch k {
        case 0u: { return ms_x0[i]; }
        case 1u: { return ms_x1[i]; }
        case 2u: { return ms_x2[i]; }
        case 3u: { return ms_x3[i]; }
        case 4u: { return ms_x4[i]; }
        default: { return ms_x5[i]; }
    }
}

fn ms_weight(t: u32) -> f32 {
    let i = ms.idx[t / 4u][t % 4u];
    if (ms.tab[t / 4u][t % 4u] == 0u) { return ms_a[i]; }
    return ms_b[i];
}

// Channel ch's vec4s are n planes of q = hw / 4: plane b starts at (b·c + ch)·q. The loops
// below walk them image by image (as whole_run does), with no division per element.
fn ms_plane(b: u32, ch: u32) -> u32 {
    return (b * ms.c + ch) * (ms.hw / 4u);
}

@compute @workgroup_size(8)
fn sum_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg) * 8u + li;
    if (ch >= ms.c) { return; }
    let m = ms.n * ms.hw;
    let mf = f32(m);
    var mean: array<f32, 6>;
    var inv: array<f32, 6>;
    let q = ms.hw / 4u;
    for (var k = 0u; k < ms.g; k = k + 1u) {
        var acc = vec4<f32>(0.0);
        for (var b = 0u; b < ms.n; b = b + 1u) {
            let at = ms_plane(b, ch);
            for (var j = 0u; j < q; j = j + 1u) { acc = acc + ms_x(k, at + j); }
        }
        let mu = hsum(acc) / mf;
        var acc2 = vec4<f32>(0.0);
        for (var b = 0u; b < ms.n; b = b + 1u) {
            let at = ms_plane(b, ch);
            for (var j = 0u; j < q; j = j + 1u) {
                let d = ms_x(k, at + j) - mu;
                acc2 = acc2 + d * d;
            }
        }
        let var_b = hsum(acc2) / mf;
        mean[k] = mu;
        inv[k] = 1.0 / sqrt(var_b + ms.eps);
        let base = k * 4u * ms.c;
        ms_saved[base + ch] = mu;
        ms_saved[base + ms.c + ch] = inv[k];
        let unbiased = var_b * mf / f32(max(m, 2u) - 1u);
        let r = k * 2u * ms.c;
        ms_run[r + ch] = (1.0 - ms.momentum) * ms_run[r + ch] + ms.momentum * mu;
        ms_run[r + ms.c + ch] = (1.0 - ms.momentum) * ms_run[r + ms.c + ch] + ms.momentum * unbiased;
    }
    // The weights, read once (a storage load per lane and term would dominate the loop).
    var wt: array<f32, 8>;
    for (var j = 0u; j < ms.m; j = j + 1u) { wt[j] = ms_weight(j); }
    for (var b = 0u; b < ms.n; b = b + 1u) {
        let at = ms_plane(b, ch);
        for (var jq = 0u; jq < q; jq = jq + 1u) {
            let i = at + jq;
            var acc = vec4<f32>(0.0);
            for (var j = 0u; j < ms.m; j = j + 1u) {
                let kind = ms.kind[j / 4u][j % 4u];
                var v: vec4<f32>;
                if (kind < 16u) {
                    v = (ms_x(kind, i) - mean[kind]) * inv[kind];
                } else if (kind == 16u) {
                    v = ms_z0[i];
                } else {
                    v = ms_z1[i];
                }
                // The first term starts the sum (as weighted_sum4 does), the rest add in order.
                if (j == 0u) { acc = wt[j] * v; } else { acc = acc + wt[j] * v; }
            }
            ms_out[i] = acc;
        }
    }
}

@group(0) @binding(7) var<storage, read> msb_gy: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> msb_saved: array<f32>;
@group(0) @binding(10) var<storage, read_write> msb_dx0: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read_write> msb_dx1: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> msb_dx2: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> msb_dx3: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> msb_dx4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read_write> msb_dx5: array<vec4<f32>>;

fn msb_store(k: u32, i: u32, v: vec4<f32>) {
    switch k {
        case 0u: { msb_dx0[i] = v; }
        case 1u: { msb_dx1[i] = v; }
        case 2u: { msb_dx2[i] = v; }
        case 3u: { msb_dx3[i] = v; }
        case 4u: { msb_dx4[i] = v; }
        default: { msb_dx5[i] = v; }
    }
}

@compute @workgroup_size(8)
fn sum_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg) * 8u + li;
    if (ch >= ms.c) { return; }
    let mf = f32(ms.n * ms.hw);
    var mean: array<f32, 6>;
    var inv: array<f32, 6>;
    var s: array<vec4<f32>, 6>;
    for (var k = 0u; k < ms.g; k = k + 1u) {
        mean[k] = msb_saved[k * 4u * ms.c + ch];
        inv[k] = msb_saved[k * 4u * ms.c + ms.c + ch];
        s[k] = vec4<f32>(0.0);
    }
    let q = ms.hw / 4u;
    var gs = vec4<f32>(0.0);
    for (var b = 0u; b < ms.n; b = b + 1u) {
        let at = ms_plane(b, ch);
        for (var jq = 0u; jq < q; jq = jq + 1u) {
            let i = at + jq;
            let g = msb_gy[i];
            gs = gs + g;
            for (var k = 0u; k < ms.g; k = k + 1u) {
                s[k] = s[k] + g * ((ms_x(k, i) - mean[k]) * inv[k]);
            }
        }
    }
    let sum_g = hsum(gs);
    var sum_gx: array<f32, 6>;
    for (var k = 0u; k < ms.g; k = k + 1u) {
        sum_gx[k] = hsum(s[k]);
        msb_saved[k * 4u * ms.c + 2u * ms.c + ch] = sum_g;
        msb_saved[k * 4u * ms.c + 3u * ms.c + ch] = sum_gx[k];
    }
    var wt: array<f32, 6>;
    for (var k = 0u; k < ms.g; k = k + 1u) { wt[k] = ms_a[ms.sidx[k / 4u][k % 4u]]; }
    for (var b = 0u; b < ms.n; b = b + 1u) {
        let at = ms_plane(b, ch);
        for (var jq = 0u; jq < q; jq = jq + 1u) {
            let i = at + jq;
            let g = msb_gy[i];
            for (var k = 0u; k < ms.g; k = k + 1u) {
                if ((ms.need & (1u << k)) == 0u) { continue; }
                let xh = (ms_x(k, i) - mean[k]) * inv[k];
                msb_store(k, i, inv[k] * wt[k] * (g - sum_g / mf - xh * sum_gx[k] / mf));
            }
        }
    }
}

@group(0) @binding(1) var<storage, read> msa_saved: array<f32>;
@group(0) @binding(2) var<storage, read_write> msa_d: array<f32>;

@compute @workgroup_size(1)
fn sum_alpha() {
    for (var k = 0u; k < ms.g; k = k + 1u) {
        var t = 0.0;
        for (var ch = 0u; ch < ms.c; ch = ch + 1u) { t = t + msa_saved[k * 4u * ms.c + 3u * ms.c + ch]; }
        let i = ms.sidx[k / 4u][k % 4u];
        msa_d[i] = msa_d[i] + t;
    }
}
