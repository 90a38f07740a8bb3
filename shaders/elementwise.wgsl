// elementwise.wgsl: per-element maps and their gradients.
// Buffers: flat f32 arrays of length p.n; `s` is a small f32 buffer of GPU-resident
// scalars (softmax weights, beta, learning rates) read at index p.idx.
// Bindings: 0 = params, then the entry's buffers in the order listed at each entry.
// Grid: one thread per element, 256-wide workgroups (see prelude).

struct P {
    n: u32,
    idx: u32,
    factor: f32,
    value: f32,
}
@group(0) @binding(0) var<uniform> p: P;

// relu_forward: 1 x, 2 y
@group(0) @binding(1) var<storage, read> rf_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> rf_y: array<f32>;
@compute @workgroup_size(256)
fn relu_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    rf_y[i] = max(rf_x[i], 0.0);
}

// relu_backward: 1 x, 2 dy, 3 dx   (dx = dy where x > 0; the subgradient at 0 is 0, as in PyTorch)
@group(0) @binding(1) var<storage, read> rb_x: array<f32>;
@group(0) @binding(2) var<storage, read> rb_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> rb_dx: array<f32>;
@compute @workgroup_size(256)
fn relu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    rb_dx[i] = select(0.0, rb_dy[i], rb_x[i] > 0.0);
}

// add: 1 a, 2 b, 3 out = a + b
@group(0) @binding(1) var<storage, read> ad_a: array<f32>;
@group(0) @binding(2) var<storage, read> ad_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> ad_out: array<f32>;
@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    ad_out[i] = ad_a[i] + ad_b[i];
}

// mul: 1 a, 2 b, 3 out = a * b
@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    ad_out[i] = ad_a[i] * ad_b[i];
}

// scale_const: 1 x, 2 out = factor * x
@compute @workgroup_size(256)
fn scale_const(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    rf_y[i] = p.factor * rf_x[i];
}

// scale_by: 1 x, 2 s, 3 out = factor * s[idx] * x
@group(0) @binding(1) var<storage, read> sb_x: array<f32>;
@group(0) @binding(2) var<storage, read> sb_s: array<f32>;
@group(0) @binding(3) var<storage, read_write> sb_out: array<f32>;
@compute @workgroup_size(256)
fn scale_by(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    sb_out[i] = p.factor * sb_s[p.idx] * sb_x[i];
}

// scale_inplace_by: 1 s, 2 x *= s[idx]   (gradient clipping)
@group(0) @binding(1) var<storage, read> si_s: array<f32>;
@group(0) @binding(2) var<storage, read_write> si_x: array<f32>;
@compute @workgroup_size(256)
fn scale_inplace_by(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    si_x[i] = si_x[i] * si_s[p.idx];
}

// scale_rows: 1 x, 2 s, 3 out[i] = s[i / idx] * x[i]   (idx = elements per row: drop path's
// per-sample mask, already divided by the keep probability)
@compute @workgroup_size(256)
fn scale_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    sb_out[i] = sb_s[i / p.idx] * sb_x[i];
}

// fill: 1 out = value
@group(0) @binding(1) var<storage, read_write> fl_out: array<f32>;
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.n) { return; }
    fl_out[i] = p.value;
}
