// prelude.wgsl: helpers prepended to every kernel file before compilation.
// Launch convention: 1-D problems run in 256-wide workgroups spread over a 3-D grid (so a
// launch may exceed the 65,535 workgroups-per-dimension limit); `gid` rebuilds the linear
// thread index and `group_index` the linear workgroup index. Binding 0 is always the
// per-launch uniform parameter block.

const WG: u32 = 256u;

fn group_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + nwg.x * (wg.y + nwg.y * wg.z);
}

fn gid(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return group_index(wg, nwg) * WG + li;
}

// Scratch for workgroup tree reductions (one value per thread).
var<workgroup> red: array<f32, 256>;

// Sums `v` over the workgroup; every thread gets the total. Call from uniform control flow.
fn tree_sum(li: u32, v: f32) -> f32 {
    return tree_sum_n(li, v, WG);
}

// tree_sum for a workgroup of `width` threads (a power of two, at most WG).
fn tree_sum_n(li: u32, v: f32, width: u32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    var s = width / 2u;
    loop {
        if (s == 0u) { break; }
        if (li < s) { red[li] = red[li] + red[li + s]; }
        workgroupBarrier();
        s = s / 2u;
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}
