// lanes.wgsl: lane broadcasts, prepended (after prelude.wgsl) to every kernel file on devices
// opened with subgroups of 8 lanes that are 8 consecutive invocations (llvmpipe / lavapipe:
// one 256-bit SIMD vector per 8 invocations). Elsewhere lanes_none.wgsl takes its place, and
// no kernel takes a LANES path there.
// lanes16(lo, hi): lo of lanes 0..7 of the calling subgroup, then hi of lanes 0..7, in every
// lane (an extract and a splat each on llvmpipe). Every lane of the subgroup must be running.
// A kernel reading 16 values at indices that are the same in every lane but that llvmpipe
// cannot prove so (they come from loop counters; it gathers each lane by lane) lets lane l
// read values l and l + 8, and takes value r from entry r: two gathers instead of 16.

fn lanes16(lo: f32, hi: f32) -> array<f32, 16> {
    return array<f32, 16>(
        subgroupBroadcast(lo, 0u), subgroupBroadcast(lo, 1u), subgroupBroadcast(lo, 2u),
        subgroupBroadcast(lo, 3u), subgroupBroadcast(lo, 4u), subgroupBroadcast(lo, 5u),
        subgroupBroadcast(lo, 6u), subgroupBroadcast(lo, 7u),
        subgroupBroadcast(hi, 0u), subgroupBroadcast(hi, 1u), subgroupBroadcast(hi, 2u),
        subgroupBroadcast(hi, 3u), subgroupBroadcast(hi, 4u), subgroupBroadcast(hi, 5u),
        subgroupBroadcast(hi, 6u), subgroupBroadcast(hi, 7u));
}

// lane_prev(v) / lane_next(v) (lane_prev_u / lane_next_u for u32): v of the lane before /
// after the calling one in its subgroup
// (undefined in lane 0 / lane 7: callers mask what they take from there). Every lane must be
// running. Lets a lane take its neighbours' loads instead of gathering them again.
fn lane_prev(v: f32) -> f32 {
    return subgroupShuffleUp(v, 1u);
}

fn lane_next(v: f32) -> f32 {
    return subgroupShuffleDown(v, 1u);
}

fn lane_prev_u(v: u32) -> u32 {
    return subgroupShuffleUp(v, 1u);
}

fn lane_next_u(v: u32) -> u32 {
    return subgroupShuffleDown(v, 1u);
}

// tree_sum_n (prelude.wgsl): each subgroup's sum in registers (subgroupAdd), then one barrier
// for the width / 8 subgroup totals: 2 barriers instead of log2(width) + 2. On llvmpipe a
// barrier suspends and resumes every 8-lane group of the workgroup, which for a workgroup of
// 256 costs more than the sum. The totals are added in subgroup order in every lane, so every
// thread gets the same value.
fn tree_sum_n(li: u32, v: f32, width: u32) -> f32 {
    let s = subgroupAdd(v);
    if (li % 8u == 0u) { red[li / 8u] = s; }
    workgroupBarrier();
    var total = 0.0;
    for (var k = 0u; k < width / 8u; k = k + 1u) { total = total + red[k]; }
    workgroupBarrier();
    return total;
}

// lane_read(v, i) / lane_read4: v of lane i (0..7, may differ between lanes) of the calling
// subgroup: one permute on llvmpipe (AVX2), where taking a value that differs by lane from
// broadcasts costs a broadcast per candidate lane and a select. Every lane must be running.
fn lane_read(v: f32, i: u32) -> f32 {
    return subgroupShuffle(v, i);
}

fn lane_read4(v: vec4<f32>, i: u32) -> vec4<f32> {
    return vec4<f32>(subgroupShuffle(v.x, i), subgroupShuffle(v.y, i), subgroupShuffle(v.z, i),
        subgroupShuffle(v.w, i));
}

// A thread's four output channels' quads where lanes l and l + 4 share an output block (4
// output blocks of 2 input blocks a subgroup, the weight gradients' OB = 4): lane 4h + b loaded
// channels 2h (d0) and 2h + 1 (d1) of block b, and channel a is lane b + 4·(a / 2)'s. Two
// loads a lane instead of four, for four shuffles each.
fn shared_block_quads(d0: vec4<f32>, d1: vec4<f32>, l: u32) -> array<vec4<f32>, 4> {
    let b = l & 3u;
    return array<vec4<f32>, 4>(lane_read4(d0, b), lane_read4(d1, b), lane_read4(d0, b | 4u),
        lane_read4(d1, b | 4u));
}
