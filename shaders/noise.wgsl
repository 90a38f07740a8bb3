// noise.wgsl: N(0, 1) values from a counter-based generator (RobustDARTS S4's `noise`).
// Maths: element i of stream `stream` under the 64-bit key (k0, k1) = keys[2·slot],
// keys[2·slot + 1] is Box–Muller on two 24-bit uniforms,
//   base = h(k0 ^ h(k1 ^ h(stream))),  u1 = (h(base ^ h(2i)) >> 8 + 1) / 2^24 ∈ (0, 1],
//   u2 = (h(base ^ h(2i + 1)) >> 8) / 2^24,  out[i] = sqrt(−2 ln u1) · cos(2π u2 − π),
// h = the lowbias32 integer hash. The values depend only on (key, stream, i), so a recorded
// step replays fresh noise when the host rewrites `keys`, and the CPU can recompute them
// (autodiff/ops/noise.rs, `normal_noise_cpu`).
// Buffers: keys u32[2·slots] (host-written), out f32[n].
// Bindings: 0 params, 1 keys, 2 out.
// Grid: one thread per element, 256-wide workgroups (see prelude).

struct P {
    n: u32,
    slot: u32,
    stream: u32,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn lowbias32(x: u32) -> u32 {
    var v = x;
    v = v ^ (v >> 16u);
    v = v * 0x7feb352du;
    v = v ^ (v >> 15u);
    v = v * 0x846ca68bu;
    v = v ^ (v >> 16u);
    return v;
}

@compute @workgroup_size(256)
fn normal(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    let k0 = keys[2u * p.slot];
    let k1 = keys[2u * p.slot + 1u];
    let base = lowbias32(k0 ^ lowbias32(k1 ^ lowbias32(p.stream)));
    let a = lowbias32(base ^ lowbias32(2u * i));
    let b = lowbias32(base ^ lowbias32(2u * i + 1u));
    let u1 = (f32(a >> 8u) + 1.0) / 16777216.0;
    let u2 = f32(b >> 8u) / 16777216.0;
    // The angle in [−π, π): where WGSL bounds cos's error (2^-11 absolute).
    out[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2 - 3.141592653589793);
}
