// layout.wgsl: data movement on NCHW tensors.
//   channel_copy    1 src, 2 dst: dst[b, d0 + c, :] = src[b, s0 + c, :] for c < cnt. Concat
//                   forward (one launch per input) and its backward (channel slices).
//   slice_forward   1 x, 2 y: y[q, i, j] = x[q, oy + i*s, ox + j*s]   (q = n*c planes): the
//                   x[:, :, 1:, 1:] crop (oy = ox = 1, s = 1) and the ::2 subsample (s = 2).
//   slice_backward  1 dy, 2 dx: dx is dy on the sampled lattice and 0 elsewhere (gather).
//   slice_forward2, slice_backward2: the ::2 subsample on rows of a multiple of 8, four
//                   values per thread (see below).
//   concat4 / split4  up to four channel blocks at once (own parameter block pc, below):
//                   concat4 1..4 src0..src3, 5 dst; split4 1 src, 2..5 dst0..dst3.
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

// concat4 / split4: blocks k < 4 of pc.cnt[k] channels (0: none) sit at channels pc.base +
// pc.off[k] of a tensor with pc.ctot channels (pc.off cumulative from 0, pc.off[k] = pc.gc
// past the last block, pc.gc = the blocks' channels in all). concat4 copies block k from
// src_k (n, cnt[k], hw) into place; split4 copies it out into dst_k, only where
// pc.want[k] != 0 (a concat input without a gradient). One thread per (b, channel of the
// blocks, pixel).
struct PC {
    cnt: vec4<u32>,
    off: vec4<u32>,
    want: vec4<u32>,
    n: u32, hw: u32, ctot: u32, base: u32,
    gc: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> pc: PC;
@group(0) @binding(1) var<storage, read> c4_s0: array<f32>;
@group(0) @binding(2) var<storage, read> c4_s1: array<f32>;
@group(0) @binding(3) var<storage, read> c4_s2: array<f32>;
@group(0) @binding(4) var<storage, read> c4_s3: array<f32>;
@group(0) @binding(5) var<storage, read_write> c4_dst: array<f32>;

// (block, channel within it, image, pixel) of thread i; block 4 past the end.
fn block_of(i: u32) -> vec4<u32> {
    let k = i % pc.hw;
    let ch = (i / pc.hw) % pc.gc;
    let b = i / (pc.hw * pc.gc);
    var j = 3u;
    if (ch < pc.off.y) { j = 0u; } else if (ch < pc.off.z) { j = 1u; } else if (ch < pc.off.w) { j = 2u; }
    return vec4<u32>(j, ch - pc.off[j], b, k);
}

@compute @workgroup_size(256)
fn concat4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= pc.n * pc.gc * pc.hw) { return; }
    let at = block_of(i);
    let j = at.x;
    let at_src = (at.z * pc.cnt[j] + at.y) * pc.hw + at.w;
    var v = 0.0;
    switch j {
        case 0u: { v = c4_s0[at_src]; }
        case 1u: { v = c4_s1[at_src]; }
        case 2u: { v = c4_s2[at_src]; }
        default: { v = c4_s3[at_src]; }
    }
    c4_dst[(at.z * pc.ctot + pc.base + pc.off[j] + at.y) * pc.hw + at.w] = v;
}

@group(0) @binding(1) var<storage, read> s4_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> s4_d0: array<f32>;
@group(0) @binding(3) var<storage, read_write> s4_d1: array<f32>;
@group(0) @binding(4) var<storage, read_write> s4_d2: array<f32>;
@group(0) @binding(5) var<storage, read_write> s4_d3: array<f32>;

@compute @workgroup_size(256)
fn split4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= pc.n * pc.gc * pc.hw) { return; }
    let at = block_of(i);
    let j = at.x;
    if (pc.want[j] == 0u) { return; }
    let v = s4_src[(at.z * pc.ctot + pc.base + pc.off[j] + at.y) * pc.hw + at.w];
    let to = (at.z * pc.cnt[j] + at.y) * pc.hw + at.w;
    switch j {
        case 0u: { s4_d0[to] = v; }
        case 1u: { s4_d1[to] = v; }
        case 2u: { s4_d2[to] = v; }
        default: { s4_d3[to] = v; }
    }
}
