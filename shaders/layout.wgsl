// layout.wgsl: data movement on NCHW tensors.
//   channel_copy    1 src, 2 dst: dst[b, d0 + c, :] = src[b, s0 + c, :] for c < cnt. Concat
//                   forward (one launch per input) and its backward (channel slices).
//   slice_forward   1 x, 2 y: y[q, i, j] = x[q, oy + i*s, ox + j*s]   (q = n*c planes): the
//                   x[:, :, 1:, 1:] crop (oy = ox = 1, s = 1) and the ::2 subsample (s = 2).
//   slice_backward  1 dy, 2 dx: dx is dy on the sampled lattice and 0 elsewhere (gather).
//   slice_forward2, slice_backward2: the ::2 subsample on rows of a multiple of 8, four
//                   values per thread (see below).
// One thread per destination element, workgroup size 256.

struct P {
    n: u32, hw: u32, cs: u32, cd: u32,
    s0: u32, d0: u32, cnt: u32, _pad: u32,
    h: u32, w: u32, ho: u32, wo: u32,
    oy: u32, ox: u32, s: u32, planes: u32,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn channel_copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n * p.cnt * p.hw) { return; }
    let k = i % p.hw;
    let c = (i / p.hw) % p.cnt;
    let b = i / (p.hw * p.cnt);
    dst[(b * p.cd + p.d0 + c) * p.hw + k] = src[(b * p.cs + p.s0 + c) * p.hw + k];
}

@compute @workgroup_size(256)
fn slice_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.planes * p.ho * p.wo) { return; }
    let j = i % p.wo;
    let r = (i / p.wo) % p.ho;
    let q = i / (p.wo * p.ho);
    dst[i] = src[(q * p.h + p.oy + r * p.s) * p.w + p.ox + j * p.s];
}

@compute @workgroup_size(256)
fn slice_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.planes * p.h * p.w) { return; }
    let x = i % p.w;
    let y = (i / p.w) % p.h;
    let q = i / (p.w * p.h);
    var v = 0.0;
    if (y >= p.oy && x >= p.ox) {
        let ry = y - p.oy;
        let rx = x - p.ox;
        if (ry % p.s == 0u && rx % p.s == 0u && ry / p.s < p.ho && rx / p.s < p.wo) {
            v = src[(q * p.ho + ry / p.s) * p.wo + rx / p.s];
        }
    }
    dst[i] = v;
}

// The ::2 subsample (offset 0 or 1 on both axes, stride 2) when w % 8 == 0, so that the input
// and output rows are whole vec4s: slice_forward2 (one thread per 4 outputs, two vec4 loads)
// and slice_backward2 (one thread per 4 inputs of dx: two of them come from dy, two are 0).
@group(0) @binding(1) var<storage, read> s2_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> s2_y: array<vec4<f32>>;

@compute @workgroup_size(256)
fn slice_forward2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let wo4 = p.wo / 4u;
    if (i >= p.planes * p.ho * wo4) { return; }
    let j = i % wo4;
    let r = (i / wo4) % p.ho;
    let q = i / (wo4 * p.ho);
    let row = ((q * p.h + p.oy + 2u * r) * p.w) / 4u + 2u * j;
    let a = s2_x[row];
    let b = s2_x[row + 1u];
    if (p.ox == 0u) {
        s2_y[i] = vec4<f32>(a.x, a.z, b.x, b.z);
    } else {
        s2_y[i] = vec4<f32>(a.y, a.w, b.y, b.w);
    }
}

@group(0) @binding(1) var<storage, read> s2_dy: array<f32>;

@compute @workgroup_size(256)
fn slice_backward2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let w4 = p.w / 4u;
    if (i >= p.planes * p.h * w4) { return; }
    let j = i % w4;
    let y = (i / w4) % p.h;
    let q = i / (w4 * p.h);
    var v = vec4<f32>(0.0);
    if (y >= p.oy && ((y - p.oy) & 1u) == 0u && (y - p.oy) / 2u < p.ho) {
        let src = (q * p.ho + (y - p.oy) / 2u) * p.wo + 2u * j;
        let a = s2_dy[src];
        let b = s2_dy[src + 1u];
        if (p.ox == 0u) { v = vec4<f32>(a, 0.0, b, 0.0); } else { v = vec4<f32>(0.0, a, 0.0, b); }
    }
    s2_y[i] = v;
}
