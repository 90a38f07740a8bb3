// mixed.wgsl: the mixed edge's weighted sum y = Σ_k s_k·y_k (s_k read from GPU tables: the
// softmax of α, or β for the auxiliary skip) and the dot products <g, y_k> that make α's
// gradient, up to 4 terms per launch instead of one launch per term.
// Buffers: flat f32 arrays of p.n elements; tables: small f32 arrays; unused term slots are
// bound to any buffer and ignored.
//   weighted_sum4  1..4 y0..y3, 5 table A, 6 table B, 7 out
//                  out = (p.accumulate ? out : 0) + Σ_{k < p.m} s_k · y_k, with s_k = A[idx_k]
//                  when p.tab[k] = 0, B[idx_k] when 1, and 1 when 2 (an unscaled term: the
//                  backward pass sums gradient contributions with it); summed in term order
//                  (as sequential axpys). weighted_sum4_vec4: the same, one thread per 4
//                  elements, for n % 4 == 0.
//                  One thread per element.
//   weighted_sum8_vec4  weighted_sum4_vec4 with up to 8 terms: 8..11 y4..y7, their idx / tab
//                  in p.idx2 / p.tab2 (adapters with at least 11 storage buffers per stage).
//   dot4_partial   1 g, 2..5 y0..y3, 6 partial (p.m × p.count): workgroup w writes
//                  partial[k·count + w] = Σ over its chunk of g·y_k.  Grid: p.count workgroups.
//                  dot4_partial_vec4: the same with vec4 loads, for n % 4 == 0.
//   dot4_finish    1 partial, 2 out: workgroup k < p.m adds Σ_w partial[k·count + w] to
//                  out[idx_k] (or overwrites it when p.accumulate = 0).  Grid: p.m workgroups.
//   DIRECT = 1 (pipeline constant): one workgroup covers all n, and dot4_partial adds its sums
//                  to out (bound at 6) itself, with no dot4_finish launch.
//   dot4_serial_vec4  the same as DIRECT dot4_partial_vec4 by one thread (no barriers), for
//                  small n where launches are costly.  Grid: 1 workgroup of 1.
// Workgroup size 256.

override DIRECT: u32 = 0u;

struct P {
    n: u32, m: u32, accumulate: u32, chunk: u32,
    count: u32, _p0: u32, _p1: u32, _p2: u32,
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

fn coef_of(tab: u32, idx: u32) -> f32 {
    if (tab == 0u) { return ws_a[idx]; }
    if (tab == 1u) { return ws_b[idx]; }
    return 1.0;
}

fn coef(k: u32) -> f32 {
    return coef_of(p.tab[k], p.idx[k]);
}

@compute @workgroup_size(256)
fn weighted_sum4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    var acc = coef(0u) * ws_y0[i];
    if (p.accumulate != 0u) { acc = ws_out[i] + acc; }
    if (p.m > 1u) { acc = acc + coef(1u) * ws_y1[i]; }
    if (p.m > 2u) { acc = acc + coef(2u) * ws_y2[i]; }
    if (p.m > 3u) { acc = acc + coef(3u) * ws_y3[i]; }
    ws_out[i] = acc;
}

// weighted_sum4 for n % 4 == 0 with every buffer bound as vec4s: one thread per 4 elements.
@group(0) @binding(1) var<storage, read> w4_y0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w4_y1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w4_y2: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> w4_y3: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> w4_out: array<vec4<f32>>;

// The first four terms at vec4 i (and out's value when accumulating), in term order.
fn first_four4(i: u32) -> vec4<f32> {
    var acc = coef(0u) * w4_y0[i];
    if (p.accumulate != 0u) { acc = w4_out[i] + acc; }
    if (p.m > 1u) { acc = acc + coef(1u) * w4_y1[i]; }
    if (p.m > 2u) { acc = acc + coef(2u) * w4_y2[i]; }
    if (p.m > 3u) { acc = acc + coef(3u) * w4_y3[i]; }
    return acc;
}

@compute @workgroup_size(256)
fn weighted_sum4_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n / 4u) { return; }
    w4_out[i] = first_four4(i);
}

// weighted_sum4_vec4 with up to 8 terms (bindings 8..11 y4..y7, their idx / tab in p.idx2 /
// p.tab2): a mixed edge's 7 candidates in one launch.
@group(0) @binding(8) var<storage, read> w4_y4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> w4_y5: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> w4_y6: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> w4_y7: array<vec4<f32>>;

@compute @workgroup_size(256)
fn weighted_sum8_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n / 4u) { return; }
    var acc = first_four4(i);
    if (p.m > 4u) { acc = acc + coef_of(p.tab2.x, p.idx2.x) * w4_y4[i]; }
    if (p.m > 5u) { acc = acc + coef_of(p.tab2.y, p.idx2.y) * w4_y5[i]; }
    if (p.m > 6u) { acc = acc + coef_of(p.tab2.z, p.idx2.z) * w4_y6[i]; }
    if (p.m > 7u) { acc = acc + coef_of(p.tab2.w, p.idx2.w) * w4_y7[i]; }
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
