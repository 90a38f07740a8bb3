// matmul.wgsl: C = A * B (+ bias) with arbitrary strides, so transposes cost nothing.
// A[i, k] = a[i * a_rs + k * a_cs], B[k, j] = b[k * b_rs + j * b_cs]; C: row-major (m, n).
//   matmul   1 a, 2 b, 3 bias (n; dummy unless has_bias), 4 c    one thread per element of C
//   col_sum  1 x (m, n), 2 out (n): out[j] = sum_i x[i, j]        one thread per column
// Workgroup size 256.

struct P {
    m: u32, n: u32, k: u32, has_bias: u32,
    a_rs: u32, a_cs: u32, b_rs: u32, b_cs: u32,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> ma: array<f32>;
@group(0) @binding(2) var<storage, read> mb: array<f32>;
@group(0) @binding(3) var<storage, read> mbias: array<f32>;
@group(0) @binding(4) var<storage, read_write> mc: array<f32>;
@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = gid(wg, nwg, li);
    if (t >= p.m * p.n) { return; }
    let i = t / p.n;
    let j = t % p.n;
    var acc = 0.0;
    if (p.has_bias != 0u) { acc = mbias[j]; }
    for (var k = 0u; k < p.k; k = k + 1u) {
        acc = acc + ma[i * p.a_rs + k * p.a_cs] * mb[k * p.b_rs + j * p.b_cs];
    }
    mc[t] = acc;
}

@group(0) @binding(1) var<storage, read> cs_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cs_out: array<f32>;
@compute @workgroup_size(256)
fn col_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = gid(wg, nwg, li);
    if (j >= p.n) { return; }
    var acc = 0.0;
    for (var i = 0u; i < p.m; i = i + 1u) { acc = acc + cs_x[i * p.n + j]; }
    cs_out[j] = acc;
}
