// depthwise.wgsl: depthwise 2-D convolution (groups = channels, one k×k filter per channel),
// the spatial half of DARTS' sep_conv / dil_conv, and its gradients. NCHW f32.
// Kernel size K, stride S and dilation D are pipeline constants, so the tap loops unroll and
// the weight-gradient accumulators live in registers; padding comes from the parameters.
// x: (n, c, h, w), weight: (c, 1, K, K), y: (n, c, ho, wo).
//   forward         1 x, 2 weight, 3 y, 4 mask   one thread per strip of STRIP = 4 outputs of a row:
//                   each input row's window is loaded once into registers and serves all
//                   K taps of the 4 outputs (needs (STRIP-1)*S + (K-1)*D + 1 <= 16)
//   forward4        the same on rows of a multiple of 4, x / y / mask as vec4s, OUT = 8 or 4
//                   outputs per thread, 64 threads per workgroup over one channel (see below);
//                   5 uw (uniform, 64 KiB): with UW = 1 the weight's buffer again, read from
//                   there (CPU adapters: one scalar load, where a storage load inside the tap
//                   loops runs lane by lane); a placeholder window otherwise
//   dw_pw4          forward4 for all channels of a pixel strip, then the 1×1 convolution that
//                   follows it, in one launch (1 x, 2 weight, 3 y, 4 1×1 weight, 5 mid; 6 and
//                   7 the two weights' uniform windows with UW = 1 and UWP = 1; see below)
//   dw_pw4_stats    dw_pw4 that also writes the batch-norm statistics of its outputs (8 part)
//   backward_input  1 dy, 2 weight, 3 dx, 4 mask one thread per input element (gather); stride 1
//                   uses `forward` with FLIP instead (see below), stride 2 on rows of a
//                   multiple of 4 `backward_input2`
//   weight gradient in two passes (no barriers; they are costly on CPU adapters):
//   weight_partial  1 x, 2 dy, 3 part   one thread per (channel, chunk of p.per output rows)
//                   accumulates all K×K taps in registers
//   weight_partial4 the same for rows of a multiple of 4 (vec4 loads; see below)
//   weight_sum      1 part, 2 dw        one thread per weight adds its chunks' partials
//                   (with one chunk the partials are dw itself: bound as part, no second pass)
//   weight_sum_wg   1 part, 2 dw        weight_sum with a workgroup per weight (grid: one
//                   workgroup per weight): every 256th chunk a thread, then a tree sum (GPUs)
// RELU = 1 (pipeline constant): x is read through max(x, 0), so a preceding ReLU needs no pass
// or buffer of its own (forward and weight_partial). MASK = 1: an output is written only where
// mask > 0 (0 elsewhere): the input gradient through that folded ReLU, with mask = the
// convolution's input (forward with FLIP, backward_input). With MASK = 0, bind any buffer.
// Workgroup size 256 (64 for the vec4 entries, which index workgroups themselves); 1-D
// launches spread over the grid (see prelude).

override K: u32 = 3u;
override S: u32 = 1u;
override D: u32 = 1u;
// FLIP = 1: correlate with the kernel rotated by 180°. With stride 1 that makes `forward` the
// input gradient too: dx = forward(dy, rotated w, padding D*(K-1) - pad).
override FLIP: u32 = 0u;
override RELU: u32 = 0u;
override MASK: u32 = 0u;
// UW = 1: forward4 / dw_pw4 read the depthwise weight from its uniform window; UWP = 1: dw_pw4
// reads the 1×1 weight from its own.
override UW: u32 = 0u;
override UWP: u32 = 0u;
// LANES = 1 (CPU adapters whose subgroups are 8 consecutive invocations; see lanes.wgsl):
// forward4 and backward_input2 read their channel's K·K weights with 2 or 4 loads a lane and
// lane broadcasts.
override LANES: u32 = 0u;

fn relu_in(v: f32) -> f32 {
    if (RELU != 0u) { return max(v, 0.0); }
    return v;
}

struct P {
    n: u32, c: u32, h: u32, w: u32,
    ho: u32, wo: u32, pad: u32, per: u32, // per: rows per chunk (weight gradient)
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> f_x: array<f32>;
@group(0) @binding(2) var<storage, read> f_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> f_y: array<f32>;
@group(0) @binding(4) var<storage, read> f_mask: array<f32>;

fn masked(v: f32, i: u32) -> f32 {
    if (MASK != 0u) { return select(0.0, v, f_mask[i] > 0.0); }
    return v;
}

const STRIP: u32 = 4u;

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let strips = (p.wo + STRIP - 1u) / STRIP;
    if (i >= p.n * p.c * p.ho * strips) { return; }
    let sx = i % strips;
    let r = i / strips;
    let oy = r % p.ho;
    let plane = r / p.ho;
    let ch = plane % p.c;
    let xb = plane * p.h * p.w;
    let ox0 = sx * STRIP;
    let y0 = i32(oy * S) - i32(p.pad);
    let x0 = i32(ox0 * S) - i32(p.pad);
    let span = (STRIP - 1u) * S + (K - 1u) * D + 1u;
    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < K; ky = ky + 1u) {
        let iy = y0 + i32(ky * D);
        if (iy < 0 || iy >= i32(p.h)) { continue; }
        let row = xb + u32(iy) * p.w;
        // The input row segment under the strip's windows; zero outside the image.
        var win: array<f32, 16>;
        for (var q = 0u; q < span; q = q + 1u) {
            let ix = x0 + i32(q);
            var v = 0.0;
            if (ix >= 0 && ix < i32(p.w)) { v = relu_in(f_x[row + u32(ix)]); }
            win[q] = v;
        }
        for (var kx = 0u; kx < K; kx = kx + 1u) {
            var tap = ky * K + kx;
            if (FLIP != 0u) { tap = K * K - 1u - tap; }
            let wv = f_w[ch * K * K + tap];
            let o = kx * D;
            acc = acc + wv * vec4<f32>(win[o], win[o + S], win[o + 2u * S], win[o + 3u * S]);
        }
    }
    let yb = (plane * p.ho + oy) * p.wo + ox0;
    f_y[yb] = masked(acc.x, yb);
    if (ox0 + 1u < p.wo) { f_y[yb + 1u] = masked(acc.y, yb + 1u); }
    if (ox0 + 2u < p.wo) { f_y[yb + 2u] = masked(acc.z, yb + 2u); }
    if (ox0 + 3u < p.wo) { f_y[yb + 3u] = masked(acc.w, yb + 3u); }
}

// forward4: `forward` for rows of a multiple of 4 values (input and output), bound as vec4
// arrays. A thread computes OUT (4 or 8) outputs of a row from NV aligned vec4 loads per input
// row; a workgroup of 64 threads covers consecutive strips of one channel (over images), so
// the channel, and with it every weight load, is uniform across the workgroup. Needs
// A - PAD + (OUT-1)·S + (K-1)·D + 1 <= 32 (A = PAD rounded up to 4). On CPU adapters, where
// a storage load runs lane by lane, this cuts the loads per output about 3×.
override PAD: u32 = 1u;
override OUT: u32 = 8u;
override A: u32 = (PAD + 3u) / 4u * 4u;
override NV: u32 = (A - PAD + (OUT - 1u) * S + (K - 1u) * D + 4u) / 4u;
// SHARE = 1 (LANES, stride 1, OUT = 8, the padding (K − 1)·D / 2 ≤ 4, rows of 8 to 64 values, so
// a subgroup's 8 lanes hold whole rows): forward4 and dw_pw4 load a kernel row's own 8 columns
// as two vec4s and take the PAD columns either side from lanes q − 1 and q + 1
// (shared_window): two loads instead of NV.
override SHARE: u32 = 0u;

@group(0) @binding(1) var<storage, read> f4_x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> f4_y: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> f4_mask: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> f4_uw: array<vec4<f32>, 4096>;

// forward4's weight element i, from its window with UW.
fn weight4(i: u32) -> f32 {
    if (UW != 0u) { return f4_uw[i / 4u][i % 4u]; }
    return f_w[i];
}

fn relu_in4(v: vec4<f32>) -> vec4<f32> {
    if (RELU != 0u) { return max(v, vec4<f32>(0.0)); }
    return v;
}

fn masked4(v: vec4<f32>, i: u32) -> vec4<f32> {
    if (MASK != 0u) { return select(vec4<f32>(0.0), v, f4_mask[i] > vec4<f32>(0.0)); }
    return v;
}

// The NV vec4s of input row `row` (offset of its first vec4) from vec4 column v0 on, read
// through the folded ReLU, as 4·NV floats; columns outside the row read 0.
fn load_window(row: u32, v0: i32, w4: u32) -> array<f32, 32> {
    var win: array<f32, 32>;
    for (var v = 0u; v < NV; v = v + 1u) {
        let ix = v0 + i32(v);
        var q = vec4<f32>(0.0);
        if (ix >= 0 && ix < i32(w4)) { q = relu_in4(f4_x[row + u32(ix)]); }
        win[4u * v] = q.x;
        win[4u * v + 1u] = q.y;
        win[4u * v + 2u] = q.z;
        win[4u * v + 3u] = q.w;
    }
    return win;
}

// SHARE's load_window: the window (win[i] = column ox0 − A + i) of row `row` (its first vec4;
// `inside`: whether the row holds data, else zeros). The lane loads columns ox0 .. ox0 + 7 and
// takes those left and right of them from its neighbouring lanes, which hold the row's
// neighbouring strips; where those are in another row the columns are outside this one, and
// masked.
fn shared_window(row: u32, ox0: u32, inside: bool) -> array<f32, 32> {
    let v = row + ox0 / 4u;
    let a = select(vec4<f32>(0.0), relu_in4(f4_x[v]), inside);
    let b = select(vec4<f32>(0.0), relu_in4(f4_x[v + 1u]), inside);
    let pb = vec4<f32>(lane_prev(b.x), lane_prev(b.y), lane_prev(b.z), lane_prev(b.w));
    let na = vec4<f32>(lane_next(a.x), lane_next(a.y), lane_next(a.z), lane_next(a.w));
    let v0 = i32(ox0 / 4u) - i32(A / 4u);
    var win: array<f32, 32>;
    // Block j of the window is the previous strip's second vec4, this strip's two, or the
    // next strip's first (A ≤ 4, and PAD ≤ 4 columns reach past this strip on either side).
    for (var j = 0u; j < NV; j = j + 1u) {
        let blk = j + 1u - A / 4u;
        var q = pb;
        if (blk == 1u) { q = a; } else if (blk == 2u) { q = b; } else if (blk == 3u) { q = na; }
        let ix = v0 + i32(j);
        q = select(vec4<f32>(0.0), q, ix >= 0 && ix < i32(p.w / 4u));
        win[4u * j] = q.x;
        win[4u * j + 1u] = q.y;
        win[4u * j + 2u] = q.z;
        win[4u * j + 3u] = q.w;
    }
    return win;
}

// LANES: the weight index lane li % 8 reads in round j (< 4) of channel ch's K·K taps (the
// channel is the same in every lane of a workgroup): tap li % 8 + 8j, clamped to the last.
fn lane_tap(li: u32, ch: u32, j: u32) -> u32 {
    return ch * K * K + lane_index(li, j, K * K - 1u);
}

// Fills wt with the channel's taps from the values every lane read in rounds 0..3 of
// lane_tap (rounds 2 and 3 in `far`, used only where K·K > 16): tap t at entry t, in every
// lane.
fn taps32(wt: ptr<function, array<f32, 32>>, r0: f32, r1: f32, far: vec2<f32>) {
    let lo = lanes16(r0, r1);
    for (var t = 0u; t < 16u; t = t + 1u) { (*wt)[t] = lo[t]; }
    if (K * K > 16u) {
        let hi = lanes16(far.x, far.y);
        for (var t = 0u; t < 16u; t = t + 1u) { (*wt)[16u + t] = hi[t]; }
    }
}

// (channel, item, valid) of thread li of workgroup g when each channel's per_ch items are
// covered by consecutive 64-thread workgroups: the channel is uniform across a workgroup.
// Past the last channel or item (valid = 0) both are clamped to the last, so a thread that
// must keep running (LANES' broadcasts need all 8 lanes) reads inside the tensors.
fn channel_item(g: u32, li: u32, per_ch: u32) -> vec3<u32> {
    let groups_per_ch = (per_ch + 63u) / 64u;
    let ch = g / groups_per_ch;
    let item = (g - ch * groups_per_ch) * 64u + li;
    let valid = ch < p.c && item < per_ch;
    return vec3<u32>(min(ch, p.c - 1u), min(item, per_ch - 1u), u32(valid));
}

@compute @workgroup_size(64)
fn forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let strips = p.wo / OUT;
    let per_ch = p.n * p.ho * strips;
    let ci = channel_item(g, li, per_ch);
    let valid = ci.z != 0u;
    // With LANES every lane runs (an idle one on a clamped item), so the broadcasts see all 8.
    if (LANES == 0u && !valid) { return; }
    let ch = ci.x;
    let item = ci.y;
    // LANES: the channel's taps by 2 (K = 3) or 4 (K = 5) loads a lane (see lane_tap).
    var wt: array<f32, 32>;
    if (LANES != 0u) {
        var far = vec2<f32>(0.0);
        if (K * K > 16u) { far = vec2<f32>(weight4(lane_tap(li, ch, 2u)), weight4(lane_tap(li, ch, 3u))); }
        taps32(&wt, weight4(lane_tap(li, ch, 0u)), weight4(lane_tap(li, ch, 1u)), far);
    }
    let sx = item % strips;
    let r = item / strips;
    let oy = r % p.ho;
    let plane = (r / p.ho) * p.c + ch;
    let ox0 = sx * OUT;
    let w4 = p.w / 4u;
    // First vec4 of the window (may lie left of the row: zeros).
    let v0 = i32(ox0 * S / 4u) - i32(A / 4u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var ky = 0u; ky < K; ky = ky + 1u) {
        let iy = i32(oy * S + ky * D) - i32(PAD);
        let inside = iy >= 0 && iy < i32(p.h);
        // An `if`, not a `continue`: the loop stays one Mesa unrolls (tap constant for wt).
        // SHARE runs every row in every lane (zeros outside), for the shuffles.
        if (SHARE != 0u || inside) {
            let row = (plane * p.h + u32(clamp(iy, 0, i32(p.h) - 1))) * w4;
            var win: array<f32, 32>;
            if (SHARE != 0u) {
                win = shared_window(row, ox0, inside);
            } else {
                win = load_window(row, v0, w4);
            }
            for (var kx = 0u; kx < K; kx = kx + 1u) {
                var tap = ky * K + kx;
                if (FLIP != 0u) { tap = K * K - 1u - tap; }
                var wv: f32;
                if (LANES != 0u) { wv = wt[tap]; } else { wv = weight4(ch * K * K + tap); }
                let o = A - PAD + kx * D;
                acc0 = acc0 + wv * vec4<f32>(win[o], win[o + S], win[o + 2u * S], win[o + 3u * S]);
                if (OUT == 8u) {
                    acc1 = acc1 + wv * vec4<f32>(win[o + 4u * S], win[o + 5u * S], win[o + 6u * S], win[o + 7u * S]);
                }
            }
        }
    }
    if (!valid) { return; }
    let yb = ((plane * p.ho + oy) * p.wo + ox0) / 4u;
    f4_y[yb] = masked4(acc0, yb);
    if (OUT == 8u) { f4_y[yb + 1u] = masked4(acc1, yb + 1u); }
}

// dw_pw4: a depthwise convolution followed by a 1×1 one (sep_conv / dil_conv halves) in one
// launch, rows of a multiple of 4: a thread computes OUT (4 or 8) outputs of a row for all CH
// depthwise channels (held in registers, never written), then the CO 1×1 outputs from them. CH and CO
// are pipeline constants (at most 16 and 64), so the channel loops unroll. Bindings: 1 x,
// 2 depthwise weight (CH, 1, K, K), 3 y (n, CO, ho, wo), 4 1×1 weight (CO, CH), 5 mid (n, CH,
// ho, wo): written only with KEEP = 1 (the intermediate kept for backward instead of
// recomputed); otherwise bind any small buffer. One thread per OUT outputs of a row:
// n·ho·(wo/OUT) threads, 64 per workgroup.
override CH: u32 = 4u;
override CO: u32 = 4u;
override KEEP: u32 = 0u;

@group(0) @binding(3) var<storage, read_write> dp_y: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> dp_w: array<f32>;
@group(0) @binding(5) var<storage, read_write> dp_mid: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> dp_uw: array<vec4<f32>, 4096>;
@group(0) @binding(7) var<uniform> dp_uwp: array<vec4<f32>, 4096>;

// dw_pw4's depthwise weight element i (from its window with UW) and 1×1 weight element i
// (with UWP).
fn dp_weight(i: u32) -> f32 {
    if (UW != 0u) { return dp_uw[i / 4u][i % 4u]; }
    return f_w[i];
}

fn dp_weight_pw(i: u32) -> f32 {
    if (UWP != 0u) { return dp_uwp[i / 4u][i % 4u]; }
    return dp_w[i];
}

// The OUT outputs of a row for every 1×1 output channel of thread t (< n·ho·wo/OUT), written
// where `valid` (with SHARE every lane runs, an idle one on a clamped t, for the shuffles).
fn dw_pw4_at(t: u32, valid: bool) {
    let strips = p.wo / OUT;
    let sx = t % strips;
    let r = t / strips;
    let oy = r % p.ho;
    let img = r / p.ho;
    let w4 = p.w / 4u;
    let v0 = i32(sx * OUT * S / 4u) - i32(A / 4u);
    var lo: array<vec4<f32>, 16>;
    var hi: array<vec4<f32>, 16>;
    for (var ch = 0u; ch < CH; ch = ch + 1u) {
        var acc0 = vec4<f32>(0.0);
        var acc1 = vec4<f32>(0.0);
        for (var ky = 0u; ky < K; ky = ky + 1u) {
            let iy = i32(oy * S + ky * D) - i32(PAD);
            let inside = iy >= 0 && iy < i32(p.h);
            if (SHARE == 0u && !inside) { continue; }
            let row = ((img * CH + ch) * p.h + u32(clamp(iy, 0, i32(p.h) - 1))) * w4;
            var win: array<f32, 32>;
            if (SHARE != 0u) {
                win = shared_window(row, sx * OUT, inside);
            } else {
                win = load_window(row, v0, w4);
            }
            for (var kx = 0u; kx < K; kx = kx + 1u) {
                let wv = dp_weight(ch * K * K + ky * K + kx);
                let o = A - PAD + kx * D;
                acc0 = acc0 + wv * vec4<f32>(win[o], win[o + S], win[o + 2u * S], win[o + 3u * S]);
                if (OUT == 8u) {
                    acc1 = acc1 + wv * vec4<f32>(win[o + 4u * S], win[o + 5u * S], win[o + 6u * S], win[o + 7u * S]);
                }
            }
        }
        lo[ch] = acc0;
        hi[ch] = acc1;
        if (KEEP != 0u && valid) {
            let mb = ((img * CH + ch) * p.ho + oy) * (p.wo / 4u) + sx * OUT / 4u;
            dp_mid[mb] = acc0;
            if (OUT == 8u) { dp_mid[mb + 1u] = acc1; }
        }
    }
    let plane = p.ho * p.wo / 4u;
    let yb = img * CO * plane + (oy * p.wo + sx * OUT) / 4u;
    for (var co = 0u; co < CO; co = co + 1u) {
        var y0 = vec4<f32>(0.0);
        var y1 = vec4<f32>(0.0);
        for (var ch = 0u; ch < CH; ch = ch + 1u) {
            let wv = dp_weight_pw(co * CH + ch);
            y0 = y0 + wv * lo[ch];
            if (OUT == 8u) { y1 = y1 + wv * hi[ch]; }
        }
        if (valid) {
            dp_y[yb + co * plane] = y0;
            if (OUT == 8u) { dp_y[yb + co * plane + 1u] = y1; }
        }
    }
}

@compute @workgroup_size(64)
fn dw_pw4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = group_index(wg, nwg) * 64u + li;
    let total = p.n * p.ho * (p.wo / OUT);
    if (SHARE == 0u && t >= total) { return; }
    dw_pw4_at(min(t, total - 1u), t < total);
}

// dw_pw4 that also writes the batch-norm statistics of its CO output channels, so the batch
// norm that follows skips its own pass over them: binding 8 part, 3 floats per (channel,
// workgroup g) at 3·(co·parts + g) with parts = ceil(n·ho·(wo/OUT) / 64) workgroups: the
// workgroup's count of outputs, their mean and Σ(y − mean)² (batchnorm.wgsl's stats_partial
// layout). Each thread reads its own outputs back for the statistics.
@group(0) @binding(8) var<storage, read_write> dp_part: array<f32>;

@compute @workgroup_size(64)
fn dw_pw4_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let total = p.n * p.ho * (p.wo / OUT);
    let parts = (total + 63u) / 64u;
    let t = g * 64u + li;
    let valid = t < total;
    // SHARE: an idle lane computes a clamped strip (its shuffles need all 8) and writes nothing.
    if (SHARE != 0u || valid) { dw_pw4_at(min(t, total - 1u), valid); }
    let cnt = f32(min(64u, total - min(g * 64u, total)) * OUT);
    let strips = p.wo / OUT;
    let plane = p.ho * p.wo / 4u;
    let tt = min(t, total - 1u);
    let img = tt / (p.ho * strips);
    let yb = img * CO * plane + ((tt / strips) % p.ho * p.wo + (tt % strips) * OUT) / 4u;
    for (var c0 = 0u; c0 < CO; c0 = c0 + 8u) {
        var ys: array<vec4<f32>, 16>;
        var v: array<f32, 8>;
        for (var r = 0u; r < 8u; r = r + 1u) {
            let on = valid && c0 + r < CO;
            let k = yb + min(c0 + r, CO - 1u) * plane;
            ys[2u * r] = vec4<f32>(0.0);
            ys[2u * r + 1u] = vec4<f32>(0.0);
            if (on) { ys[2u * r] = dp_y[k]; }
            if (on && OUT == 8u) { ys[2u * r + 1u] = dp_y[k + 1u]; }
            v[r] = dot(ys[2u * r] + ys[2u * r + 1u], vec4<f32>(1.0));
        }
        let mean = rows8_means(li, 64u, v, cnt);
        for (var r = 0u; r < 8u; r = r + 1u) {
            let d0 = ys[2u * r] - vec4<f32>(mean[r]);
            let d1 = ys[2u * r + 1u] - vec4<f32>(mean[r]);
            var m = dot(d0, d0);
            if (OUT == 8u) { m = m + dot(d1, d1); }
            v[r] = select(0.0, m, valid && c0 + r < CO);
        }
        let m2 = rows8_m2(li, 64u, v);
        if (li < 8u && c0 + li < CO && g < parts) {
            let q = 3u * ((c0 + li) * parts + g);
            dp_part[q] = cnt;
            dp_part[q + 1u] = mean[li];
            dp_part[q + 2u] = m2;
        }
    }
}

@group(0) @binding(1) var<storage, read> bi_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bi_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> bi_dx: array<f32>;
@group(0) @binding(4) var<storage, read> bi_mask: array<f32>;

@compute @workgroup_size(256)
fn backward_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * p.h * p.w) { return; }
    let ix = i % p.w;
    let r = i / p.w;
    let iy = r % p.h;
    let plane = r / p.h;
    let ch = plane % p.c;
    let dyb = plane * p.ho * p.wo;
    var acc = 0.0;
    for (var ky = 0u; ky < K; ky = ky + 1u) {
        let ty = i32(iy + p.pad) - i32(ky * D);
        if (ty < 0 || (u32(ty) % S) != 0u) { continue; }
        let oy = u32(ty) / S;
        if (oy >= p.ho) { continue; }
        for (var kx = 0u; kx < K; kx = kx + 1u) {
            let tx = i32(ix + p.pad) - i32(kx * D);
            if (tx < 0 || (u32(tx) % S) != 0u) { continue; }
            let ox = u32(tx) / S;
            if (ox >= p.wo) { continue; }
            acc = acc + bi_dy[dyb + oy * p.wo + ox] * bi_w[ch * K * K + ky * K + kx];
        }
    }
    if (MASK != 0u && bi_mask[i] <= 0.0) { acc = 0.0; }
    bi_dx[i] = acc;
}

// backward_input2: `backward_input` for stride 2 with input rows of a multiple of 4 (dx bound
// as vec4s). A thread computes 4 consecutive input pixels 4j..4j+3 of a row: pixel 4j + i
// takes tap kx from output column 2j + c/2 where c = i + PAD - kx·D is even, so which taps
// apply and where they read is known at compile time; each thread loads one window of NW
// output values per contributing row. 64 threads per workgroup over one channel (weights
// uniform), as in forward4.
@group(0) @binding(1) var<storage, read> b2_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> b2_dx: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> b2_mask: array<vec4<f32>>;

@compute @workgroup_size(64)
fn backward_input2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let w4 = p.w / 4u;
    let per_ch = p.n * p.h * w4;
    let ci = channel_item(g, li, per_ch);
    let valid = ci.z != 0u;
    // With LANES every lane runs (an idle one on a clamped item), so the broadcasts see all 8.
    if (LANES == 0u && !valid) { return; }
    let ch = ci.x;
    let item = ci.y;
    // LANES: the channel's taps by 2 (K = 3) or 4 (K = 5) loads a lane (see lane_tap).
    var wt: array<f32, 32>;
    if (LANES != 0u) {
        var far = vec2<f32>(0.0);
        if (K * K > 16u) { far = vec2<f32>(bi_w[lane_tap(li, ch, 2u)], bi_w[lane_tap(li, ch, 3u)]); }
        taps32(&wt, bi_w[lane_tap(li, ch, 0u)], bi_w[lane_tap(li, ch, 1u)], far);
    }
    let j = item % w4;
    let r = item / w4;
    let iy = r % p.h;
    let plane = (r / p.h) * p.c + ch;
    // Even tap offsets c run from e0 to e1: the window covers output columns 2j + e0/2 ...
    let cmin = i32(PAD) - i32((K - 1u) * D);
    let e0 = cmin + (cmin & 1);
    let e1 = i32(3u + PAD) - i32((3u + PAD) & 1u);
    let nw = (e1 - e0) / 2 + 1;
    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < K; ky = ky + 1u) {
        let ty = i32(iy + PAD) - i32(ky * D);
        // `if`s, not `continue`s: the loop stays one Mesa unrolls (the tap constant for wt).
        if (ty >= 0 && (ty & 1) == 0 && u32(ty) / 2u < p.ho) {
            let row = (plane * p.ho + u32(ty) / 2u) * p.wo;
            var win: array<f32, 8>;
            for (var q = 0; q < nw; q = q + 1) {
                let ox = i32(2u * j) + e0 / 2 + q;
                var v = 0.0;
                if (ox >= 0 && ox < i32(p.wo)) { v = b2_dy[row + u32(ox)]; }
                win[q] = v;
            }
            for (var kx = 0u; kx < K; kx = kx + 1u) {
                var wv: f32;
                if (LANES != 0u) { wv = wt[ky * K + kx]; } else { wv = bi_w[ch * K * K + ky * K + kx]; }
                for (var i = 0; i < 4; i = i + 1) {
                    let c = i + i32(PAD) - i32(kx * D);
                    if ((c & 1) == 0) { acc[i] = acc[i] + wv * win[(c - e0) / 2]; }
                }
            }
        }
    }
    if (!valid) { return; }
    let o = (plane * p.h + iy) * w4 + j;
    if (MASK != 0u) { acc = select(vec4<f32>(0.0), acc, b2_mask[o] > vec4<f32>(0.0)); }
    b2_dx[o] = acc;
}

@group(0) @binding(1) var<storage, read> bw_x: array<f32>;
@group(0) @binding(2) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bw_part: array<f32>;

// Pass 1: thread t = (channel, chunk of p.per output rows over all images) accumulates all K×K
// taps in registers and writes them as partials. No barriers.
@compute @workgroup_size(256)
fn weight_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = gid(wg, nwg, li);
    let rows = p.n * p.ho;
    let nchunks = (rows + p.per - 1u) / p.per;
    if (t >= p.c * nchunks) { return; }
    let ch = t / nchunks;
    let chunk = t % nchunks;
    var acc: array<f32, 25>;
    for (var q = 0u; q < 25u; q = q + 1u) { acc[q] = 0.0; }
    let r_end = min((chunk + 1u) * p.per, rows);
    for (var r = chunk * p.per; r < r_end; r = r + 1u) {
        let b = r / p.ho;
        let oy = r % p.ho;
        let xb = (b * p.c + ch) * p.h * p.w;
        let dyrow = ((b * p.c + ch) * p.ho + oy) * p.wo;
        let y0 = i32(oy * S) - i32(p.pad);
        for (var ox = 0u; ox < p.wo; ox = ox + 1u) {
            let g = bw_dy[dyrow + ox];
            let x0 = i32(ox * S) - i32(p.pad);
            for (var ky = 0u; ky < K; ky = ky + 1u) {
                let iy = y0 + i32(ky * D);
                if (iy < 0 || iy >= i32(p.h)) { continue; }
                for (var kx = 0u; kx < K; kx = kx + 1u) {
                    let ix = x0 + i32(kx * D);
                    if (ix >= 0 && ix < i32(p.w)) {
                        acc[ky * K + kx] = acc[ky * K + kx] + g * relu_in(bw_x[xb + u32(iy) * p.w + u32(ix)]);
                    }
                }
            }
        }
    }
    for (var q = 0u; q < K * K; q = q + 1u) { bw_part[t * K * K + q] = acc[q]; }
}

// weight_partial4: weight_partial for rows of a multiple of 4 (x and dy bound as vec4s): per
// output row, strips of OUT = 4 outputs (one dy load), or 8 (two) where rows are of a multiple
// of 8, against input windows loaded as in forward4 (NV vec4s per input row; x is forward4's
// binding 1). 64 threads per workgroup.
@group(0) @binding(2) var<storage, read> wp_dy: array<vec4<f32>>;

@compute @workgroup_size(64)
fn weight_partial4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = group_index(wg, nwg) * 64u + li;
    let rows = p.n * p.ho;
    let nchunks = (rows + p.per - 1u) / p.per;
    if (t >= p.c * nchunks) { return; }
    let ch = t / nchunks;
    let chunk = t % nchunks;
    var acc: array<f32, 25>;
    for (var q = 0u; q < 25u; q = q + 1u) { acc[q] = 0.0; }
    let w4 = p.w / 4u;
    let wo4 = p.wo / 4u;
    // Strips of OUT = 4 or 8 outputs (two dy vec4s): one window of NV vec4s a kernel row
    // serves OUT outputs.
    let per_strip = OUT / 4u;
    let r_end = min((chunk + 1u) * p.per, rows);
    for (var r = chunk * p.per; r < r_end; r = r + 1u) {
        let b = r / p.ho;
        let oy = r % p.ho;
        let plane = b * p.c + ch;
        for (var q = 0u; q < wo4 / per_strip; q = q + 1u) {
            let sx = q * per_strip;
            let g = wp_dy[(plane * p.ho + oy) * wo4 + sx];
            var g1 = vec4<f32>(0.0);
            if (OUT == 8u) { g1 = wp_dy[(plane * p.ho + oy) * wo4 + sx + 1u]; }
            let v0 = i32(sx * S) - i32(A / 4u);
            for (var ky = 0u; ky < K; ky = ky + 1u) {
                let iy = i32(oy * S + ky * D) - i32(PAD);
                if (iy < 0 || iy >= i32(p.h)) { continue; }
                let row = (plane * p.h + u32(iy)) * w4;
                var win = load_window(row, v0, w4);
                for (var kx = 0u; kx < K; kx = kx + 1u) {
                    let o = A - PAD + kx * D;
                    let xs = vec4<f32>(win[o], win[o + S], win[o + 2u * S], win[o + 3u * S]);
                    var sum = dot(g, xs);
                    if (OUT == 8u) {
                        let o1 = o + 4u * S;
                        let xs1 = vec4<f32>(win[o1], win[o1 + S], win[o1 + 2u * S], win[o1 + 3u * S]);
                        sum = sum + dot(g1, xs1);
                    }
                    acc[ky * K + kx] = acc[ky * K + kx] + sum;
                }
            }
        }
    }
    for (var q = 0u; q < K * K; q = q + 1u) { bw_part[t * K * K + q] = acc[q]; }
}

@group(0) @binding(1) var<storage, read> ws_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> ws_dw: array<f32>;

// Pass 2: one thread per weight (channel, tap) adds the partials of its channel's chunks.
@compute @workgroup_size(256)
fn weight_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    if (e >= p.c * K * K) { return; }
    let ch = e / (K * K);
    let q = e % (K * K);
    let nchunks = (p.n * p.ho + p.per - 1u) / p.per;
    var acc = 0.0;
    for (var c = 0u; c < nchunks; c = c + 1u) {
        acc = acc + ws_part[(ch * nchunks + c) * K * K + q];
    }
    ws_dw[e] = acc;
}

@compute @workgroup_size(256)
fn weight_sum_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // One weight a workgroup (the same `e` in every thread: the barriers stay uniform).
    let e = min(group_index(wg, nwg), p.c * K * K - 1u);
    let nchunks = (p.n * p.ho + p.per - 1u) / p.per;
    let base = (e / (K * K)) * nchunks * K * K + e % (K * K);
    var acc = 0.0;
    for (var c = li; c < nchunks; c = c + WG) {
        acc = acc + ws_part[base + c * K * K];
    }
    let total = tree_sum(li, acc);
    if (li == 0u) { ws_dw[e] = total; }
}
