// layout.wgsl: data movement on NCHW tensors.
//   channel_copy    1 src, 2 dst: dst[b, d0 + c, :] = src[b, s0 + c, :] for c < cnt. Concat
//                   forward (one launch per input) and its backward (channel slices).
//   slice_forward   1 x, 2 y: y[q, i, j] = x[q, oy + i*s, ox + j*s]   (q = n*c planes): the
//                   x[:, :, 1:, 1:] crop (oy = ox = 1, s = 1) and the ::2 subsample (s = 2).
//   slice_backward  1 dy, 2 dx: dx is dy on the sampled lattice and 0 elsewhere (gather).
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
