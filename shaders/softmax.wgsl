// softmax.wgsl: row softmax, log-softmax cross-entropy, top-k ranks. Row-major (rows, cols).
//   row_softmax_forward   1 x, 2 y                     one thread per row
//   row_softmax_backward  1 y, 2 dy, 3 dx: dx = y * (dy - sum(dy * y))
//   ce_forward            1 logits, 2 labels (u32), 3 rowout: rowout[r] = lse_r - x[r, label],
//                         rowout[rows + r] = lse_r (kept for backward); the mean is a reduce.
//   ce_backward           1 logits, 2 labels, 3 rowout, 4 g (dloss at g[0]), 5 dx:
//                         dx = g / rows * (softmax - onehot)
//   rank_of_label         1 logits, 2 labels, 3 out: out[r] = #{j : x[r, j] > x[r, label]}
//                         (top-k correct iff rank < k)
// Workgroup size 256; ce_backward: one thread per element, the others one per row.

struct P {
    rows: u32,
    cols: u32,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> sf_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> sf_y: array<f32>;
@compute @workgroup_size(256)
fn row_softmax_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = gid(wg, nwg, li);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var m = sf_x[base];
    for (var j = 1u; j < p.cols; j = j + 1u) { m = max(m, sf_x[base + j]); }
    var s = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) { s = s + exp(sf_x[base + j] - m); }
    for (var j = 0u; j < p.cols; j = j + 1u) { sf_y[base + j] = exp(sf_x[base + j] - m) / s; }
}

@group(0) @binding(1) var<storage, read> sb_y: array<f32>;
@group(0) @binding(2) var<storage, read> sb_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> sb_dx: array<f32>;
@compute @workgroup_size(256)
fn row_softmax_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = gid(wg, nwg, li);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var d = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) { d = d + sb_dy[base + j] * sb_y[base + j]; }
    for (var j = 0u; j < p.cols; j = j + 1u) { sb_dx[base + j] = sb_y[base + j] * (sb_dy[base + j] - d); }
}

@group(0) @binding(1) var<storage, read> ce_x: array<f32>;
@group(0) @binding(2) var<storage, read> ce_lab: array<u32>;
@group(0) @binding(3) var<storage, read_write> ce_row: array<f32>;
@compute @workgroup_size(256)
fn ce_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = gid(wg, nwg, li);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var m = ce_x[base];
    for (var j = 1u; j < p.cols; j = j + 1u) { m = max(m, ce_x[base + j]); }
    var s = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) { s = s + exp(ce_x[base + j] - m); }
    let lse = m + log(s);
    ce_row[r] = lse - ce_x[base + ce_lab[r]];
    ce_row[p.rows + r] = lse;
}

@group(0) @binding(1) var<storage, read> cb_x: array<f32>;
@group(0) @binding(2) var<storage, read> cb_lab: array<u32>;
@group(0) @binding(3) var<storage, read> cb_row: array<f32>;
@group(0) @binding(4) var<storage, read> cb_g: array<f32>;
@group(0) @binding(5) var<storage, read_write> cb_dx: array<f32>;
@compute @workgroup_size(256)
fn ce_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.rows * p.cols) { return; }
    let r = i / p.cols;
    let j = i % p.cols;
    var v = exp(cb_x[i] - cb_row[p.rows + r]);
    if (j == cb_lab[r]) { v = v - 1.0; }
    cb_dx[i] = cb_g[0] / f32(p.rows) * v;
}

@group(0) @binding(1) var<storage, read> rk_x: array<f32>;
@group(0) @binding(2) var<storage, read> rk_lab: array<u32>;
@group(0) @binding(3) var<storage, read_write> rk_out: array<f32>;
@compute @workgroup_size(256)
fn rank_of_label(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = gid(wg, nwg, li);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    let t = rk_x[base + rk_lab[r]];
    var k = 0u;
    for (var j = 0u; j < p.cols; j = j + 1u) {
        if (rk_x[base + j] > t) { k = k + 1u; }
    }
    rk_out[r] = f32(k);
}
