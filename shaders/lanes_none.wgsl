// lanes_none.wgsl: lanes.wgsl's functions on devices without subgroups of 8 consecutive
// invocations, so every kernel file compiles there; the launch policy never sets LANES = 1 on
// them, so these are never reached (each lane would see only its own values).

fn lanes16(lo: f32, hi: f32) -> array<f32, 16> {
    return array<f32, 16>(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi);
}

fn lane_prev(v: f32) -> f32 {
    return v;
}

fn lane_next(v: f32) -> f32 {
    return v;
}

fn lane_prev_u(v: u32) -> u32 {
    return v;
}

fn lane_next_u(v: u32) -> u32 {
    return v;
}

fn tree_sum_n(li: u32, v: f32, width: u32) -> f32 {
    return tree_sum_barriers(li, v, width);
}

fn lane_read(v: f32, i: u32) -> f32 {
    return v;
}

fn lane_read4(v: vec4<f32>, i: u32) -> vec4<f32> {
    return v;
}

fn shared_block_quads(d0: vec4<f32>, d1: vec4<f32>, l: u32) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(d0, d1, d0, d1);
}
