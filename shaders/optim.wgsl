// optim.wgsl: optimiser updates on flat parameter buffers, with hyperparameters that change
// per step (learning rate, Adam step count) read from a small GPU buffer `hyper` so a
// recorded step replays without re-recording.
//   sgd        1 g, 2 hyper, 3 w, 4 buf:  d = g + wd*w; buf = momentum*buf + d;
//              w -= lr*buf, or with Nesterov w -= lr*(d + momentum*buf)
//              (lr = hyper[lr_idx]; buf starts at 0, matching PyTorch's first step buf = d)
//   adam       1 g, 2 hyper, 3 w, 4 m, 5 v:  L2 decay d = g + wd*w; m, v moments;
//              w -= step_size * m / (sqrt(v) / bc2_sqrt + eps), with step_size = lr/(1-b1^t)
//              at hyper[lr_idx] and bc2_sqrt = sqrt(1-b2^t) at hyper[step_idx], both computed
//              on the CPU in f64 (1 - b^t cancels badly with a GPU's approximate pow)
//   sgd_clipped  the same as sgd with g scaled by 5 coef[0] (global-norm clipping folded in:
//              the clipped gradient is never written out)
//   clip_coef  1 sumsq (total at [0]), 2 coef: coef[0] = min(1, max_norm/(sqrt(sumsq)+1e-6))
//   sgd4_clipped  sgd_clipped for four parameters in one launch (own parameter block s4:
//              their sizes, lr index, Nesterov, momentum, decay): 1 hyper, 2 coef, 3..6 g0..g3,
//              7..10 w0..w3, 11..14 buf0..buf3; one thread per element of the largest.
//   sgd_clipped4  sgd_clipped a vec4 a thread (thread i: elements 4i..4i+3) for the gathered
//              flat buffers, which hold whole quads; the last quad's elements past n are
//              scratch (never copied back), so it is updated whole.
//   sumsq4_partial  (own parameter block q) 1..4 g0..g3, 5 partial: workgroup w writes
//              partial[q.base + 4w + k] = Σ g_k² over elements [w·chunk, (w+1)·chunk) of g_k
//              (of q.n[k]); every launch's partials are then summed by one reduce.wgsl
//              `finish`. Grid: q.count groups.
//   sumsq_vec4_partial  (q) 1 g as vec4s (whole quads bound; q.n.x values counted, the last
//              quad's tail masked), 2 partial: workgroup w writes partial[q.base + w] = Σ g²
//              over values [w·chunk, (w+1)·chunk) (chunk a multiple of 4·WG). The gathered
//              flat gradient's norm in a few workgroups: one tree sum each, not one per
//              ~1,000 values.
// One thread per parameter element (clip_coef: one thread), workgroup size 256.

struct P {
    n: u32, lr_idx: u32, step_idx: u32, nesterov: u32,
    momentum: f32, wd: f32, b1: f32, b2: f32,
    eps: f32, max_norm: f32,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> o_g: array<f32>;
@group(0) @binding(2) var<storage, read> o_hyper: array<f32>;
@group(0) @binding(3) var<storage, read_write> o_w: array<f32>;
@group(0) @binding(4) var<storage, read_write> o_m: array<f32>;
@group(0) @binding(5) var<storage, read_write> o_v: array<f32>;

fn sgd_at(i: u32, g: f32) {
    let d = g + p.wd * o_w[i];
    let b = p.momentum * o_m[i] + d;
    o_m[i] = b;
    var step = b;
    if (p.nesterov != 0u) { step = d + p.momentum * b; }
    o_w[i] = o_w[i] - o_hyper[p.lr_idx] * step;
}

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    sgd_at(i, o_g[i]);
}

@group(0) @binding(5) var<storage, read> sc_coef: array<f32>;

@compute @workgroup_size(256)
fn sgd_clipped(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    sgd_at(i, o_g[i] * sc_coef[0]);
}

@group(0) @binding(1) var<storage, read> o4_g: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> o4_w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> o4_m: array<vec4<f32>>;

// sgd_at on a quad: the same operations per component, so the same values as sgd_clipped.
@compute @workgroup_size(256)
fn sgd_clipped4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= (p.n + 3u) / 4u) { return; }
    let w = o4_w[i];
    let d = o4_g[i] * sc_coef[0] + p.wd * w;
    let b = p.momentum * o4_m[i] + d;
    o4_m[i] = b;
    var step = b;
    if (p.nesterov != 0u) { step = d + p.momentum * b; }
    o4_w[i] = w - o_hyper[p.lr_idx] * step;
}

@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    let d = o_g[i] + p.wd * o_w[i];
    let m = p.b1 * o_m[i] + (1.0 - p.b1) * d;
    let v = p.b2 * o_v[i] + (1.0 - p.b2) * d * d;
    o_m[i] = m;
    o_v[i] = v;
    let denom = sqrt(v) / o_hyper[p.step_idx] + p.eps;
    o_w[i] = o_w[i] - o_hyper[p.lr_idx] * m / denom;
}

@group(0) @binding(1) var<storage, read> cc_sumsq: array<f32>;
@group(0) @binding(2) var<storage, read_write> cc_coef: array<f32>;
@compute @workgroup_size(1)
fn clip_coef() {
    cc_coef[0] = min(1.0, p.max_norm / (sqrt(cc_sumsq[0]) + 1e-6));
}

struct Q {
    n: vec4<u32>,
    chunk: u32, count: u32, base: u32, _p1: u32,
}
@group(0) @binding(0) var<uniform> q: Q;
@group(0) @binding(1) var<storage, read> sq_g0: array<f32>;
@group(0) @binding(2) var<storage, read> sq_g1: array<f32>;
@group(0) @binding(3) var<storage, read> sq_g2: array<f32>;
@group(0) @binding(4) var<storage, read> sq_g3: array<f32>;
@group(0) @binding(5) var<storage, read_write> sq_part: array<f32>;

@compute @workgroup_size(256)
fn sumsq4_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = group_index(wg, nwg);
    let start = w * q.chunk;
    var acc = vec4<f32>(0.0);
    for (var i = start + li; i < min(start + q.chunk, q.n.x); i = i + WG) { acc.x = acc.x + sq_g0[i] * sq_g0[i]; }
    for (var i = start + li; i < min(start + q.chunk, q.n.y); i = i + WG) { acc.y = acc.y + sq_g1[i] * sq_g1[i]; }
    for (var i = start + li; i < min(start + q.chunk, q.n.z); i = i + WG) { acc.z = acc.z + sq_g2[i] * sq_g2[i]; }
    for (var i = start + li; i < min(start + q.chunk, q.n.w); i = i + WG) { acc.w = acc.w + sq_g3[i] * sq_g3[i]; }
    let t = vec4<f32>(tree_sum(li, acc.x), tree_sum(li, acc.y), tree_sum(li, acc.z), tree_sum(li, acc.w));
    if (li == 0u && w < q.count) {
        sq_part[q.base + 4u * w] = t.x;
        sq_part[q.base + 4u * w + 1u] = t.y;
        sq_part[q.base + 4u * w + 2u] = t.z;
        sq_part[q.base + 4u * w + 3u] = t.w;
    }
}

@group(0) @binding(1) var<storage, read> sq4_g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> sq4_part: array<f32>;

@compute @workgroup_size(256)
fn sumsq_vec4_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let w = group_index(wg, nwg);
    let n = q.n.x;
    let start = w * (q.chunk / 4u);
    let end = min(start + q.chunk / 4u, (n + 3u) / 4u);
    var acc = vec4<f32>(0.0);
    for (var i = start + li; i < end; i = i + WG) {
        var v = sq4_g[i];
        // Past n in the last quad: stale scratch of the flat buffers, not counted.
        v = select(vec4<f32>(0.0), v, vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n));
        acc = acc + v * v;
    }
    let t = tree_sum(li, (acc.x + acc.y) + (acc.z + acc.w));
    if (li == 0u && w < q.count) { sq4_part[q.base + w] = t; }
}

struct S4 {
    n: vec4<u32>,
    lr_idx: u32, nesterov: u32, momentum: f32, wd: f32,
}
@group(0) @binding(0) var<uniform> s4: S4;
@group(0) @binding(1) var<storage, read> s4_hyper: array<f32>;
@group(0) @binding(2) var<storage, read> s4_coef: array<f32>;
@group(0) @binding(3) var<storage, read> s4_g0: array<f32>;
@group(0) @binding(4) var<storage, read> s4_g1: array<f32>;
@group(0) @binding(5) var<storage, read> s4_g2: array<f32>;
@group(0) @binding(6) var<storage, read> s4_g3: array<f32>;
@group(0) @binding(7) var<storage, read_write> s4_w0: array<f32>;
@group(0) @binding(8) var<storage, read_write> s4_w1: array<f32>;
@group(0) @binding(9) var<storage, read_write> s4_w2: array<f32>;
@group(0) @binding(10) var<storage, read_write> s4_w3: array<f32>;
@group(0) @binding(11) var<storage, read_write> s4_m0: array<f32>;
@group(0) @binding(12) var<storage, read_write> s4_m1: array<f32>;
@group(0) @binding(13) var<storage, read_write> s4_m2: array<f32>;
@group(0) @binding(14) var<storage, read_write> s4_m3: array<f32>;

// sgd_at's arithmetic on values: (new w, new buf) from the (clipped) gradient, w and buf.
fn sgd_step(g: f32, w: f32, b0: f32) -> vec2<f32> {
    let d = g + s4.wd * w;
    let b = s4.momentum * b0 + d;
    var step = b;
    if (s4.nesterov != 0u) { step = d + s4.momentum * b; }
    return vec2<f32>(w - s4_hyper[s4.lr_idx] * step, b);
}

@compute @workgroup_size(256)
fn sgd4_clipped(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let c = s4_coef[0];
    if (i < s4.n.x) {
        let r = sgd_step(s4_g0[i] * c, s4_w0[i], s4_m0[i]);
        s4_w0[i] = r.x;
        s4_m0[i] = r.y;
    }
    if (i < s4.n.y) {
        let r = sgd_step(s4_g1[i] * c, s4_w1[i], s4_m1[i]);
        s4_w1[i] = r.x;
        s4_m1[i] = r.y;
    }
    if (i < s4.n.z) {
        let r = sgd_step(s4_g2[i] * c, s4_w2[i], s4_m2[i]);
        s4_w2[i] = r.x;
        s4_m2[i] = r.y;
    }
    if (i < s4.n.w) {
        let r = sgd_step(s4_g3[i] * c, s4_w3[i], s4_m3[i]);
        s4_w3[i] = r.x;
        s4_m3[i] = r.y;
    }
}
