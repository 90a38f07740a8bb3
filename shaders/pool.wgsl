// pool.wgsl: max and average pooling (any k, stride, padding) and global average pooling.
// NCHW f32; x: (n, c, h, w), y: (n, c, ho, wo). Max pooling treats padding as -inf (it never
// wins); ties go to the first element in row-major window order, as in PyTorch. Average
// pooling divides by the number of in-bounds elements (count_include_pad = False).
// Entries and bindings (0 = params):
//   max_forward 1 x, 2 y;  max_argmax 1 x, 2 argmax (u32, in-plane index of each output's
//   maximum; recomputed in backward so that training keeps no argmax between passes);
//   max_backward 1 argmax, 2 dy, 3 dx;  avg_forward 1 x, 2 y;
//   avg_backward 1 dy, 2 dx;  global_forward 1 x, 2 y (y: n*c);  global_backward 1 dy, 2 dx.
// Forwards: one thread per output; backwards: one thread per input element, gathering from
// the outputs whose window covers it (no atomics). Workgroup size 256.
//   max3_forward4, max3_argmax4, avg3_forward4, max3_backward4, avg3_backward4: the 3×3,
//   padding-1 windows (stride PS = 1 or 2) on rows of a multiple of 4, four values per thread
//   (see the end of the file); avg2_backward4 avg_backward's 2×2, stride-2 windows on rows of
//   a multiple of 4, four inputs per thread; max3_backward4_shared and avg3_backward4_shared the backwards
//   at PS = 1 with columns shared between 8-lane subgroups' lanes (SHARE).

struct P {
    n: u32, c: u32, h: u32, w: u32,
    ho: u32, wo: u32, kh: u32, kw: u32,
    sh: u32, sw: u32, ph: u32, pw: u32,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read_write> fy: array<f32>;

// Clipped window of output (oy, ox): (y0, y1, x0, x1), half-open.
fn window(oy: u32, ox: u32) -> vec4<i32> {
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    return vec4<i32>(max(y0, 0), min(y0 + i32(p.kh), i32(p.h)), max(x0, 0), min(x0 + i32(p.kw), i32(p.w)));
}

// Flat in-plane index of the first maximum of the window of (oy, ox) in plane `base`.
fn argmax_in(base: u32, oy: u32, ox: u32) -> u32 {
    let wd = window(oy, ox);
    var best = -3.4028235e38;
    var arg = 0xffffffffu;
    for (var y = wd.x; y < wd.y; y = y + 1) {
        for (var x = wd.z; x < wd.w; x = x + 1) {
            let k = u32(y) * p.w + u32(x);
            let v = fx[base + k];
            if (arg == 0xffffffffu || v > best) { best = v; arg = k; }
        }
    }
    return arg;
}

@compute @workgroup_size(256)
fn max_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * p.ho * p.wo) { return; }
    let ox = i % p.wo;
    let oy = (i / p.wo) % p.ho;
    let base = (i / (p.wo * p.ho)) * p.h * p.w;
    fy[i] = fx[base + argmax_in(base, oy, ox)];
}

@group(0) @binding(2) var<storage, read_write> a_arg: array<u32>;

@compute @workgroup_size(256)
fn max_argmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * p.ho * p.wo) { return; }
    let ox = i % p.wo;
    let oy = (i / p.wo) % p.ho;
    let base = (i / (p.wo * p.ho)) * p.h * p.w;
    a_arg[i] = argmax_in(base, oy, ox);
}

// Range of outputs along one axis whose window covers input coordinate `i`.
fn covering(i: u32, k: u32, s: u32, pad: u32, nout: u32) -> vec2<u32> {
    let hi = i32(i + pad);
    let lo_num = hi - i32(k) + 1;
    var lo = 0;
    if (lo_num > 0) { lo = (lo_num + i32(s) - 1) / i32(s); }
    let top = min(u32(hi) / s + 1u, nout);
    return vec2<u32>(u32(lo), top);
}

@group(0) @binding(1) var<storage, read> mb_arg: array<u32>;
@group(0) @binding(2) var<storage, read> mb_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> mb_dx: array<f32>;
@compute @workgroup_size(256)
fn max_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * p.h * p.w) { return; }
    let k = i % (p.h * p.w);
    let ix = k % p.w;
    let iy = k / p.w;
    let plane = i / (p.h * p.w);
    let ry = covering(iy, p.kh, p.sh, p.ph, p.ho);
    let rx = covering(ix, p.kw, p.sw, p.pw, p.wo);
    var acc = 0.0;
    for (var oy = ry.x; oy < ry.y; oy = oy + 1u) {
        for (var ox = rx.x; ox < rx.y; ox = ox + 1u) {
            let o = (plane * p.ho + oy) * p.wo + ox;
            if (mb_arg[o] == k) { acc = acc + mb_dy[o]; }
        }
    }
    mb_dx[i] = acc;
}

@compute @workgroup_size(256)
fn avg_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * p.ho * p.wo) { return; }
    let ox = i % p.wo;
    let oy = (i / p.wo) % p.ho;
    let base = (i / (p.wo * p.ho)) * p.h * p.w;
    let wd = window(oy, ox);
    var acc = 0.0;
    for (var y = wd.x; y < wd.y; y = y + 1) {
        for (var x = wd.z; x < wd.w; x = x + 1) {
            acc = acc + fx[base + u32(y) * p.w + u32(x)];
        }
    }
    fy[i] = acc / f32((wd.y - wd.x) * (wd.w - wd.z));
}

@group(0) @binding(1) var<storage, read> ab_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> ab_dx: array<f32>;
@compute @workgroup_size(256)
fn avg_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * p.h * p.w) { return; }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.h * p.w);
    let ry = covering(iy, p.kh, p.sh, p.ph, p.ho);
    let rx = covering(ix, p.kw, p.sw, p.pw, p.wo);
    var acc = 0.0;
    for (var oy = ry.x; oy < ry.y; oy = oy + 1u) {
        for (var ox = rx.x; ox < rx.y; ox = ox + 1u) {
            let wd = window(oy, ox);
            acc = acc + ab_dy[(plane * p.ho + oy) * p.wo + ox] / f32((wd.y - wd.x) * (wd.w - wd.z));
        }
    }
    ab_dx[i] = acc;
}

// avg2_backward4: avg_backward for 2×2 windows at stride 2 without padding (NAS-Bench-201's
// residual shortcut) on rows of a multiple of 4: thread t takes inputs 4j..4j+3 of row iy of
// its plane, under outputs 2j and 2j + 1 of row iy / 2 (none past ho: an odd last row). Each
// window holds 4 values, so dx = dy / 4 (exact, as avg_backward's division). Bindings as
// avg_backward's, dx as vec4s; one thread per 4 inputs.
@group(0) @binding(2) var<storage, read_write> a2_dx: array<vec4<f32>>;

@compute @workgroup_size(256)
fn avg2_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = gid(wg, nwg, li);
    let w4 = p.w / 4u;
    if (t >= p.n * p.c * p.h * w4) { return; }
    let j = t % w4;
    let r = t / w4;
    let oy = (r % p.h) / 2u;
    let plane = r / p.h;
    var v = vec4<f32>(0.0);
    if (oy < p.ho) {
        let o = (plane * p.ho + oy) * p.wo + 2u * j;
        let d0 = ab_dy[o] * 0.25;
        let d1 = ab_dy[o + 1u] * 0.25;
        v = vec4<f32>(d0, d0, d1, d1);
    }
    a2_dx[t] = v;
}

@compute @workgroup_size(256)
fn global_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c) { return; }
    let hw = p.h * p.w;
    var acc = 0.0;
    for (var k = 0u; k < hw; k = k + 1u) { acc = acc + fx[i * hw + k]; }
    fy[i] = acc / f32(hw);
}

@compute @workgroup_size(256)
fn global_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.c * p.h * p.w) { return; }
    let hw = p.h * p.w;
    ab_dx[i] = ab_dy[i / hw] / f32(hw);
}

// 3×3 windows with padding 1 and stride PS (1 or 2) on rows of a multiple of 4 values (input
// and output), the pooling DARTS uses: a thread handles 4 consecutive outputs (forwards) or
// inputs (backwards) of a row, with vec4 loads and stores and the window taps resolved at
// compile time. Same visiting order, so the same results, as the general entries above.
//   max3_forward4 1 x, 2 y;  max3_argmax4 1 x, 2 argmax;  avg3_forward4 1 x, 2 y
//     one thread per 4 outputs: n·c·ho·(wo/4) threads
//   maxavg3_forward4 1 x, 2 y (max), 3 y2 (avg): both in one pass
//   maxavg3_forward4_stats  the same, also writing both outputs' batch-norm statistics
//     (4 part of y, 5 part of y2); workgroups (channel, chunk), see the entry
//   max3_backward4 1 argmax, 2 dy, 3 dx;  avg3_backward4 1 dy, 2 dx
//     one thread per 4 inputs: n·c·h·(w/4) threads
//   max3_backward4_shared  max3_backward4 with SHARE's neighbouring columns (at the end)
override PS: u32 = 1u;
// SHARE = 1 (8-lane subgroups, see lanes.wgsl; PS = 1, input rows as wide as the output's, 4
// to 32 values, so a subgroup holds whole rows): strip3 loads its own 4 columns of a row as one
// vec4 and takes the columns either side from lanes i − 1 and i + 1, which loaded them (one
// load instead of 3); every lane runs, an idle one on the last strip, and writes nothing.
override SHARE: u32 = 0u;

@group(0) @binding(1) var<storage, read> q_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> q_y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> q_arg: array<vec4<u32>>;

struct Strip {
    best: vec4<f32>,
    arg: vec4<u32>,
    sum: vec4<f32>,
    count: vec4<f32>,
}

// The 4 outputs of thread i: maximum (first in row-major order), its in-plane index, the sum
// of the in-bounds values and their count.
fn strip3(i: u32) -> Strip {
    let s4 = p.wo / 4u;
    let sx = i % s4;
    let r = i / s4;
    let oy = r % p.ho;
    let plane = r / p.ho;
    let w4 = p.w / 4u;
    // Window position t of output o is input column c0 + o·PS + kx; win[q] holds column
    // 4·sx·PS − 4 + q, so position t sits at q = t + 3.
    let c0 = i32(4u * sx * PS) - 1;
    let v0 = i32(sx * PS) - 1;
    var st: Strip;
    st.best = vec4<f32>(-3.4028235e38);
    st.arg = vec4<u32>(0xffffffffu);
    st.sum = vec4<f32>(0.0);
    var rows = 0.0;
    for (var ky = 0u; ky < 3u; ky = ky + 1u) {
        let iy = i32(oy * PS + ky) - 1;
        let inside = iy >= 0 && iy < i32(p.h);
        // SHARE: every lane takes every row (its shuffles need all 8), contributing nothing
        // outside the input.
        if (SHARE == 0u && !inside) { continue; }
        rows = rows + select(0.0, 1.0, inside);
        let row = (plane * p.h + u32(clamp(iy, 0, i32(p.h) - 1))) * w4;
        var win: array<f32, 12>;
        if (SHARE != 0u) {
            // Columns 4·sx − 1 .. 4·sx + 4 at win[3..8]: the previous strip's last, this
            // strip's four, the next strip's first (masked below where outside the row).
            let q = select(vec4<f32>(0.0), q_x[row + sx], inside);
            win[3] = lane_prev(q.w);
            win[4] = q.x;
            win[5] = q.y;
            win[6] = q.z;
            win[7] = q.w;
            win[8] = lane_next(q.x);
        } else {
            for (var v = 0u; v < 3u; v = v + 1u) {
                let ix = v0 + i32(v);
                var q = vec4<f32>(0.0);
                if (ix >= 0 && ix < i32(w4)) { q = q_x[row + u32(ix)]; }
                win[4u * v] = q.x;
                win[4u * v + 1u] = q.y;
                win[4u * v + 2u] = q.z;
                win[4u * v + 3u] = q.w;
            }
        }
        for (var o = 0u; o < 4u; o = o + 1u) {
            for (var kx = 0u; kx < 3u; kx = kx + 1u) {
                let t = o * PS + kx;
                let col = c0 + i32(t);
                if (inside && col >= 0 && col < i32(p.w)) {
                    let v = win[t + 3u];
                    st.sum[o] = st.sum[o] + v;
                    if (st.arg[o] == 0xffffffffu || v > st.best[o]) {
                        st.best[o] = v;
                        st.arg[o] = u32(iy) * p.w + u32(col);
                    }
                }
            }
        }
    }
    for (var o = 0u; o < 4u; o = o + 1u) {
        let first = c0 + i32(o * PS);
        let cols = min(first + 3, i32(p.w)) - max(first, 0);
        st.count[o] = rows * f32(cols);
    }
    return st;
}

@compute @workgroup_size(256)
fn max3_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let total = p.n * p.c * p.ho * (p.wo / 4u);
    if (SHARE == 0u && i >= total) { return; }
    let st = strip3(min(i, total - 1u));
    if (i < total) { q_y[i] = st.best; }
}

@compute @workgroup_size(256)
fn max3_argmax4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let total = p.n * p.c * p.ho * (p.wo / 4u);
    if (SHARE == 0u && i >= total) { return; }
    let st = strip3(min(i, total - 1u));
    if (i < total) { q_arg[i] = st.arg; }
}

@compute @workgroup_size(256)
fn avg3_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let total = p.n * p.c * p.ho * (p.wo / 4u);
    if (SHARE == 0u && i >= total) { return; }
    let st = strip3(min(i, total - 1u));
    if (i < total) { q_y[i] = st.sum / st.count; }
}

// Both 3×3 poolings of one input in one pass (a mixed edge has a max and an avg candidate):
// 1 x, 2 y (max), 3 y2 (avg), one thread per 4 outputs of each.
@group(0) @binding(3) var<storage, read_write> q_y2: array<vec4<f32>>;

@compute @workgroup_size(256)
fn maxavg3_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let total = p.n * p.c * p.ho * (p.wo / 4u);
    if (SHARE == 0u && i >= total) { return; }
    let st = strip3(min(i, total - 1u));
    if (i < total) {
        q_y[i] = st.best;
        q_y2[i] = st.sum / st.count;
    }
}

// maxavg3_forward4 that also writes the batch-norm statistics of both outputs, so the batch
// norms that follow (a mixed edge's pooling candidates) skip their own pass: 4 part of y,
// 5 part of y2, 3 floats per (channel, chunk) at 3·(channel·parts + chunk): the chunk's count,
// mean and Σ(y − mean)² (batchnorm.wgsl's stats_partial layout). Workgroup g is (channel,
// chunk) = (g / parts, g % parts), parts = ceil(n·ho·(wo/4) / 256); its threads take the
// channel's strips chunk·256 + li, image by image.
@group(0) @binding(4) var<storage, read_write> q_part: array<f32>;
@group(0) @binding(5) var<storage, read_write> q_part2: array<f32>;

@compute @workgroup_size(256)
fn maxavg3_forward4_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let s4 = p.wo / 4u;
    let per = p.n * p.ho * s4;
    let parts = (per + WG - 1u) / WG;
    let ch = min(g / parts, p.c - 1u);
    let chunk = g % parts;
    let u = chunk * WG + li;
    let valid = g < p.c * parts && u < per;
    var mx = vec4<f32>(0.0);
    var av = vec4<f32>(0.0);
    if (valid || SHARE != 0u) {
        // SHARE: an idle lane computes the channel's last strip (its shuffles need all 8).
        let uu = min(u, per - 1u);
        let i = ((uu / (p.ho * s4)) * p.c + ch) * p.ho * s4 + uu % (p.ho * s4);
        let st = strip3(i);
        if (valid) {
            mx = st.best;
            av = st.sum / st.count;
            q_y[i] = mx;
            q_y2[i] = av;
        }
    }
    let cnt = f32(min(WG, per - min(chunk * WG, per)) * 4u);
    var v: array<f32, 8>;
    v[0] = dot(mx, vec4<f32>(1.0));
    v[1] = dot(av, vec4<f32>(1.0));
    let mean = rows8_means(li, WG, v, cnt);
    let d0 = mx - vec4<f32>(mean[0]);
    let d1 = av - vec4<f32>(mean[1]);
    v[0] = select(0.0, dot(d0, d0), valid);
    v[1] = select(0.0, dot(d1, d1), valid);
    let m2 = rows8_m2(li, WG, v);
    if (g < p.c * parts) {
        let q = 3u * (ch * parts + chunk);
        if (li == 0u) {
            q_part[q] = cnt;
            q_part[q + 1u] = mean[0];
            q_part[q + 2u] = m2;
        }
        if (li == 1u) {
            q_part2[q] = cnt;
            q_part2[q + 1u] = mean[1];
            q_part2[q + 2u] = m2;
        }
    }
}

// Backwards: input column 4j + i is covered by the outputs ox = base + u with
// ox·PS − 1 <= 4j + i <= ox·PS + 1; base = 4j − 1 (PS = 1, u < 6) or 2j (PS = 2, u < 3), so
// ox·PS − (4j + i) = u − 1 − i (PS = 1) or 2u − i (PS = 2), known at compile time.
fn cover_base(j: u32) -> i32 {
    if (PS == 1u) { return i32(4u * j) - 1; }
    return i32(2u * j);
}

fn covers(u: u32, i: u32) -> bool {
    var d = i32(2u * u) - i32(i);
    if (PS == 1u) { d = i32(u) - 1 - i32(i); }
    return d >= -1 && d <= 1;
}

// Rows oy whose window covers input row iy: [lo, hi].
fn cover_rows(iy: u32) -> vec2<i32> {
    let lo = max(0, (i32(iy) + i32(PS) - 2) / i32(PS));
    let hi = min(i32(p.ho) - 1, i32(iy + 1u) / i32(PS));
    return vec2<i32>(lo, hi);
}

// Backward thread t: inputs 4j..4j+3 of row iy of `plane`; the outputs covering them are
// rows `rows` and columns base + u for u < nu.
struct Cover { j: u32, iy: u32, plane: u32, base: i32, nu: u32, rows: vec2<i32> }

fn cover_of(t: u32) -> Cover {
    let w4 = p.w / 4u;
    let j = t % w4;
    let r = t / w4;
    let iy = r % p.h;
    return Cover(j, iy, r / p.h, cover_base(j), select(3u, 6u, PS == 1u), cover_rows(iy));
}

@group(0) @binding(1) var<storage, read> qb_arg: array<u32>;
@group(0) @binding(2) var<storage, read> qb_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> qb_dx: array<vec4<f32>>;

@compute @workgroup_size(256)
fn max3_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = gid(wg, nwg, li);
    if (t >= p.n * p.c * p.h * (p.w / 4u)) { return; }
    let cv = cover_of(t);
    let k0 = cv.iy * p.w + 4u * cv.j;
    var acc = vec4<f32>(0.0);
    for (var oy = cv.rows.x; oy <= cv.rows.y; oy = oy + 1) {
        let orow = (cv.plane * p.ho + u32(oy)) * p.wo;
        for (var u = 0u; u < cv.nu; u = u + 1u) {
            let ox = cv.base + i32(u);
            if (ox < 0 || ox >= i32(p.wo)) { continue; }
            let a = qb_arg[orow + u32(ox)];
            let g = qb_dy[orow + u32(ox)];
            for (var i = 0u; i < 4u; i = i + 1u) {
                if (covers(u, i) && a == k0 + i) { acc[i] = acc[i] + g; }
            }
        }
    }
    qb_dx[t] = acc;
}

@group(0) @binding(1) var<storage, read> qa_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> qa_dx: array<vec4<f32>>;

@compute @workgroup_size(256)
fn avg3_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = gid(wg, nwg, li);
    if (t >= p.n * p.c * p.h * (p.w / 4u)) { return; }
    let cv = cover_of(t);
    var cf: array<f32, 6>;
    if (PS == 1u) { cf = avg_column_factors(cv.base); }
    var acc = vec4<f32>(0.0);
    for (var oy = cv.rows.x; oy <= cv.rows.y; oy = oy + 1) {
        let orow = (cv.plane * p.ho + u32(oy)) * p.wo;
        // An output's 1 / count is its row's factor times its column's (see the factors):
        // each covering row's dy · column factor summed, then times the row's factor.
        var row = vec4<f32>(0.0);
        if (PS == 1u) {
            // avg3_backward4_shared's products and sums, so both give the same bits.
            var g: array<f32, 6>;
            for (var u = 0u; u < 6u; u = u + 1u) {
                let d = qa_dy[orow + u32(clamp(cv.base + i32(u), 0, i32(p.wo) - 1))];
                g[u] = select(0.0, d * cf[u], cf[u] != 0.0);
            }
            row = avg_row(g[0], g[1], g[2], g[3], g[4], g[5]);
        } else {
            for (var u = 0u; u < cv.nu; u = u + 1u) {
                let ox = cv.base + i32(u);
                if (ox < 0 || ox >= i32(p.wo)) { continue; }
                let g = qa_dy[orow + u32(ox)] * avg_window_factor(ox * i32(PS), p.w);
                for (var i = 0u; i < 4u; i = i + 1u) {
                    if (covers(u, i)) { row[i] = row[i] + g; }
                }
            }
        }
        acc = acc + avg_window_factor(oy * i32(PS), p.h) * row;
    }
    qa_dx[t] = acc;
}

// At stride 1: the column factors of the 6 output columns base + u over a quad, 0 outside.
fn avg_column_factors(base: i32) -> array<f32, 6> {
    var cf: array<f32, 6>;
    for (var u = 0u; u < 6u; u = u + 1u) {
        let ox = base + i32(u);
        cf[u] = select(0.0, avg_window_factor(ox, p.w), ox >= 0 && ox < i32(p.wo));
    }
    return cf;
}

// At stride 1: the sums over each input's three covering columns of g[u] (column 4j − 1 + u,
// its dy times its factor).
fn avg_row(g0: f32, g1: f32, g2: f32, g3: f32, g4: f32, g5: f32) -> vec4<f32> {
    return vec4<f32>(g0 + g1 + g2, g1 + g2 + g3, g2 + g3 + g4, g3 + g4 + g5);
}

// count_include_pad = False divides by rows inside × columns inside the window, so 1 / count
// is a row factor times a column factor: 1 / (the positions inside the 3-wide window centred
// on input position o of n): 1/3 inside, 1/2 at an edge.
fn avg_window_factor(o: i32, n: u32) -> f32 {
    let inside = min(o + 2, i32(n)) - max(o - 1, 0);
    return select(select(1.0, 0.5, inside == 2), 1.0 / 3.0, inside == 3);
}

// avg3_backward4_shared: avg3_backward4 at PS = 1 where SHARE holds (as max3_backward4_shared):
// each covering output row's dy at the lane's own 4 columns is one vec4 load and the columns
// either side come from the neighbouring lanes; 3 + 6 window factors a thread. The same
// products and sums in the same order as avg3_backward4. Bindings as its, dy as vec4s.
@group(0) @binding(1) var<storage, read> qv_dy: array<vec4<f32>>;

@compute @workgroup_size(256)
fn avg3_backward4_shared(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = gid(wg, nwg, li);
    let total = p.n * p.c * p.h * (p.w / 4u);
    let cv = cover_of(min(t, total - 1u));
    let cf = avg_column_factors(cv.base);
    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < 3u; ky = ky + 1u) {
        let r = shared_row(cv, ky);
        let rf = avg_window_factor(i32(cv.iy) - 1 + i32(ky), p.h);
        let g4 = qv_dy[r.x + cv.j];
        // Neighbours' values only where their column exists (a 0 factor would keep a NaN).
        var d: array<f32, 6>;
        d[0] = lane_prev(g4.w);
        for (var q = 0u; q < 4u; q = q + 1u) { d[q + 1u] = g4[q]; }
        d[5] = lane_next(g4.x);
        var g: array<f32, 6>;
        for (var u = 0u; u < 6u; u = u + 1u) { g[u] = select(0.0, d[u] * cf[u], cf[u] != 0.0); }
        let row = avg_row(g[0], g[1], g[2], g[3], g[4], g[5]);
        if (r.y != 0u) { acc = acc + rf * row; }
    }
    if (t < total) { qa_dx[t] = acc; }
}

// max3_backward4_shared: max3_backward4 at PS = 1 where SHARE holds (rows of 4 to 32, as wide
// as the output's; 8-lane subgroups): a lane loads its own 4 columns of each covering output
// row (dy and the argmax) as one vec4 each and takes columns 4j − 1 and 4j + 4 from lanes
// t − 1 and t + 1; every lane runs all 3 rows (an idle one on the last strip), masking rows and
// columns outside. Same sums in the same order. Bindings as max3_backward4's, dy and the
// argmax as vec4s.
@group(0) @binding(1) var<storage, read> qs_arg: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> qs_dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> qs_dx: array<vec4<f32>>;

// Output row oy of the covering rows (ky = 0, 1, 2: oy = iy − 1 + ky), clamped, and whether
// it exists.
fn shared_row(cv: Cover, ky: u32) -> vec2<u32> {
    let oy = i32(cv.iy) - 1 + i32(ky);
    let inside = oy >= 0 && oy < i32(p.ho);
    return vec2<u32>((cv.plane * p.ho + u32(clamp(oy, 0, i32(p.ho) - 1))) * (p.wo / 4u), u32(inside));
}

@compute @workgroup_size(256)
fn max3_backward4_shared(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = gid(wg, nwg, li);
    let total = p.n * p.c * p.h * (p.w / 4u);
    let cv = cover_of(min(t, total - 1u));
    let k0 = cv.iy * p.w + 4u * cv.j;
    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < 3u; ky = ky + 1u) {
        let r = shared_row(cv, ky);
        let g4 = qs_dy[r.x + cv.j];
        let a4 = qs_arg[r.x + cv.j];
        var g: array<f32, 6>;
        var a: array<u32, 6>;
        g[0] = lane_prev(g4.w);
        a[0] = lane_prev_u(a4.w);
        for (var q = 0u; q < 4u; q = q + 1u) {
            g[q + 1u] = g4[q];
            a[q + 1u] = a4[q];
        }
        g[5] = lane_next(g4.x);
        a[5] = lane_next_u(a4.x);
        for (var u = 0u; u < 6u; u = u + 1u) {
            let ox = cv.base + i32(u);
            let on = r.y != 0u && ox >= 0 && ox < i32(p.wo);
            for (var i = 0u; i < 4u; i = i + 1u) {
                if (on && covers(u, i) && a[u] == k0 + i) { acc[i] = acc[i] + g[u]; }
            }
        }
    }
    if (t < total) { qs_dx[t] = acc; }
}
