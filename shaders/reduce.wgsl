// reduce.wgsl: two-pass sums without float atomics.
// Pass 1 (dot_partial / sum_partial): workgroup g sums elements [g*chunk, (g+1)*chunk) of a
// flat array (times b for dot) into partial[g]. Pass 2 (finish): one workgroup sums
// partial[0..count) and writes out[offset] = (accumulate ? out[offset] : 0) + factor * total.
// Bindings: 0 params; dot_partial 1 a, 2 b, 3 partial; sum_partial 1 a, 2 partial;
// finish 1 partial, 2 out. Grid: ceil(n / chunk) workgroups of 256; finish: 1 workgroup.

struct P {
    n: u32,
    chunk: u32,
    count: u32,
    offset: u32,
    accumulate: u32,
    factor: f32,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> dp_a: array<f32>;
@group(0) @binding(2) var<storage, read> dp_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> dp_part: array<f32>;
@compute @workgroup_size(256)
fn dot_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let start = g * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var i = start + li; i < end; i = i + WG) {
        acc = acc + dp_a[i] * dp_b[i];
    }
    let total = tree_sum(li, acc);
    if (li == 0u) { dp_part[g] = total; }
}

@group(0) @binding(1) var<storage, read> sp_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> sp_part: array<f32>;
@compute @workgroup_size(256)
fn sum_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = group_index(wg, nwg);
    let start = g * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var i = start + li; i < end; i = i + WG) {
        acc = acc + sp_a[i];
    }
    let total = tree_sum(li, acc);
    if (li == 0u) { sp_part[g] = total; }
}

@group(0) @binding(1) var<storage, read> fn_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> fn_out: array<f32>;
@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) li: u32) {
    var acc = 0.0;
    for (var i = li; i < p.count; i = i + WG) {
        acc = acc + fn_part[i];
    }
    let total = tree_sum(li, acc);
    if (li == 0u) {
        var base = 0.0;
        if (p.accumulate != 0u) { base = fn_out[p.offset]; }
        fn_out[p.offset] = base + p.factor * total;
    }
}
