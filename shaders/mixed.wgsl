// mixed.wgsl: the mixed edge's weighted sum y = Σ_k s_k·y_k (s_k read from GPU tables: the
// softmax of α, or β for the auxiliary skip) and the dot products <g, y_k> that make α's
// gradient, up to 4 terms per launch instead of one launch per term; and that sum with the
// candidates' final batch norms folded in (normalised sums, last section). The tape's
// gradient accumulation and sums of three or more tensors use weighted_sum too.
// Buffers: flat f32 arrays of p.n elements; tables: small f32 arrays; unused term slots are
// bound to any buffer and ignored.
//   weighted_sum4  1..4 y0..y3, 5 table A, 6 table B, 7 out
//                  out = (p.accumulate ? out : 0) + Σ_{k < p.m} s_k · y_k, with s_k = A[idx_k]
//                  when p.tab[k] = 0, B[idx_k] when 1, and 1 when 2 (an unscaled term: the
//                  backward pass sums gradient contributions with it), or the sum of two such
//                  for a tensor in two terms (PAIRS, see coef_of); summed in term order
//                  (as sequential axpys). weighted_sum4_vec4: the same, one thread per 4
//                  elements, for n % 4 == 0.
//                  One thread per element.
//   weighted_sum8_vec4  weighted_sum4_vec4 with up to 8 terms: 8..11 y4..y7, their idx / tab
//                  in p.idx2 / p.tab2 (adapters with at least 11 storage buffers per stage).
//   eval_sum8_vec4 weighted_sum8_vec4 with the eval-mode batch norm (no affine) of each term
//                  whose bit is set in p.norm folded in: term k is (y_k − mean)·invstd per
//                  channel, mean and variance at 2k·c and (2k+1)·c of binding 12 (p.count = c
//                  channels of p.chunk vec4s each, invstd = 1/sqrt(var + eps) as eval_stats
//                  computes it, eps = bitcast<f32>(p.eps_bits)); with EACC = 1 added onto
//                  binding 13 (a node's sum so far). An inference pass's mixed edge in one
//                  launch (13 bindings).
//   dot4_partial   1 g, 2..5 y0..y3, 6 partial (p.m × p.count): workgroup w writes
//                  partial[k·count + w] = Σ over its chunk of g·y_k.  Grid: p.count workgroups.
//                  dot4_partial_vec4: the same with vec4 loads, for n % 4 == 0.
//   dot4_finish    1 partial, 2 out: workgroup k < p.m adds Σ_w partial[k·count + w] to
//                  out[idx_k] (or overwrites it when p.accumulate = 0).  Grid: p.m workgroups.
//   DIRECT = 1 (pipeline constant): one workgroup covers all n, and dot4_partial adds its sums
//                  to out (bound at 6) itself, with no dot4_finish launch.
//   dot4_serial_vec4  the same as DIRECT dot4_partial_vec4 by one thread (no barriers), for
//                  small n where launches are costly.  Grid: 1 workgroup of 1.
//   sum_forward4, sum_backward4, sum_alpha: the edge's final batch norms and weighted sum in
//                  one launch each way (parameter block MS and bindings in their section, at
//                  the end of the file).  Grid: ceil(c / 8) workgroups of 8 (sum_alpha: 1 of 1);
//                  their _group4 forms, for large channels, c workgroups of 64.
// Workgroup size 256 (8 for sum_forward4 / sum_backward4, 64 for their _group4 forms, 1 for
// dot4_serial_vec4, sum_alpha).

override DIRECT: u32 = 0u;

struct P {
    n: u32, m: u32, accumulate: u32, chunk: u32,
    count: u32, norm: u32, eps_bits: u32, _p2: u32,
    idx: vec4<u32>,
    tab: vec4<u32>,
    // Terms 4..7 of weighted_sum8_vec4.
    idx2: vec4<u32>,
    tab2: vec4<u32>,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> ws_y0: array<f32>;
@group(0) @binding(2) var<storage, read> ws_y1: array<f32>;
@group(0) @binding(3) var<storage, read> ws_y2: array<f32>;
@group(0) @binding(4) var<storage, read> ws_y3: array<f32>;
@group(0) @binding(5) var<storage, read> ws_a: array<f32>;
@group(0) @binding(6) var<storage, read> ws_b: array<f32>;
@group(0) @binding(7) var<storage, read_write> ws_out: array<f32>;

// Term k's coefficient (see the header). Each entry point reads all of them first, before any
// branch: there llvmpipe loads a value at a uniform index once for all lanes, where inside a
// branch (or after an early return) it loads it lane by lane. Both tables are read (an index
// past a table reads a clamped element) and the term's one selected, so no branch is needed.
// Bit k set: term k is a pair (one tensor in two terms, read once), its coefficient the sum
// of (tab & 3, idx & 0xffff)'s and (tab >> 2, idx >> 16)'s. A pipeline constant, so terms that
// are not pay for no second read.
override PAIRS: u32 = 0u;

fn coef_one(tab: u32, idx: u32) -> f32 {
    return select(select(1.0, ws_b[idx], tab == 1u), ws_a[idx], tab == 0u);
}

fn coef_of(k: u32, tab: u32, idx: u32) -> f32 {
    if (((PAIRS >> k) & 1u) == 0u) { return coef_one(tab, idx); }
    return coef_one(tab & 3u, idx & 0xffffu) + coef_one(tab >> 2u, idx >> 16u);
}

// The coefficients of terms 0..3 (and 4..7 with `eight`; else 0 there).
fn coefs(eight: bool) -> array<f32, 8> {
    var c: array<f32, 8>;
    c[0] = coef_of(0u, p.tab.x, p.idx.x);
    c[1] = coef_of(1u, p.tab.y, p.idx.y);
    c[2] = coef_of(2u, p.tab.z, p.idx.z);
    c[3] = coef_of(3u, p.tab.w, p.idx.w);
    if (eight) {
        c[4] = coef_of(4u, p.tab2.x, p.idx2.x);
        c[5] = coef_of(5u, p.tab2.y, p.idx2.y);
        c[6] = coef_of(6u, p.tab2.z, p.idx2.z);
        c[7] = coef_of(7u, p.tab2.w, p.idx2.w);
    }
    return c;
}

@compute @workgroup_size(256)
fn weighted_sum4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = coefs(false);
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    var acc = c[0] * ws_y0[i];
    if (p.accumulate != 0u) { acc = ws_out[i] + acc; }
    if (p.m > 1u) { acc = acc + c[1] * ws_y1[i]; }
    if (p.m > 2u) { acc = acc + c[2] * ws_y2[i]; }
    if (p.m > 3u) { acc = acc + c[3] * ws_y3[i]; }
    ws_out[i] = acc;
}

// weighted_sum4 for n % 4 == 0 with every buffer bound as vec4s: one thread per 4 elements.
@group(0) @binding(1) var<storage, read> w4_y0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w4_y1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w4_y2: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> w4_y3: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> w4_out: array<vec4<f32>>;

// The first four terms at vec4 i (and out's value when accumulating), in term order.
fn first_four4(i: u32, c: array<f32, 8>) -> vec4<f32> {
    var acc = c[0] * w4_y0[i];
    if (p.accumulate != 0u) { acc = w4_out[i] + acc; }
    if (p.m > 1u) { acc = acc + c[1] * w4_y1[i]; }
    if (p.m > 2u) { acc = acc + c[2] * w4_y2[i]; }
    if (p.m > 3u) { acc = acc + c[3] * w4_y3[i]; }
    return acc;
}

@compute @workgroup_size(256)
fn weighted_sum4_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = coefs(false);
    let i = gid(wg, nwg, li);
    if (i >= p.n / 4u) { return; }
    w4_out[i] = first_four4(i, c);
}

// weighted_sum4_vec4 with up to 8 terms (bindings 8..11 y4..y7, their idx / tab in p.idx2 /
// p.tab2): a mixed edge's 7 candidates in one launch.
@group(0) @binding(8) var<storage, read> w4_y4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> w4_y5: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> w4_y6: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> w4_y7: array<vec4<f32>>;

@compute @workgroup_size(256)
fn weighted_sum8_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = coefs(true);
    let i = gid(wg, nwg, li);
    if (i >= p.n / 4u) { return; }
    var acc = first_four4(i, c);
    if (p.m > 4u) { acc = acc + c[4] * w4_y4[i]; }
    if (p.m > 5u) { acc = acc + c[5] * w4_y5[i]; }
    if (p.m > 6u) { acc = acc + c[6] * w4_y6[i]; }
    if (p.m > 7u) { acc = acc + c[7] * w4_y7[i]; }
    w4_out[i] = acc;
}

// Term k of eval_sum8_vec4 at vec4 i of channel ch: y itself, or its eval-mode batch norm.
@group(0) @binding(12) var<storage, read> es_running: array<f32>;
fn eval_term(k: u32, y: vec4<f32>, ch: u32) -> vec4<f32> {
    if (((p.norm >> k) & 1u) == 0u) { return y; }
    let mean = es_running[2u * k * p.count + ch];
    let invstd = 1.0 / sqrt(es_running[(2u * k + 1u) * p.count + ch] + bitcast<f32>(p.eps_bits));
    return (y - vec4<f32>(mean)) * invstd;
}

// EACC = 1: the sum is added onto binding 13 (a node's sum so far, as ACC in the fused train
// sums below); any read-only buffer is bound there otherwise.
@group(0) @binding(13) var<storage, read> es_prev: array<vec4<f32>>;
override EACC: u32 = 0u;

@compute @workgroup_size(256)
fn eval_sum8_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = coefs(true);
    let i = gid(wg, nwg, li);
    if (i >= p.n / 4u) { return; }
    let ch = (i / p.chunk) % p.count;
    var acc = c[0] * eval_term(0u, w4_y0[i], ch);
    if (p.m > 1u) { acc = acc + c[1] * eval_term(1u, w4_y1[i], ch); }
    if (p.m > 2u) { acc = acc + c[2] * eval_term(2u, w4_y2[i], ch); }
    if (p.m > 3u) { acc = acc + c[3] * eval_term(3u, w4_y3[i], ch); }
    if (p.m > 4u) { acc = acc + c[4] * eval_term(4u, w4_y4[i], ch); }
    if (p.m > 5u) { acc = acc + c[5] * eval_term(5u, w4_y5[i], ch); }
    if (p.m > 6u) { acc = acc + c[6] * eval_term(6u, w4_y6[i], ch); }
    if (p.m > 7u) { acc = acc + c[7] * eval_term(7u, w4_y7[i], ch); }
    if (EACC != 0u) { acc = es_prev[i] + acc; }
    w4_out[i] = acc;
}

@group(0) @binding(1) var<storage, read> dp_g: array<f32>;
@group(0) @binding(2) var<storage, read> dp_y0: array<f32>;
@group(0) @binding(3) var<storage, read> dp_y1: array<f32>;
@group(0) @binding(4) var<storage, read> dp_y2: array<f32>;
@group(0) @binding(5) var<storage, read> dp_y3: array<f32>;
@group(0) @binding(6) var<storage, read_write> dp_part: array<f32>;

// A workgroup's sums: partials, or with DIRECT = 1 (one workgroup in all) the dot products
// themselves, added to out[idx_k] (bound at 6) as dot4_finish would.
fn store_dots(w: u32, t: vec4<f32>) {
    if (DIRECT != 0u) {
        for (var k = 0u; k < p.m; k = k + 1u) {
            var base = 0.0;
            if (p.accumulate != 0u) { base = dp_part[p.idx[k]]; }
            dp_part[p.idx[k]] = base + t[k];
        }
        return;
    }
    dp_part[w] = t.x;
    if (p.m > 1u) { dp_part[p.count + w] = t.y; }
    if (p.m > 2u) { dp_part[2u * p.count + w] = t.z; }
    if (p.m > 3u) { dp_part[3u * p.count + w] = t.w; }
}

@compute @workgroup_size(256)
fn dot4_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = group_index(wg, nwg);
    let start = w * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = vec4<f32>(0.0);
    for (var i = start + li; i < end; i = i + WG) {
        let g = dp_g[i];
        acc.x = acc.x + g * dp_y0[i];
        if (p.m > 1u) { acc.y = acc.y + g * dp_y1[i]; }
        if (p.m > 2u) { acc.z = acc.z + g * dp_y2[i]; }
        if (p.m > 3u) { acc.w = acc.w + g * dp_y3[i]; }
    }
    // tree_sum needs uniform control flow: all four run whatever p.m is.
    let t0 = tree_sum(li, acc.x);
    let t1 = tree_sum(li, acc.y);
    let t2 = tree_sum(li, acc.z);
    let t3 = tree_sum(li, acc.w);
    if (li == 0u && w < p.count) { store_dots(w, vec4<f32>(t0, t1, t2, t3)); }
}

// dot4_partial for n % 4 == 0 (p.chunk is a multiple of 256): g and y bound as vec4s.
@group(0) @binding(1) var<storage, read> d4_g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> d4_y0: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> d4_y1: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> d4_y2: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> d4_y3: array<vec4<f32>>;

@compute @workgroup_size(256)
fn dot4_partial_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = group_index(wg, nwg);
    let start = w * p.chunk / 4u;
    let end = min(start + p.chunk / 4u, p.n / 4u);
    var acc = vec4<f32>(0.0);
    for (var i = start + li; i < end; i = i + WG) {
        let g = d4_g[i];
        acc.x = acc.x + dot(g, d4_y0[i]);
        if (p.m > 1u) { acc.y = acc.y + dot(g, d4_y1[i]); }
        if (p.m > 2u) { acc.z = acc.z + dot(g, d4_y2[i]); }
        if (p.m > 3u) { acc.w = acc.w + dot(g, d4_y3[i]); }
    }
    let t0 = tree_sum(li, acc.x);
    let t1 = tree_sum(li, acc.y);
    let t2 = tree_sum(li, acc.z);
    let t3 = tree_sum(li, acc.w);
    if (li == 0u && w < p.count) { store_dots(w, vec4<f32>(t0, t1, t2, t3)); }
}

// dot4_partial_vec4 for small n in one thread, no barriers: on CPU adapters the barriers of
// a 256-wide tree sum cost far more than the serial loop. Adds to out (bound at 6) as DIRECT.
@compute @workgroup_size(1)
fn dot4_serial_vec4() {
    var acc = vec4<f32>(0.0);
    for (var i = 0u; i < p.n / 4u; i = i + 1u) {
        let g = d4_g[i];
        acc.x = acc.x + dot(g, d4_y0[i]);
        if (p.m > 1u) { acc.y = acc.y + dot(g, d4_y1[i]); }
        if (p.m > 2u) { acc.z = acc.z + dot(g, d4_y2[i]); }
        if (p.m > 3u) { acc.w = acc.w + dot(g, d4_y3[i]); }
    }
    for (var k = 0u; k < p.m; k = k + 1u) {
        var base = 0.0;
        if (p.accumulate != 0u) { base = dp_part[p.idx[k]]; }
        dp_part[p.idx[k]] = base + acc[k];
    }
}

@group(0) @binding(1) var<storage, read> df_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> df_out: array<f32>;

@compute @workgroup_size(256)
fn dot4_finish(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let k = min(group_index(wg, nwg), 3u);
    var acc = 0.0;
    for (var i = li; i < p.count; i = i + WG) {
        acc = acc + df_part[k * p.count + i];
    }
    let total = tree_sum(li, acc);
    if (li == 0u && group_index(wg, nwg) < p.m) {
        var base = 0.0;
        if (p.accumulate != 0u) { base = df_out[p.idx[k]]; }
        df_out[p.idx[k]] = base + total;
    }
}

// ---- Normalised sums: a mixed edge's tail in one launch each way ----
// out = Σ_t w_t · v_t in term order, v_t = batch_norm(x_k) (train mode, no affine) for a
// normalised term (slot k < SG) or z_j for a plain one; w_t = table A or B at ms.idx[t].
// One thread per channel, no barriers (CPU adapters, small channels).
//   sum_forward4   1..6 x0..x5, 7 saved (g × 4c: mean | invstd | Σgy | Σgy·x̂ per slot),
//                  8 running (g × 2c: mean | var, gathered from the modules by copies),
//                  9 table A, 10 table B, 11 out, 12..13 z0..z1, 14 prev (ACC = 1: out =
//                  prev + the sum, a node's sum so far, so a cell's node needs no sum launch
//                  of its own; any read-only buffer otherwise)
//   sum_backward4  1..6 x0..x5, 7 gy, 8 saved, 9 table A, 10..15 dx0..dx5 (written where bit k
//                  of SNEED is set): dx_k = invstd_k·w_k·(gy − Σgy/m − x̂_k·Σ(gy·x̂_k)/m),
//                  leaving Σgy and Σgy·x̂_k (unscaled) in saved
//   sum_alpha      1 saved, 2 d table ST (constant): d[idx_k] += Σ_c Σ(gy·x̂_k) for table A,
//                  and for the plain terms folded with SDOT Σ_c Σ(gy·z_j), one thread
//   sum_forward_group4, sum_backward_group4: the same with a workgroup of 64 per channel
//                  (tree sums), for channels too large for one thread.  Grid: c workgroups.
// Unused slots are bound to any buffer of the right access and never touched.

struct MS {
    n: u32, c: u32, hw: u32, g: u32,
    pairs: u32, _p: u32, eps: f32, momentum: f32,
    // Per term: table (0 = A, 1 = B) and index (two of each where bit t of pairs is set: see
    // ms_weight); the terms' kinds are the pipeline constant SKIND.
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
@group(0) @binding(14) var<storage, read> ms_prev: array<vec4<f32>>;

// ACC = 1 (forward): the sum is added onto prev, as a node's sum over its edges adds each
// edge's output onto the edges' before it. Mesa's compiler may round this pipeline's sum
// apart from ACC = 0's in the last bit (its float ops are not exact): not the bits of a
// separate add, within the forward tolerance of it.
override ACC: u32 = 0u;

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

fn ms_coef(tab: u32, i: u32) -> f32 {
    if (tab == 0u) { return ms_a[i]; }
    return ms_b[i];
}

// Term t's weight; bit t of ms.pairs: a plain tensor in two terms, its weight the sum of
// (tab & 3, idx & 0xffff)'s and (tab >> 2, idx >> 16)'s (as the weighted sum's pairs).
fn ms_weight(t: u32) -> f32 {
    let i = ms.idx[t / 4u][t % 4u];
    let tab = ms.tab[t / 4u][t % 4u];
    if (((ms.pairs >> t) & 1u) == 0u) { return ms_coef(tab, i); }
    return ms_coef(tab & 3u, i & 0xffffu) + ms_coef(tab >> 2u, i >> 16u);
}

// The term layout is pipeline constants, so the loops over terms unroll and every read names
// its binding (llvmpipe runs a switch on a runtime slot as every case, masked): SG normalised
// slots, SM terms, term t's kind in bits 4t..4t + 3 of SKIND (k < 6: slot x_k; 8 + j: z_j),
// SNEED the slots whose dx is wanted (backward). Each pass walks the channel once for all
// terms (each term's sums in their own accumulators, in the same order as a pass per term):
// the means, the variances, then the sum (forward); the gradient sums, then every dx
// (backward). The loops are written out in each entry point: arrays passed to a helper go to
// memory on llvmpipe.
override SG: u32 = 1u;
override SM: u32 = 1u;
override SKIND: u32 = 0u;
override SNEED: u32 = 0u;
// SDOT (backward): bit j folds plain slot j's dot product with gy into the first pass: z_j is
// bound at x slot SG + j (where SG + j < 6) and Σ gy·z_j per channel lands in saved at
// (4·SG + j)·c + ch, for sum_alpha (α's gradient without a separate pass over gy).
override SDOT: u32 = 0u;

fn sg_kind(t: u32) -> u32 {
    return (SKIND >> (4u * t)) & 15u;
}

@compute @workgroup_size(8)
fn sum_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg) * 8u + li;
    if (ch >= ms.c) { return; }
    let m = ms.n * ms.hw;
    let mf = f32(m);
    var acc: array<vec4<f32>, 6>;
    var r = run_whole(ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        for (var k = 0u; k < 6u; k = k + 1u) {
            if (k < SG) { acc[k] = acc[k] + ms_x(k, i); }
        }
        run_next(&r);
    }
    var mean: array<f32, 6>;
    for (var k = 0u; k < 6u; k = k + 1u) {
        if (k < SG) { mean[k] = hsum(acc[k]) / mf; }
    }
    var acc2: array<vec4<f32>, 6>;
    r = run_whole(ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        for (var k = 0u; k < 6u; k = k + 1u) {
            if (k < SG) {
                let d = ms_x(k, i) - mean[k];
                acc2[k] = acc2[k] + d * d;
            }
        }
        run_next(&r);
    }
    var inv: array<f32, 6>;
    for (var k = 0u; k < 6u; k = k + 1u) {
        if (k < SG) {
            let var_b = hsum(acc2[k]) / mf;
            inv[k] = 1.0 / sqrt(var_b + ms.eps);
            let base = k * 4u * ms.c;
            ms_saved[base + ch] = mean[k];
            ms_saved[base + ms.c + ch] = inv[k];
            let unbiased = var_b * mf / f32(max(m, 2u) - 1u);
            let rr = k * 2u * ms.c;
            ms_run[rr + ch] = (1.0 - ms.momentum) * ms_run[rr + ch] + ms.momentum * mean[k];
            ms_run[rr + ms.c + ch] = (1.0 - ms.momentum) * ms_run[rr + ms.c + ch] + ms.momentum * unbiased;
        }
    }
    // The weights, read once (a storage load per lane and term would dominate the loop).
    var wt: array<f32, 8>;
    for (var j = 0u; j < 8u; j = j + 1u) {
        if (j < SM) { wt[j] = ms_weight(j); }
    }
    r = run_whole(ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        var o = vec4<f32>(0.0);
        for (var j = 0u; j < 8u; j = j + 1u) {
            if (j < SM) {
                let kind = sg_kind(j);
                var v: vec4<f32>;
                if (kind < 8u) {
                    v = (ms_x(kind, i) - mean[kind]) * inv[kind];
                } else if (kind == 8u) {
                    v = ms_z0[i];
                } else {
                    v = ms_z1[i];
                }
                // The first term starts the sum (as weighted_sum4 does), the rest add in order.
                if (j == 0u) { o = wt[j] * v; } else { o = o + wt[j] * v; }
            }
        }
        if (ACC != 0u) { o = ms_prev[i] + o; }
        ms_out[i] = o;
        run_next(&r);
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
    var wt: array<f32, 6>;
    for (var k = 0u; k < 6u; k = k + 1u) {
        if (k < SG) {
            mean[k] = msb_saved[k * 4u * ms.c + ch];
            inv[k] = msb_saved[k * 4u * ms.c + ms.c + ch];
            wt[k] = ms_a[ms.sidx[k / 4u][k % 4u]];
        }
    }
    var s: array<vec4<f32>, 6>;
    var sz: array<vec4<f32>, 2>;
    var gs = vec4<f32>(0.0);
    var r = run_whole(ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        let g = msb_gy[i];
        gs = gs + g;
        for (var k = 0u; k < 6u; k = k + 1u) {
            if (k < SG) { s[k] = s[k] + g * ((ms_x(k, i) - mean[k]) * inv[k]); }
        }
        for (var j = 0u; j < 2u; j = j + 1u) {
            if (((SDOT >> j) & 1u) != 0u) { sz[j] = sz[j] + g * ms_x(SG + j, i); }
        }
        run_next(&r);
    }
    let sum_g = hsum(gs);
    var sum_gx: array<f32, 6>;
    for (var k = 0u; k < 6u; k = k + 1u) {
        if (k < SG) {
            sum_gx[k] = hsum(s[k]);
            msb_saved[k * 4u * ms.c + 2u * ms.c + ch] = sum_g;
            msb_saved[k * 4u * ms.c + 3u * ms.c + ch] = sum_gx[k];
        }
    }
    for (var j = 0u; j < 2u; j = j + 1u) {
        if (((SDOT >> j) & 1u) != 0u) { msb_saved[(4u * SG + j) * ms.c + ch] = hsum(sz[j]); }
    }
    r = run_whole(ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        let g = msb_gy[i];
        for (var k = 0u; k < 6u; k = k + 1u) {
            if (k < SG && ((SNEED >> k) & 1u) != 0u) {
                let xh = (ms_x(k, i) - mean[k]) * inv[k];
                msb_store(k, i, inv[k] * wt[k] * (g - sum_g / mf - xh * sum_gx[k] / mf));
            }
        }
        run_next(&r);
    }
}

// sum_forward_group4, sum_backward_group4: sum_forward4 / sum_backward4 for channels too large
// for one thread (a NAS-Bench-201 stage at batch 16 has 16,384 values a channel): a workgroup
// of GW threads per channel, each walking its own run of the channel's vec4s (prelude's Run),
// and tree sums. Same bindings, constants and outputs. Grid: c workgroups of GW.
const GW: u32 = 64u;

@compute @workgroup_size(64)
fn sum_forward_group4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg);
    let m = ms.n * ms.hw;
    let mf = f32(m);
    var wt: array<f32, 8>;
    for (var j = 0u; j < 8u; j = j + 1u) {
        if (j < SM) { wt[j] = ms_weight(j); }
    }
    var acc: array<f32, 6>;
    var r = run_of(li, GW, ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        for (var k = 0u; k < 6u; k = k + 1u) {
            if (k < SG) { acc[k] = acc[k] + hsum(ms_x(k, i)); }
        }
        run_next(&r);
    }
    var mean: array<f32, 6>;
    for (var k = 0u; k < 6u; k = k + 1u) {
        if (k < SG) { mean[k] = tree_sum_n(li, acc[k], GW) / mf; }
    }
    var acc2: array<f32, 6>;
    r = run_of(li, GW, ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        for (var k = 0u; k < 6u; k = k + 1u) {
            if (k < SG) {
                let d = ms_x(k, i) - mean[k];
                acc2[k] = acc2[k] + dot(d, d);
            }
        }
        run_next(&r);
    }
    var inv: array<f32, 6>;
    for (var k = 0u; k < 6u; k = k + 1u) {
        if (k < SG) {
            let var_b = tree_sum_n(li, acc2[k], GW) / mf;
            inv[k] = 1.0 / sqrt(var_b + ms.eps);
            if (li == 0u) {
                let base = k * 4u * ms.c;
                ms_saved[base + ch] = mean[k];
                ms_saved[base + ms.c + ch] = inv[k];
                let unbiased = var_b * mf / f32(max(m, 2u) - 1u);
                let rr = k * 2u * ms.c;
                ms_run[rr + ch] = (1.0 - ms.momentum) * ms_run[rr + ch] + ms.momentum * mean[k];
                ms_run[rr + ms.c + ch] = (1.0 - ms.momentum) * ms_run[rr + ms.c + ch] + ms.momentum * unbiased;
            }
        }
    }
    r = run_of(li, GW, ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        var o = vec4<f32>(0.0);
        for (var j = 0u; j < 8u; j = j + 1u) {
            if (j < SM) {
                let kind = sg_kind(j);
                var v: vec4<f32>;
                if (kind < 8u) {
                    v = (ms_x(kind, i) - mean[kind]) * inv[kind];
                } else if (kind == 8u) {
                    v = ms_z0[i];
                } else {
                    v = ms_z1[i];
                }
                // The first term starts the sum (as weighted_sum4 does), the rest add in order.
                if (j == 0u) { o = wt[j] * v; } else { o = o + wt[j] * v; }
            }
        }
        if (ACC != 0u) { o = ms_prev[i] + o; }
        ms_out[i] = o;
        run_next(&r);
    }
}

@compute @workgroup_size(64)
fn sum_backward_group4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ch = group_index(wg, nwg);
    let mf = f32(ms.n * ms.hw);
    var mean: array<f32, 6>;
    var inv: array<f32, 6>;
    var wt: array<f32, 6>;
    for (var k = 0u; k < 6u; k = k + 1u) {
        if (k < SG) {
            mean[k] = msb_saved[k * 4u * ms.c + ch];
            inv[k] = msb_saved[k * 4u * ms.c + ms.c + ch];
            wt[k] = ms_a[ms.sidx[k / 4u][k % 4u]];
        }
    }
    var s: array<f32, 6>;
    var sz: array<f32, 2>;
    var gs = 0.0;
    var r = run_of(li, GW, ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        let g = msb_gy[i];
        gs = gs + hsum(g);
        for (var k = 0u; k < 6u; k = k + 1u) {
            if (k < SG) { s[k] = s[k] + dot(g, (ms_x(k, i) - mean[k]) * inv[k]); }
        }
        for (var j = 0u; j < 2u; j = j + 1u) {
            if (((SDOT >> j) & 1u) != 0u) { sz[j] = sz[j] + dot(g, ms_x(SG + j, i)); }
        }
        run_next(&r);
    }
    for (var j = 0u; j < 2u; j = j + 1u) {
        if (((SDOT >> j) & 1u) != 0u) {
            let total = tree_sum_n(li, sz[j], GW);
            if (li == 0u) { msb_saved[(4u * SG + j) * ms.c + ch] = total; }
        }
    }
    let sum_g = tree_sum_n(li, gs, GW);
    var sum_gx: array<f32, 6>;
    for (var k = 0u; k < 6u; k = k + 1u) {
        if (k < SG) {
            sum_gx[k] = tree_sum_n(li, s[k], GW);
            if (li == 0u) {
                msb_saved[k * 4u * ms.c + 2u * ms.c + ch] = sum_g;
                msb_saved[k * 4u * ms.c + 3u * ms.c + ch] = sum_gx[k];
            }
        }
    }
    r = run_of(li, GW, ms.n, ms.hw);
    for (var t = r.start; t < r.end; t = t + 1u) {
        let i = run_index(r, ms.c, ch);
        let g = msb_gy[i];
        for (var k = 0u; k < 6u; k = k + 1u) {
            if (k < SG && ((SNEED >> k) & 1u) != 0u) {
                let xh = (ms_x(k, i) - mean[k]) * inv[k];
                msb_store(k, i, inv[k] * wt[k] * (g - sum_g / mf - xh * sum_gx[k] / mf));
            }
        }
        run_next(&r);
    }
}

@group(0) @binding(1) var<storage, read> msa_saved: array<f32>;
@group(0) @binding(2) var<storage, read_write> msa_d: array<f32>;

// ST: the table whose gradient sum_alpha adds to (0 A, 1 B): the normalised slots' (A), and
// the terms of the plain slots folded with SDOT whose weight is in ST.
override ST: u32 = 0u;

@compute @workgroup_size(1)
fn sum_alpha() {
    if (ST == 0u) {
        for (var k = 0u; k < ms.g; k = k + 1u) {
            var t = 0.0;
            for (var ch = 0u; ch < ms.c; ch = ch + 1u) { t = t + msa_saved[k * 4u * ms.c + 3u * ms.c + ch]; }
            let i = ms.sidx[k / 4u][k % 4u];
            msa_d[i] = msa_d[i] + t;
        }
    }
    for (var t = 0u; t < 8u; t = t + 1u) {
        let kind = sg_kind(t);
        if (t < SM && kind >= 8u && ((SDOT >> (kind - 8u)) & 1u) != 0u) {
            var total = 0.0;
            let base = (4u * SG + kind - 8u) * ms.c;
            for (var ch = 0u; ch < ms.c; ch = ch + 1u) { total = total + msa_saved[base + ch]; }
            let tab = ms.tab[t / 4u][t % 4u];
            let idx = ms.idx[t / 4u][t % 4u];
            if (((ms.pairs >> t) & 1u) == 0u) {
                if (tab == ST) { msa_d[idx] = msa_d[idx] + total; }
            } else {
                // One tensor in two terms: the same dot product for both weights.
                if ((tab & 3u) == ST) { msa_d[idx & 0xffffu] = msa_d[idx & 0xffffu] + total; }
                if ((tab >> 2u) == ST) { msa_d[idx >> 16u] = msa_d[idx >> 16u] + total; }
            }
        }
    }
}
