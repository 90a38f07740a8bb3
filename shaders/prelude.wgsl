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

// A channel's values as n planes of q = hw / 4 vec4s: lane li of `width` walks its own
// contiguous run of the n·q items [start, end), image by image (img, j), with no division per
// item (batch norm's and the normalised sums' per-channel workgroups).
struct Run { start: u32, end: u32, img: u32, j: u32, q: u32 }

fn run_of(li: u32, width: u32, n: u32, hw: u32) -> Run {
    let q = hw / 4u;
    let m4 = n * q;
    let per = (m4 + width - 1u) / width;
    let start = min(li * per, m4);
    return Run(start, min(start + per, m4), start / q, start % q, q);
}

// All n·q items (one thread per channel).
fn run_whole(n: u32, hw: u32) -> Run {
    let q = hw / 4u;
    return Run(0u, n * q, 0u, 0u, q);
}

fn run_next(r: ptr<function, Run>) {
    (*r).j = (*r).j + 1u;
    if ((*r).j == (*r).q) { (*r).j = 0u; (*r).img = (*r).img + 1u; }
}

// The vec4 index of the run's current item in channel `ch` of c.
fn run_index(r: Run, c: u32, ch: u32) -> u32 {
    return (r.img * c + ch) * r.q + r.j;
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// Scratch for workgroup tree reductions (one value per thread).
var<workgroup> red: array<f32, 256>;

// Sums `v` over the workgroup; every thread gets the total. Call from uniform control flow.
fn tree_sum(li: u32, v: f32) -> f32 {
    return tree_sum_n(li, v, WG);
}

// tree_sum for a workgroup of `width` threads (a power of two, at most WG): tree_sum_n is
// lanes.wgsl's (subgroup sums, two barriers) or lanes_none.wgsl's (this tree, log2(width) + 2
// barriers).
fn tree_sum_barriers(li: u32, v: f32, width: u32) -> f32 {
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

// Scratch for per-row workgroup reductions: 8 rows of one value per thread, rows8[r * width +
// li] (the batch-norm statistics a producing kernel writes for its outputs' channels).
var<workgroup> rows8: array<f32, 2048>;

// Sums rows8[r * width + li] over a workgroup of `width` threads (a power of two, at most WG)
// for each of the 8 rows; row r's total lands in rows8[r * width]. Call from uniform control
// flow, after writing rows8.
fn rows8_sum(li: u32, width: u32) {
    workgroupBarrier();
    var s = width / 2u;
    loop {
        if (s == 0u) { break; }
        if (li < s) {
            for (var r = 0u; r < 8u; r = r + 1u) {
                rows8[r * width + li] = rows8[r * width + li] + rows8[r * width + li + s];
            }
        }
        workgroupBarrier();
        s = s / 2u;
    }
}

// Chunk statistics of 8 rows over a workgroup, step 1: from each thread's sums of its values
// per row (0 where it has none) to every row's mean over the chunk's `cnt` values.
fn rows8_means(li: u32, width: u32, sums: array<f32, 8>, cnt: f32) -> array<f32, 8> {
    for (var r = 0u; r < 8u; r = r + 1u) { rows8[r * width + li] = sums[r]; }
    rows8_sum(li, width);
    var mean: array<f32, 8>;
    for (var r = 0u; r < 8u; r = r + 1u) { mean[r] = rows8[r * width] / max(cnt, 1.0); }
    workgroupBarrier();
    return mean;
}

// Step 2: from each thread's Σ(v − mean)² per row to the chunk's; thread li < 8 gets row li's.
fn rows8_m2(li: u32, width: u32, m2: array<f32, 8>) -> f32 {
    for (var r = 0u; r < 8u; r = r + 1u) { rows8[r * width + li] = m2[r]; }
    rows8_sum(li, width);
    let total = rows8[min(li, 7u) * width];
    workgroupBarrier();
    return total;
}

// Both steps for a 256-thread workgroup whose threads each hold 4 outputs of up to 16 rows
// in `acc` (a kernel computing 4 pixels × rows per thread): rows g..g+7 of the `rows` valid
// ones, over the chunk's `cnt` values (threads without outputs pass valid = false). Thread
// li < 8 gets row g + li's (mean, Σ(y − mean)²). Call from uniform control flow.
fn acc_rows8_stats(li: u32, acc: array<vec4<f32>, 16>, valid: bool, rows: u32, g: u32, cnt: f32) -> vec2<f32> {
    var v: array<f32, 8>;
    for (var r = 0u; r < 8u; r = r + 1u) {
        v[r] = select(0.0, dot(acc[min(g + r, 15u)], vec4<f32>(1.0)), valid && g + r < rows);
    }
    let mean = rows8_means(li, WG, v, cnt);
    for (var r = 0u; r < 8u; r = r + 1u) {
        let d = acc[min(g + r, 15u)] - vec4<f32>(mean[r]);
        v[r] = select(0.0, dot(d, d), valid && g + r < rows);
    }
    let m2 = rows8_m2(li, WG, v);
    return vec2<f32>(mean[min(li, 7u)], m2);
}

// The value lane li % 8 reads in round j for a LANES kernel (lanes.wgsl): value li % 8 + 8j,
// clamped to `last`. lanes16(round 0, round 1) then holds value r at entry r.
fn lane_index(li: u32, j: u32, last: u32) -> u32 {
    return min(li % 8u + 8u * j, last);
}
