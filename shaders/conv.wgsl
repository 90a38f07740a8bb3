// conv.wgsl: grouped 2-D convolution (dense: groups = 1; depthwise: groups = C) and its
// gradients. NCHW f32. x: (n, cin, h, w); weight: (cout, cin/groups, kh, kw);
// bias: (cout) when p.has_bias (else a dummy buffer); y: (n, cout, ho, wo).
// y[b,co,oy,ox] = bias[co] + sum_{ci in group(co), ky, kx} w[co,ci,ky,kx] *
//                 x[b, ci, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw]   (out of range = 0)
// Entries and bindings (0 = params):
//   forward          1 x, 2 weight, 3 bias, 4 y          one thread per output element
//   backward_input   1 dy, 2 weight, 3 dx                one thread per input element (gather)
//   backward_input_s1  the same for stride 1 (no divisibility tests per tap)
//   backward_weight  1 x, 2 dy, 3 dw                     one workgroup per weight element,
//                    reducing over batch x output rows (no per-channel launches)
//   backward_weight_serial  the same bindings, one thread per weight element doing its
//                    whole (short) reduction: where each weight sees few outputs, a
//                    workgroup's 256 threads and tree sum would mostly idle
//   (1×1 and depthwise convolutions have faster kernels: pointwise.wgsl, depthwise.wgsl)
//   backward_bias    1 dy, 2 db                          one workgroup per output channel
//   backward_bias4   the same for planes of a multiple of 4 (dy as vec4s), workgroups of 64
// Dense convolutions (groups = 1) with output rows of a multiple of 4 take faster kernels:
//   forward4         1 x, 2 weight, 3 bias, 4 y (vec4), 5 mask (vec4; any buffer without MASK):
//                    each thread 4 consecutive outputs of a row × RB output channels (every
//                    input value gathered serves RB channels, every weight 4 outputs). Grid
//                    (ceil(n·ho·wo/1024), ceil(cout/RB), 1). KS = the kernel size where
//                    square (the tap loops unroll). FLIP = 1: the input gradient of a
//                    convolution as this forward over dy, the stored weight (p.cin, p.cout,
//                    kh, kw) read at [i][o] and turned 180°; TS = that convolution's stride
//                    (dy read as if zero-dilated, see gather4). UNIT = 1 (KS set, column
//                    stride and dilation 1, TS = 1): each kernel row's KS + 3 inputs are
//                    loaded once and shared by its taps.
//                    6 uw (uniform, 64 KiB): with UW = 1 the weight's buffer again, read
//                    from there (CPU adapters); a placeholder window otherwise.
//                    7 x4: x again, as vec4 (SHARE, below; bound whether or not it is used).
//   forward4_stats   forward4 (MASK = 0) that also writes its outputs' batch-norm statistics
//                    per workgroup column at 8 (see the entry), for the batch norm that follows.
//   weight_partial4  1 x, 2 dy (vec4), 3 part: thread = (4 output × 4 input channels, one tap,
//                    chunk of p.per output rows), 16 partial sums at 16·thread; DIRECT = 1
//                    (one chunk) writes dw itself. p.chunks chunks per block. Workgroups of
//                    WPG threads (256 unless set), as do row3 and k3.
//   weight_partial4_row3  weight_partial4 (LANES) for kernel rows of 3 taps at column stride
//                    1: a thread takes a whole kernel row of its block (see the entry).
//   weight_partial4_k3  the same for 3×3 kernels: a thread takes its block's whole kernel.
//   weight_sum       1 part, 2 dw: one thread per weight element adds its chunks' partials.
//   BIAS = 1: weight_partial4 also writes the bias gradient's partials (after dw's), and
//   weight_sum_bias (3 db) adds them too: no backward_bias launch.
//   weight_sum_wg / weight_sum_bias_wg  the same with a workgroup per weight (and per bias)
//   element (grid: one workgroup each): every 256th chunk a thread, then a tree sum (GPUs).
// RELU = 1 (pipeline constant): x is read through max(x, 0) in forward, forward4,
// backward_weight and weight_partial4, folding a preceding ReLU into the loads (the input
// gradient is masked by forward4's MASK, or by the caller after the gather kernels).
// MASK = 1: forward4 writes y only where mask > 0 (the input gradient through a folded ReLU,
// mask = that ReLU's input). p.per and p.chunks are 0 for the other entries.
// Workgroup size 256 (64 for backward_bias4); grids spread over 3-D (see prelude), forward4's
// 2-D as above.

override RELU: u32 = 0u;
override RB: u32 = 4u;
override FLIP: u32 = 0u;
override MASK: u32 = 0u;
override DIRECT: u32 = 0u;
override KS: u32 = 0u;
override TS: u32 = 1u;
override BIAS: u32 = 0u;
override UNIT: u32 = 0u;
override UW: u32 = 0u;
// LANES = 1 (CPU adapters whose subgroups are 8 consecutive invocations; see lanes.wgsl):
// forward4 reads a tap's RB weights with two gathers and lane broadcasts, not RB gathers, and
// (3×3, 1×1) sums a kernel row's taps or two input channels before each accumulator write;
// weight_partial4 (output blocks a multiple of 8, or 4 with an even number of input blocks)
// orders its threads so a subgroup's lanes share their input values, and reads a step's 16
// with 2 (or 4) gathers instead of 16; with OB = 4 lanes l and l + 4 also share their output
// block, and each loads two of its four dy quads (dy_quads).
override LANES: u32 = 0u;
// weight_partial4 with LANES: output blocks a subgroup takes (8, or 4 with 2 input blocks).
override OB: u32 = 8u;
// The weight-gradient partial kernels' workgroup size (a multiple of 8): 256, or on CPU
// adapters the size that splits the launch into one equal workgroup per adapter thread
// (LaunchPolicy::weight_grad_split).
override WPG: u32 = 256u;
// SHARE = 1 (LANES and UNIT, input rows as wide as the output's, the padding (KS − 1) / 2, and
// whole rows in a subgroup: wo = 4, 8, 16 or 32): forward4 loads its own 4 columns of a kernel
// row as one vec4 (binding 7) and takes the (KS − 1) / 2 columns on either side from its
// neighbouring lanes, which loaded them: one load instead of KS + 3.
override SHARE: u32 = 0u;

fn relu_in(v: f32) -> f32 {
    if (RELU != 0u) { return max(v, 0.0); }
    return v;
}

struct P {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, ho: u32, wo: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, ph: u32,
    pw: u32, dh: u32, dw: u32, groups: u32,
    has_bias: u32, per: u32, chunks: u32, _pad: u32,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> f_x: array<f32>;
@group(0) @binding(2) var<storage, read> f_w: array<f32>;
@group(0) @binding(3) var<storage, read> f_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> f_y: array<f32>;
@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.cout * p.ho * p.wo) { return; }
    let ox = i % p.wo;
    let oy = (i / p.wo) % p.ho;
    let co = (i / (p.wo * p.ho)) % p.cout;
    let b = i / (p.wo * p.ho * p.cout);
    let cinpg = p.cin / p.groups;
    let g = co / (p.cout / p.groups);
    var acc = 0.0;
    if (p.has_bias != 0u) { acc = f_b[co]; }
    for (var ci = 0u; ci < cinpg; ci = ci + 1u) {
        let xbase = (b * p.cin + g * cinpg + ci) * p.h * p.w;
        let wbase = (co * cinpg + ci) * p.kh * p.kw;
        for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
            let iy = i32(oy * p.sh + ky * p.dh) - i32(p.ph);
            if (iy < 0 || iy >= i32(p.h)) { continue; }
            for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
                let ix = i32(ox * p.sw + kx * p.dw) - i32(p.pw);
                if (ix < 0 || ix >= i32(p.w)) { continue; }
                acc = acc + relu_in(f_x[xbase + u32(iy) * p.w + u32(ix)]) * f_w[wbase + ky * p.kw + kx];
            }
        }
    }
    f_y[i] = acc;
}

@group(0) @binding(1) var<storage, read> bi_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bi_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> bi_dx: array<f32>;
@compute @workgroup_size(256)
fn backward_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.cin * p.h * p.w) { return; }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let ci = (i / (p.w * p.h)) % p.cin;
    let b = i / (p.w * p.h * p.cin);
    let cinpg = p.cin / p.groups;
    let coutpg = p.cout / p.groups;
    let g = ci / cinpg;
    let cil = ci % cinpg;
    var acc = 0.0;
    for (var col = 0u; col < coutpg; col = col + 1u) {
        let co = g * coutpg + col;
        let dybase = (b * p.cout + co) * p.ho * p.wo;
        let wbase = (co * cinpg + cil) * p.kh * p.kw;
        for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
            let ty = i32(iy + p.ph) - i32(ky * p.dh);
            if (ty < 0 || (u32(ty) % p.sh) != 0u) { continue; }
            let oy = u32(ty) / p.sh;
            if (oy >= p.ho) { continue; }
            for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
                let tx = i32(ix + p.pw) - i32(kx * p.dw);
                if (tx < 0 || (u32(tx) % p.sw) != 0u) { continue; }
                let ox = u32(tx) / p.sw;
                if (ox >= p.wo) { continue; }
                acc = acc + bi_dy[dybase + oy * p.wo + ox] * bi_w[wbase + ky * p.kw + kx];
            }
        }
    }
    bi_dx[i] = acc;
}

@compute @workgroup_size(256)
fn backward_input_s1(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.cin * p.h * p.w) { return; }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let ci = (i / (p.w * p.h)) % p.cin;
    let b = i / (p.w * p.h * p.cin);
    let cinpg = p.cin / p.groups;
    let coutpg = p.cout / p.groups;
    let g = ci / cinpg;
    let cil = ci % cinpg;
    var acc = 0.0;
    for (var col = 0u; col < coutpg; col = col + 1u) {
        let co = g * coutpg + col;
        let dybase = (b * p.cout + co) * p.ho * p.wo;
        let wbase = (co * cinpg + cil) * p.kh * p.kw;
        for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
            let oy = i32(iy + p.ph) - i32(ky * p.dh);
            if (oy < 0 || oy >= i32(p.ho)) { continue; }
            for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
                let ox = i32(ix + p.pw) - i32(kx * p.dw);
                if (ox < 0 || ox >= i32(p.wo)) { continue; }
                acc = acc + bi_dy[dybase + u32(oy) * p.wo + u32(ox)] * bi_w[wbase + ky * p.kw + kx];
            }
        }
    }
    bi_dx[i] = acc;
}

@group(0) @binding(1) var<storage, read> bw_x: array<f32>;
@group(0) @binding(2) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bw_dw: array<f32>;
// Weight element `idx`'s gradient summed over output rows first, first + step, … of the
// batch (all of them with first = 0, step = 1).
fn weight_rows(idx: u32, first: u32, step: u32) -> f32 {
    let cinpg = p.cin / p.groups;
    let kx = idx % p.kw;
    let ky = (idx / p.kw) % p.kh;
    let cil = (idx / (p.kw * p.kh)) % cinpg;
    let co = idx / (p.kw * p.kh * cinpg);
    let ci = (co / (p.cout / p.groups)) * cinpg + cil;
    var acc = 0.0;
    // One output row per iteration: a division per row, not per element.
    for (var r = first; r < p.n * p.ho; r = r + step) {
        let b = r / p.ho;
        let oy = r % p.ho;
        let iy = i32(oy * p.sh + ky * p.dh) - i32(p.ph);
        if (iy < 0 || iy >= i32(p.h)) { continue; }
        let xrow = ((b * p.cin + ci) * p.h + u32(iy)) * p.w;
        let dyrow = ((b * p.cout + co) * p.ho + oy) * p.wo;
        for (var ox = 0u; ox < p.wo; ox = ox + 1u) {
            let ix = i32(ox * p.sw + kx * p.dw) - i32(p.pw);
            if (ix >= 0 && ix < i32(p.w)) {
                acc = acc + relu_in(bw_x[xrow + u32(ix)]) * bw_dy[dyrow + ox];
            }
        }
    }
    return acc;
}

@compute @workgroup_size(256)
fn backward_weight(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = group_index(wg, nwg);
    let s = tree_sum(li, weight_rows(idx, li, WG));
    if (li == 0u && idx < p.cout * (p.cin / p.groups) * p.kh * p.kw) { bw_dw[idx] = s; }
}

@compute @workgroup_size(256)
fn backward_weight_serial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = gid(wg, nwg, li);
    if (idx >= p.cout * (p.cin / p.groups) * p.kh * p.kw) { return; }
    bw_dw[idx] = weight_rows(idx, 0u, 1u);
}

@group(0) @binding(1) var<storage, read> bb_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> bb_db: array<f32>;
@compute @workgroup_size(256)
fn backward_bias(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let co = group_index(wg, nwg);
    let hw = p.ho * p.wo;
    var acc = 0.0;
    for (var t = li; t < p.n * hw; t = t + WG) {
        acc = acc + bb_dy[((t / hw) * p.cout + co) * hw + t % hw];
    }
    let s = tree_sum(li, acc);
    if (li == 0u && co < p.cout) { bb_db[co] = s; }
}

// backward_bias for planes of a multiple of 4 values: dy as vec4s, workgroups of 64 (one per
// output channel), each thread walking its own run of the channel's vec4s (prelude's Run).
@group(0) @binding(1) var<storage, read> bb4_dy: array<vec4<f32>>;
@compute @workgroup_size(64)
fn backward_bias4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let co = group_index(wg, nwg);
    var acc = 0.0;
    var r = run_of(li, 64u, p.n, p.ho * p.wo);
    for (var t = r.start; t < r.end; t = t + 1u) {
        acc = acc + hsum(bb4_dy[run_index(r, p.cout, co)]);
        run_next(&r);
    }
    let s = tree_sum_n(li, acc, 64u);
    if (li == 0u) { bb_db[co] = s; }
}

// ---- dense kernels for rows of a multiple of 4 ----

@group(0) @binding(4) var<storage, read_write> f4_y: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> f4_mask: array<vec4<f32>>;
// The weight again as a uniform window (UW = 1; bound to a placeholder otherwise).
@group(0) @binding(6) var<uniform> f4_uw: array<vec4<f32>, 4096>;
// x again as vec4 (SHARE = 1; bound to x whether or not it is used).
@group(0) @binding(7) var<storage, read> f4_x4: array<vec4<f32>>;

// Weight element i: from the uniform window with UW, where llvmpipe loads it once for all
// lanes (a storage load inside a loop runs lane by lane), else from storage.
fn weight4(i: u32) -> f32 {
    if (UW != 0u) { return f4_uw[i / 4u][i % 4u]; }
    return f_w[i];
}

// The 4 values of row `row` (start index) at columns ix0 + j·step (j < 4), 0 outside the row,
// through the folded ReLU.
// With TS > 1 (a strided convolution's input gradient) column u of the zero-dilated input is
// column u / TS where TS divides u, and 0 elsewhere.
fn gather4(row: u32, ix0: i32, step: u32, row_inside: bool) -> vec4<f32> {
    var v: vec4<f32>;
    for (var j = 0u; j < 4u; j = j + 1u) { v[j] = x_at(row, ix0 + i32(j * step), row_inside); }
    return v;
}

// gather4's value at column u of row `row`.
fn x_at(row: u32, u: i32, row_inside: bool) -> f32 {
    let ix = u / i32(TS);
    let inside = row_inside && u >= 0 && ix < i32(p.w) && u % i32(TS) == 0;
    return select(0.0, relu_in(f_x[row + u32(clamp(ix, 0, i32(p.w) - 1))]), inside);
}

// Row uy of the (zero-dilated with TS > 1) input: its start in the plane at `base`, and
// whether it holds data.
fn input_row(base: u32, uy: i32) -> vec2<u32> {
    let iy = uy / i32(TS);
    let inside = uy >= 0 && iy < i32(p.h) && uy % i32(TS) == 0;
    return vec2<u32>(base + u32(clamp(iy, 0, i32(p.h) - 1)) * p.w, u32(inside));
}

// SHARE's kernel row: the KS + 3 inputs at columns ox0 − pw .. ox0 + 3 + pw (pw = (KS − 1) / 2)
// of row xr (start, holds data) through the folded ReLU, 0 outside the row. The lane loads its
// own 4 (ox0 is a multiple of 4, so is the row start) and takes the pw on either side from
// lanes q − 1 and q + 1, which hold the row's neighbouring quads (a subgroup holds whole rows,
// wo ≤ 32): where they are in another row, or outside the subgroup, the column is outside the
// row and masked.
fn shared_window(xr: vec2<u32>, ox0: u32) -> array<f32, 10> {
    var own = select(vec4<f32>(0.0), f4_x4[(xr.x + ox0) / 4u], xr.y != 0u);
    if (RELU != 0u) { own = max(own, vec4<f32>(0.0)); }
    let pw = (KS - 1u) / 2u;
    var win: array<f32, 10>;
    for (var j = 0u; j < KS + 3u; j = j + 1u) {
        var v: f32;
        if (j < pw) {
            v = lane_prev(own[4u + j - pw]);
        } else if (j < pw + 4u) {
            v = own[j - pw];
        } else {
            v = lane_next(own[j - pw - 4u]);
        }
        let u = i32(ox0 + j) - i32(pw);
        win[j] = select(0.0, v, u >= 0 && u < i32(p.w));
    }
    return win;
}

// LANES: the RB weights of kernel tap k (before FLIP's turn) for output rows o0.., from
// lanes16 (rows by lane_index, two rounds; rows past cout read a clamped valid weight).
fn tap_weights(wci: u32, k: u32, taps: u32, li: u32, rows: u32, s_o: u32) -> array<f32, 16> {
    let tap = select(k, taps - 1u - k, FLIP != 0u);
    var hi = 0.0;
    if (RB > 8u) { hi = weight4(wci + tap + lane_index(li, 1u, rows - 1u) * s_o); }
    return lanes16(weight4(wci + tap + lane_index(li, 0u, rows - 1u) * s_o), hi);
}

// UNIT: the KS + 3 inputs under a kernel row's taps (row xr, outputs ox0..ox0 + 3), loaded
// once for all of them (a gather per tap loads 4 · KS); SHARE takes them from the lanes.
fn unit_window(xr: vec2<u32>, ox0: u32) -> array<f32, 10> {
    if (SHARE != 0u) { return shared_window(xr, ox0); }
    var win: array<f32, 10>;
    let ix0 = i32(ox0) - i32(p.pw);
    for (var j = 0u; j < KS + 3u; j = j + 1u) {
        let u = ix0 + i32(j);
        let inside = xr.y != 0u && u >= 0 && u < i32(p.w);
        win[j] = select(0.0, relu_in(f_x[xr.x + u32(clamp(u, 0, i32(p.w) - 1))]), inside);
    }
    return win;
}

// Output channels o0.. (RB of them, those past cout not written) for the 4 outputs of quad q
// (< n·ho·wo/4): computed, written where `valid` (bias added, masked with MASK) and returned.
// Every lane runs it (an invalid one on a clamped quad), so LANES' broadcasts see all 8.
fn forward4_rows(q: u32, o0: u32, li: u32, valid: bool) -> array<vec4<f32>, 16> {
    let ox0 = (q * 4u) % p.wo;
    let row = (q * 4u) / p.wo;
    let oy = row % p.ho;
    let b = row / p.ho;
    let rows = min(RB, p.cout - o0);
    var acc: array<vec4<f32>, 16>;
    let kh = select(p.kh, KS, KS != 0u);
    let kw = select(p.kw, KS, KS != 0u);
    let taps = kh * kw;
    // Weight strides between output channels and input channels (FLIP: see the header).
    let s_o = select(p.cin * taps, taps, FLIP != 0u);
    let s_i = select(taps, p.cout * taps, FLIP != 0u);
    var ci0 = 0u;
    if (UNIT != 0u && LANES != 0u && KS == 1u) {
        // 1×1: two input channels a step, summed in straight-line code before the one write
        // per accumulator (see the 3×3 rows below), in the same order as one a step.
        let uy = i32(oy * p.sh) - i32(p.ph);
        for (; ci0 + 2u <= p.cin; ci0 = ci0 + 2u) {
            let a = unit_window(input_row((b * p.cin + ci0) * p.h * p.w, uy), ox0);
            let c = unit_window(input_row((b * p.cin + ci0 + 1u) * p.h * p.w, uy), ox0);
            let x0 = vec4<f32>(a[0], a[1], a[2], a[3]);
            let x1 = vec4<f32>(c[0], c[1], c[2], c[3]);
            let w0 = tap_weights(o0 * s_o + ci0 * s_i, 0u, 1u, li, rows, s_o);
            let w1 = tap_weights(o0 * s_o + (ci0 + 1u) * s_i, 0u, 1u, li, rows, s_o);
            for (var r = 0u; r < 8u; r = r + 1u) {
                if (r < RB) { acc[r] = acc[r] + w0[r] * x0 + w1[r] * x1; }
            }
            for (var r = 8u; r < 16u; r = r + 1u) {
                if (r < RB) { acc[r] = acc[r] + w0[r] * x0 + w1[r] * x1; }
            }
        }
    }
    for (var ci = ci0; ci < p.cin; ci = ci + 1u) {
        let xbase = (b * p.cin + ci) * p.h * p.w;
        let wci = o0 * s_o + ci * s_i;
        for (var ky = 0u; ky < kh; ky = ky + 1u) {
            // Rows outside the input read a clamped row as zeros (no divergent branch).
            let xr = input_row(xbase, i32(oy * p.sh + ky * p.dh) - i32(p.ph));
            var win: array<f32, 10>;
            if (UNIT != 0u) { win = unit_window(xr, ox0); }
            if (UNIT != 0u && LANES != 0u && KS == 3u) {
                // A kernel row's three taps in one straight-line sum per accumulator (the
                // same order as the tap loop below, so the same bits): llvmpipe blends every
                // write of a loop-carried value with the loop's mask (a load, a blend and a
                // store where the accumulators spill), so one write a row instead of one a
                // tap. Two loops of 8 rows: short enough that Mesa unrolls them (one of 16
                // is not, and its arrays go to memory).
                let x0 = vec4<f32>(win[0], win[1], win[2], win[3]);
                let x1 = vec4<f32>(win[1], win[2], win[3], win[4]);
                let x2 = vec4<f32>(win[2], win[3], win[4], win[5]);
                let w0 = tap_weights(wci, ky * 3u, taps, li, rows, s_o);
                let w1 = tap_weights(wci, ky * 3u + 1u, taps, li, rows, s_o);
                let w2 = tap_weights(wci, ky * 3u + 2u, taps, li, rows, s_o);
                for (var r = 0u; r < 8u; r = r + 1u) {
                    if (r < RB) { acc[r] = acc[r] + w0[r] * x0 + w1[r] * x1 + w2[r] * x2; }
                }
                for (var r = 8u; r < 16u; r = r + 1u) {
                    if (r < RB) { acc[r] = acc[r] + w0[r] * x0 + w1[r] * x1 + w2[r] * x2; }
                }
            } else {
            for (var kx = 0u; kx < kw; kx = kx + 1u) {
                var xv: vec4<f32>;
                if (UNIT != 0u) {
                    xv = vec4<f32>(win[kx], win[kx + 1u], win[kx + 2u], win[kx + 3u]);
                } else {
                    let ix0 = i32(ox0 * p.sw + kx * p.dw) - i32(p.pw);
                    xv = gather4(xr.x, ix0, p.sw, xr.y != 0u);
                }
                let tap = select(ky * kw + kx, taps - 1u - ky * kw - kx, FLIP != 0u);
                // Rows past cout read a clamped (valid) weight and are not written.
                if (LANES != 0u) {
                    let wr = tap_weights(wci, ky * kw + kx, taps, li, rows, s_o);
                    for (var r = 0u; r < RB; r = r + 1u) { acc[r] = acc[r] + wr[r] * xv; }
                } else {
                    for (var r = 0u; r < RB; r = r + 1u) {
                        acc[r] = acc[r] + weight4(wci + tap + min(r, rows - 1u) * s_o) * xv;
                    }
                }
            }
            }
        }
    }
    let hw4 = p.ho * p.wo / 4u;
    let yb = ((b * p.cout + o0) * p.ho * p.wo + oy * p.wo + ox0) / 4u;
    // `if (r < rows)`, not a `break`: a loop Mesa cannot unroll would move acc to memory.
    for (var r = 0u; r < RB; r = r + 1u) {
        if (valid && r < rows) {
            if (p.has_bias != 0u) { acc[r] = acc[r] + vec4<f32>(f_b[o0 + r]); }
            let i = yb + r * hw4;
            var v = acc[r];
            if (MASK != 0u) { v = select(vec4<f32>(0.0), v, f4_mask[i] > vec4<f32>(0.0)); }
            f4_y[i] = v;
        }
    }
    return acc;
}

// forward4's threads per workgroup (QW, a multiple of 8, at most 256): fewer where the launch
// has fewer quads (LaunchPolicy::quads_per_group).
override QW: u32 = 256u;

@compute @workgroup_size(QW)
fn forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let q = wg.x * QW + li;
    let quads = p.n * p.ho * p.wo / 4u;
    forward4_rows(min(q, quads - 1u), wg.y * RB, li, q < quads);
}

// forward4 (MASK = 0) that also writes the batch-norm statistics of its outputs, so the batch
// norm that follows skips its own pass over them: binding 8 part (bind any buffer at 5), 3
// floats per (output channel, workgroup column wg.x) at 3·(channel·nwg.x + wg.x): the column's
// count of positions, their mean and Σ(y − mean)² (batchnorm.wgsl's stats_partial layout).
@group(0) @binding(8) var<storage, read_write> f4_part: array<f32>;

@compute @workgroup_size(256)
fn forward4_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let q = wg.x * WG + li;
    let o0 = wg.y * RB;
    let total = p.n * p.ho * p.wo;
    let valid = q * 4u < total;
    let acc = forward4_rows(min(q, total / 4u - 1u), o0, li, valid);
    let rows = min(RB, p.cout - o0);
    let cnt = f32(min(4u * WG, total - wg.x * 4u * WG));
    for (var g = 0u; g < RB; g = g + 8u) {
        let st = acc_rows8_stats(li, acc, valid, rows, g, cnt);
        if (li < 8u && g + li < rows) {
            let at = 3u * ((o0 + g + li) * nwg.x + wg.x);
            f4_part[at] = cnt;
            f4_part[at + 1u] = st.x;
            f4_part[at + 2u] = st.y;
        }
    }
}

// Where a BIAS = 1 pass puts the bias partials in `part`: after every dw partial.
fn bias_part_base() -> u32 {
    return ((p.cout + 3u) / 4u) * ((p.cin + 3u) / 4u) * p.kh * p.kw * p.chunks * 16u;
}

@group(0) @binding(2) var<storage, read> wp_dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> wp_part: array<f32>;

// The dy quads of a weight-gradient step: output channels o0 .. o0 + 3 (clamped to the block's
// ro) at quad `at` of the first, `plane` quads apart. With LANES and OB = 4 lanes l and l + 4
// share an output block: two loads a lane and shuffles (shared_block_quads; a load at a
// lane-varying index runs lane by lane on llvmpipe, a shuffle is one permute). Every lane of
// the subgroup must call it.
fn dy_quads(at: u32, ro: u32, plane: u32, li: u32) -> array<vec4<f32>, 4> {
    if (LANES != 0u && OB == 4u) {
        let l = li % 8u;
        let d0 = wp_dy[at + min(2u * (l / 4u), ro - 1u) * plane];
        let d1 = wp_dy[at + min(2u * (l / 4u) + 1u, ro - 1u) * plane];
        return shared_block_quads(d0, d1, l);
    }
    var dv: array<vec4<f32>, 4>;
    for (var a = 0u; a < 4u; a = a + 1u) { dv[a] = wp_dy[at + min(a, ro - 1u) * plane]; }
    return dv;
}

// weight_partial4's thread order with LANES: t = (((input block group · units + unit) ·
// chunks + chunk) · ig + input block in the group) · bo + output block, with bo a multiple of
// 8 (OB = 8, ig = 1) or bo = 4 and an even number of input blocks (OB = 4, ig = 2): a
// subgroup's lanes share the chunk and unit (a tap, or a kernel row), and each input block's
// values are read by OB lanes at once. Returns (output block, input block, unit, chunk).
fn lanes_order(t: u32, bo: u32, units: u32) -> vec4<u32> {
    let ig = 8u / OB;
    let rest = t / bo;
    let it = rest / ig / p.chunks;
    return vec4<u32>(t % bo, (it / units) * ig + rest % ig, it % units, (rest / ig) % p.chunks);
}

// A thread's 16 sums for block blk (output channels o0.., input channels i0.., tap (ky, kx)):
// its partials, or with DIRECT = 1 (one chunk) the finished weights, written into dw (bound at
// 3), the block's edge by test with constant bounds (the accumulators stay registers).
fn store_partials(acc: array<f32, 16>, blk: u32, chunk: u32, o0: u32, i0: u32, ky: u32, kx: u32) {
    let ro = min(4u, p.cout - o0);
    let ri = min(4u, p.cin - i0);
    if (DIRECT != 0u) {
        for (var a = 0u; a < 4u; a = a + 1u) {
            for (var c = 0u; c < 4u; c = c + 1u) {
                if (a < ro && c < ri) {
                    wp_part[(((o0 + a) * p.cin + i0 + c) * p.kh + ky) * p.kw + kx] = acc[a * 4u + c];
                }
            }
        }
        return;
    }
    let at = (blk * p.chunks + chunk) * 16u;
    for (var e = 0u; e < 16u; e = e + 1u) { wp_part[at + e] = acc[e]; }
}

// BIAS = 1: output block o0's bias partials for the chunk, after every dw partial.
fn store_bias_partials(bsum: vec4<f32>, o0: u32, chunk: u32) {
    let at = bias_part_base() + ((o0 / 4u) * p.chunks + chunk) * 4u;
    for (var a = 0u; a < 4u; a = a + 1u) { wp_part[at + a] = bsum[a]; }
}

@compute @workgroup_size(WPG)
fn weight_partial4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = group_index(wg, nwg) * WPG + li;
    let taps = p.kh * p.kw;
    let bi = (p.cin + 3u) / 4u;
    let bo = (p.cout + 3u) / 4u;
    if (t >= bo * bi * taps * p.chunks) { return; }
    var chunk = t % p.chunks;
    var blk = t / p.chunks;
    // Input blocks a subgroup's lanes take: 8 / OB with LANES, else 1.
    let ig = select(1u, 8u / OB, LANES != 0u);
    if (LANES != 0u) {
        let o = lanes_order(t, bo, taps);
        chunk = o.w;
        blk = (o.x * bi + o.y) * taps + o.z;
    }
    let tap = blk % taps;
    let ky = tap / p.kw;
    let kx = tap % p.kw;
    let o0 = (blk / taps / bi) * 4u;
    let i0 = ((blk / taps) % bi) * 4u;
    let ro = min(4u, p.cout - o0);
    let ri = min(4u, p.cin - i0);
    var acc: array<f32, 16>;
    for (var e = 0u; e < 16u; e = e + 1u) { acc[e] = 0.0; }
    // BIAS = 1 (never with DIRECT): the threads of input block 0 and tap 0 also sum dy over
    // every row of their chunk (rows no input reaches included), the bias gradient's partials.
    let bias_thread = BIAS != 0u && i0 == 0u && tap == 0u;
    // Rows no input reaches are skipped alike by every lane of a subgroup (a bias thread's
    // group keeps them; its other lanes add products with zeros there).
    let bias_rows = BIAS != 0u && i0 / (4u * ig) == 0u && tap == 0u;
    var bsum = vec4<f32>(0.0);
    let wo4 = p.wo / 4u;
    let end = min((chunk + 1u) * p.per, p.n * p.ho);
    for (var r = chunk * p.per; r < end; r = r + 1u) {
        let b = r / p.ho;
        let oy = r % p.ho;
        let xr = input_row((b * p.cin + i0) * p.h * p.w, i32(oy * p.sh + ky * p.dh) - i32(p.ph));
        if (xr.y == 0u && !bias_rows) { continue; }
        let dyrow = ((b * p.cout + o0) * p.ho + oy) * wo4;
        for (var qx = 0u; qx < wo4; qx = qx + 1u) {
            let ix0 = i32(qx * 4u * p.sw + kx * p.dw) - i32(p.pw);
            let dv = dy_quads(dyrow + qx, ro, p.ho * wo4, li);
            var xv: array<vec4<f32>, 4>;
            if (LANES != 0u && OB == 8u) {
                // Lane l = 2c + j/2 reads input channel c's values j and j + 1 (j = 2·(l % 2)).
                let l = li % 8u;
                let row = xr.x + min(l / 2u, ri - 1u) * p.h * p.w;
                let u = ix0 + i32(2u * (l % 2u) * p.sw);
                let v = lanes16(x_at(row, u, xr.y != 0u), x_at(row, u + i32(p.sw), xr.y != 0u));
                for (var c = 0u; c < 4u; c = c + 1u) {
                    xv[c] = vec4<f32>(v[2u * c], v[8u + 2u * c], v[2u * c + 1u], v[9u + 2u * c]);
                }
            } else if (LANES != 0u) {
                // OB = 4: lane l = 4h + c reads channel c of its own input block (group half
                // h) whole; a thread takes its half's.
                let l = li % 8u;
                let g = gather4(xr.x + min(l % 4u, ri - 1u) * p.h * p.w, ix0, p.sw, xr.y != 0u);
                let a = lanes16(g.x, g.y);
                let b = lanes16(g.z, g.w);
                for (var c = 0u; c < 4u; c = c + 1u) {
                    let first = vec4<f32>(a[c], a[8u + c], b[c], b[8u + c]);
                    let second = vec4<f32>(a[4u + c], a[12u + c], b[4u + c], b[12u + c]);
                    xv[c] = select(first, second, l >= 4u);
                }
            } else {
                for (var c = 0u; c < 4u; c = c + 1u) {
                    xv[c] = gather4(xr.x + min(c, ri - 1u) * p.h * p.w, ix0, p.sw, xr.y != 0u);
                }
            }
            for (var a = 0u; a < 4u; a = a + 1u) {
                if (bias_thread) { bsum[a] = bsum[a] + dot(dv[a], vec4<f32>(1.0)); }
                for (var c = 0u; c < 4u; c = c + 1u) {
                    acc[a * 4u + c] = acc[a * 4u + c] + dot(dv[a], xv[c]);
                }
            }
        }
    }
    if (bias_thread) { store_bias_partials(bsum, o0, chunk); }
    store_partials(acc, blk, chunk, o0, i0, ky, kx);
}

// weight_partial4_row3: weight_partial4 with LANES for kernel rows of 3 taps at column stride
// and dilation 1: a thread takes its 4×4 channel block's whole kernel row, so each step's four
// dy loads (lane by lane on llvmpipe) serve 48 products instead of 16. Threads in
// weight_partial4's order with kernel rows for taps. A step's inputs (4 channels × 6 columns of
// each input block) are read 3 a lane (OB = 8: one input block a subgroup) or 6 (OB = 4: two)
// and broadcast. Bindings, partials (three blocks a thread), DIRECT and BIAS as
// weight_partial4's; the same sums in the same order.
@compute @workgroup_size(WPG)
fn weight_partial4_row3(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = group_index(wg, nwg) * WPG + li;
    let bi = (p.cin + 3u) / 4u;
    let bo = (p.cout + 3u) / 4u;
    // Whole subgroups leave together (8 output blocks, or 4 of 2 input blocks).
    if (t >= bo * bi * p.kh * p.chunks) { return; }
    // weight_partial4's order with kernel rows for taps.
    let ig = 8u / OB;
    let o = lanes_order(t, bo, p.kh);
    let ib = o.y;
    let ky = o.z;
    let chunk = o.w;
    let o0 = o.x * 4u;
    let i0 = ib * 4u;
    let ro = min(4u, p.cout - o0);
    let ri = min(4u, p.cin - i0);
    var acc0: array<f32, 16>;
    var acc1: array<f32, 16>;
    var acc2: array<f32, 16>;
    for (var e = 0u; e < 16u; e = e + 1u) {
        acc0[e] = 0.0;
        acc1[e] = 0.0;
        acc2[e] = 0.0;
    }
    // The bias's partials: the threads of input block 0 and kernel row 0 (a subgroup's lanes
    // share both), over every row of their chunk.
    let bias_thread = BIAS != 0u && i0 == 0u && ky == 0u;
    // Rows no input reaches are skipped alike by a subgroup's lanes (a bias thread's keep
    // them; its other lanes add products with zeros there).
    let bias_rows = BIAS != 0u && ib / ig == 0u && ky == 0u;
    var bsum = vec4<f32>(0.0);
    let wo4 = p.wo / 4u;
    let l = li % 8u;
    let end = min((chunk + 1u) * p.per, p.n * p.ho);
    for (var r = chunk * p.per; r < end; r = r + 1u) {
        let b = r / p.ho;
        let oy = r % p.ho;
        let xr = input_row((b * p.cin + i0) * p.h * p.w, i32(oy * p.sh + ky * p.dh) - i32(p.ph));
        if (xr.y == 0u && !bias_rows) { continue; }
        let dyrow = ((b * p.cout + o0) * p.ho + oy) * wo4;
        for (var qx = 0u; qx < wo4; qx = qx + 1u) {
            let dv = dy_quads(dyrow + qx, ro, p.ho * wo4, li);
            var x0: array<vec4<f32>, 4>;
            var x1: array<vec4<f32>, 4>;
            var x2: array<vec4<f32>, 4>;
            if (OB == 8u) {
                // Value v = 3l + m (channel v / 6, column ix0 + v % 6) is lane l's m-th load.
                let ix0 = i32(qx * 4u) - i32(p.pw);
                var ld: array<f32, 3>;
                for (var m = 0u; m < 3u; m = m + 1u) {
                    let v = 3u * l + m;
                    ld[m] = x_at(xr.x + min(v / 6u, ri - 1u) * p.h * p.w, ix0 + i32(v % 6u), xr.y != 0u);
                }
                let t = block_taps(ld[0], ld[1], ld[2]);
                x0 = t.x0;
                x1 = t.x1;
                x2 = t.x2;
            } else {
                // OB = 4: lane l = 4h + c loads columns ix0 .. ix0 + 5 of channel c of its own
                // input block (group half h); a thread takes its half's.
                let ix0 = i32(qx * 4u) - i32(p.pw);
                var ld: array<f32, 6>;
                for (var j = 0u; j < 6u; j = j + 1u) {
                    ld[j] = x_at(xr.x + min(l % 4u, ri - 1u) * p.h * p.w, ix0 + i32(j), xr.y != 0u);
                }
                let t = half_taps(ld[0], ld[1], ld[2], ld[3], ld[4], ld[5], l);
                x0 = t.x0;
                x1 = t.x1;
                x2 = t.x2;
            }
            if (bias_thread) {
                for (var a = 0u; a < 4u; a = a + 1u) { bsum[a] = bsum[a] + dot(dv[a], vec4<f32>(1.0)); }
            }
            for (var a = 0u; a < 4u; a = a + 1u) {
                for (var c = 0u; c < 4u; c = c + 1u) {
                    acc0[a * 4u + c] = acc0[a * 4u + c] + dot(dv[a], x0[c]);
                    acc1[a * 4u + c] = acc1[a * 4u + c] + dot(dv[a], x1[c]);
                    acc2[a * 4u + c] = acc2[a * 4u + c] + dot(dv[a], x2[c]);
                }
            }
        }
    }
    if (bias_thread) { store_bias_partials(bsum, o0, chunk); }
    let blk = (o.x * bi + ib) * p.kh * 3u + ky * 3u;
    store_partials(acc0, blk, chunk, o0, i0, ky, 0u);
    store_partials(acc1, blk + 1u, chunk, o0, i0, ky, 1u);
    store_partials(acc2, blk + 2u, chunk, o0, i0, ky, 2u);
}

// The 6 columns (lo: 0..3, hi: 4..5) that lane `lane` of the subgroup loaded: with 4 output
// blocks of 2 input blocks a subgroup (OB = 4), lane 4h + c loads channel c of its half h's
// input block, and a thread reads its half's four lanes. A shuffle at a lane-varying index is
// one permute on llvmpipe, where broadcasting every lane's values and selecting a half took
// 48 broadcasts and 48 selects a kernel row.
struct Columns6 {
    lo: vec4<f32>,
    hi: vec2<f32>,
}

fn half_columns(a: f32, b: f32, c: f32, d: f32, e: f32, f: f32, lane: u32) -> Columns6 {
    return Columns6(
        vec4<f32>(lane_read(a, lane), lane_read(b, lane), lane_read(c, lane), lane_read(d, lane)),
        vec2<f32>(lane_read(e, lane), lane_read(f, lane)));
}

// The same in the 8-output-block layout: value v = 3l + m (channel v / 6, column v % 6) is lane
// l's m-th load (a, b, c), broadcast to every lane.
fn block_taps(a: f32, b: f32, c: f32) -> HalfTaps {
    let lo = lanes16(a, b);
    let hi = lanes16(c, 0.0);
    return HalfTaps(
        array<vec4<f32>, 4>(
            vec4<f32>(lo[0], lo[8], hi[0], lo[1]),
            vec4<f32>(lo[2], lo[10], hi[2], lo[3]),
            vec4<f32>(lo[4], lo[12], hi[4], lo[5]),
            vec4<f32>(lo[6], lo[14], hi[6], lo[7])),
        array<vec4<f32>, 4>(
            vec4<f32>(lo[8], hi[0], lo[1], lo[9]),
            vec4<f32>(lo[10], hi[2], lo[3], lo[11]),
            vec4<f32>(lo[12], hi[4], lo[5], lo[13]),
            vec4<f32>(lo[14], hi[6], lo[7], lo[15])),
        array<vec4<f32>, 4>(
            vec4<f32>(hi[0], lo[1], lo[9], hi[1]),
            vec4<f32>(hi[2], lo[3], lo[11], hi[3]),
            vec4<f32>(hi[4], lo[5], lo[13], hi[5]),
            vec4<f32>(hi[6], lo[7], lo[15], hi[7])));
}

// A kernel row's three taps' inputs (tap k: columns k .. k + 3 of each of the 4 channels) in
// the 4-output-block layout: channel c's 6 columns from lane (l & 4) | c, which loaded them
// (a, b, .., f: the calling lane's own 6).
struct HalfTaps {
    x0: array<vec4<f32>, 4>,
    x1: array<vec4<f32>, 4>,
    x2: array<vec4<f32>, 4>,
}

fn half_taps(a: f32, b: f32, c: f32, d: f32, e: f32, f: f32, l: u32) -> HalfTaps {
    let c0 = half_columns(a, b, c, d, e, f, l & 4u);
    let c1 = half_columns(a, b, c, d, e, f, (l & 4u) | 1u);
    let c2 = half_columns(a, b, c, d, e, f, (l & 4u) | 2u);
    let c3 = half_columns(a, b, c, d, e, f, (l & 4u) | 3u);
    return HalfTaps(
        array<vec4<f32>, 4>(c0.lo, c1.lo, c2.lo, c3.lo),
        array<vec4<f32>, 4>(vec4<f32>(c0.lo.yzw, c0.hi.x), vec4<f32>(c1.lo.yzw, c1.hi.x),
            vec4<f32>(c2.lo.yzw, c2.hi.x), vec4<f32>(c3.lo.yzw, c3.hi.x)),
        array<vec4<f32>, 4>(vec4<f32>(c0.lo.zw, c0.hi), vec4<f32>(c1.lo.zw, c1.hi),
            vec4<f32>(c2.lo.zw, c2.hi), vec4<f32>(c3.lo.zw, c3.hi)));
}

// XQ = 1 (weight_partial4_k3 with 4 output blocks of 2 input blocks a subgroup, column padding
// 1 and rows of a multiple of 4, so an input row is whole quads): a lane's 6 columns 4qx − 1 ..
// 4qx + 4 of its channel of a kernel row come from the quads qx − 1 and qx, carried along the
// column loop, and one aligned vec4 load of quad qx + 1 (x again at 4), instead of six scalar
// loads; through the folded ReLU, 0 outside the row.
override XQ: u32 = 0u;
@group(0) @binding(4) var<storage, read> wp_x4: array<vec4<f32>>;

fn xq_quad(xr: vec2<u32>, c: u32, qi: u32, wo4: u32) -> vec4<f32> {
    let v = select(vec4<f32>(0.0), wp_x4[(xr.x + c * p.h * p.w) / 4u + min(qi, wo4 - 1u)], xr.y != 0u && qi < wo4);
    if (RELU != 0u) { return max(v, vec4<f32>(0.0)); }
    return v;
}

// weight_partial4_k3: weight_partial4_row3 for 3×3 kernels (column stride and dilation 1) with a
// thread taking its 4×4 channel block's whole kernel: each step's four dy loads (lane by lane
// on llvmpipe, over a third of the kernel's time) serve 144 products instead of 48; the three
// kernel rows' inputs are read as row3 reads one. Threads in weight_partial4's order without
// taps (lanes_order with one unit). The rows are written out (no loop over them) so that every
// accumulator array keeps constant indices. Bindings, partials (nine blocks a thread), DIRECT
// and BIAS as weight_partial4's; each weight's sums in the same order as row3's.
@compute @workgroup_size(WPG)
fn weight_partial4_k3(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = group_index(wg, nwg) * WPG + li;
    let bi = (p.cin + 3u) / 4u;
    let bo = (p.cout + 3u) / 4u;
    // Whole subgroups leave together (8 output blocks, or 4 of 2 input blocks).
    if (t >= bo * bi * p.chunks) { return; }
    let ig = 8u / OB;
    let o = lanes_order(t, bo, 1u);
    let ib = o.y;
    let chunk = o.w;
    let o0 = o.x * 4u;
    let i0 = ib * 4u;
    let ro = min(4u, p.cout - o0);
    let ri = min(4u, p.cin - i0);
    var acc00: array<f32, 16>;
    var acc01: array<f32, 16>;
    var acc02: array<f32, 16>;
    var acc10: array<f32, 16>;
    var acc11: array<f32, 16>;
    var acc12: array<f32, 16>;
    var acc20: array<f32, 16>;
    var acc21: array<f32, 16>;
    var acc22: array<f32, 16>;
    for (var e = 0u; e < 16u; e = e + 1u) {
        acc00[e] = 0.0;
        acc01[e] = 0.0;
        acc02[e] = 0.0;
        acc10[e] = 0.0;
        acc11[e] = 0.0;
        acc12[e] = 0.0;
        acc20[e] = 0.0;
        acc21[e] = 0.0;
        acc22[e] = 0.0;
    }
    // The bias's partials: the threads of input block 0 (a subgroup's lanes share it where
    // OB = 8), over every row of their chunk.
    let bias_thread = BIAS != 0u && i0 == 0u;
    var bsum = vec4<f32>(0.0);
    let wo4 = p.wo / 4u;
    let l = li % 8u;
    let end = min((chunk + 1u) * p.per, p.n * p.ho);
    for (var r = chunk * p.per; r < end; r = r + 1u) {
        let b = r / p.ho;
        let oy = r % p.ho;
        let dyrow = ((b * p.cout + o0) * p.ho + oy) * wo4;
        // XQ: each kernel row's previous and current input quads, carried along the columns.
        let xch = min(l % 4u, ri - 1u);
        let xbase = (b * p.cin + i0) * p.h * p.w;
        var pv0 = vec4<f32>(0.0);
        var pv1 = vec4<f32>(0.0);
        var pv2 = vec4<f32>(0.0);
        var cv0 = vec4<f32>(0.0);
        var cv1 = vec4<f32>(0.0);
        var cv2 = vec4<f32>(0.0);
        if (XQ != 0u) {
            cv0 = xq_quad(input_row(xbase, i32(oy * p.sh) - i32(p.ph)), xch, 0u, wo4);
            cv1 = xq_quad(input_row(xbase, i32(oy * p.sh + p.dh) - i32(p.ph)), xch, 0u, wo4);
            cv2 = xq_quad(input_row(xbase, i32(oy * p.sh + 2u * p.dh) - i32(p.ph)), xch, 0u, wo4);
        }
        for (var qx = 0u; qx < wo4; qx = qx + 1u) {
            let dv = dy_quads(dyrow + qx, ro, p.ho * wo4, li);
            if (bias_thread) {
                for (var a = 0u; a < 4u; a = a + 1u) { bsum[a] = bsum[a] + dot(dv[a], vec4<f32>(1.0)); }
            }
            {
                // Kernel row 0: its input row, 4 channels × 6 columns, into x0..x2 (tap k).
                let xr = input_row((b * p.cin + i0) * p.h * p.w, i32(oy * p.sh + 0u * p.dh) - i32(p.ph));
                var x0: array<vec4<f32>, 4>;
                var x1: array<vec4<f32>, 4>;
                var x2: array<vec4<f32>, 4>;
                if (OB == 8u) {
                    // Value v = 3l + m (channel v / 6, column ix0 + v % 6) is lane l's m-th load.
                    let ix0 = i32(qx * 4u) - i32(p.pw);
                    var ld: array<f32, 3>;
                    for (var m = 0u; m < 3u; m = m + 1u) {
                        let v = 3u * l + m;
                        ld[m] = x_at(xr.x + min(v / 6u, ri - 1u) * p.h * p.w, ix0 + i32(v % 6u), xr.y != 0u);
                    }
                    let t = block_taps(ld[0], ld[1], ld[2]);
                    x0 = t.x0;
                    x1 = t.x1;
                    x2 = t.x2;
                } else {
                    // OB = 4: lane l = 4h + c loads columns ix0 .. ix0 + 5 of channel c of its own
                    // input block (group half h); a thread takes its half's.
                    let ix0 = i32(qx * 4u) - i32(p.pw);
                    var ld: array<f32, 6>;
                    if (XQ != 0u) {
                        let nv = xq_quad(xr, xch, qx + 1u, wo4);
                        ld = array<f32, 6>(pv0.w, cv0.x, cv0.y, cv0.z, cv0.w, nv.x);
                        pv0 = cv0;
                        cv0 = nv;
                    } else {
                        for (var j = 0u; j < 6u; j = j + 1u) {
                            ld[j] = x_at(xr.x + min(l % 4u, ri - 1u) * p.h * p.w, ix0 + i32(j), xr.y != 0u);
                        }
                    }
                    let t = half_taps(ld[0], ld[1], ld[2], ld[3], ld[4], ld[5], l);
                    x0 = t.x0;
                    x1 = t.x1;
                    x2 = t.x2;
                }
                for (var a = 0u; a < 4u; a = a + 1u) {
                    for (var c = 0u; c < 4u; c = c + 1u) {
                        acc00[a * 4u + c] = acc00[a * 4u + c] + dot(dv[a], x0[c]);
                        acc01[a * 4u + c] = acc01[a * 4u + c] + dot(dv[a], x1[c]);
                        acc02[a * 4u + c] = acc02[a * 4u + c] + dot(dv[a], x2[c]);
                    }
                }
            }
            {
                // Kernel row 1: its input row, 4 channels × 6 columns, into x0..x2 (tap k).
                let xr = input_row((b * p.cin + i0) * p.h * p.w, i32(oy * p.sh + 1u * p.dh) - i32(p.ph));
                var x0: array<vec4<f32>, 4>;
                var x1: array<vec4<f32>, 4>;
                var x2: array<vec4<f32>, 4>;
                if (OB == 8u) {
                    // Value v = 3l + m (channel v / 6, column ix0 + v % 6) is lane l's m-th load.
                    let ix0 = i32(qx * 4u) - i32(p.pw);
                    var ld: array<f32, 3>;
                    for (var m = 0u; m < 3u; m = m + 1u) {
                        let v = 3u * l + m;
                        ld[m] = x_at(xr.x + min(v / 6u, ri - 1u) * p.h * p.w, ix0 + i32(v % 6u), xr.y != 0u);
                    }
                    let t = block_taps(ld[0], ld[1], ld[2]);
                    x0 = t.x0;
                    x1 = t.x1;
                    x2 = t.x2;
                } else {
                    // OB = 4: lane l = 4h + c loads columns ix0 .. ix0 + 5 of channel c of its own
                    // input block (group half h); a thread takes its half's.
                    let ix0 = i32(qx * 4u) - i32(p.pw);
                    var ld: array<f32, 6>;
                    if (XQ != 0u) {
                        let nv = xq_quad(xr, xch, qx + 1u, wo4);
                        ld = array<f32, 6>(pv1.w, cv1.x, cv1.y, cv1.z, cv1.w, nv.x);
                        pv1 = cv1;
                        cv1 = nv;
                    } else {
                        for (var j = 0u; j < 6u; j = j + 1u) {
                            ld[j] = x_at(xr.x + min(l % 4u, ri - 1u) * p.h * p.w, ix0 + i32(j), xr.y != 0u);
                        }
                    }
                    let t = half_taps(ld[0], ld[1], ld[2], ld[3], ld[4], ld[5], l);
                    x0 = t.x0;
                    x1 = t.x1;
                    x2 = t.x2;
                }
                for (var a = 0u; a < 4u; a = a + 1u) {
                    for (var c = 0u; c < 4u; c = c + 1u) {
                        acc10[a * 4u + c] = acc10[a * 4u + c] + dot(dv[a], x0[c]);
                        acc11[a * 4u + c] = acc11[a * 4u + c] + dot(dv[a], x1[c]);
                        acc12[a * 4u + c] = acc12[a * 4u + c] + dot(dv[a], x2[c]);
                    }
                }
            }
            {
                // Kernel row 2: its input row, 4 channels × 6 columns, into x0..x2 (tap k).
                let xr = input_row((b * p.cin + i0) * p.h * p.w, i32(oy * p.sh + 2u * p.dh) - i32(p.ph));
                var x0: array<vec4<f32>, 4>;
                var x1: array<vec4<f32>, 4>;
                var x2: array<vec4<f32>, 4>;
                if (OB == 8u) {
                    // Value v = 3l + m (channel v / 6, column ix0 + v % 6) is lane l's m-th load.
                    let ix0 = i32(qx * 4u) - i32(p.pw);
                    var ld: array<f32, 3>;
                    for (var m = 0u; m < 3u; m = m + 1u) {
                        let v = 3u * l + m;
                        ld[m] = x_at(xr.x + min(v / 6u, ri - 1u) * p.h * p.w, ix0 + i32(v % 6u), xr.y != 0u);
                    }
                    let t = block_taps(ld[0], ld[1], ld[2]);
                    x0 = t.x0;
                    x1 = t.x1;
                    x2 = t.x2;
                } else {
                    // OB = 4: lane l = 4h + c loads columns ix0 .. ix0 + 5 of channel c of its own
                    // input block (group half h); a thread takes its half's.
                    let ix0 = i32(qx * 4u) - i32(p.pw);
                    var ld: array<f32, 6>;
                    if (XQ != 0u) {
                        let nv = xq_quad(xr, xch, qx + 1u, wo4);
                        ld = array<f32, 6>(pv2.w, cv2.x, cv2.y, cv2.z, cv2.w, nv.x);
                        pv2 = cv2;
                        cv2 = nv;
                    } else {
                        for (var j = 0u; j < 6u; j = j + 1u) {
                            ld[j] = x_at(xr.x + min(l % 4u, ri - 1u) * p.h * p.w, ix0 + i32(j), xr.y != 0u);
                        }
                    }
                    let t = half_taps(ld[0], ld[1], ld[2], ld[3], ld[4], ld[5], l);
                    x0 = t.x0;
                    x1 = t.x1;
                    x2 = t.x2;
                }
                for (var a = 0u; a < 4u; a = a + 1u) {
                    for (var c = 0u; c < 4u; c = c + 1u) {
                        acc20[a * 4u + c] = acc20[a * 4u + c] + dot(dv[a], x0[c]);
                        acc21[a * 4u + c] = acc21[a * 4u + c] + dot(dv[a], x1[c]);
                        acc22[a * 4u + c] = acc22[a * 4u + c] + dot(dv[a], x2[c]);
                    }
                }
            }
        }
    }
    if (bias_thread) { store_bias_partials(bsum, o0, chunk); }
    let blk = (o.x * bi + ib) * 9u;
    store_partials(acc00, blk + 0u, chunk, o0, i0, 0u, 0u);
    store_partials(acc01, blk + 1u, chunk, o0, i0, 0u, 1u);
    store_partials(acc02, blk + 2u, chunk, o0, i0, 0u, 2u);
    store_partials(acc10, blk + 3u, chunk, o0, i0, 1u, 0u);
    store_partials(acc11, blk + 4u, chunk, o0, i0, 1u, 1u);
    store_partials(acc12, blk + 5u, chunk, o0, i0, 1u, 2u);
    store_partials(acc20, blk + 6u, chunk, o0, i0, 2u, 0u);
    store_partials(acc21, blk + 7u, chunk, o0, i0, 2u, 1u);
    store_partials(acc22, blk + 8u, chunk, o0, i0, 2u, 2u);
}

@group(0) @binding(1) var<storage, read> ws_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> ws_dw: array<f32>;

// Weight element e's sum over the chunks' partials.
// Where weight element e's partials start: chunk c's is at dw_base(e) + 16·c.
fn dw_base(e: u32) -> u32 {
    let taps = p.kh * p.kw;
    let tap = e % taps;
    let i = (e / taps) % p.cin;
    let o = e / (taps * p.cin);
    let blk = ((o / 4u) * ((p.cin + 3u) / 4u) + i / 4u) * taps + tap;
    return blk * p.chunks * 16u + (o % 4u) * 4u + i % 4u;
}

fn dw_sum(e: u32) -> f32 {
    let base = dw_base(e);
    var acc = 0.0;
    for (var c = 0u; c < p.chunks; c = c + 1u) {
        acc = acc + ws_part[base + c * 16u];
    }
    return acc;
}

@compute @workgroup_size(256)
fn weight_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    if (e >= p.cout * p.cin * p.kh * p.kw) { return; }
    ws_dw[e] = dw_sum(e);
}

// weight_sum after a BIAS = 1 pass: threads past dw's elements add the bias partials. Binding
// 3 db.
@group(0) @binding(3) var<storage, read_write> ws_db: array<f32>;

@compute @workgroup_size(256)
fn weight_sum_bias(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    let ndw = p.cout * p.cin * p.kh * p.kw;
    if (e < ndw) {
        ws_dw[e] = dw_sum(e);
        return;
    }
    let o = e - ndw;
    if (o >= p.cout) { return; }
    var acc = 0.0;
    for (var c = 0u; c < p.chunks; c = c + 1u) {
        acc = acc + ws_part[bias_part_base() + ((o / 4u) * p.chunks + c) * 4u + o % 4u];
    }
    ws_db[o] = acc;
}

// Element e's sum by the whole workgroup: every 256th of its `count` partials (from `base`,
// `stride` apart) a thread, then a tree sum; call from uniform control flow.
fn group_sum(li: u32, base: u32, stride: u32, count: u32) -> f32 {
    var acc = 0.0;
    for (var c = li; c < count; c = c + WG) {
        acc = acc + ws_part[base + c * stride];
    }
    return tree_sum(li, acc);
}

@compute @workgroup_size(256)
fn weight_sum_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // One element a workgroup (the same `e` in every thread: the barriers stay uniform).
    let e = min(group_index(wg, nwg), p.cout * p.cin * p.kh * p.kw - 1u);
    let total = group_sum(li, dw_base(e), 16u, p.chunks);
    if (li == 0u) { ws_dw[e] = total; }
}

@compute @workgroup_size(256)
fn weight_sum_bias_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ndw = p.cout * p.cin * p.kh * p.kw;
    let e = min(group_index(wg, nwg), ndw + p.cout - 1u);
    var base = dw_base(min(e, ndw - 1u));
    var stride = 16u;
    if (e >= ndw) {
        let o = e - ndw;
        base = bias_part_base() + (o / 4u) * p.chunks * 4u + o % 4u;
        stride = 4u;
    }
    let total = group_sum(li, base, stride, p.chunks);
    if (li == 0u && e < ndw) { ws_dw[e] = total; }
    if (li == 0u && e >= ndw) { ws_db[e - ndw] = total; }
}
