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
