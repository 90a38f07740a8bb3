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
//   (1×1 and depthwise convolutions have faster kernels: pointwise.wgsl, depthwise.wgsl)
//   backward_bias    1 dy, 2 db                          one workgroup per output channel
// RELU = 1 (pipeline constant): x is read through max(x, 0) in forward and backward_weight,
// folding a preceding ReLU into the loads (the input gradient is masked by the caller).
// Workgroup size 256; grids spread over 3-D (see prelude).

override RELU: u32 = 0u;

fn relu_in(v: f32) -> f32 {
    if (RELU != 0u) { return max(v, 0.0); }
    return v;
}

struct P {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, ho: u32, wo: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, ph: u32,
    pw: u32, dh: u32, dw: u32, groups: u32,
    has_bias: u32,
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
@compute @workgroup_size(256)
fn backward_weight(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = group_index(wg, nwg);
    let cinpg = p.cin / p.groups;
    let kx = idx % p.kw;
    let ky = (idx / p.kw) % p.kh;
    let cil = (idx / (p.kw * p.kh)) % cinpg;
    let co = idx / (p.kw * p.kh * cinpg);
    let ci = (co / (p.cout / p.groups)) * cinpg + cil;
    var acc = 0.0;
    // One output row per iteration: a division per row, not per element.
    for (var r = li; r < p.n * p.ho; r = r + WG) {
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
    let s = tree_sum(li, acc);
    if (li == 0u && co < p.cout) { bw_dw[idx] = s; }
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
