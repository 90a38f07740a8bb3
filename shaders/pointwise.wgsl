// pointwise.wgsl: 1×1 convolution (stride 1, no padding, groups 1) as a batched matrix
// product, the bulk of DARTS' sep_conv / dil_conv / preprocessing work. NCHW f32.
//   gemm    1 a (m, k) via strides, 2 x (n, k, hw), 3 y (n, m, hw), 4 mask (n, m, hw):
//           y[b, i, p] = sum_j a[i*a_rs + j*a_cs] * x[b, j, p]
//           forward: a = weight (cout, cin), strides (cin, 1);
//           backward_input: a = weightᵀ, strides (1, cin), x = dy, y = dx.
//           Grid (ceil(n*hw/256), ceil(m/4), 1); each thread: one pixel of one image, 4
//           output rows, so every x value loaded serves 4 multiply-adds; no division in loops.
//   gemm4   the same product when hw % 4 == 0, each thread 4 consecutive pixels × RB output
//           rows (every weight loaded serves 4 pixels, every x load RB rows); x and y bound
//           as vec4 arrays. Grid (ceil(n*hw/1024), ceil(m/RB), 1). 5 uw (uniform, 64 KiB):
//           with UW = 1 a's buffer again, read from there (CPU adapters); else a placeholder.
//           6 bias (m): with BIAS = 1 added to every output row (NAS-Bench-201's 1×1
//           convolutions); else a placeholder.
//   gemm4_stats  gemm4 (MASK = 0) that also writes the batch-norm statistics of its outputs
//           per (row, workgroup column) at 7 (see the entry; the batch norm that follows
//           reads them instead of its own pass over y).
//   weight gradient dw[i, j] = sum_{b,p} dy[b,i,p] x[b,j,p] (dw: (m, k)) in two passes:
//   weight_grad_partial  1 dy (n, m, hw), 2 x (n, k, hw), 3 part: one thread per (4×4 block of
//           dw, chunk of p.per positions) writes 16 partial sums; p.chunks = number of chunks
//   weight_grad_partial4 the same with vec4 loads (hw % 4 == 0, p.per % 4 == 0)
//   weight_grad_sum      1 part, 2 dw: one thread per element of dw adds its chunks' partials
//   weight_grad_sum_wg   the same with a workgroup per element of dw (grid: one workgroup per
//                        element): its threads take every 256th chunk, then a tree sum (GPUs,
//                        many chunks: a thread walking them all is one long serial chain)
//   DIRECT = 1 (pipeline constant, one chunk): the partial kernels write dw itself at 3 and
//           the second pass is skipped (small gradients on adapters where launches are costly)
//   DB = 1 (weight_grad_partial4): the bias gradient db[i] = Σ_{b,p} dy[b,i,p] too, from the
//           dy loads the threads of input block 0 already make: with DIRECT written to db at
//           4, else as 4 partials per (output block, chunk) after dw's, which
//   weight_grad_sum_bias(_wg)  1 part, 2 dw, 3 db: weight_grad_sum(_wg) over dw's m·k
//           elements and then db's m (grid m·k + m threads, or workgroups): no bias launch
// RELU = 1 (pipeline constant): x is read through max(x, 0) in gemm and weight_grad_partial,
// folding a preceding ReLU into the loads. MASK = 1: gemm writes y only where mask > 0 (0
// elsewhere), the input gradient through that ReLU with mask = the input; with MASK = 0 bind
// any buffer at 4.
// Workgroup size 256, except weight_grad_partial4's WPG (a multiple of 8; on CPU adapters the
// size that makes one equal workgroup per adapter thread, LaunchPolicy::weight_grad_split).

override RELU: u32 = 0u;
override MASK: u32 = 0u;
override WPG: u32 = 256u;
override DIRECT: u32 = 0u;
override UW: u32 = 0u;
override BIAS: u32 = 0u;
override DB: u32 = 0u;

fn relu_in(v: f32) -> f32 {
    if (RELU != 0u) { return max(v, 0.0); }
    return v;
}

struct P {
    n: u32, m: u32, k: u32, hw: u32,
    a_rs: u32, a_cs: u32, per: u32, chunks: u32,
}
@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> g_a: array<f32>;
@group(0) @binding(2) var<storage, read> g_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> g_y: array<f32>;
@group(0) @binding(4) var<storage, read> g_mask: array<f32>;
@group(0) @binding(4) var<storage, read> g4_mask: array<vec4<f32>>;

// With MASK = 1 an output survives only where mask > 0: the input gradient through a ReLU
// folded into this convolution, with mask = its input (no relu_backward launch).
fn masked(v: f32, i: u32) -> f32 {
    if (MASK != 0u) { return select(0.0, v, g_mask[i] > 0.0); }
    return v;
}
fn masked4(v: vec4<f32>, i: u32) -> vec4<f32> {
    if (MASK != 0u) { return select(vec4<f32>(0.0), v, g4_mask[i] > vec4<f32>(0.0)); }
    return v;
}

@compute @workgroup_size(256)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = wg.x * WG + li;
    let i0 = wg.y * 4u;
    if (t >= p.n * p.hw) { return; }
    let b = t / p.hw;
    let px = t % p.hw;
    var acc = vec4<f32>(0.0);
    let rows = min(4u, p.m - i0);
    let xbase = b * p.k * p.hw + px;
    for (var j = 0u; j < p.k; j = j + 1u) {
        let xv = relu_in(g_x[xbase + j * p.hw]);
        let ab = i0 * p.a_rs + j * p.a_cs;
        // Rows past m read a clamped (valid) weight and are discarded below.
        let w = vec4<f32>(
            g_a[ab],
            g_a[ab + min(1u, rows - 1u) * p.a_rs],
            g_a[ab + min(2u, rows - 1u) * p.a_rs],
            g_a[ab + min(3u, rows - 1u) * p.a_rs],
        );
        acc = acc + w * xv;
    }
    let ybase = (b * p.m + i0) * p.hw + px;
    g_y[ybase] = masked(acc.x, ybase);
    if (rows > 1u) { g_y[ybase + p.hw] = masked(acc.y, ybase + p.hw); }
    if (rows > 2u) { g_y[ybase + 2u * p.hw] = masked(acc.z, ybase + 2u * p.hw); }
    if (rows > 3u) { g_y[ybase + 3u * p.hw] = masked(acc.w, ybase + 3u * p.hw); }
}

@group(0) @binding(2) var<storage, read> g4_x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> g4_y: array<vec4<f32>>;

fn relu_in4(v: vec4<f32>) -> vec4<f32> {
    if (RELU != 0u) { return max(v, vec4<f32>(0.0)); }
    return v;
}

// x and y bound as vec4 arrays (hw % 4 == 0, so a thread's 4 pixels are one aligned vec4): one
// load per input row serves RB output rows (pipeline constant 4, 8 or 16; grid y = ceil(m/RB)).
// CPU adapters run each load lane by lane, so the more rows a load serves the better; the
// accumulators beyond the registers spill to cheap stack slots.
override RB: u32 = 4u;
// LANES = 1 (CPU adapters whose subgroups are 8 consecutive invocations; see lanes.wgsl):
// gemm4 reads a column's RB weights with two gathers and lane broadcasts, not RB gathers, and
// takes two input channels a step (one accumulator write per two).
override LANES: u32 = 0u;

// The weight a again as a uniform window (UW = 1; bound to a placeholder otherwise).
@group(0) @binding(5) var<uniform> g_uw: array<vec4<f32>, 4096>;
// The bias (BIAS = 1; bound to a placeholder otherwise).
@group(0) @binding(6) var<storage, read> g_bias: array<f32>;

// Element i of a: from the uniform window with UW, where llvmpipe loads it once for all
// lanes (a storage load inside a loop runs lane by lane), else from storage.
fn a_at(i: u32) -> f32 {
    if (UW != 0u) { return g_uw[i / 4u][i % 4u]; }
    return g_a[i];
}

// LANES: the RB weights of the column at ab (row i0's) for rows i0.. (lanes16, rows by
// lane_index in two rounds; rows past m read a clamped valid weight).
fn gemm4_weights(ab: u32, li: u32, rows: u32) -> array<f32, 16> {
    var hi = 0.0;
    if (RB > 8u) { hi = a_at(ab + lane_index(li, 1u, rows - 1u) * p.a_rs); }
    return lanes16(a_at(ab + lane_index(li, 0u, rows - 1u) * p.a_rs), hi);
}

// Output rows i0.. (RB of them, the ones past m discarded by the caller) for the 4 pixels from
// position t (< n·hw).
fn gemm4_rows(t: u32, i0: u32, li: u32, valid: bool) -> array<vec4<f32>, 16> {
    let b = t / p.hw;
    let px = t % p.hw;
    let rows = min(RB, p.m - i0);
    let hw4 = p.hw / 4u;
    let xbase = (b * p.k * p.hw + px) / 4u;
    // acc[r] holds output row i0 + r for the 4 pixels.
    var acc: array<vec4<f32>, 16>;
    var j0 = 0u;
    if (LANES != 0u) {
        // Two input channels a step, summed in straight-line code before the one write per
        // accumulator (llvmpipe blends every write of a loop-carried value with the loop's
        // mask); the same order as one channel a step, so the same bits. Loops of 8 rows
        // (Mesa unrolls those; one of 16 with this body it does not).
        for (; j0 + 2u <= p.k; j0 = j0 + 2u) {
            let x0 = relu_in4(g4_x[xbase + j0 * hw4]);
            let x1 = relu_in4(g4_x[xbase + (j0 + 1u) * hw4]);
            let w0 = gemm4_weights(i0 * p.a_rs + j0 * p.a_cs, li, rows);
            let w1 = gemm4_weights(i0 * p.a_rs + (j0 + 1u) * p.a_cs, li, rows);
            for (var r = 0u; r < 8u; r = r + 1u) {
                if (r < RB) { acc[r] = acc[r] + w0[r] * x0 + w1[r] * x1; }
            }
            for (var r = 8u; r < 16u; r = r + 1u) {
                if (r < RB) { acc[r] = acc[r] + w0[r] * x0 + w1[r] * x1; }
            }
        }
    }
    for (var j = j0; j < p.k; j = j + 1u) {
        let xv = relu_in4(g4_x[xbase + j * hw4]);
        let ab = i0 * p.a_rs + j * p.a_cs;
        // Rows past m read a clamped (valid) weight and are discarded below.
        if (LANES != 0u) {
            let wr = gemm4_weights(ab, li, rows);
            for (var r = 0u; r < RB; r = r + 1u) { acc[r] = acc[r] + wr[r] * xv; }
        } else {
            for (var r = 0u; r < RB; r = r + 1u) {
                acc[r] = acc[r] + a_at(ab + min(r, rows - 1u) * p.a_rs) * xv;
            }
        }
    }
    if (BIAS != 0u) {
        // Rows past m add a clamped (valid) bias and are discarded below. Loops of 8 (see
        // above).
        for (var r = 0u; r < 8u; r = r + 1u) {
            if (r < RB) { acc[r] = acc[r] + vec4<f32>(g_bias[i0 + min(r, rows - 1u)]); }
        }
        for (var r = 8u; r < 16u; r = r + 1u) {
            if (r < RB) { acc[r] = acc[r] + vec4<f32>(g_bias[i0 + min(r, rows - 1u)]); }
        }
    }
    let yb = ((b * p.m + i0) * p.hw + px) / 4u;
    for (var r = 0u; r < RB; r = r + 1u) {
        if (valid && r < rows) { g4_y[yb + r * hw4] = masked4(acc[r], yb + r * hw4); }
    }
    return acc;
}

// gemm4's threads per workgroup (QW, a multiple of 8, at most 256): fewer where the launch
// has fewer positions (LaunchPolicy::quads_per_group).
override QW: u32 = 256u;

@compute @workgroup_size(QW)
fn gemm4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = (wg.x * QW + li) * 4u;
    // Every lane runs (an idle one on the last position), so LANES' broadcasts see all 8.
    gemm4_rows(min(t, p.n * p.hw - 4u), wg.y * RB, li, t < p.n * p.hw);
}

// gemm4 (MASK = 0) that also writes the batch-norm statistics of its outputs, so the batch
// norm that follows skips its own pass over them: binding 7 part (bind any buffer at 4, the
// unused mask), 3 floats per (output row,
// workgroup column wg.x) at 3·(row·nwg.x + wg.x): the column's count of positions, their
// mean and Σ(y − mean)² (batchnorm.wgsl's stats_partial layout, p.parts = nwg.x).
@group(0) @binding(7) var<storage, read_write> g4_part: array<f32>;

@compute @workgroup_size(256)
fn gemm4_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = (wg.x * WG + li) * 4u;
    let i0 = wg.y * RB;
    let valid = t < p.n * p.hw;
    let acc = gemm4_rows(min(t, p.n * p.hw - 4u), i0, li, valid);
    let rows = min(RB, p.m - i0);
    let cnt = f32(min(4u * WG, p.n * p.hw - wg.x * 4u * WG));
    for (var g = 0u; g < RB; g = g + 8u) {
        let st = acc_rows8_stats(li, acc, valid, rows, g, cnt);
        if (li < 8u && g + li < rows) {
            let q = 3u * ((i0 + g + li) * nwg.x + wg.x);
            g4_part[q] = cnt;
            g4_part[q + 1u] = st.x;
            g4_part[q + 2u] = st.y;
        }
    }
}

@group(0) @binding(1) var<storage, read> wg_dy: array<f32>;
@group(0) @binding(2) var<storage, read> wg_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> wg_part: array<f32>;

// Thread t of a weight-gradient pass: its 4×4 block of dw (rows i0.., columns j0.., ri × rj
// of them inside dw) and its chunk of positions; p.chunks chunks per block.
struct Block { i0: u32, j0: u32, ri: u32, rj: u32, chunk: u32 }

fn block_threads() -> u32 {
    return ((p.m + 3u) / 4u) * ((p.k + 3u) / 4u) * p.chunks;
}

fn block_of(t: u32) -> Block {
    let bj = (p.k + 3u) / 4u;
    let blk = t / p.chunks;
    let i0 = (blk / bj) * 4u;
    let j0 = (blk % bj) * 4u;
    return Block(i0, j0, min(4u, p.m - i0), min(4u, p.k - j0), t % p.chunks);
}

// The output blocks a subgroup takes with LANES (weight_grad_partial4): 8 (bo a multiple of
// 8), or 4 of each of 2 input blocks (bo = 4, an even number of input blocks).
override OB: u32 = 8u;

// block_of with LANES: t = ((input block pair · chunks + chunk) · ig + input block in the pair)
// · bo + output block (ig = 8 / OB), so a subgroup's lanes share the chunk and read each input
// block's values once (conv.wgsl's lanes_order for the 1×1 case).
fn block_of_lanes(t: u32) -> Block {
    let bo = (p.m + 3u) / 4u;
    let ig = 8u / OB;
    let rest = t / bo;
    let gc = rest / ig;
    let jb = (gc / p.chunks) * ig + rest % ig;
    let i0 = (t % bo) * 4u;
    let j0 = jb * 4u;
    return Block(i0, j0, min(4u, p.m - i0), min(4u, p.k - j0), gc % p.chunks);
}

// A thread's 16 sums: its partials (block t), or with DIRECT = 1 (a single chunk) the finished
// weights, written straight into dw (bound at 3) so no second pass is needed.
fn store_block(t: u32, acc: array<f32, 16>, i0: u32, j0: u32, ri: u32, rj: u32) {
    if (DIRECT != 0u) {
        // Constant bounds, so that the accumulators can stay in registers.
        for (var a = 0u; a < 4u; a = a + 1u) {
            for (var c = 0u; c < 4u; c = c + 1u) {
                if (a < ri && c < rj) { wg_part[(i0 + a) * p.k + j0 + c] = acc[a * 4u + c]; }
            }
        }
        return;
    }
    for (var q = 0u; q < 16u; q = q + 1u) { wg_part[t * 16u + q] = acc[q]; }
}

// Pass 1: thread t = (block, chunk) sums one 4×4 block of dw over `chunk` consecutive
// (image, pixel) positions into 16 partials. No barriers (they are costly on CPU adapters).
@compute @workgroup_size(256)
fn weight_grad_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = gid(wg, nwg, li);
    if (t >= block_threads()) { return; }
    let bk = block_of(t);
    let i0 = bk.i0;
    let j0 = bk.j0;
    let ri = bk.ri;
    let rj = bk.rj;
    var acc: array<f32, 16>;
    for (var q = 0u; q < 16u; q = q + 1u) { acc[q] = 0.0; }
    let start = bk.chunk * p.per;
    let end = min(start + p.per, p.n * p.hw);
    var b = start / p.hw;
    var px = start % p.hw;
    for (var pos = start; pos < end; pos = pos + 1u) {
        let dyb = (b * p.m + i0) * p.hw + px;
        let xb = (b * p.k + j0) * p.hw + px;
        var dv: array<f32, 4>;
        var xv: array<f32, 4>;
        for (var q = 0u; q < 4u; q = q + 1u) {
            dv[q] = wg_dy[dyb + min(q, ri - 1u) * p.hw];
            xv[q] = relu_in(wg_x[xb + min(q, rj - 1u) * p.hw]);
        }
        for (var a = 0u; a < 4u; a = a + 1u) {
            for (var c = 0u; c < 4u; c = c + 1u) {
                acc[a * 4u + c] = acc[a * 4u + c] + dv[a] * xv[c];
            }
        }
        px = px + 1u;
        if (px == p.hw) { px = 0u; b = b + 1u; }
    }
    store_block(t, acc, i0, j0, ri, rj);
}

// weight_grad_partial for hw % 4 == 0 and a chunk of a multiple of 4 positions: four
// positions (one vec4 of each row) per step, so a load serves four positions.
@group(0) @binding(1) var<storage, read> w4_dy: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w4_x: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> w4_db: array<f32>;

// Where the bias gradient's partials start in the partials buffer: after dw's blocks.
fn bias_part_base() -> u32 {
    return block_threads() * 16u;
}

@compute @workgroup_size(WPG)
fn weight_grad_partial4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = group_index(wg, nwg) * WPG + li;
    if (t >= block_threads()) { return; }
    var bk = block_of(t);
    // The partials' slot: block-major, whatever the thread order.
    var slot = t;
    if (LANES != 0u) {
        bk = block_of_lanes(t);
        slot = ((bk.i0 / 4u) * ((p.k + 3u) / 4u) + bk.j0 / 4u) * p.chunks + bk.chunk;
    }
    let i0 = bk.i0;
    let j0 = bk.j0;
    let ri = bk.ri;
    let rj = bk.rj;
    var acc: array<f32, 16>;
    for (var q = 0u; q < 16u; q = q + 1u) { acc[q] = 0.0; }
    // The bias's sums: the threads of input block 0 (their dy loads are the bias's inputs).
    let bias_thread = DB != 0u && j0 == 0u;
    var bsum = vec4<f32>(0.0);
    let hw4 = p.hw / 4u;
    let start = bk.chunk * p.per / 4u;
    let end = min(start + p.per / 4u, p.n * hw4);
    var b = start / hw4;
    var px = start % hw4;
    for (var pos = start; pos < end; pos = pos + 1u) {
        let dyb = (b * p.m + i0) * hw4 + px;
        let xb = (b * p.k + j0) * hw4 + px;
        var dv: array<vec4<f32>, 4>;
        var xv: array<vec4<f32>, 4>;
        if (LANES != 0u && OB == 4u) {
            // Lanes l and l + 4 share their output block: two loads a lane and shuffles
            // (shared_block_quads), as the dense kernels' dy_quads.
            let l = li % 8u;
            let d0 = w4_dy[dyb + min(2u * (l / 4u), ri - 1u) * hw4];
            let d1 = w4_dy[dyb + min(2u * (l / 4u) + 1u, ri - 1u) * hw4];
            dv = shared_block_quads(d0, d1, l);
        } else {
            for (var q = 0u; q < 4u; q = q + 1u) {
                dv[q] = w4_dy[dyb + min(q, ri - 1u) * hw4];
            }
        }
        if (bias_thread) {
            for (var a = 0u; a < 4u; a = a + 1u) { bsum[a] = bsum[a] + dot(dv[a], vec4<f32>(1.0)); }
        }
        let l = li % 8u;
        if (LANES != 0u && OB == 8u) {
            // The subgroup's input block, one load a lane: lane l = 2c + h holds channel c's
            // values 2h and 2h + 1, broadcast to every lane.
            let v = relu_in4(w4_x[xb + min(l / 2u, rj - 1u) * hw4]);
            let odd = l % 2u == 1u;
            let w = lanes16(select(v.x, v.z, odd), select(v.y, v.w, odd));
            for (var c = 0u; c < 4u; c = c + 1u) {
                xv[c] = vec4<f32>(w[2u * c], w[8u + 2u * c], w[2u * c + 1u], w[9u + 2u * c]);
            }
        } else if (LANES != 0u) {
            // OB = 4: lane l = 4h + c reads channel c of its own input block (pair half h)
            // whole; a thread takes its half's.
            let g = relu_in4(w4_x[xb + min(l % 4u, rj - 1u) * hw4]);
            for (var c = 0u; c < 4u; c = c + 1u) { xv[c] = lane_read4(g, (l & 4u) | c); }
        } else {
            for (var q = 0u; q < 4u; q = q + 1u) {
                xv[q] = relu_in4(w4_x[xb + min(q, rj - 1u) * hw4]);
            }
        }
        for (var a = 0u; a < 4u; a = a + 1u) {
            for (var c = 0u; c < 4u; c = c + 1u) {
                acc[a * 4u + c] = acc[a * 4u + c] + dot(dv[a], xv[c]);
            }
        }
        px = px + 1u;
        if (px == hw4) { px = 0u; b = b + 1u; }
    }
    if (bias_thread) {
        if (DIRECT != 0u) {
            for (var a = 0u; a < 4u; a = a + 1u) {
                if (a < ri) { w4_db[i0 + a] = bsum[a]; }
            }
        } else {
            let at = bias_part_base() + ((i0 / 4u) * p.chunks + bk.chunk) * 4u;
            for (var a = 0u; a < 4u; a = a + 1u) { wg_part[at + a] = bsum[a]; }
        }
    }
    store_block(slot, acc, i0, j0, ri, rj);
}

@group(0) @binding(1) var<storage, read> ws_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> ws_dw: array<f32>;

@group(0) @binding(3) var<storage, read_write> ws_db: array<f32>;

// Where element e of [dw | db] has its partials: (first, stride), chunk c's at first + c·stride
// (dw's 16 a block apart; db's, after them, 4 apart, see DB).
fn part_at(e: u32) -> vec2<u32> {
    let ndw = p.m * p.k;
    if (e >= ndw) {
        let o = e - ndw;
        return vec2<u32>(bias_part_base() + (o / 4u) * p.chunks * 4u + o % 4u, 4u);
    }
    let i = e / p.k;
    let j = e % p.k;
    let blk = (i / 4u) * ((p.k + 3u) / 4u) + j / 4u;
    return vec2<u32>(blk * p.chunks * 16u + (i % 4u) * 4u + j % 4u, 16u);
}

// Element e's partials summed over the chunks in chunk order.
fn part_sum(e: u32) -> f32 {
    let at = part_at(e);
    var acc = 0.0;
    for (var c = 0u; c < p.chunks; c = c + 1u) {
        acc = acc + ws_part[at.x + c * at.y];
    }
    return acc;
}

// Element e's partials summed by the whole workgroup: every 256th chunk a thread, then a tree
// sum; call from uniform control flow.
fn part_group_sum(li: u32, e: u32) -> f32 {
    let at = part_at(e);
    var acc = 0.0;
    for (var c = li; c < p.chunks; c = c + WG) {
        acc = acc + ws_part[at.x + c * at.y];
    }
    return tree_sum(li, acc);
}

// Pass 2: one thread per element of dw sums its block's partials over all chunks.
@compute @workgroup_size(256)
fn weight_grad_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    if (e >= p.m * p.k) { return; }
    ws_dw[e] = part_sum(e);
}

// weight_grad_sum over dw's elements, then one thread per bias element.
@compute @workgroup_size(256)
fn weight_grad_sum_bias(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    let ndw = p.m * p.k;
    if (e < ndw) { ws_dw[e] = part_sum(e); }
    if (e >= ndw && e < ndw + p.m) { ws_db[e - ndw] = part_sum(e); }
}

@compute @workgroup_size(256)
fn weight_grad_sum_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // One element a workgroup: `e` is the same in every thread, so the tree sum's barriers
    // stay in uniform control flow.
    let e = min(group_index(wg, nwg), p.m * p.k - 1u);
    let total = part_group_sum(li, e);
    if (li == 0u) { ws_dw[e] = total; }
}

// weight_grad_sum_wg over dw's elements and then db's.
@compute @workgroup_size(256)
fn weight_grad_sum_bias_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let ndw = p.m * p.k;
    let e = min(group_index(wg, nwg), ndw + p.m - 1u);
    let total = part_group_sum(li, e);
    if (li == 0u && e < ndw) { ws_dw[e] = total; }
    if (li == 0u && e >= ndw) { ws_db[e - ndw] = total; }
}
