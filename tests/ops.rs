//! Every op, forward and backward, on awkward shapes (batch 1, C = 1, non-square, sizes not a
//! multiple of the workgroup):
//! - forward against the CPU f64 reference;
//! - gradients against central finite differences of the f64 reference, with the op placed
//!   mid-graph (inputs scaled before it, a random weighting after it), so a backward that
//!   ignores its incoming gradient or drops a path fails.

mod common;

use common::reference::{self as cpu, Shape4};
use common::{assert_passes, f32s, gpu, strategy_of, Rng, Tolerance};
use darts_minus::autodiff::{BnState, Conv2dCfg, Labels, PoolCfg, SliceCfg, Tape, Tensor};
use darts_minus::check::{op_check, Input};
use darts_minus::gpu::{Gpu, LaunchPolicy, Strategy};
use darts_minus::nn::mixed::{MixedSums, SumTerm};
use darts_minus::Result;

/// Checks forward and gradients of one op with the library's harness (the one `darts-minus
/// check` runs); `cpu_op` and `gpu_op` receive the inputs in order.
#[track_caller]
fn check(
    name: &str,
    inputs: Vec<Input>,
    cpu_op: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    gpu_op: impl Fn(&mut Tape, &[Tensor]) -> Result<Tensor>,
    fwd_tol: Tolerance,
    grad_tol: Tolerance,
) {
    assert_passes(&op_check(&gpu(), name, &inputs, &cpu_op, &gpu_op, (fwd_tol, grad_tol)).unwrap());
}

fn s4(s: &[usize]) -> Shape4 {
    Shape4(s[0], s[1], s[2], s[3])
}

/// A convolution's random inputs from `seed`: x, the weight and (with `bias`) a bias, all
/// differentiated.
fn conv_inputs(seed: u64, xs: [usize; 4], ws: [usize; 4], bias: bool) -> Vec<Input> {
    let mut rng = Rng::new(seed);
    let mut inputs = vec![
        Input::random(&mut rng, &xs, true),
        Input::random(&mut rng, &ws, true),
    ];
    if bias {
        inputs.push(Input::random(&mut rng, &[ws[0]], true));
    }
    inputs
}

#[allow(clippy::too_many_arguments)]
fn conv_case(
    seed: u64,
    xs: [usize; 4],
    ws: [usize; 4],
    bias: bool,
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
) {
    let inputs = conv_inputs(seed, xs, ws, bias);
    let cfg = Conv2dCfg::new(stride, pad).dilation(dil).groups(groups);
    // Both weight-gradient strategies on any adapter: partials and a second pass (GPUs), and
    // one pass straight into dw (small shapes where launches are costly); and the generic
    // kernel's workgroup per weight, which these short reductions would otherwise skip, with
    // the second passes' workgroup sums (GPUs, from 64 chunks) taken from 1 chunk.
    for (costly, serial) in [(false, true), (true, true), (false, false)] {
        check(
            &format!("conv2d x{xs:?} w{ws:?} s{stride} p{pad} d{dil} g{groups} bias={bias} costly launches={costly} serial dw={serial}"),
            inputs.clone(),
            |v| {
                cpu::conv2d(
                    &v[0],
                    s4(&xs),
                    &v[1],
                    s4(&ws),
                    v.get(2).map(|b| b.as_slice()),
                    stride,
                    pad,
                    dil,
                    groups,
                )
                .0
            },
            |t, v| {
                t.gpu().set_strategy(Some(strategy_of(costly)));
                let mut policy = t.gpu().policy();
                if !serial {
                    policy.serial_weight_grad_max = 0;
                    policy.chunk_sum_group_min = 1;
                }
                t.gpu().set_policy(policy);
                t.conv2d(&v[0], &v[1], v.get(2), cfg)
            },
            Tolerance::FORWARD,
            Tolerance::GRADIENT,
        );
    }
}

#[test]
fn conv_dense_3x3_bias_nonsquare() {
    conv_case(1, [2, 3, 7, 5], [4, 3, 3, 3], true, 1, 1, 1, 1);
}

#[test]
fn conv_dense_stride2_batch1() {
    conv_case(2, [1, 2, 9, 6], [3, 2, 3, 3], false, 2, 1, 1, 1);
}

#[test]
fn conv_dense_single_channel_dilated() {
    conv_case(3, [2, 1, 11, 10], [1, 1, 5, 5], true, 1, 4, 2, 1);
}

// Output rows of a multiple of 4 take conv.wgsl's `forward4` and `weight_partial4` (and the
// stride-1 input gradient `forward4` over dy with the weight turned 180°); the cases above
// the per-element kernels.
#[test]
fn conv_dense_rows_of_4_3x3_bias() {
    // 5 input and 6 output channels: partial blocks of 4 on both sides.
    conv_case(22, [2, 5, 5, 8], [6, 5, 3, 3], true, 1, 1, 1, 1);
}

#[test]
fn conv_dense_rows_of_4_5x5_dil2_seventeen_outputs() {
    // 17 output channels: a block of 16 per thread and one of 1.
    conv_case(23, [1, 3, 6, 12], [17, 3, 5, 5], false, 1, 4, 2, 1);
}

#[test]
fn conv_dense_rows_of_4_stride2() {
    // Output rows of 4, and remainders (the last input row and column reach no output): the
    // input gradient reads dy as if zero-dilated (TS = 2).
    conv_case(24, [2, 3, 6, 8], [4, 3, 3, 3], false, 2, 1, 1, 1);
}

#[test]
fn conv_dense_rows_of_4_padding_past_the_kernel() {
    // Padding 3 > k − 1: the input gradient cannot be a forward over dy (gather kernel).
    conv_case(25, [1, 2, 5, 8], [3, 2, 3, 3], true, 1, 3, 1, 1);
}

#[test]
fn conv_dense_rows_of_4_7x7_shares_its_widest_window() {
    // Stride 1, 7×7: each kernel row's 10 inputs are loaded once for its 7 taps (UNIT), in
    // the forward and in the input gradient over dy.
    conv_case(27, [2, 2, 5, 8], [3, 2, 7, 7], true, 1, 3, 1, 1);
}

#[test]
fn conv_1x1_with_bias_rows_of_4() {
    conv_case(26, [2, 3, 4, 4], [5, 3, 1, 1], true, 1, 0, 1, 1);
}

#[test]
fn conv_1x1_bias_gradient_from_the_weight_gradient_launches() {
    // The bias gradient comes out of the 1×1 weight gradient's launches: written directly
    // (one chunk, CPU strategy), as partials summed by the second pass (8 chunks on the GPU
    // strategy) or by its workgroup form; and through lavapipe's lane broadcasts with 4
    // output blocks of 2 input blocks a subgroup (16 × 8 channels) or 8 output blocks (32 × 4).
    conv_case(41, [2, 3, 16, 16], [5, 3, 1, 1], true, 1, 0, 1, 1);
    conv_case(42, [2, 8, 8, 8], [16, 8, 1, 1], true, 1, 0, 1, 1);
    conv_case(43, [2, 4, 8, 8], [32, 4, 1, 1], true, 1, 0, 1, 1);
}

#[test]
fn conv_pointwise_1x1() {
    conv_case(4, [2, 5, 4, 3], [3, 5, 1, 1], false, 1, 0, 1, 1);
}

#[test]
fn conv_pointwise_1x1_sixteen_rows_per_thread() {
    // 20 output rows: one block of 16 and one of 4 (rows past m discarded).
    conv_case(19, [2, 5, 4, 4], [20, 5, 1, 1], false, 1, 0, 1, 1);
}

#[test]
fn conv_pointwise_1x1_eight_rows_per_thread() {
    conv_case(20, [2, 3, 2, 6], [9, 3, 1, 1], false, 1, 0, 1, 1);
}

#[test]
fn conv_pointwise_1x1_weight_gradient_chunks_cross_images() {
    // 3 images × 96 pixels: the weight gradient's chunks of 64 positions cross images.
    conv_case(21, [3, 4, 8, 12], [6, 4, 1, 1], false, 1, 0, 1, 1);
}

#[test]
fn conv_pointwise_1x1_odd_plane() {
    // 5×3 pixels: not a multiple of 4, so the one-pixel-per-thread kernel; 6 output rows.
    conv_case(14, [3, 5, 5, 3], [6, 5, 1, 1], false, 1, 0, 1, 1);
}

#[test]
fn conv_pointwise_1x1_stride2() {
    conv_case(5, [2, 4, 7, 7], [2, 4, 1, 1], false, 2, 0, 1, 1);
}

#[test]
fn depthwise_k3_s1() {
    conv_case(6, [2, 3, 6, 5], [3, 1, 3, 3], false, 1, 1, 1, 3);
}

#[test]
fn depthwise_k3_s2() {
    conv_case(7, [1, 3, 9, 8], [3, 1, 3, 3], false, 2, 1, 1, 3);
}

#[test]
fn depthwise_k5_s1() {
    conv_case(8, [2, 2, 7, 6], [2, 1, 5, 5], false, 1, 2, 1, 2);
}

#[test]
fn depthwise_k5_s2() {
    conv_case(9, [1, 2, 10, 9], [2, 1, 5, 5], false, 2, 2, 1, 2);
}

#[test]
fn depthwise_k3_dil2_s1() {
    conv_case(10, [2, 3, 7, 7], [3, 1, 3, 3], false, 1, 2, 2, 3);
}

#[test]
fn depthwise_k3_dil2_s2() {
    conv_case(11, [1, 1, 9, 10], [1, 1, 3, 3], false, 2, 2, 2, 1);
}

#[test]
fn depthwise_k5_dil2_s1() {
    conv_case(12, [1, 2, 9, 9], [2, 1, 5, 5], false, 1, 4, 2, 2);
}

#[test]
fn depthwise_k5_dil2_s2() {
    conv_case(13, [2, 2, 8, 11], [2, 1, 5, 5], false, 2, 4, 2, 2);
}

// Rows of a multiple of 4 take the vec4 kernel (`forward4`, 8 or 4 outputs per thread; also
// the stride-1 input gradient), and `weight_partial4` strips of 8 outputs where the output
// rows are of a multiple of 8 (k3 s1, k5 s2), else 4; the cases above, with odd widths, the
// scalar one.
#[test]
fn depthwise_rows_of_4_k3_s1() {
    conv_case(15, [2, 3, 5, 8], [3, 1, 3, 3], false, 1, 1, 1, 3);
}

#[test]
fn depthwise_rows_of_4_k5_dil2_four_per_thread() {
    conv_case(16, [1, 2, 6, 12], [2, 1, 5, 5], false, 1, 4, 2, 2);
}

#[test]
fn depthwise_rows_of_4_k5_s2() {
    conv_case(17, [2, 2, 7, 16], [2, 1, 5, 5], false, 2, 2, 1, 2);
}

#[test]
fn depthwise_rows_of_4_k3_dil2_s2_four_per_thread() {
    conv_case(18, [1, 3, 8, 8], [3, 1, 3, 3], false, 2, 2, 2, 3);
}

/// conv2d(relu(x)) with the ReLU folded into the convolution (`Conv2dCfg::relu_input`),
/// against the CPU conv of relu(x); `w_diff` = false freezes the weight (the α step's case,
/// where x is kept only for the ReLU mask).
#[allow(clippy::too_many_arguments)]
fn relu_conv_case(
    seed: u64,
    xs: [usize; 4],
    ws: [usize; 4],
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
    w_diff: bool,
) {
    let mut rng = Rng::new(seed);
    let inputs = vec![
        Input::random(&mut rng, &xs, true),
        Input::random(&mut rng, &ws, w_diff),
    ];
    let cfg = Conv2dCfg::new(stride, pad)
        .dilation(dil)
        .groups(groups)
        .relu_input(true);
    for costly in [false, true] {
        check(
            &format!("conv2d(relu x) x{xs:?} w{ws:?} s{stride} p{pad} d{dil} g{groups} costly launches={costly}"),
            inputs.clone(),
            |v| {
                let r: Vec<f64> = v[0].iter().map(|&a| a.max(0.0)).collect();
                cpu::conv2d(&r, s4(&xs), &v[1], s4(&ws), None, stride, pad, dil, groups).0
            },
            |t, v| {
                t.gpu().set_strategy(Some(strategy_of(costly)));
                t.conv2d(&v[0], &v[1], None, cfg)
            },
            Tolerance::FORWARD,
            Tolerance::GRADIENT,
        );
    }
}

#[test]
fn relu_folded_into_pointwise() {
    relu_conv_case(31, [2, 5, 4, 3], [3, 5, 1, 1], 1, 0, 1, 1, true);
}

#[test]
fn relu_folded_into_strided_pointwise_frozen_weight() {
    relu_conv_case(32, [2, 4, 7, 7], [2, 4, 1, 1], 2, 0, 1, 1, false);
}

#[test]
fn relu_folded_into_depthwise_k3_s1() {
    relu_conv_case(33, [2, 3, 6, 5], [3, 1, 3, 3], 1, 1, 1, 3, true);
}

#[test]
fn relu_folded_into_depthwise_k5_dil2_s2() {
    relu_conv_case(34, [2, 2, 8, 11], [2, 1, 5, 5], 2, 4, 2, 2, true);
}

#[test]
fn relu_folded_into_depthwise_frozen_weight() {
    relu_conv_case(35, [1, 3, 7, 7], [3, 1, 3, 3], 1, 2, 2, 3, false);
}

#[test]
fn relu_folded_into_dense_3x3() {
    relu_conv_case(36, [2, 3, 7, 5], [4, 3, 3, 3], 1, 1, 1, 1, true);
}

#[test]
fn relu_folded_into_dense_rows_of_4() {
    // The input gradient's forward over dy writes dx through the ReLU's mask.
    relu_conv_case(38, [2, 3, 5, 8], [5, 3, 3, 3], 1, 1, 1, 1, true);
}

#[test]
fn relu_folded_into_dense_rows_of_4_frozen_weight_stride2() {
    relu_conv_case(39, [2, 2, 7, 8], [3, 2, 3, 3], 2, 1, 1, 1, false);
}

#[test]
fn relu_folded_into_depthwise_rows_of_4() {
    relu_conv_case(37, [2, 3, 6, 8], [3, 1, 3, 3], 1, 1, 1, 3, true);
}

/// pw(dw(relu x)) as one node whose backward recomputes the depthwise output, against the
/// CPU composition; every input differentiable, then with both weights frozen.
fn dw_pw_case(seed: u64, xs: [usize; 4], k: usize, stride: usize, pad: usize, dil: usize) {
    let c = xs[1];
    let cout = c + 1;
    // Recomputed, or kept (written by the fused kernel on the way, or a node of its own):
    // with recomputation on, small intermediates are kept where launches are costly.
    let cases = [
        (true, true, false),
        (true, true, true),
        (true, false, false),
        (false, true, false),
    ];
    for (train_weights, recompute, costly) in cases {
        let mut rng = Rng::new(seed);
        let inputs = vec![
            Input::random(&mut rng, &xs, true),
            Input::random(&mut rng, &[c, 1, k, k], train_weights),
            Input::random(&mut rng, &[cout, c, 1, 1], train_weights),
        ];
        let cfg = Conv2dCfg::new(stride, pad)
            .dilation(dil)
            .groups(c)
            .relu_input(true);
        check(
            &format!(
                "dw_pw x{xs:?} k{k} s{stride} p{pad} d{dil} weights={train_weights} recompute={recompute} costly={costly}"
            ),
            inputs,
            |v| {
                let r: Vec<f64> = v[0].iter().map(|&a| a.max(0.0)).collect();
                let (mid, ms) = cpu::conv2d(
                    &r,
                    s4(&xs),
                    &v[1],
                    Shape4(c, 1, k, k),
                    None,
                    stride,
                    pad,
                    dil,
                    c,
                );
                cpu::conv2d(&mid, ms, &v[2], Shape4(cout, c, 1, 1), None, 1, 0, 1, 1).0
            },
            |t, v| {
                t.set_recompute(recompute);
                t.gpu().set_strategy(Some(strategy_of(costly)));
                t.dw_pw(&v[0], &v[1], cfg, &v[2])
            },
            Tolerance::FORWARD,
            Tolerance::GRADIENT,
        );
    }
}

#[test]
fn dw_pw_recomputed_k3_s1() {
    dw_pw_case(41, [2, 3, 6, 5], 3, 1, 1, 1);
}

#[test]
fn dw_pw_recomputed_k5_dil2_s2() {
    dw_pw_case(42, [1, 2, 9, 8], 5, 2, 4, 2);
}

#[test]
fn dw_pw_recomputed_rows_of_4_k5() {
    dw_pw_case(43, [2, 3, 6, 8], 5, 1, 2, 1);
}

/// Unfused (17 depthwise channels), with recomputation on and launches costly, a small
/// intermediate is kept from the forward pass: the backward pass launches one depthwise pass
/// fewer than where the intermediate is past the policy's limit and recomputed, and the
/// gradients are the same.
#[test]
fn dw_pw_unfused_keeps_a_small_intermediate() {
    let g = gpu();
    g.set_strategy(Some(Strategy::Cpu));
    let base = g.policy();
    let mut rng = Rng::new(46);
    let c = 17;
    let x = Tensor::from_slice(&g, &[2, c, 8, 8], &f32s(&rng.vec(2 * c * 64))).unwrap();
    let x = x.with_grad();
    let wd = Tensor::from_slice(&g, &[c, 1, 3, 3], &f32s(&rng.vec(c * 9))).unwrap();
    let wp = Tensor::from_slice(&g, &[4, c, 1, 1], &f32s(&rng.vec(4 * c))).unwrap();
    let (wd, wp) = (wd.with_grad(), wp.with_grad());
    let cfg = Conv2dCfg::new(1, 1).groups(c).relu_input(true);
    let run = |keep_max: usize| {
        g.set_policy(LaunchPolicy {
            keep_intermediate_max: keep_max,
            ..base
        });
        let mut t = Tape::new(&g);
        let y = t.dw_pw(&x, &wd, cfg, &wp).unwrap();
        let loss = t.sum_all(&y).unwrap();
        g.sync().unwrap();
        let before = g.dispatch_count();
        let grads = t.backward(&loss).unwrap();
        g.sync().unwrap();
        let launches = g.dispatch_count() - before;
        let read = |w: &Tensor| grads.get(w).unwrap().to_vec().unwrap();
        (launches, [read(&x), read(&wd), read(&wp)])
    };
    let (kept, kept_grads) = run(base.keep_intermediate_max);
    let (recomputed, recomputed_grads) = run(0);
    g.set_strategy(None);
    assert_eq!(kept + 1, recomputed, "one depthwise pass fewer");
    assert_eq!(kept_grads, recomputed_grads);
}

// Rows of a multiple of 4 run both convolutions in one kernel (`dw_pw4`): 4 outputs per
// thread at stride 2, 8 with dilation 2.
#[test]
fn dw_pw_fused_stride2_four_per_thread() {
    dw_pw_case(44, [1, 2, 8, 8], 3, 2, 1, 1);
}

#[test]
fn dw_pw_fused_dilated() {
    dw_pw_case(45, [2, 2, 6, 8], 3, 1, 2, 2);
}

/// The convolution that produces a batch norm's input in [`bn_after_producer_case`].
#[derive(Clone, Copy)]
enum Producer {
    /// ReLU → 1×1 (`gemm4_stats`).
    Pointwise,
    /// ReLU → depthwise k×k → 1×1 (`dw_pw4_stats`, or depthwise then `gemm4_stats`).
    DwPw(usize),
    /// ReLU → dense k×k (padding k/2) with a bias (`forward4_stats`).
    Dense(usize),
}

/// The producer, then a train-mode BN, with the producer writing the batch norm's statistics
/// where batch norm splits its reductions (forced here with a channel split): against the CPU
/// f64 composition, forward and gradients, and against the batch norm's own statistics pass
/// (output and running statistics). `produced`: whether the producer can write them (planes
/// of a multiple of 4). `costly`: the launch strategy (a dense producer's channels per thread).
#[allow(clippy::too_many_arguments)]
fn bn_after_producer_case(
    seed: u64,
    xs: [usize; 4],
    producer: Producer,
    cout: usize,
    x_diff: bool,
    produced: bool,
    costly: bool,
) {
    let c = xs[1];
    let mut rng = Rng::new(seed);
    let mut inputs = vec![Input::random(&mut rng, &xs, x_diff)];
    match producer {
        Producer::Pointwise => inputs.push(Input::random(&mut rng, &[cout, c, 1, 1], true)),
        Producer::DwPw(k) => {
            inputs.push(Input::random(&mut rng, &[c, 1, k, k], true));
            inputs.push(Input::random(&mut rng, &[cout, c, 1, 1], true));
        }
        Producer::Dense(k) => {
            inputs.push(Input::random(&mut rng, &[cout, c, k, k], true));
            inputs.push(Input::random(&mut rng, &[cout], true));
        }
    }
    let cpu_op = |v: &[Vec<f64>]| {
        let r: Vec<f64> = v[0].iter().map(|&a| a.max(0.0)).collect();
        let (y, ys) = match producer {
            Producer::Pointwise => {
                cpu::conv2d(&r, s4(&xs), &v[1], Shape4(cout, c, 1, 1), None, 1, 0, 1, 1)
            }
            Producer::DwPw(k) => {
                let ws = Shape4(c, 1, k, k);
                let (mid, ms) = cpu::conv2d(&r, s4(&xs), &v[1], ws, None, 1, k / 2, 1, c);
                cpu::conv2d(&mid, ms, &v[2], Shape4(cout, c, 1, 1), None, 1, 0, 1, 1)
            }
            Producer::Dense(k) => {
                let ws = Shape4(cout, c, k, k);
                cpu::conv2d(&r, s4(&xs), &v[1], ws, Some(&v[2]), 1, k / 2, 1, 1)
            }
        };
        cpu::batch_norm_train(&y, ys, None, 1e-5)
    };
    // Producer, then batch norm (with the producer's statistics or its own pass).
    let run = |t: &mut Tape, v: &[Tensor], use_stats: bool, rs: &[Tensor; 2]| -> Result<Tensor> {
        t.gpu().set_channel_split(Some(3));
        t.gpu().set_strategy(Some(strategy_of(costly)));
        let pw_cfg = Conv2dCfg::new(1, 0).relu_input(true);
        let (y, stats) = match (producer, use_stats) {
            (Producer::Pointwise, true) => t.conv2d_with_stats(&v[0], &v[1], None, pw_cfg)?,
            (Producer::Pointwise, false) => (t.conv2d(&v[0], &v[1], None, pw_cfg)?, None),
            (Producer::DwPw(k), s) => {
                let dw_cfg = Conv2dCfg::new(1, k / 2).groups(c).relu_input(true);
                if s {
                    t.dw_pw_with_stats(&v[0], &v[1], dw_cfg, &v[2])?
                } else {
                    (t.dw_pw(&v[0], &v[1], dw_cfg, &v[2])?, None)
                }
            }
            (Producer::Dense(k), s) => {
                let cfg = Conv2dCfg::new(1, k / 2).relu_input(true);
                if s {
                    t.conv2d_with_stats(&v[0], &v[1], Some(&v[2]), cfg)?
                } else {
                    (t.conv2d(&v[0], &v[1], Some(&v[2]), cfg)?, None)
                }
            }
        };
        if use_stats {
            assert_eq!(
                stats.is_some(),
                produced,
                "statistics written by the producer"
            );
        }
        let state = BnState {
            running_mean: &rs[0],
            running_var: &rs[1],
            momentum: 0.1,
            eps: 1e-5,
        };
        t.batch_norm_with_stats(&y, stats, None, state, true)
    };
    let name = match producer {
        Producer::Pointwise => format!("batch norm after 1x1 x{xs:?} cout{cout}"),
        Producer::DwPw(k) => format!("batch norm after dw_pw x{xs:?} k{k} cout{cout}"),
        Producer::Dense(k) => {
            format!("batch norm after dense x{xs:?} k{k} cout{cout} costly={costly}")
        }
    };
    check(
        &name,
        inputs.clone(),
        |v| cpu_op(v).0,
        |t, v| {
            let rs = [
                Tensor::zeros(t.gpu(), &[cout])?,
                Tensor::full(t.gpu(), &[cout], 1.0)?,
            ];
            run(t, v, true, &rs)
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
    // Output and running statistics against the batch norm's own pass and the CPU reference.
    let g = gpu();
    let ts: Vec<Tensor> = inputs
        .iter()
        .map(|i| Tensor::from_slice(&g, &i.shape, &f32s(&i.data)).unwrap())
        .collect();
    let raw: Vec<Vec<f64>> = inputs.iter().map(|i| i.data.clone()).collect();
    let (_, means, uvars) = cpu_op(&raw);
    let mut outs = Vec::new();
    for use_stats in [true, false] {
        let rs = [
            Tensor::zeros(&g, &[cout]).unwrap(),
            Tensor::full(&g, &[cout], 1.0).unwrap(),
        ];
        let y = run(&mut Tape::inference(&g), &ts, use_stats, &rs).unwrap();
        let rm: Vec<f64> = means.iter().map(|m| 0.1 * m).collect();
        let rv: Vec<f64> = uvars.iter().map(|v| 0.9 + 0.1 * v).collect();
        Tolerance::FORWARD.assert_close(
            &format!("{name} running mean"),
            &rs[0].to_vec().unwrap(),
            &rm,
        );
        Tolerance::FORWARD.assert_close(
            &format!("{name} running var"),
            &rs[1].to_vec().unwrap(),
            &rv,
        );
        outs.push(y.to_vec().unwrap());
    }
    let own: Vec<f64> = outs[1].iter().map(|&v| v as f64).collect();
    Tolerance::FORWARD.assert_close(&format!("{name} against its own pass"), &outs[0], &own);
    g.set_channel_split(None);
    g.set_strategy(None);
}

// One gemm4 workgroup column (48 positions) and two row blocks of 4 (6 rows).
#[test]
fn bn_statistics_from_pointwise_one_chunk() {
    bn_after_producer_case(81, [3, 5, 4, 4], Producer::Pointwise, 6, true, true, false);
}

// Two columns (1,024 + 256 positions), 16 rows per thread over two blocks (20 rows).
#[test]
fn bn_statistics_from_pointwise_two_chunks() {
    bn_after_producer_case(
        82,
        [5, 3, 16, 16],
        Producer::Pointwise,
        20,
        false,
        true,
        false,
    );
}

// Planes not a multiple of 4: the batch norm's own pass.
#[test]
fn bn_statistics_from_pointwise_odd_plane_falls_back() {
    bn_after_producer_case(83, [2, 3, 5, 5], Producer::Pointwise, 4, true, false, false);
}

// dw_pw4_stats: one workgroup, 10 output channels (two groups of 8).
#[test]
fn bn_statistics_from_fused_dw_pw() {
    bn_after_producer_case(84, [2, 3, 8, 8], Producer::DwPw(3), 10, true, true, false);
}

// dw_pw4_stats over two workgroups (96 threads), 5×5.
#[test]
fn bn_statistics_from_fused_dw_pw_two_chunks() {
    bn_after_producer_case(85, [3, 2, 16, 16], Producer::DwPw(5), 4, false, true, false);
}

// 17 channels: depthwise then gemm4_stats.
#[test]
fn bn_statistics_from_unfused_dw_pw() {
    bn_after_producer_case(86, [2, 17, 4, 4], Producer::DwPw(3), 3, true, true, false);
}

// forward4_stats: two workgroup columns (1,024 + 256 positions), 4 channels per thread on
// the GPU strategy (20 channels: five blocks).
#[test]
fn bn_statistics_from_dense_3x3_two_chunks() {
    bn_after_producer_case(
        89,
        [5, 3, 16, 16],
        Producer::Dense(3),
        20,
        true,
        true,
        false,
    );
}

// The same kernel with 16 channels per thread (the CPU strategy's choice): two groups of 8
// rows, the second block of 4 rows partial.
#[test]
fn bn_statistics_from_dense_3x3_sixteen_rows_per_thread() {
    bn_after_producer_case(90, [2, 3, 8, 8], Producer::Dense(3), 20, false, true, true);
}

// Rows not a multiple of 4: the general kernel and the batch norm's own pass.
#[test]
fn bn_statistics_from_dense_odd_rows_falls_back() {
    bn_after_producer_case(91, [2, 2, 5, 5], Producer::Dense(3), 3, true, false, false);
}

fn pool_case(seed: u64, xs: [usize; 4], k: usize, s: usize, p: usize, is_max: bool) {
    let mut rng = Rng::new(seed);
    check(
        &format!(
            "{} pool x{xs:?} k{k} s{s} p{p}",
            if is_max { "max" } else { "avg" }
        ),
        vec![Input::random(&mut rng, &xs, true)],
        |v| cpu::pool2d(&v[0], s4(&xs), k, s, p, is_max).0,
        |t, v| {
            let cfg = PoolCfg::new(k, s, p);
            if is_max {
                t.max_pool2d(&v[0], cfg)
            } else {
                t.avg_pool2d(&v[0], cfg)
            }
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

/// max_pool(x) + 2·avg_pool(x) from `max_avg_pool2d` (one launch for 3×3 windows on rows of a
/// multiple of 4, two elsewhere): both outputs and both gradient paths.
fn max_avg_case(seed: u64, xs: [usize; 4], s: usize) {
    let mut rng = Rng::new(seed);
    check(
        &format!("max and avg pool x{xs:?} s{s}"),
        vec![Input::random(&mut rng, &xs, true)],
        |v| {
            let m = cpu::pool2d(&v[0], s4(&xs), 3, s, 1, true).0;
            let a = cpu::pool2d(&v[0], s4(&xs), 3, s, 1, false).0;
            m.iter().zip(&a).map(|(m, a)| m + 2.0 * a).collect()
        },
        |t, v| {
            let (m, a) = t.max_avg_pool2d(&v[0], PoolCfg::new(3, s, 1))?;
            let a2 = t.scale(&a, 2.0)?;
            t.sum(&[&m, &a2])
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

/// A mixed edge's max and avg pools writing both batch norms' statistics
/// (`maxavg3_forward4_stats`, where batch norm splits its reductions: forced here), then the
/// two train-mode batch norms: bn(max) + 2·bn(avg) against the CPU f64 composition, forward,
/// gradients and running statistics.
fn pool_bn_stats_case(seed: u64, xs: [usize; 4], s: usize) {
    let mut rng = Rng::new(seed);
    let c = xs[1];
    let cpu_parts = |v: &[Vec<f64>]| {
        [true, false].map(|is_max| {
            let (y, ys) = cpu::pool2d(&v[0], s4(&xs), 3, s, 1, is_max);
            cpu::batch_norm_train(&y, ys, None, 1e-5)
        })
    };
    let run = |t: &mut Tape, v: &[Tensor], rs: &[Tensor]| -> Result<Tensor> {
        t.gpu().set_strategy(Some(Strategy::Gpu));
        t.gpu().set_channel_split(Some(2));
        let (m, a, stats) = t.max_avg_pool2d_with_stats(&v[0], PoolCfg::new(3, s, 1))?;
        let [sm, sa] = stats.expect("statistics written by the pooling kernel");
        let state = |k: usize| BnState {
            running_mean: &rs[2 * k],
            running_var: &rs[2 * k + 1],
            momentum: 0.1,
            eps: 1e-5,
        };
        let bm = t.batch_norm_with_stats(&m, Some(sm), None, state(0), true)?;
        let ba = t.batch_norm_with_stats(&a, Some(sa), None, state(1), true)?;
        let a2 = t.scale(&ba, 2.0)?;
        t.sum(&[&bm, &a2])
    };
    let running = |g: &darts_minus::gpu::Gpu| -> Vec<Tensor> {
        (0..4)
            .map(|k| Tensor::full(g, &[c], if k % 2 == 0 { 0.0 } else { 1.0 }).unwrap())
            .collect()
    };
    let inputs = vec![Input::random(&mut rng, &xs, true)];
    check(
        &format!("batch norms after max and avg pool x{xs:?} s{s}"),
        inputs.clone(),
        |v| {
            let [(m, _, _), (a, _, _)] = cpu_parts(v);
            m.iter().zip(&a).map(|(m, a)| m + 2.0 * a).collect()
        },
        |t, v| {
            let rs = running(t.gpu());
            run(t, v, &rs)
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
    let g = gpu();
    let x = Tensor::from_slice(&g, &xs, &f32s(&inputs[0].data)).unwrap();
    let rs = running(&g);
    run(&mut Tape::inference(&g), &[x], &rs).unwrap();
    let raw = vec![inputs[0].data.clone()];
    for (k, (_, means, uvars)) in cpu_parts(&raw).into_iter().enumerate() {
        let rm: Vec<f64> = means.iter().map(|m| 0.1 * m).collect();
        let rv: Vec<f64> = uvars.iter().map(|v| 0.9 + 0.1 * v).collect();
        Tolerance::FORWARD.assert_close("running mean", &rs[2 * k].to_vec().unwrap(), &rm);
        Tolerance::FORWARD.assert_close("running var", &rs[2 * k + 1].to_vec().unwrap(), &rv);
    }
}

// Two chunks per channel (320 strips of 4 outputs), stride 1.
#[test]
fn bn_statistics_from_max_and_avg_pool_s1() {
    pool_bn_stats_case(87, [5, 2, 16, 16], 1);
}

#[test]
fn bn_statistics_from_max_and_avg_pool_s2() {
    pool_bn_stats_case(88, [2, 3, 8, 16], 2);
}

#[test]
fn max_and_avg_pool_in_one_launch_s1() {
    max_avg_case(63, [2, 3, 6, 8], 1);
}

#[test]
fn max_and_avg_pool_in_one_launch_s2() {
    max_avg_case(64, [1, 2, 8, 8], 2);
}

#[test]
fn max_and_avg_pool_odd_width_two_launches() {
    max_avg_case(65, [2, 2, 5, 7], 1);
}

#[test]
fn max_pool_3x3_s1() {
    pool_case(20, [2, 3, 5, 7], 3, 1, 1, true);
}

#[test]
fn max_pool_3x3_s2_odd() {
    pool_case(21, [1, 2, 9, 7], 3, 2, 1, true);
}

#[test]
fn avg_pool_3x3_s1_exclude_pad() {
    pool_case(22, [2, 3, 5, 6], 3, 1, 1, false);
}

#[test]
fn avg_pool_3x3_s2_exclude_pad() {
    pool_case(23, [1, 1, 7, 9], 3, 2, 1, false);
}

// Rows of a multiple of 4 (input and output) take the 3×3 vec4 kernels.
#[test]
fn max_pool_3x3_s1_rows_of_4() {
    pool_case(27, [2, 3, 5, 8], 3, 1, 1, true);
}

#[test]
fn max_pool_3x3_s2_rows_of_4() {
    pool_case(28, [1, 2, 7, 8], 3, 2, 1, true);
}

#[test]
fn avg_pool_3x3_s1_rows_of_4() {
    pool_case(29, [2, 3, 6, 12], 3, 1, 1, false);
}

#[test]
fn avg_pool_3x3_s2_rows_of_4() {
    pool_case(30, [1, 2, 9, 16], 3, 2, 1, false);
}

/// Max pooling over inputs full of ties: the gradient goes to the first maximum of each
/// window in row-major order (as in PyTorch), for the general and the vec4 kernels.
#[test]
fn max_pool_ties_go_to_the_first_maximum() {
    let g = gpu();
    for (xs, stride) in [([1, 2, 5, 7], 1), ([1, 2, 5, 8], 1), ([1, 2, 7, 8], 2)] {
        let [n, c, h, w] = xs;
        let x: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 7) % 3) as f32).collect();
        let ho = (h + 2 - 3) / stride + 1;
        let wo = (w + 2 - 3) / stride + 1;
        let coef: Vec<f32> = (0..n * c * ho * wo).map(|i| 1.0 + i as f32).collect();
        let xt = Tensor::from_slice(&g, &xs, &x).unwrap().with_grad();
        let ct = Tensor::from_slice(&g, &[n, c, ho, wo], &coef).unwrap();
        let mut tape = Tape::new(&g);
        let y = tape.max_pool2d(&xt, PoolCfg::new(3, stride, 1)).unwrap();
        let weighted = tape.mul(&y, &ct).unwrap();
        let loss = tape.sum_all(&weighted).unwrap();
        let grads = tape.backward(&loss).unwrap();
        let got = grads.get(&xt).unwrap().to_vec().unwrap();
        let mut want = vec![0.0f64; x.len()];
        for plane in 0..n * c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut arg: Option<usize> = None;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = (
                                (oy * stride + ky) as isize - 1,
                                (ox * stride + kx) as isize - 1,
                            );
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let k = plane * h * w + iy as usize * w + ix as usize;
                            if arg.is_none_or(|a| x[k] > x[a]) {
                                arg = Some(k);
                            }
                        }
                    }
                    want[arg.unwrap()] += coef[(plane * ho + oy) * wo + ox] as f64;
                }
            }
        }
        Tolerance::FORWARD.assert_close(&format!("max pool ties x{xs:?} s{stride}"), &got, &want);
    }
}

#[test]
fn avg_pool_2x2_s2() {
    pool_case(24, [2, 2, 8, 6], 2, 2, 0, false);
}

#[test]
fn avg_pool_2x2_s2_rows_of_4() {
    // A quad of inputs a thread in the backward (avg2_backward4); the odd last row is under
    // no window, so its gradient is 0.
    pool_case(32, [2, 3, 7, 8], 2, 2, 0, false);
    pool_case(33, [1, 2, 4, 16], 2, 2, 0, false);
}

#[test]
fn avg_pool_5x5_s3() {
    pool_case(25, [2, 3, 8, 8], 5, 3, 0, false);
}

#[test]
fn global_avg_pool() {
    let xs = [3, 2, 5, 3];
    let mut rng = Rng::new(26);
    check(
        "global avg pool",
        vec![Input::random(&mut rng, &xs, true)],
        |v| cpu::global_avg(&v[0], s4(&xs)),
        |t, v| t.global_avg_pool(&v[0]),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

/// Where launches are costly small channels take one thread each (`*_serial4`), elsewhere a
/// workgroup each: both on any adapter.
fn bn_case(seed: u64, xs: [usize; 4], affine: bool, train: bool) {
    for costly in [false, true] {
        bn_case_with(seed, xs, affine, train, None, Some(costly));
    }
}

/// `split`: force the per-channel reductions over that many workgroups per channel (the GPU
/// path) whatever the adapter.
fn bn_case_split(seed: u64, xs: [usize; 4], affine: bool, train: bool, split: Option<usize>) {
    bn_case_with(seed, xs, affine, train, split, None);
}

fn bn_case_with(
    seed: u64,
    xs: [usize; 4],
    affine: bool,
    train: bool,
    split: Option<usize>,
    costly: Option<bool>,
) {
    let mut rng = Rng::new(seed);
    let c = xs[1];
    let mut inputs = vec![Input::random(&mut rng, &xs, true)];
    // Running statistics: constants (mean anywhere, variance positive).
    inputs.push(Input {
        shape: vec![c],
        data: rng.vec(c),
        diff: false,
    });
    inputs.push(Input {
        shape: vec![c],
        data: (0..c)
            .map(|_| rng.uniform(0.5, 2.0) as f32 as f64)
            .collect(),
        diff: false,
    });
    if affine {
        inputs.push(Input {
            shape: vec![c],
            data: (0..c)
                .map(|_| rng.uniform(0.5, 1.5) as f32 as f64)
                .collect(),
            diff: true,
        });
        inputs.push(Input::random(&mut rng, &[c], true));
    }
    check(
        &format!(
            "batch_norm x{xs:?} affine={affine} train={train} split={split:?} costly={costly:?}"
        ),
        inputs,
        |v| {
            let aff = v.get(3).map(|g| (g.as_slice(), v[4].as_slice()));
            if train {
                cpu::batch_norm_train(&v[0], s4(&xs), aff, 1e-5).0
            } else {
                cpu::batch_norm_eval(&v[0], s4(&xs), aff, &v[1], &v[2], 1e-5)
            }
        },
        |t, v| {
            if split.is_some() {
                t.gpu().set_channel_split(split);
            }
            t.gpu().set_strategy(costly.map(strategy_of));
            // Train mode updates running statistics in place: work on copies.
            let (rm, rv) = (v[1].duplicate()?, v[2].duplicate()?);
            let aff = v.get(3).map(|g| (g, &v[4]));
            t.batch_norm(
                &v[0],
                aff,
                BnState {
                    running_mean: &rm,
                    running_var: &rv,
                    momentum: 0.1,
                    eps: 1e-5,
                },
                train,
            )
        },
        Tolerance::FORWARD.scaled(&[4.0]),
        Tolerance::GRADIENT,
    );
}

#[test]
fn batch_norm_train_affine() {
    bn_case(30, [3, 2, 5, 3], true, true);
}

#[test]
fn batch_norm_train_plane_over_one_workgroup() {
    // 17×19 = 323 pixels per plane: more than one 256-wide chunk, not a multiple of it.
    bn_case(58, [3, 2, 17, 19], false, true);
}

#[test]
fn batch_norm_train_plain_batch1() {
    bn_case(31, [1, 3, 7, 5], false, true);
}

#[test]
fn batch_norm_eval_affine() {
    bn_case(32, [2, 2, 3, 3], true, false);
}

#[test]
fn batch_norm_eval_plain() {
    bn_case(33, [2, 1, 4, 5], false, false);
}

// Eval mode, planes of a multiple of 4: the forward (an inference pass) takes the one-launch
// vec4 kernel across several workgroups; the gradients (a recording tape) the two-launch path.
#[test]
fn batch_norm_eval_affine_rows_of_4() {
    bn_case(60, [3, 5, 12, 12], true, false);
}

#[test]
fn eval_batch_norm_of_an_inference_pass_is_one_launch() {
    let g = gpu();
    let mut rng = Rng::new(61);
    let x = Tensor::from_slice(&g, &[2, 3, 4, 4], &f32s(&rng.vec(96))).unwrap();
    let rm = Tensor::from_slice(&g, &[3], &[0.1, -0.2, 0.3]).unwrap();
    let rv = Tensor::from_slice(&g, &[3], &[0.5, 1.0, 2.0]).unwrap();
    let state = BnState {
        running_mean: &rm,
        running_var: &rv,
        momentum: 0.1,
        eps: 1e-5,
    };
    for (recording, launches) in [(false, 1), (true, 2)] {
        let mut tape = if recording {
            Tape::new(&g)
        } else {
            Tape::inference(&g)
        };
        let x = if recording { x.with_grad() } else { x.clone() };
        let xv = x.to_vec().unwrap();
        g.sync().unwrap();
        let before = g.dispatch_count();
        let y = tape.batch_norm(&x, None, state.clone(), false).unwrap();
        let yv = y.to_vec().unwrap();
        assert_eq!(
            g.dispatch_count() - before,
            launches,
            "recording {recording}"
        );
        for (i, (a, b)) in xv.iter().zip(&yv).enumerate() {
            let ch = (i / 16) % 3;
            let want = (a - [0.1f32, -0.2, 0.3][ch]) / ([0.5f32, 1.0, 2.0][ch] + 1e-5).sqrt();
            assert!(
                (b - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{i}: {b} against {want}"
            );
        }
    }
}

// Planes of a multiple of 4 values take the vec4 kernels on CPU adapters (64 threads per
// channel, each a run of vec4s): runs that cross images, and threads with nothing to do.
#[test]
fn batch_norm_train_affine_rows_of_4() {
    bn_case(59, [3, 2, 12, 12], true, true);
}

#[test]
fn batch_norm_train_plain_fewer_values_than_threads() {
    bn_case(60, [2, 3, 4, 4], false, true);
}

#[test]
fn batch_norm_train_affine_eleven_channels_over_two_serial_workgroups() {
    // One thread per channel in workgroups of 8 (where launches are costly): a full workgroup
    // and a partial one.
    bn_case(61, [3, 11, 4, 4], true, true);
}

#[test]
fn batch_norm_split_reductions_affine() {
    // Each channel's 3·5·7 = 105 values over 4 workgroups (chunks of 27, the last shorter).
    bn_case_split(35, [3, 2, 5, 7], true, true, Some(4));
}

#[test]
fn batch_norm_split_reductions_plain_large_plane() {
    bn_case_split(36, [3, 2, 17, 19], false, true, Some(7));
}

#[test]
fn batch_norm_running_stats_update() {
    for split in [None, Some(5)] {
        for xs in [[3, 2, 5, 7], [3, 2, 4, 5]] {
            running_stats_case(split, xs);
        }
    }
}

fn running_stats_case(split: Option<usize>, xs: [usize; 4]) {
    let g = gpu();
    g.set_channel_split(split);
    let mut rng = Rng::new(34);
    let x = rng.vec(xs.iter().product());
    let rm0 = rng.vec(2);
    let rv0: Vec<f64> = vec![1.5, 0.7];
    let (rm, rv) = (
        Tensor::from_slice(&g, &[2], &f32s(&rm0)).unwrap(),
        Tensor::from_slice(&g, &[2], &f32s(&rv0)).unwrap(),
    );
    let xt = Tensor::from_slice(&g, &xs, &f32s(&x)).unwrap();
    let mut tape = Tape::inference(&g);
    tape.batch_norm(
        &xt,
        None,
        BnState {
            running_mean: &rm,
            running_var: &rv,
            momentum: 0.1,
            eps: 1e-5,
        },
        true,
    )
    .unwrap();
    let (_, mean, uvar) = cpu::batch_norm_train(&x, s4(&xs), None, 1e-5);
    let exp_rm: Vec<f64> = (0..2).map(|c| 0.9 * rm0[c] + 0.1 * mean[c]).collect();
    let exp_rv: Vec<f64> = (0..2).map(|c| 0.9 * rv0[c] + 0.1 * uvar[c]).collect();
    Tolerance::FORWARD.assert_close("running mean", &rm.to_vec().unwrap(), &exp_rm);
    Tolerance::FORWARD.assert_close("running var (unbiased)", &rv.to_vec().unwrap(), &exp_rv);
}

#[test]
fn relu() {
    let mut rng = Rng::new(40);
    check(
        "relu",
        vec![Input::random(&mut rng, &[3, 5, 7], true)],
        |v| v[0].iter().map(|x| x.max(0.0)).collect(),
        |t, v| t.relu(&v[0]),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn sum_of_three() {
    let mut rng = Rng::new(41);
    let s = [2, 3, 4, 5];
    check(
        "sum of 3",
        vec![
            Input::random(&mut rng, &s, true),
            Input::random(&mut rng, &s, true),
            Input::random(&mut rng, &s, true),
        ],
        |v| {
            (0..v[0].len())
                .map(|i| v[0][i] + v[1][i] + v[2][i])
                .collect()
        },
        |t, v| t.sum(&[&v[0], &v[1], &v[2]]),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn sum_of_ten() {
    // Eight (vec4 rows) or four (odd sizes) terms a launch, the rest added in a second launch.
    for s in [[2, 3, 4, 4], [2, 3, 5, 3]] {
        let mut rng = Rng::new(43);
        check(
            &format!("sum of 10 x{s:?}"),
            (0..10).map(|_| Input::random(&mut rng, &s, true)).collect(),
            |v| {
                (0..v[0].len())
                    .map(|i| v.iter().map(|x| x[i]).sum())
                    .collect()
            },
            |t, v| t.sum(&v.iter().collect::<Vec<_>>()),
            Tolerance::FORWARD,
            Tolerance::GRADIENT,
        );
    }
}

#[test]
fn sum_of_one_input_twice() {
    // The same tensor used twice: gradients must accumulate, not overwrite.
    let mut rng = Rng::new(42);
    check(
        "x + x",
        vec![Input::random(&mut rng, &[7, 3], true)],
        |v| v[0].iter().map(|x| 2.0 * x).collect(),
        |t, v| t.sum(&[&v[0], &v[0]]),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn mul_and_scale() {
    let mut rng = Rng::new(43);
    check(
        "mul then scale",
        vec![
            Input::random(&mut rng, &[5, 61], true),
            Input::random(&mut rng, &[5, 61], true),
        ],
        |v| v[0].iter().zip(&v[1]).map(|(a, b)| -2.5 * a * b).collect(),
        |t, v| {
            let m = t.mul(&v[0], &v[1])?;
            t.scale(&m, -2.5)
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn scale_by_gpu_scalar() {
    let mut rng = Rng::new(44);
    let table = vec![0.5, -1.25, 3.0];
    check(
        "scale by s[1]",
        vec![
            Input::random(&mut rng, &[3, 2, 5, 5], true),
            Input {
                shape: vec![3],
                data: table,
                diff: false,
            },
        ],
        |v| v[0].iter().map(|x| x * v[1][1]).collect(),
        |t, v| t.scale_by(&v[0], &v[1], 1),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn scale_rows_per_sample() {
    let mut rng = Rng::new(55);
    let s = vec![0.0, 1.25, 2.5];
    check(
        "drop-path scaling",
        vec![
            Input::random(&mut rng, &[3, 2, 3, 5], true),
            Input {
                shape: vec![3],
                data: s,
                diff: false,
            },
        ],
        |v| {
            v[0].iter()
                .enumerate()
                .map(|(i, x)| x * v[1][i / 30])
                .collect()
        },
        |t, v| t.scale_rows(&v[0], &v[1]),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn weighted_sum_with_weight_gradient() {
    // Σ_k w[row·K + k]·y_k over a (2, 4) weight table, row 1, as a mixed edge reads α; the
    // first slot is left out (as the `none` op is) and gets a zero gradient.
    let mut rng = Rng::new(45);
    let s = [2, 3, 5, 4];
    let mut inputs: Vec<Input> = (0..3).map(|_| Input::random(&mut rng, &s, true)).collect();
    inputs.push(Input::random(&mut rng, &[2, 4], true));
    // α's gradient by partials and a finishing launch, and in one launch (costly launches).
    for costly in [false, true] {
        check(
            &format!("weighted sum, costly launches={costly}"),
            inputs.clone(),
            |v| {
                (0..v[0].len())
                    .map(|i| (0..3).map(|k| v[3][5 + k] * v[k][i]).sum())
                    .collect()
            },
            |t, v| {
                t.gpu().set_strategy(Some(strategy_of(costly)));
                t.weighted_sum(&[&v[0], &v[1], &v[2]], &v[3], &[5, 6, 7])
            },
            Tolerance::FORWARD,
            Tolerance::GRADIENT,
        );
    }
}

#[test]
fn weighted_sum_of_six_terms_over_two_tables() {
    six_terms_case([2, 3, 5, 3], false);
}

#[test]
fn weighted_sum_of_six_terms_dots_over_several_workgroups() {
    // 2,304 values: α's dot products span three workgroups' partials, or one workgroup.
    six_terms_case([2, 3, 16, 24], false);
    six_terms_case([2, 3, 16, 24], true);
}

/// α's dot products past one workgroup where launches are costly (46,080 values: chunks grown
/// to give at most 8 workgroups where the GPU split gives 45, then the finishing launch),
/// against f64 sums.
#[test]
fn weighted_sum_alpha_gradient_over_grown_chunks() {
    let g = gpu();
    g.set_strategy(Some(Strategy::Cpu));
    let mut rng = Rng::new(79);
    let s = [2, 3, 80, 96];
    let n: usize = s.iter().product();
    let ys: Vec<Vec<f32>> = (0..5).map(|_| f32s(&rng.vec(n))).collect();
    let c = f32s(&rng.vec(n));
    let yt: Vec<Tensor> = ys
        .iter()
        .map(|v| Tensor::from_slice(&g, &s, v).unwrap())
        .collect();
    let alpha = Tensor::parameter(&g, &[5], &f32s(&rng.vec(5))).unwrap();
    let mut tape = Tape::new(&g);
    let terms: Vec<(&Tensor, &Tensor, usize)> =
        yt.iter().zip(0..).map(|(y, k)| (y, &alpha, k)).collect();
    let y = tape.weighted_sum_terms(&terms).unwrap();
    let ct = Tensor::from_slice(&g, &s, &c).unwrap();
    let weighted = tape.mul(&y, &ct).unwrap();
    let loss = tape.sum_all(&weighted).unwrap();
    let grads = tape.backward(&loss).unwrap();
    let da = grads.get(&alpha).expect("α's gradient").to_vec().unwrap();
    for (k, yk) in ys.iter().enumerate() {
        let want: f64 = (0..n).map(|i| c[i] as f64 * yk[i] as f64).sum();
        let scale: f64 = (0..n).map(|i| (c[i] as f64 * yk[i] as f64).abs()).sum();
        let err = (da[k] as f64 - want).abs();
        assert!(
            err <= 1e-6 * scale,
            "dα[{k}] = {} against {want} (error {err:e})",
            da[k]
        );
    }
    let finished = g
        .pipeline_variants()
        .iter()
        .any(|v| v.entry == "dot4_finish");
    assert!(finished, "the dot products fitted one workgroup");
    g.set_strategy(None);
}

#[test]
fn weighted_sum_of_ten_terms_over_two_launches() {
    // Eight terms a launch where the adapter binds eleven buffers: a second launch adds the
    // last two to the first's sum.
    let mut rng = Rng::new(62);
    let s = [2, 2, 4, 4];
    let mut inputs: Vec<Input> = (0..10).map(|_| Input::random(&mut rng, &s, true)).collect();
    inputs.push(Input::random(&mut rng, &[12], true));
    check(
        "weighted sum of ten terms",
        inputs,
        |v| {
            (0..v[0].len())
                .map(|i| (0..10).map(|k| v[10][k + 1] * v[k][i]).sum())
                .collect()
        },
        |t, v| {
            let ys: Vec<&Tensor> = v[..10].iter().collect();
            let idx: Vec<usize> = (1..11).collect();
            t.weighted_sum(&ys, &v[10], &idx)
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn weighted_sum_reads_a_repeated_tensor_once() {
    // A tensor in two terms (an edge's skip and its β·x) is one term with both coefficients;
    // one in three terms: a pair and a term of its own. Tables A (α, with a gradient) and B.
    let mut rng = Rng::new(48);
    let s = [2, 3, 4, 4];
    let mut inputs: Vec<Input> = (0..2).map(|_| Input::random(&mut rng, &s, true)).collect();
    inputs.push(Input::random(&mut rng, &[2, 5], true));
    inputs.push(Input::random(&mut rng, &[3], false));
    check(
        "weighted sum with repeated tensors",
        inputs,
        |v| {
            let c0 = v[2][5] + v[3][2];
            let c1 = v[2][6] + v[2][7] + v[3][0];
            (0..v[0].len())
                .map(|i| c0 * v[0][i] + c1 * v[1][i])
                .collect()
        },
        |t, v| {
            let terms = [
                (&v[0], &v[2], 5),
                (&v[1], &v[2], 6),
                (&v[0], &v[3], 2),
                (&v[1], &v[2], 7),
                (&v[1], &v[3], 0),
            ];
            t.weighted_sum_terms(&terms)
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

fn six_terms_case(s: [usize; 4], costly: bool) {
    // A DARTS- edge: five candidates weighted from α (two launches of up to four terms) and
    // β·x from a second, constant table; α and every y get gradients, β none.
    let mut rng = Rng::new(47);
    let mut inputs: Vec<Input> = (0..6).map(|_| Input::random(&mut rng, &s, true)).collect();
    inputs.push(Input::random(&mut rng, &[2, 5], true));
    inputs.push(Input::random(&mut rng, &[3], false));
    check(
        &format!("weighted sum over two tables x{s:?} costly launches={costly}"),
        inputs,
        |v| {
            (0..v[0].len())
                .map(|i| (0..5).map(|k| v[6][5 + k] * v[k][i]).sum::<f64>() + v[7][2] * v[5][i])
                .collect()
        },
        |t, v| {
            t.gpu().set_strategy(Some(strategy_of(costly)));
            let mut terms: Vec<(&Tensor, &Tensor, usize)> =
                (0..5).map(|k| (&v[k], &v[6], 5 + k)).collect();
            terms.push((&v[5], &v[7], 2));
            t.weighted_sum_terms(&terms)
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

/// How a test runs a normalised sum: separate batch norms and a weighted sum (GPU strategy),
/// fused with one thread per channel (CPU strategy, small channels), or fused with a workgroup
/// per channel (CPU strategy, the one-thread limit set below the test's channels).
#[derive(Clone, Copy, Debug, PartialEq)]
enum SumMode {
    Separate,
    Serial,
    Group,
}

const SUM_MODES: [SumMode; 3] = [SumMode::Separate, SumMode::Serial, SumMode::Group];

fn set_sum_mode(g: &Gpu, mode: SumMode) {
    g.set_strategy(Some(strategy_of(mode != SumMode::Separate)));
    if mode == SumMode::Group {
        // Past the one-thread size (the tests' channels are fewer than 16).
        g.set_policy(LaunchPolicy {
            fused_sum_max: 1,
            ..g.policy()
        });
    }
}

/// Σ w_t·v_t over a mixed edge's terms: v = bn(x_t) (train, no affine) for three of them, x_t
/// for two (one weighted from a second table, as β is), in an interleaved order; fused into
/// one launch each way where launches are costly, separate batch norms and a weighted sum
/// elsewhere: forward, every input's and both tables' gradients.
fn normalized_sum_case(seed: u64, s: [usize; 4], mode: SumMode) {
    // Term t: (input, normalised, table 5 (α) or 6 (β), index).
    let plan = [
        (0, true, 5, 5),
        (1, false, 5, 6),
        (2, true, 5, 7),
        (3, false, 6, 1),
        (4, true, 5, 9),
    ];
    normalized_sum_plan(seed, s, mode, &plan);
}

fn normalized_sum_plan(
    seed: u64,
    s: [usize; 4],
    mode: SumMode,
    plan: &[(usize, bool, usize, usize)],
) {
    // Inputs 0..k (a plan may name one in two terms), then the tables.
    let k = plan.iter().map(|t| t.0 + 1).max().unwrap_or(0);
    let mut rng = Rng::new(seed);
    let mut inputs: Vec<Input> = (0..k).map(|_| Input::random(&mut rng, &s, true)).collect();
    inputs.push(Input::random(&mut rng, &[2, 5], true));
    inputs.push(Input::random(&mut rng, &[3], true));
    // The plan names the tables 5 (α, 2×5) and 6 (β); they are inputs k and k + 1.
    let plan: Vec<(usize, bool, usize, usize)> = plan
        .iter()
        .map(|&(i, bn, tab, idx)| (i, bn, k + tab - 5, idx))
        .collect();
    check(
        &format!("normalized sum x{s:?} {mode:?}"),
        inputs,
        |v| {
            let vals: Vec<Vec<f64>> = plan
                .iter()
                .map(|&(k, bn, _, _)| {
                    if bn {
                        cpu::batch_norm_train(&v[k], s4(&s), None, 1e-5).0
                    } else {
                        v[k].clone()
                    }
                })
                .collect();
            (0..v[0].len())
                .map(|i| {
                    plan.iter()
                        .zip(&vals)
                        .map(|(&(_, _, tab, idx), y)| v[tab][idx] * y[i])
                        .sum()
                })
                .collect()
        },
        |t, v| {
            set_sum_mode(t.gpu(), mode);
            let c = s[1];
            let stats: Vec<Tensor> = (0..2 * k)
                .map(|_| Tensor::zeros(t.gpu(), &[c]))
                .collect::<Result<_>>()?;
            let terms: Vec<SumTerm> = plan
                .iter()
                .map(|&(k, bn, tab, idx)| SumTerm {
                    x: &v[k],
                    bn: bn.then(|| BnState {
                        running_mean: &stats[2 * k],
                        running_var: &stats[2 * k + 1],
                        momentum: 0.1,
                        eps: 1e-5,
                    }),
                    stats: None,
                    table: &v[tab],
                    idx,
                })
                .collect();
            t.normalized_sum(&terms)
        },
        Tolerance::FORWARD.scaled(&[4.0]),
        Tolerance::GRADIENT,
    );
}

/// The terms of `plan` ((input, normalised, table, index)) over `xs`, the normalised ones
/// updating the running statistics `stats` (mean, variance).
fn onto_terms<'a>(
    plan: &[(usize, bool, usize, usize)],
    xs: &'a [Tensor],
    table: impl Fn(usize) -> &'a Tensor,
    stats: &'a [Tensor; 2],
) -> Vec<SumTerm<'a>> {
    plan.iter()
        .map(|&(k, bn, tab, idx)| SumTerm {
            x: &xs[k],
            bn: bn.then(|| BnState {
                running_mean: &stats[0],
                running_var: &stats[1],
                momentum: 0.1,
                eps: 1e-5,
            }),
            stats: None,
            table: table(tab),
            idx,
        })
        .collect()
}

/// A cell node's sum so far plus an edge's tail (`normalized_sum_onto`): against the f64
/// reference with finite differences (onto's gradient is the output's), then against the sum
/// and a separate add (onto's gradient bit for bit), in one launch fewer where fused.
#[test]
fn normalized_sum_onto_a_node_sum() {
    let s = [2, 3, 4, 4];
    // Inputs: x0 (normalised), x1 (plain, in two terms), onto, α (2×5), β.
    let plan = [(0, true, 3, 2), (1, false, 3, 7), (1, false, 4, 0)];
    for mode in SUM_MODES {
        let mut rng = Rng::new(75);
        let mut inputs: Vec<Input> = (0..3).map(|_| Input::random(&mut rng, &s, true)).collect();
        inputs.push(Input::random(&mut rng, &[2, 5], true));
        inputs.push(Input::random(&mut rng, &[1], true));
        check(
            &format!("normalized sum onto x{s:?} {mode:?}"),
            inputs,
            |v| {
                let y0 = cpu::batch_norm_train(&v[0], s4(&s), None, 1e-5).0;
                (0..v[0].len())
                    .map(|i| {
                        let mut acc = v[3][2] * y0[i] + v[3][7] * v[1][i] + v[4][0] * v[1][i];
                        acc += v[2][i];
                        acc
                    })
                    .collect()
            },
            |t, v| {
                set_sum_mode(t.gpu(), mode);
                let stats = [
                    Tensor::zeros(t.gpu(), &[3])?,
                    Tensor::full(t.gpu(), &[3], 1.0)?,
                ];
                let terms = onto_terms(&plan, v, |tab| &v[tab], &stats);
                t.normalized_sum_onto(&terms, &v[2])
            },
            Tolerance::FORWARD.scaled(&[4.0]),
            Tolerance::GRADIENT,
        );
    }
    // onto + sum, the add done in the fused launch or after it.
    let g = gpu();
    let mut rng = Rng::new(76);
    let xs: Vec<Tensor> = (0..3)
        .map(|_| {
            Tensor::from_slice(&g, &s, &f32s(&rng.vec(96)))
                .unwrap()
                .with_grad()
        })
        .collect();
    let alpha = Tensor::from_slice(&g, &[2, 5], &f32s(&rng.vec(10))).unwrap();
    let beta = Tensor::from_slice(&g, &[1], &[0.7]).unwrap();
    let r = Tensor::from_slice(&g, &s, &f32s(&rng.vec(96))).unwrap();
    for mode in SUM_MODES {
        set_sum_mode(&g, mode);
        let stats = [
            Tensor::zeros(&g, &[3]).unwrap(),
            Tensor::full(&g, &[3], 1.0).unwrap(),
        ];
        let run = |fused_add: bool| -> (Vec<Vec<f32>>, u64) {
            let table = |tab: usize| if tab == 3 { &alpha } else { &beta };
            let terms = onto_terms(&plan, &xs, table, &stats);
            let mut tape = Tape::new(&g);
            g.sync().unwrap();
            let before = g.dispatch_count();
            let y = if fused_add {
                tape.normalized_sum_onto(&terms, &xs[2]).unwrap()
            } else {
                let sum = tape.normalized_sum(&terms).unwrap();
                tape.sum(&[&xs[2], &sum]).unwrap()
            };
            g.sync().unwrap();
            let launches = g.dispatch_count() - before;
            let loss = tape.mul(&y, &r).unwrap();
            let loss = tape.sum_all(&loss).unwrap();
            let grads = tape.backward(&loss).unwrap();
            let mut out = vec![y.to_vec().unwrap()];
            out.extend(xs.iter().map(|x| grads.get(x).unwrap().to_vec().unwrap()));
            (out, launches)
        };
        let (onto, n_onto) = run(true);
        let (apart, n_apart) = run(false);
        for (k, (a, b)) in onto.iter().zip(&apart).enumerate() {
            let what = format!("{mode:?}: output / gradient {k}");
            let b: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            Tolerance::FORWARD.assert_close(&what, a, &b);
        }
        let r = r.to_vec().unwrap();
        assert!(
            onto[3]
                .iter()
                .zip(&r)
                .all(|(g, r)| g.to_bits() == r.to_bits()),
            "{mode:?}: onto's gradient is the output's"
        );
        // A sum so far of another shape is refused by name, not launched.
        let wrong = Tensor::zeros(&g, &[2, 3, 4, 8]).unwrap();
        let terms = onto_terms(
            &plan,
            &xs,
            |tab| if tab == 3 { &alpha } else { &beta },
            &stats,
        );
        let e = Tape::new(&g)
            .normalized_sum_onto(&terms, &wrong)
            .unwrap_err();
        assert!(e.to_string().contains("[2, 3, 4, 8]"), "{mode:?}: {e}");
        let fused = mode != SumMode::Separate && g.policy().binds(15);
        assert_eq!(n_onto + u64::from(fused), n_apart, "{mode:?}: launches");
    }
}

#[test]
fn normalized_sum_fused_or_separate() {
    for mode in SUM_MODES {
        normalized_sum_case(66, [2, 3, 4, 4], mode);
    }
}

#[test]
fn normalized_sum_of_seven_normalised_terms() {
    // A reduction edge: seven normalised candidates and a plain β term; one launch binds six,
    // so the seventh normalises on its own and joins as a plain term.
    let plan: Vec<(usize, bool, usize, usize)> = (0..8)
        .map(|i| {
            if i < 7 {
                (i, true, 5, i + 1)
            } else {
                (i, false, 6, 2)
            }
        })
        .collect();
    for mode in SUM_MODES {
        normalized_sum_plan(70, [2, 2, 4, 4], mode, &plan);
    }
}

/// An edge's skip and its β·x are one tensor in two terms: the fused launches bind it once
/// (two normalised terms and three plain ones in two bindings still fuse), with the sum of
/// both weights; the gradient reaches it through both.
#[test]
fn normalized_sum_reads_a_tensor_in_two_terms_once() {
    let plan = [
        (0, true, 5, 5),
        (1, false, 5, 6),
        (2, true, 5, 7),
        (3, false, 5, 8),
        (1, false, 6, 1),
    ];
    for mode in SUM_MODES {
        normalized_sum_plan(73, [2, 3, 4, 4], mode, &plan);
    }
    let g = gpu();
    let mut rng = Rng::new(74);
    let s = [2, 3, 4, 4];
    let xs: Vec<Tensor> = (0..4)
        .map(|_| Tensor::from_slice(&g, &s, &f32s(&rng.vec(96))).unwrap())
        .collect();
    let (alpha, beta) = (
        Tensor::from_slice(&g, &[4], &[0.1, 0.2, 0.3, 0.4]).unwrap(),
        Tensor::from_slice(&g, &[1], &[0.5]).unwrap(),
    );
    let stats: Vec<Tensor> = (0..4).map(|_| Tensor::zeros(&g, &[3]).unwrap()).collect();
    for mode in [SumMode::Serial, SumMode::Group] {
        set_sum_mode(&g, mode);
        let bn = |k: usize| BnState {
            running_mean: &stats[2 * k],
            running_var: &stats[2 * k + 1],
            momentum: 0.1,
            eps: 1e-5,
        };
        // (input, batch norm, table, index)
        let plan = [
            (0, Some(bn(0)), &alpha, 0),
            (1, None, &alpha, 1),
            (2, Some(bn(1)), &alpha, 2),
            (3, None, &alpha, 3),
            (1, None, &beta, 0),
        ];
        let terms: Vec<SumTerm> = plan
            .into_iter()
            .map(|(x, bn, table, idx)| SumTerm {
                x: &xs[x],
                bn,
                stats: None,
                table,
                idx,
            })
            .collect();
        g.sync().unwrap();
        let before = g.dispatch_count();
        let mut tape = Tape::inference(&g);
        tape.normalized_sum(&terms).unwrap();
        g.sync().unwrap();
        let fused = g.policy().binds(15);
        assert_eq!(
            g.dispatch_count() - before,
            // Separate: two batch norms and one weighted sum (x read once there too).
            if fused { 1 } else { 3 },
            "{mode:?}"
        );
    }
}

#[test]
fn normalized_sum_eleven_channels_odd_plane() {
    // Two workgroups of 8 channels; 5×3 planes are not vec4 rows: never fused.
    for mode in [SumMode::Serial, SumMode::Group] {
        normalized_sum_case(67, [2, 11, 4, 8], mode);
        normalized_sum_case(68, [2, 3, 5, 3], mode);
    }
}

#[test]
fn normalized_sum_updates_running_statistics_as_batch_norm_does() {
    let g = gpu();
    let mut rng = Rng::new(69);
    let s = [3, 2, 4, 4];
    let xs: Vec<Tensor> = (0..2)
        .map(|_| Tensor::from_slice(&g, &s, &f32s(&rng.vec(96))).unwrap())
        .collect();
    let table = Tensor::from_slice(&g, &[2], &[0.3, 0.7]).unwrap();
    let run = |mode: SumMode| -> Vec<Vec<f32>> {
        set_sum_mode(&g, mode);
        let stats: Vec<Tensor> = (0..4)
            .map(|k| Tensor::full(&g, &[2], if k % 2 == 0 { 0.5 } else { 1.5 }).unwrap())
            .collect();
        let terms: Vec<SumTerm> = (0..2)
            .map(|k| SumTerm {
                x: &xs[k],
                bn: Some(BnState {
                    running_mean: &stats[2 * k],
                    running_var: &stats[2 * k + 1],
                    momentum: 0.1,
                    eps: 1e-5,
                }),
                stats: None,
                table: &table,
                idx: k,
            })
            .collect();
        g.sync().unwrap();
        let before = g.dispatch_count();
        let mut tape = Tape::inference(&g);
        let y = tape.normalized_sum(&terms).unwrap();
        let mut out = vec![y.to_vec().unwrap()];
        // Fused (where the policy and the device's bindings allow): one launch; separate:
        // two batch norms and a weighted sum.
        let per_channel = s[0] * s[2] * s[3];
        let fused = g.policy().fuse_normalized_sum(per_channel);
        assert_eq!(fused, mode != SumMode::Separate && g.policy().binds(15));
        assert_eq!(
            g.policy().normalized_sum_serial(s[1], per_channel),
            mode != SumMode::Group
        );
        assert_eq!(g.dispatch_count() - before, if fused { 1 } else { 3 });
        out.extend(stats.iter().map(|t| t.to_vec().unwrap()));
        out
    };
    let separate = run(SumMode::Separate);
    for mode in [SumMode::Serial, SumMode::Group] {
        let fused = run(mode);
        for (k, (a, b)) in fused.iter().zip(&separate).enumerate() {
            Tolerance::FORWARD.assert_close(
                &format!("{mode:?}: output / running statistics {k}"),
                a,
                &b.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            );
        }
        assert_ne!(fused[1], vec![0.5, 0.5], "{mode:?}: the running mean moved");
    }
}

/// An inference pass's mixed-edge sum with eval-mode batch norms: six normalised terms and
/// two plain ones from two tables, against the CPU f64 reference; one launch where the
/// adapter binds its 13 buffers and the plane is of vec4s, else a batch norm per term and
/// weighted sums; and the separate path on a recording tape, whose gradients it needs.
#[test]
fn eval_normalized_sum_matches_the_cpu_reference() {
    let g = gpu();
    for (seed, s) in [(71u64, [2usize, 3, 4, 4]), (72, [2, 3, 5, 3])] {
        let mut rng = Rng::new(seed);
        let numel: usize = s.iter().product();
        let c = s[1];
        let hw = s[2] * s[3];
        let xs: Vec<Vec<f64>> = (0..8).map(|_| rng.vec(numel)).collect();
        let means: Vec<Vec<f64>> = (0..6).map(|_| rng.vec(c)).collect();
        let vars: Vec<Vec<f64>> = (0..6)
            .map(|_| {
                (0..c)
                    .map(|_| rng.uniform(0.5, 2.0) as f32 as f64)
                    .collect()
            })
            .collect();
        let a = rng.vec(7);
        let b = rng.vec(1);
        let coef = |k: usize| if k < 7 { a[k] } else { b[0] };
        let want: Vec<f64> = (0..numel)
            .map(|i| {
                let ch = (i / hw) % c;
                (0..8)
                    .map(|k| {
                        let v = match k < 6 {
                            true => (xs[k][i] - means[k][ch]) / (vars[k][ch] + 1e-5).sqrt(),
                            false => xs[k][i],
                        };
                        coef(k) * v
                    })
                    .sum()
            })
            .collect();
        let up = |v: &[f64], shape: &[usize]| Tensor::from_slice(&g, shape, &f32s(v)).unwrap();
        let (ta, tb) = (up(&a, &[7]), up(&b, &[1]));
        let (rm, rv): (Vec<Tensor>, Vec<Tensor>) = (0..6)
            .map(|k| (up(&means[k], &[c]), up(&vars[k], &[c])))
            .unzip();
        for costly in [false, true] {
            g.set_strategy(Some(strategy_of(costly)));
            for recording in [false, true] {
                let xt: Vec<Tensor> = xs
                    .iter()
                    .map(|v| {
                        let t = up(v, &s);
                        if recording {
                            t.with_grad()
                        } else {
                            t
                        }
                    })
                    .collect();
                let terms: Vec<SumTerm> = (0..8)
                    .map(|k| SumTerm {
                        x: &xt[k],
                        bn: (k < 6).then(|| BnState {
                            running_mean: &rm[k],
                            running_var: &rv[k],
                            momentum: 0.1,
                            eps: 1e-5,
                        }),
                        stats: None,
                        table: if k < 7 { &ta } else { &tb },
                        idx: if k < 7 { k } else { 0 },
                    })
                    .collect();
                let mut tape = if recording {
                    Tape::new(&g)
                } else {
                    Tape::inference(&g)
                };
                g.sync().unwrap();
                let before = g.dispatch_count();
                let y = tape.eval_normalized_sum(&terms).unwrap();
                let got = y.to_vec().unwrap();
                let launches = g.dispatch_count() - before;
                let fused = !recording && hw % 4 == 0 && g.policy().binds(13);
                assert_eq!(
                    launches == 1,
                    fused,
                    "x{s:?} costly {costly} recording {recording}: {launches} launches"
                );
                Tolerance::FORWARD.assert_close(
                    &format!("eval sum x{s:?} costly {costly} recording {recording}"),
                    &got,
                    &want,
                );
                // Onto a node's sum so far (x₆ stands in): in the same one launch where fused,
                // else the sum and an add.
                g.sync().unwrap();
                let before = g.dispatch_count();
                let y = tape.eval_normalized_sum_onto(&terms, &xt[6]).unwrap();
                let got = y.to_vec().unwrap();
                let launches = g.dispatch_count() - before;
                assert_eq!(launches == 1, fused, "onto: {launches} launches");
                let want_onto: Vec<f64> = want.iter().zip(&xs[6]).map(|(w, o)| w + o).collect();
                Tolerance::FORWARD.assert_close(
                    &format!("eval sum onto x{s:?} costly {costly} recording {recording}"),
                    &got,
                    &want_onto,
                );
                // The running statistics are read, never updated.
                assert_eq!(rm[0].to_vec().unwrap(), f32s(&means[0]));
            }
        }
    }
    g.set_strategy(None);
}

/// z = α₅·bn(x) + α₆·bn(2x) + α₇·x + β₂·x, out = z + x + x: x's gradient gathers six
/// contributions (four scaled, from two tables), and each batch
/// norm gets its output gradient scaled by its weight, folded into its backward kernel (or,
/// with split reductions, scaled first).
fn mixed_edge_case(seed: u64, s: [usize; 4], split: Option<usize>) {
    for costly in [false, true] {
        mixed_edge_case_with(seed, s, split, costly);
    }
}

fn mixed_edge_case_with(seed: u64, s: [usize; 4], split: Option<usize>, costly: bool) {
    let mut rng = Rng::new(seed);
    let inputs = vec![
        Input::random(&mut rng, &s, true),
        Input::random(&mut rng, &[2, 4], true),
        Input::random(&mut rng, &[3], false),
    ];
    check(
        &format!("mixed-edge gradients x{s:?} split {split:?} costly launches={costly}"),
        inputs,
        |v| {
            let b1 = cpu::batch_norm_train(&v[0], s4(&s), None, 1e-5).0;
            let x2: Vec<f64> = v[0].iter().map(|a| 2.0 * a).collect();
            let b2 = cpu::batch_norm_train(&x2, s4(&s), None, 1e-5).0;
            (0..v[0].len())
                .map(|i| {
                    v[1][5] * b1[i]
                        + v[1][6] * b2[i]
                        + v[1][7] * v[0][i]
                        + v[2][2] * v[0][i]
                        + 2.0 * v[0][i]
                })
                .collect()
        },
        |t, v| {
            t.gpu().set_channel_split(split);
            t.gpu().set_strategy(Some(strategy_of(costly)));
            let c = s[1];
            let stats: Vec<Tensor> = (0..4)
                .map(|_| Tensor::zeros(t.gpu(), &[c]))
                .collect::<Result<_>>()?;
            let bn = |t: &mut Tape, x: &Tensor, k: usize| {
                let state = BnState {
                    running_mean: &stats[2 * k],
                    running_var: &stats[2 * k + 1],
                    momentum: 0.1,
                    eps: 1e-5,
                };
                t.batch_norm(x, None, state, true)
            };
            let b1 = bn(t, &v[0], 0)?;
            let x2 = t.scale(&v[0], 2.0)?;
            let b2 = bn(t, &x2, 1)?;
            let z = t.weighted_sum_terms(&[
                (&b1, &v[1], 5),
                (&b2, &v[1], 6),
                (&v[0], &v[1], 7),
                (&v[0], &v[2], 2),
            ])?;
            t.sum(&[&z, &v[0], &v[0]])
        },
        Tolerance::FORWARD.scaled(&[4.0]),
        Tolerance::GRADIENT,
    );
}

/// out = Σ_{k=1..11} k·x: x's gradient gathers eleven contributions, more than one summing
/// launch takes (eight, or four under WebGPU's limits), so the tape sums the first ones
/// before it holds more; on a plane of vec4s and on one that is not.
#[test]
fn gradient_of_a_tensor_in_more_terms_than_a_sum_takes() {
    for s in [[2usize, 3, 4, 4], [1, 3, 5, 3]] {
        for costly in [false, true] {
            let mut rng = Rng::new(75);
            check(
                &format!("eleven contributions x{s:?} costly launches={costly}"),
                vec![Input::random(&mut rng, &s, true)],
                |v| v[0].iter().map(|a| 66.0 * a).collect(),
                |t, v| {
                    t.gpu().set_strategy(Some(strategy_of(costly)));
                    let parts: Vec<Tensor> = (1..=11)
                        .map(|k| t.scale(&v[0], k as f32))
                        .collect::<Result<_>>()?;
                    t.sum(&parts.iter().collect::<Vec<_>>())
                },
                Tolerance::FORWARD,
                Tolerance::GRADIENT,
            );
        }
    }
}

#[test]
fn mixed_edge_gradients_vec4_batch_norm() {
    mixed_edge_case(48, [2, 3, 4, 4], None);
}

#[test]
fn mixed_edge_gradients_scalar_batch_norm() {
    mixed_edge_case(49, [2, 3, 5, 3], None);
}

#[test]
fn mixed_edge_gradients_split_batch_norm() {
    mixed_edge_case(50, [2, 3, 4, 4], Some(3));
}

#[test]
fn sum_all_large() {
    // More elements than one reduction chunk, not a multiple of the workgroup.
    let mut rng = Rng::new(46);
    check(
        "sum_all",
        vec![Input::random(&mut rng, &[3001], true)],
        |v| vec![v[0].iter().sum()],
        |t, v| t.sum_all(&v[0]),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn concat_channels() {
    let mut rng = Rng::new(47);
    let (a, b, c) = ([2, 1, 3, 4], [2, 3, 3, 4], [2, 2, 3, 4]);
    let inputs = vec![
        Input::random(&mut rng, &a, true),
        Input::random(&mut rng, &b, true),
        Input::random(&mut rng, &c, true),
    ];
    // The kernel, and copy commands (one per image) where launches are costly.
    for costly in [false, true] {
        check(
            &format!("concat, costly launches={costly}"),
            inputs.clone(),
            |v| cpu::concat(&[(&v[0], s4(&a)), (&v[1], s4(&b)), (&v[2], s4(&c))]).0,
            |t, v| {
                t.gpu().set_strategy(Some(strategy_of(costly)));
                t.concat(&[&v[0], &v[1], &v[2]])
            },
            Tolerance::FORWARD,
            Tolerance::GRADIENT,
        );
    }
}

// Six inputs: where launches are cheap, one launch for four channel blocks and one for the
// other two, each way; a constant input gets no gradient (its block is skipped backward).
#[test]
fn concat_six_inputs_one_constant() {
    let mut rng = Rng::new(49);
    let shapes = [
        [2, 1, 2, 4],
        [2, 3, 2, 4],
        [2, 2, 2, 4],
        [2, 1, 2, 4],
        [2, 2, 2, 4],
        [2, 1, 2, 4],
    ];
    let inputs: Vec<Input> = shapes
        .iter()
        .enumerate()
        .map(|(k, sh)| Input::random(&mut rng, sh, k != 2))
        .collect();
    for costly in [false, true] {
        check(
            &format!("concat of six, costly launches={costly}"),
            inputs.clone(),
            |v| {
                let parts: Vec<(&[f64], Shape4)> = v
                    .iter()
                    .zip(&shapes)
                    .map(|(x, sh)| (x.as_slice(), s4(sh)))
                    .collect();
                cpu::concat(&parts).0
            },
            |t, v| {
                t.gpu().set_strategy(Some(strategy_of(costly)));
                let refs: Vec<&Tensor> = v.iter().collect();
                t.concat(&refs)
            },
            Tolerance::FORWARD,
            Tolerance::GRADIENT,
        );
    }
}

#[test]
fn crop_1_1() {
    let mut rng = Rng::new(48);
    let s = [2, 2, 7, 6];
    check(
        "x[:, :, 1:, 1:]",
        vec![Input::random(&mut rng, &s, true)],
        |v| cpu::slice2d(&v[0], s4(&s), 1, 1).0,
        |t, v| {
            t.slice2d(
                &v[0],
                SliceCfg {
                    offset: 1,
                    stride: 1,
                },
            )
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn subsample_stride2_odd() {
    let mut rng = Rng::new(49);
    let s = [1, 3, 7, 9];
    check(
        "x[:, :, ::2, ::2]",
        vec![Input::random(&mut rng, &s, true)],
        |v| cpu::slice2d(&v[0], s4(&s), 0, 2).0,
        |t, v| {
            t.slice2d(
                &v[0],
                SliceCfg {
                    offset: 0,
                    stride: 2,
                },
            )
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

/// The ::2 subsample at offset 0 or 1 on rows of a multiple of 8 (the vec4 kernels), odd
/// heights included.
#[test]
fn subsample_stride2_rows_of_8() {
    for (seed, s, offset) in [
        (51, [2, 3, 7, 8], 0),
        (52, [2, 2, 9, 16], 1),
        (53, [1, 2, 8, 8], 1),
    ] {
        let mut rng = Rng::new(seed);
        check(
            &format!("x[:, :, {offset}::2, {offset}::2] of {s:?}"),
            vec![Input::random(&mut rng, &s, true)],
            |v| cpu::slice2d(&v[0], s4(&s), offset, 2).0,
            |t, v| t.slice2d(&v[0], SliceCfg { offset, stride: 2 }),
            Tolerance::FORWARD,
            Tolerance::GRADIENT,
        );
    }
}

#[test]
fn reshape_passes_gradient() {
    let mut rng = Rng::new(50);
    check(
        "reshape",
        vec![Input::random(&mut rng, &[2, 3, 1, 1], true)],
        |v| v[0].clone(),
        |t, v| t.reshape(&v[0], &[2, 3]),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn softmax_rows() {
    let mut rng = Rng::new(51);
    check(
        "row softmax",
        vec![Input {
            shape: vec![14, 8],
            data: rng.vec(112).iter().map(|x| 3.0 * x).collect(),
            diff: true,
        }],
        |v| cpu::softmax_rows(&v[0], 8),
        |t, v| t.softmax_rows(&v[0]),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn linear_with_bias() {
    let mut rng = Rng::new(52);
    check(
        "linear",
        vec![
            Input::random(&mut rng, &[5, 7], true),
            Input::random(&mut rng, &[3, 7], true),
            Input::random(&mut rng, &[3], true),
        ],
        |v| cpu::linear(&v[0], 5, 7, &v[1], 3, Some(&v[2])),
        |t, v| t.linear(&v[0], &v[1], Some(&v[2])),
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn cross_entropy_mean() {
    let mut rng = Rng::new(53);
    let labels: Vec<u32> = (0..6).map(|_| rng.below(10)).collect();
    let lab2 = labels.clone();
    check(
        "cross entropy",
        vec![Input {
            shape: vec![6, 10],
            data: rng.vec(60).iter().map(|x| 4.0 * x).collect(),
            diff: true,
        }],
        |v| vec![cpu::cross_entropy(&v[0], 10, &labels)],
        move |t, v| {
            let l = Labels::new(t.gpu(), &lab2)?;
            t.cross_entropy(&v[0], &l)
        },
        Tolerance::FORWARD,
        Tolerance::GRADIENT,
    );
}

#[test]
fn topk_accuracy() {
    let g = gpu();
    let mut rng = Rng::new(54);
    let (rows, cols) = (37, 10);
    let x = rng.vec(rows * cols);
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(cols as u32)).collect();
    let xt = Tensor::from_slice(&g, &[rows, cols], &f32s(&x)).unwrap();
    let l = Labels::new(&g, &labels).unwrap();
    let (t1, t5) = darts_minus::autodiff::ops::softmax::topk_correct(&xt, &l).unwrap();
    let rank = |r: usize| {
        (0..cols)
            .filter(|&j| x[r * cols + j] > x[r * cols + labels[r] as usize])
            .count()
    };
    assert_eq!(t1, (0..rows).filter(|&r| rank(r) < 1).count());
    assert_eq!(t5, (0..rows).filter(|&r| rank(r) < 5).count());
}

/// RobustDARTS' `noise`: values against the CPU recomputation of its generator, N(0, 1)
/// moments, fresh values under a new key, no gradient to its input (the library's check).
#[test]
fn noise_values_moments_and_no_gradient() {
    let lines = darts_minus::check::noise::noise(&gpu()).unwrap();
    assert!(lines.len() >= 8, "{lines:?}");
    assert_passes(&lines);
}

/// The generator is seeded: the same key and stream give the same values, another stream or
/// key others, and a tensor off any workgroup multiple is filled to its last element.
#[test]
fn noise_is_a_function_of_key_stream_and_index() {
    use darts_minus::autodiff::ops::noise::{
        noise_key_table, normal_noise, normal_noise_cpu, write_noise_keys,
    };
    let g = gpu();
    let table = noise_key_table(&g).unwrap();
    write_noise_keys(&g, &table, &[5, 5]).unwrap();
    let draw = |slot, stream| normal_noise(&g, &[3, 1, 7, 11], &table, slot, stream).unwrap();
    let a = draw(0, 1).to_vec().unwrap();
    assert_eq!(a, draw(0, 1).to_vec().unwrap());
    assert_eq!(a, draw(1, 1).to_vec().unwrap(), "equal keys in both slots");
    assert_ne!(a, draw(0, 2).to_vec().unwrap());
    write_noise_keys(&g, &table, &[6, 5]).unwrap();
    let b = draw(0, 1).to_vec().unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    let want = normal_noise_cpu(6, 1, a.len());
    let tol = darts_minus::check::noise::NOISE_TOL;
    assert!(
        tol.compare(&b, &want).pass(),
        "{:?}",
        tol.compare(&b, &want)
    );
    assert_ne!(b[a.len() - 1], 0.0);
}

/// One convolution (+ a train-mode batch norm from the producer's statistics where `stats`)
/// on a tape, weighted by `c` and summed: the output and the gradients of x, w and b.
/// A train-mode batch norm (fresh running statistics) over `y`, from its producer's `st`.
fn bn_with_stats(
    g: &darts_minus::gpu::Gpu,
    tape: &mut Tape,
    y: &Tensor,
    st: Option<darts_minus::autodiff::ChannelStats>,
) -> Tensor {
    let cout = y.shape()[1];
    let rs = [
        Tensor::zeros(g, &[cout]).unwrap(),
        Tensor::full(g, &[cout], 1.0).unwrap(),
    ];
    let state = BnState {
        running_mean: &rs[0],
        running_var: &rs[1],
        momentum: 0.1,
        eps: 1e-5,
    };
    tape.batch_norm_with_stats(y, st, None, state, true)
        .unwrap()
}

fn conv_with_weight(
    g: &darts_minus::gpu::Gpu,
    (x, w, b, c): (&Tensor, &Tensor, Option<&Tensor>, &[f32]),
    cfg: Conv2dCfg,
    stats: bool,
) -> Vec<Vec<f32>> {
    let mut tape = Tape::new(g);
    let y = if stats {
        let (y, st) = tape.conv2d_with_stats(x, w, b, cfg).unwrap();
        assert!(st.is_some(), "forward4_stats did not run");
        bn_with_stats(g, &mut tape, &y, st)
    } else {
        tape.conv2d(x, w, b, cfg).unwrap()
    };
    let ct = Tensor::from_slice(g, y.shape(), &c[..y.numel()]).unwrap();
    let weighted = tape.mul(&y, &ct).unwrap();
    let loss = tape.sum_all(&weighted).unwrap();
    let out = y.to_vec().unwrap();
    let grads = tape.backward(&loss).unwrap();
    let mut v = vec![out];
    for t in [Some(x), Some(w), b].into_iter().flatten() {
        v.push(grads.get(t).expect("a gradient").to_vec().unwrap());
    }
    v
}

/// `a` and `b` (output and gradients, named by `whats` in order, as many as `a` holds) equal
/// bit for bit.
#[track_caller]
fn assert_same_values(name: &str, whats: &[&str], a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (k, what) in whats.iter().enumerate().take(a.len()) {
        assert_eq!(a[k], b[k], "{name}: {what} differs");
    }
}

/// On CPU adapters of several threads a dense or 1×1 weight gradient that one pass would
/// leave unbalanced is split into one equal workgroup (a chunk of rows) per adapter thread
/// (`LaunchPolicy::weight_grad_split`, the kernels' WPG): against the f64 reference and
/// finite differences with 3 threads (chunks of unequal rows) for the whole-kernel, kernel-row
/// and per-tap forms and the biased 1×1; and against the unsplit gradients for 2 and 3 threads
/// where a chunk's blocks take two or three workgroups (more than 256 of them).
#[test]
fn weight_gradients_split_one_workgroup_per_adapter_thread() {
    let g = gpu();
    g.set_strategy(Some(Strategy::Cpu));
    let own = g.policy();
    let split = |threads: usize| LaunchPolicy {
        cpu_threads: threads,
        one_pass_work_max: 1,
        ..own
    };
    // (seed, x, w, pad, bias, relu)
    type Case = (u64, [usize; 4], [usize; 4], usize, bool, bool);
    let checked: [Case; 5] = [
        // 3×3, 4 output blocks of 2 input blocks (lanes: 8 threads a chunk; else 72).
        (81, [2, 8, 8, 8], [16, 8, 3, 3], 1, true, true),
        // 3×3, 8 output blocks of one input block.
        (82, [1, 4, 8, 8], [32, 4, 3, 3], 1, false, false),
        // 5×3: a kernel row a thread with lanes (40 threads a chunk), else a tap (120).
        (83, [2, 8, 8, 8], [16, 8, 5, 3], 1, true, false),
        // 1×1 with a bias, 8 threads a chunk either way.
        (84, [2, 8, 8, 8], [16, 8, 1, 1], 0, true, true),
        (85, [2, 4, 8, 8], [32, 4, 1, 1], 0, false, false),
    ];
    for (seed, xs, ws, pad, bias, relu) in checked {
        let inputs = conv_inputs(seed, xs, ws, bias);
        let cfg = Conv2dCfg::new(1, pad).relu_input(relu);
        let name = format!("split weight gradient x{xs:?} w{ws:?} bias={bias} relu={relu}");
        let cpu_op = |v: &[Vec<f64>]| {
            let x: Vec<f64> = v[0]
                .iter()
                .map(|&a| if relu { a.max(0.0) } else { a })
                .collect();
            let b = v.get(2).map(|b| b.as_slice());
            cpu::conv2d(&x, s4(&xs), &v[1], s4(&ws), b, 1, pad, 1, 1).0
        };
        let gpu_op = |t: &mut Tape, v: &[Tensor]| {
            t.gpu().set_policy(split(3));
            t.conv2d(&v[0], &v[1], v.get(2), cfg)
        };
        let tols = (Tolerance::FORWARD, Tolerance::GRADIENT);
        assert_passes(&op_check(&g, &name, &inputs, &cpu_op, &gpu_op, tols).unwrap());
    }
    // Blocks past one workgroup a chunk: 3×3 with 36 × 128 channels (lanes: 288 threads,
    // two workgroups of 144; else 2,592: twelve of 216), the 1×1 with 72 × 128 (576: three of 192).
    let mut rng = Rng::new(86);
    for (xs, ws, pad) in [
        ([2, 36, 4, 8], [128, 36, 3, 3], 1),
        ([2, 72, 4, 8], [128, 72, 1, 1], 0),
    ] {
        let cfg = Conv2dCfg::new(1, pad).relu_input(true);
        let xv = f32s(&rng.vec(xs.iter().product()));
        let wv = f32s(&rng.vec(ws.iter().product()));
        let bv = f32s(&rng.vec(ws[0]));
        let c = f32s(&rng.vec(xs[0] * ws[0] * xs[2] * xs[3]));
        let x = Tensor::from_slice(&g, &xs, &xv).unwrap().with_grad();
        let w = Tensor::from_slice(&g, &ws, &wv).unwrap().with_grad();
        let b = Tensor::from_slice(&g, &[ws[0]], &bv).unwrap().with_grad();
        g.set_policy(LaunchPolicy {
            cpu_threads: 1,
            ..own
        });
        let whole = conv_with_weight(&g, (&x, &w, Some(&b), &c), cfg, false);
        for threads in [2, 3] {
            g.set_policy(split(threads));
            let parts = conv_with_weight(&g, (&x, &w, Some(&b), &c), cfg, false);
            for (k, what) in ["y", "dx", "dw", "db"].iter().enumerate() {
                let want: Vec<f64> = whole[k].iter().map(|&v| v as f64).collect();
                let cmp = Tolerance {
                    rel: 1e-5,
                    abs: 1e-5,
                }
                .scaled(&want)
                .compare(&parts[k], &want);
                assert!(
                    cmp.pass(),
                    "x{xs:?} w{ws:?}, {threads} threads: {what} off by {}",
                    cmp.max_err
                );
            }
        }
    }
    g.set_strategy(None);
    // The splits really ran, in workgroups of a chunk's blocks.
    let sizes: Vec<(&str, u32)> = g
        .pipeline_variants()
        .into_iter()
        .filter_map(|v| {
            let wpg = v.constants.iter().find(|c| c.0 == "WPG")?.1;
            (wpg != 256).then_some((v.entry, wpg))
        })
        .collect();
    let wants: &[(&str, u32)] = if own.lanes {
        &[
            ("weight_partial4_k3", 8),
            ("weight_partial4_row3", 40),
            ("weight_partial4_k3", 144),
            ("weight_grad_partial4", 8),
            ("weight_grad_partial4", 192),
        ]
    } else {
        &[
            ("weight_partial4", 72),
            ("weight_partial4", 120),
            ("weight_partial4", 216),
            ("weight_grad_partial4", 8),
            ("weight_grad_partial4", 192),
        ]
    };
    for want in wants {
        assert!(sizes.contains(want), "{want:?} did not run: {sizes:?}");
    }
}

/// On CPU adapters a dense convolution's weight built by the layers lives in a buffer that
/// is also bound as a uniform, and `forward4` and `gemm4` read it from there (UW = 1):
/// outputs and gradients must equal, bit for bit, those from a plain storage copy of the same
/// weight (the path the reference cases above check), for each variant (forward4: the
/// stride-1 window, a strided input gradient, a folded ReLU and its mask, a 1×1 with bias;
/// gemm4: plain, through a folded ReLU; both writing the statistics for a batch norm on the
/// GPU strategy).
#[test]
fn conv_weights_read_from_a_uniform_window_match_storage() {
    let g = gpu();
    let mut rng = Rng::new(61);
    // (x, w, stride, pad, relu, bias, stats)
    type Case = ([usize; 4], [usize; 4], usize, usize, bool, bool, bool);
    let cases: [Case; 8] = [
        ([2, 3, 8, 8], [5, 3, 3, 3], 1, 1, false, true, false),
        ([2, 3, 8, 8], [4, 3, 3, 3], 2, 1, false, true, false),
        ([2, 4, 6, 8], [17, 4, 3, 3], 1, 1, true, true, false),
        ([2, 3, 4, 4], [5, 3, 1, 1], 1, 0, false, true, false),
        ([2, 3, 32, 32], [6, 3, 3, 3], 1, 1, false, true, true),
        ([2, 5, 4, 4], [18, 5, 1, 1], 1, 0, false, false, false),
        ([2, 5, 4, 8], [7, 5, 1, 1], 1, 0, true, false, false),
        ([2, 3, 32, 32], [6, 3, 1, 1], 1, 0, false, false, true),
    ];
    for (xs, ws, stride, pad, relu, bias, stats) in cases {
        let name = format!("x{xs:?} w{ws:?} s{stride} relu={relu} bias={bias} stats={stats}");
        let cfg = Conv2dCfg::new(stride, pad).relu_input(relu);
        assert!(cfg.reads_weight_uniformly(xs[1]), "{name}");
        let xv = f32s(&rng.vec(xs.iter().product()));
        let wv = f32s(&rng.vec(ws.iter().product()));
        let bv = f32s(&rng.vec(ws[0]));
        let c = f32s(&rng.vec(xs[0] * ws[0] * xs[2] * xs[3]));
        g.set_strategy(Some(Strategy::Cpu));
        let x = Tensor::from_slice(&g, &xs, &xv).unwrap().with_grad();
        let b = Tensor::parameter(&g, &[ws[0]], &bv).unwrap();
        let in_window = Tensor::weight_parameter(&g, &ws, &wv).unwrap();
        let in_storage = Tensor::parameter(&g, &ws, &wv).unwrap();
        assert!(in_window.buffer().uniform_window(), "{name}: no window");
        assert!(!in_storage.buffer().uniform_window(), "{name}");
        g.set_strategy(Some(if stats { Strategy::Gpu } else { Strategy::Cpu }));
        let b = bias.then_some(&b);
        let a = conv_with_weight(&g, (&x, &in_window, b, &c), cfg, stats);
        let s = conv_with_weight(&g, (&x, &in_storage, b, &c), cfg, stats);
        assert_eq!(a.len(), 3 + bias as usize, "{name}");
        assert_same_values(&name, &["y", "dx", "dw", "db"], &a, &s);
    }
    // The GPU strategy keeps weights in plain storage buffers.
    g.set_strategy(Some(Strategy::Gpu));
    let w = Tensor::weight_parameter(&g, &[4, 3, 3, 3], &[0.5; 108]).unwrap();
    assert!(!w.buffer().uniform_window());
    g.set_strategy(None);
}

/// The adapter's own policy (strategy reset) where it has 8-lane subgroups; elsewhere (GL,
/// GPUs, subgroups of another width: no kernel takes a LANES path) None, saying what is not
/// used.
fn lanes_policy(g: &darts_minus::gpu::Gpu, what: &str) -> Option<LaunchPolicy> {
    g.set_strategy(None);
    let own = g.policy();
    if own.lanes {
        return Some(own);
    }
    assert!(!g.adapter().lanes8 || own.strategy != Strategy::Cpu);
    eprintln!(
        "no 8-lane subgroups on {}: {what} not used",
        g.adapter().name
    );
    None
}

/// On CPU adapters with subgroups of 8 consecutive lanes (lavapipe) a dense convolution's
/// `forward4` (forward, and flipped, the input gradient) and a 1×1 one's `gemm4` gather each
/// weight once per 8 lanes
/// and broadcasts it (LANES = 1): outputs and gradients must equal, bit for bit, those with
/// every lane reading every weight, for 16, 8 and 4 channels per thread (with rows past cout),
/// a quad count that leaves part of a subgroup idle, a folded ReLU's mask, a strided input
/// gradient, a weight too large for a uniform window, and the statistics kernel; the same for
/// the 1×1 convolution's `gemm4`, and for `weight_partial4`, whose lanes share input values
/// where the output blocks are a multiple of 8. The 3×3 rows, the biased 1×1 and `gemm4` also
/// sum several taps or input channels before each accumulator write there (odd channel counts
/// leave one over), in the same order as one at a time, so the bits must match too.
#[test]
fn conv_lane_broadcasts_match_per_lane_weight_reads() {
    let g = gpu();
    let Some(own) = lanes_policy(&g, "lane broadcasts") else {
        return;
    };
    let mut rng = Rng::new(67);
    // (x, w, stride, pad, relu, bias, stats)
    type Case = ([usize; 4], [usize; 4], usize, usize, bool, bool, bool);
    let cases: [Case; 30] = [
        ([1, 3, 4, 4], [20, 3, 3, 3], 1, 1, false, true, false),
        // A biased 1×1 (forward4, two input channels a step and one left over) through a ReLU.
        ([2, 7, 8, 8], [16, 7, 1, 1], 1, 0, true, true, false),
        // Columns shared between lanes (SHARE): 5×5 over rows of 16 (two a subgroup) through a
        // ReLU; rows of 64 (past a subgroup's reach: not shared).
        ([2, 6, 16, 16], [10, 6, 5, 5], 1, 2, true, true, false),
        ([1, 2, 4, 64], [4, 2, 3, 3], 1, 1, true, false, false),
        ([2, 4, 6, 8], [17, 4, 3, 3], 1, 1, true, true, false),
        ([2, 3, 8, 8], [12, 3, 3, 3], 2, 1, false, false, false),
        ([2, 5, 8, 8], [5, 5, 3, 3], 1, 1, true, false, false),
        ([1, 40, 8, 8], [48, 40, 3, 3], 1, 1, false, false, false),
        ([2, 3, 32, 32], [6, 3, 3, 3], 1, 1, false, true, true),
        // 1×1 (gemm4): 16 + 4 rows through a ReLU, half a subgroup idle, 8 rows, statistics.
        ([2, 5, 4, 8], [20, 5, 1, 1], 1, 0, true, false, false),
        ([1, 3, 4, 4], [9, 3, 1, 1], 1, 0, false, true, false),
        ([2, 16, 4, 4], [8, 16, 1, 1], 1, 0, false, false, false),
        ([2, 3, 32, 32], [6, 3, 1, 1], 1, 0, false, false, true),
        // The weight gradient's lanes (8 or 16 output blocks): in one chunk straight into dw,
        // with the bias's partials, in several chunks, at stride 2 with a partial input block.
        ([1, 4, 8, 8], [32, 4, 3, 3], 1, 1, false, false, false),
        ([2, 4, 8, 8], [32, 4, 3, 3], 1, 1, true, true, false),
        ([8, 3, 32, 32], [32, 3, 3, 3], 1, 1, false, false, false),
        ([2, 5, 16, 16], [64, 5, 3, 3], 2, 1, true, false, false),
        // A whole 3×3 kernel a thread (weight_partial4_k3): three input blocks (the last
        // partial) with a bias; 16 output blocks in one chunk, straight into dw.
        ([2, 9, 8, 8], [32, 9, 3, 3], 1, 1, true, true, false),
        ([1, 8, 4, 8], [64, 8, 3, 3], 1, 1, false, false, false),
        // A kernel row of 3 a thread (weight_partial4_row3) where there are not 3 rows: 5×3
        // with a bias, and with 4 output blocks of 2 input blocks a subgroup.
        ([2, 4, 8, 8], [32, 4, 5, 3], 1, 1, true, true, false),
        ([2, 8, 8, 8], [16, 8, 5, 3], 1, 1, false, false, false),
        // 4 output blocks of 2 input blocks a subgroup: plain, with a bias, in several chunks
        // (each a whole kernel a thread), at stride 2 (a tap a thread).
        ([1, 8, 8, 8], [16, 8, 3, 3], 1, 1, false, false, false),
        ([2, 8, 8, 8], [16, 8, 3, 3], 1, 1, true, true, false),
        ([8, 7, 32, 32], [13, 7, 3, 3], 1, 1, false, true, false),
        ([2, 16, 16, 16], [16, 16, 3, 3], 2, 1, false, true, false),
        // The 1×1 weight gradient's lanes (weight_grad_partial4): 8 output blocks with a
        // partial input block through a ReLU, 16, 4 of 2 input blocks (partial on both
        // sides), each in one chunk straight into dw; then 8 and 4 in several chunks.
        ([2, 6, 8, 8], [32, 6, 1, 1], 1, 0, true, false, false),
        ([1, 8, 4, 8], [64, 8, 1, 1], 1, 0, false, false, false),
        ([2, 7, 8, 8], [13, 7, 1, 1], 1, 0, true, false, false),
        ([8, 16, 32, 32], [32, 16, 1, 1], 1, 0, false, false, false),
        ([8, 8, 32, 32], [16, 8, 1, 1], 1, 0, true, false, false),
    ];
    for (xs, ws, stride, pad, relu, bias, stats) in cases {
        let name = format!("x{xs:?} w{ws:?} s{stride} relu={relu} bias={bias} stats={stats}");
        let cfg = Conv2dCfg::new(stride, pad).relu_input(relu);
        let xv = f32s(&rng.vec(xs.iter().product()));
        let wv = f32s(&rng.vec(ws.iter().product()));
        let bv = f32s(&rng.vec(ws[0]));
        let c = f32s(&rng.vec(xs[0] * ws[0] * xs[2] * xs[3]));
        g.set_policy(own);
        let x = Tensor::from_slice(&g, &xs, &xv).unwrap().with_grad();
        let b = Tensor::parameter(&g, &[ws[0]], &bv).unwrap();
        let w = Tensor::weight_parameter(&g, &ws, &wv).unwrap();
        let bytes = ws.iter().product::<usize>() * 4;
        assert_eq!(w.buffer().uniform_window(), bytes <= 65_536, "{name}");
        // The statistics kernel runs where the batch norm would split (the GPU strategy).
        let strategy = if stats { Strategy::Gpu } else { Strategy::Cpu };
        let policy = |lanes| LaunchPolicy {
            lanes,
            ..LaunchPolicy::preset(strategy, own.max_storage_buffers)
        };
        let b = bias.then_some(&b);
        g.set_policy(policy(true));
        let broadcast = conv_with_weight(&g, (&x, &w, b, &c), cfg, stats);
        g.set_policy(policy(false));
        let per_lane = conv_with_weight(&g, (&x, &w, b, &c), cfg, stats);
        assert_same_values(&name, &["y", "dx", "dw", "db"], &broadcast, &per_lane);
    }
    g.set_strategy(None);
    // The broadcasts really ran: forward4 plain and flipped, gemm4, both statistics kernels.
    let with_lanes: Vec<_> = g
        .pipeline_variants()
        .into_iter()
        .filter(|v| v.constants.contains(&("LANES", 1)))
        .map(|v| (v.entry, v.constants.contains(&("FLIP", 1))))
        .collect();
    for want in [
        ("forward4", false),
        ("forward4", true),
        ("forward4_stats", false),
        ("gemm4", false),
        ("gemm4_stats", false),
        ("weight_partial4", false),
        ("weight_partial4_row3", false),
        ("weight_partial4_k3", false),
        ("weight_grad_partial4", false),
    ] {
        assert!(
            with_lanes.contains(&want),
            "{want:?} never ran with LANES = 1"
        );
    }
    for entry in [
        "weight_partial4",
        "weight_partial4_row3",
        "weight_partial4_k3",
        "weight_grad_partial4",
    ] {
        let four = g
            .pipeline_variants()
            .into_iter()
            .any(|v| v.entry == entry && v.constants.contains(&("OB", 4)));
        assert!(four, "{entry} never ran with 4 output blocks a subgroup");
    }
    // The whole-kernel form's aligned input quads (4 output blocks, column padding 1).
    let quads = g
        .pipeline_variants()
        .into_iter()
        .any(|v| v.entry == "weight_partial4_k3" && v.constants.contains(&("XQ", 1)));
    assert!(quads, "weight_partial4_k3 never ran with XQ = 1");
    // The 1×1 weight gradient's lanes both straight into dw and into partials.
    for direct in [true, false] {
        let ran = g.pipeline_variants().into_iter().any(|v| {
            v.entry == "weight_grad_partial4"
                && v.constants.contains(&("LANES", 1))
                && v.constants.contains(&("DIRECT", 1)) == direct
        });
        assert!(
            ran,
            "weight_grad_partial4 with LANES never ran with DIRECT = {direct}"
        );
    }
    let shared: Vec<_> = g
        .pipeline_variants()
        .into_iter()
        .filter(|v| v.file == "conv" && v.constants.contains(&("SHARE", 1)))
        .map(|v| (v.entry, v.constants.contains(&("FLIP", 1))))
        .collect();
    for want in [
        ("forward4", false),
        ("forward4", true),
        ("forward4_stats", false),
    ] {
        assert!(shared.contains(&want), "{want:?} never ran with SHARE = 1");
    }
}

/// Output and the gradients of x and every weight of a depthwise convolution (`w` = [dw]) or a
/// depthwise + 1×1 pair (`w` = [dw, pw], with `stats` through a batch norm), weighted by `c`.
fn depthwise_with_weights(
    g: &darts_minus::gpu::Gpu,
    x: &Tensor,
    w: &[Tensor],
    cfg: Conv2dCfg,
    (recompute, stats): (bool, bool),
    c: &[f32],
) -> Vec<Vec<f32>> {
    let mut tape = Tape::new(g);
    tape.set_recompute(recompute);
    let y = match w {
        [dw] => tape.conv2d(x, dw, None, cfg).unwrap(),
        [dw, pw] if stats => {
            let (y, st) = tape.dw_pw_with_stats(x, dw, cfg, pw).unwrap();
            assert!(st.is_some(), "dw_pw4_stats did not run");
            bn_with_stats(g, &mut tape, &y, st)
        }
        [dw, pw] => tape.dw_pw(x, dw, cfg, pw).unwrap(),
        _ => unreachable!(),
    };
    let ct = Tensor::from_slice(g, y.shape(), &c[..y.numel()]).unwrap();
    let weighted = tape.mul(&y, &ct).unwrap();
    let loss = tape.sum_all(&weighted).unwrap();
    let mut v = vec![y.to_vec().unwrap()];
    let grads = tape.backward(&loss).unwrap();
    for t in std::iter::once(x).chain(w) {
        v.push(grads.get(t).expect("a gradient").to_vec().unwrap());
    }
    v
}

/// The depthwise pipeline variants that ran with the pipeline constant `c`: (entry, K = 5,
/// FLIP).
fn depthwise_ran_with(
    g: &darts_minus::gpu::Gpu,
    c: (&str, u32),
) -> Vec<(&'static str, bool, bool)> {
    g.pipeline_variants()
        .into_iter()
        .filter(|v| v.file == "depthwise" && v.constants.contains(&c))
        .map(|v| {
            let has = |c| v.constants.contains(&c);
            (v.entry, has(("K", 5)), has(("FLIP", 1)))
        })
        .collect()
}

/// With lane broadcasts (CPU adapters with 8-lane subgroups) depthwise `forward4` and the
/// stride-2 input gradient `backward_input2` read their channel's K·K weights with 2 (K = 3)
/// or 4 (K = 5) loads a lane and broadcasts: the output and gradients (the stride-1 input
/// gradient is a flipped forward4) must equal the per-lane reads' bit for bit, with weights in a window or in storage, strides 1 and 2, dilation 2,
/// a folded ReLU, and channels whose strips leave most of a workgroup idle.
#[test]
fn depthwise_lane_broadcasts_match_per_lane_weight_reads() {
    let g = gpu();
    let Some(own) = lanes_policy(&g, "lane broadcasts") else {
        return;
    };
    let mut rng = Rng::new(73);
    // (x, k, stride, dilation, relu, weight in a window)
    type Case = ([usize; 4], usize, usize, usize, bool, bool);
    let cases: [Case; 10] = [
        ([2, 3, 8, 8], 3, 1, 1, false, true),
        ([1, 3, 8, 8], 3, 1, 1, true, false),
        ([2, 4, 8, 16], 5, 1, 2, true, true),
        ([2, 5, 12, 16], 5, 1, 1, false, false),
        ([1, 3, 8, 8], 3, 2, 1, true, true),
        ([2, 4, 16, 16], 3, 1, 2, false, true),
        ([2, 3, 8, 16], 5, 2, 1, false, false),
        // Neighbouring lanes' columns (SHARE): rows of 32 (two a subgroup) and 64 (one), and
        // rows of 24 (three strips: not shared).
        ([1, 2, 4, 32], 3, 1, 1, true, true),
        ([1, 2, 3, 64], 5, 1, 1, false, false),
        ([1, 2, 4, 24], 3, 1, 1, false, true),
    ];
    for (xs, k, stride, dil, relu, window) in cases {
        let name = format!("x{xs:?} k{k} s{stride} d{dil} relu={relu} window={window}");
        let c = xs[1];
        let cfg = Conv2dCfg::new(stride, dil * (k - 1) / 2)
            .dilation(dil)
            .groups(c)
            .relu_input(relu);
        let wv = f32s(&rng.vec(c * k * k));
        let xv = f32s(&rng.vec(xs.iter().product()));
        let cv = f32s(&rng.vec(xs.iter().product()));
        g.set_policy(own);
        let x = Tensor::from_slice(&g, &xs, &xv).unwrap().with_grad();
        let w = if window {
            Tensor::weight_parameter(&g, &[c, 1, k, k], &wv).unwrap()
        } else {
            Tensor::parameter(&g, &[c, 1, k, k], &wv).unwrap()
        };
        assert_eq!(w.buffer().uniform_window(), window, "{name}");
        let run = |lanes| {
            g.set_policy(LaunchPolicy { lanes, ..own });
            depthwise_with_weights(&g, &x, std::slice::from_ref(&w), cfg, (true, false), &cv)
        };
        let (broadcast, per_lane) = (run(true), run(false));
        assert_same_values(&name, &["y", "dx", "dw"], &broadcast, &per_lane);
    }
    g.set_strategy(None);
    let with_lanes = depthwise_ran_with(&g, ("LANES", 1));
    for want in [
        ("forward4", false, false),
        ("forward4", false, true),
        ("forward4", true, false),
        ("forward4", true, true),
        ("backward_input2", false, false),
        ("backward_input2", true, false),
    ] {
        let msg = "(entry, K = 5, FLIP) never ran with LANES = 1";
        assert!(with_lanes.contains(&want), "{want:?} {msg}");
    }
    // The fused depthwise + 1×1 dw_pw4 (and dw_pw4_stats, where batch norm would split its
    // reductions: the GPU strategy's policy) with shared columns against without: keeping the
    // intermediate or recomputing it, rows of 16, 32 (two a subgroup) and 64 (one).
    // (x, k, dilation, 1×1 outputs, recompute, stats)
    type Fused = ([usize; 4], usize, usize, usize, bool, bool);
    let fused: [Fused; 4] = [
        ([2, 4, 8, 16], 3, 1, 6, true, false),
        ([2, 3, 32, 32], 5, 1, 8, false, true),
        ([2, 2, 8, 64], 3, 2, 4, false, false),
        ([2, 4, 32, 32], 5, 2, 12, true, true),
    ];
    for (xs, k, dil, co, recompute, stats) in fused {
        let name = format!("dw_pw x{xs:?} k{k} d{dil} co{co} recompute={recompute} stats={stats}");
        let c = xs[1];
        let cfg = Conv2dCfg::new(1, dil * (k - 1) / 2)
            .dilation(dil)
            .groups(c)
            .relu_input(true);
        let xv = f32s(&rng.vec(xs.iter().product()));
        let cv = f32s(&rng.vec(xs[0] * co * xs[2] * xs[3]));
        g.set_policy(own);
        let x = Tensor::from_slice(&g, &xs, &xv).unwrap().with_grad();
        let w = [
            Tensor::weight_parameter(&g, &[c, 1, k, k], &f32s(&rng.vec(c * k * k))).unwrap(),
            Tensor::weight_parameter(&g, &[co, c, 1, 1], &f32s(&rng.vec(co * c))).unwrap(),
        ];
        let strategy = if stats { Strategy::Gpu } else { Strategy::Cpu };
        let run = |lanes| {
            g.set_policy(LaunchPolicy {
                lanes,
                ..LaunchPolicy::preset(strategy, own.max_storage_buffers)
            });
            depthwise_with_weights(&g, &x, &w, cfg, (recompute, stats), &cv)
        };
        let (shared, own_loads) = (run(true), run(false));
        assert_same_values(&name, &["y", "dx", "dw", "pw"], &shared, &own_loads);
    }
    g.set_strategy(None);
    let shared = depthwise_ran_with(&g, ("SHARE", 1));
    for want in [
        ("forward4", false, false),
        ("forward4", false, true),
        ("forward4", true, false),
        ("forward4", true, true),
        ("dw_pw4", false, false),
        ("dw_pw4_stats", true, false),
    ] {
        let msg = "(entry, K = 5, FLIP) never ran with SHARE = 1";
        assert!(shared.contains(&want), "{want:?} {msg}");
    }
}

/// On 8-lane subgroups the 3×3, stride-1 poolings over rows of 4 to 32 values (`strip3`: max,
/// avg, both in one pass, with their statistics, and max's argmax in backward; and max's and
/// avg's backwards) take the columns either side of a lane's own from its neighbouring lanes
/// (SHARE): outputs and the
/// input gradient must equal, bit for bit, every lane loading its own, with ties for the
/// maximum, rows of 4, 8, 16 and 32, half a subgroup idle, and rows of 64 (not shared).
#[test]
fn pool_shared_columns_match_own_loads() {
    let g = gpu();
    let Some(own) = lanes_policy(&g, "shared columns") else {
        return;
    };
    let mut rng = Rng::new(79);
    // (x, with statistics)
    let cases: [([usize; 4], bool); 6] = [
        ([2, 3, 8, 8], false),
        ([1, 2, 4, 32], false),
        ([2, 2, 16, 16], true),
        ([1, 3, 3, 4], false),
        ([1, 1, 2, 4], false),
        ([1, 2, 4, 64], false),
    ];
    for (xs, stats) in cases {
        let name = format!("x{xs:?} stats={stats}");
        let numel: usize = xs.iter().product();
        // Quarters, so that windows hold equal maxima (the first in row-major order wins).
        let xv: Vec<f32> = f32s(&rng.vec(numel))
            .iter()
            .map(|v| (v * 4.0).round() / 4.0)
            .collect();
        let cs: Vec<Vec<f32>> = (0..4).map(|_| f32s(&rng.vec(numel))).collect();
        let run = |lanes| -> Vec<Vec<f32>> {
            let strategy = if stats { Strategy::Gpu } else { Strategy::Cpu };
            g.set_policy(LaunchPolicy {
                lanes,
                forced_split: stats.then_some(2),
                ..LaunchPolicy::preset(strategy, own.max_storage_buffers)
            });
            let x = Tensor::from_slice(&g, &xs, &xv).unwrap().with_grad();
            let mut t = Tape::new(&g);
            let cfg = PoolCfg::new(3, 1, 1);
            let m = t.max_pool2d(&x, cfg).unwrap();
            let a = t.avg_pool2d(&x, cfg).unwrap();
            let (m2, a2) = if stats {
                let (m2, a2, st) = t.max_avg_pool2d_with_stats(&x, cfg).unwrap();
                assert!(st.is_some(), "{name}: maxavg3_forward4_stats did not run");
                (m2, a2)
            } else {
                t.max_avg_pool2d(&x, cfg).unwrap()
            };
            let outs = [&m, &a, &m2, &a2];
            let mut weighted = Vec::new();
            for (o, c) in outs.iter().zip(&cs) {
                let ct = Tensor::from_slice(&g, o.shape(), c).unwrap();
                weighted.push(t.mul(o, &ct).unwrap());
            }
            let total = t.sum(&weighted.iter().collect::<Vec<_>>()).unwrap();
            let loss = t.sum_all(&total).unwrap();
            let mut v: Vec<Vec<f32>> = outs.iter().map(|o| o.to_vec().unwrap()).collect();
            let grads = t.backward(&loss).unwrap();
            v.push(grads.get(&x).expect("a gradient").to_vec().unwrap());
            v
        };
        let names = ["max", "avg", "max (pair)", "avg (pair)", "dx"];
        assert_same_values(&name, &names, &run(true), &run(false));
    }
    g.set_strategy(None);
    let shared: Vec<_> = g
        .pipeline_variants()
        .into_iter()
        .filter(|v| {
            v.file == "pool"
                && (v.constants.contains(&("SHARE", 1)) || v.entry.ends_with("_shared"))
        })
        .map(|v| v.entry)
        .collect();
    for want in [
        "max3_forward4",
        "avg3_forward4",
        "max3_argmax4",
        "maxavg3_forward4",
        "maxavg3_forward4_stats",
        "max3_backward4_shared",
        "avg3_backward4_shared",
    ] {
        assert!(shared.contains(&want), "{want} never ran with SHARE = 1");
    }
}

/// Depthwise weights (and the 1×1 weight after them) live in uniform windows on CPU adapters
/// too: depthwise `forward4` (forward, and the stride-1 input gradient as a flipped forward4)
/// and the fused `dw_pw4` (plain, keeping its intermediate, writing statistics) must give,
/// bit for bit, what plain storage copies of the same weights give.
#[test]
fn depthwise_weights_read_from_a_uniform_window_match_storage() {
    let g = gpu();
    let mut rng = Rng::new(62);
    // (x, k, stride, dilation, relu, with a 1×1 after it, recompute, stats)
    type Case = ([usize; 4], usize, usize, usize, bool, bool, bool, bool);
    let cases: [Case; 7] = [
        ([2, 3, 8, 8], 3, 1, 1, false, false, true, false),
        ([2, 4, 8, 16], 5, 1, 2, true, false, true, false),
        ([1, 3, 8, 8], 3, 2, 1, true, false, true, false),
        ([2, 3, 8, 8], 3, 1, 1, true, true, true, false),
        ([2, 5, 8, 8], 5, 1, 2, true, true, false, false),
        ([1, 4, 8, 8], 3, 2, 1, true, true, true, false),
        ([2, 3, 32, 32], 3, 1, 1, true, true, true, true),
    ];
    for (xs, k, stride, dil, relu, pw, recompute, stats) in cases {
        let name = format!(
            "x{xs:?} k{k} s{stride} d{dil} relu={relu} pw={pw} recompute={recompute} stats={stats}"
        );
        let c = xs[1];
        let cfg = Conv2dCfg::new(stride, dil * (k - 1) / 2)
            .dilation(dil)
            .groups(c)
            .relu_input(relu);
        assert!(cfg.reads_weight_uniformly(c), "{name}");
        let mut shapes = vec![vec![c, 1, k, k]];
        if pw {
            shapes.push(vec![c + 2, c, 1, 1]);
        }
        let values: Vec<Vec<f32>> = shapes
            .iter()
            .map(|s| f32s(&rng.vec(s.iter().product())))
            .collect();
        let xv = f32s(&rng.vec(xs.iter().product()));
        let cv = f32s(&rng.vec(xs[0] * (c + 2) * xs[2] * xs[3]));
        g.set_strategy(Some(Strategy::Cpu));
        let x = Tensor::from_slice(&g, &xs, &xv).unwrap().with_grad();
        let windows: Vec<Tensor> = shapes
            .iter()
            .zip(&values)
            .map(|(s, v)| Tensor::weight_parameter(&g, s, v).unwrap())
            .collect();
        let storage: Vec<Tensor> = shapes
            .iter()
            .zip(&values)
            .map(|(s, v)| Tensor::parameter(&g, s, v).unwrap())
            .collect();
        assert!(
            windows.iter().all(|w| w.buffer().uniform_window()),
            "{name}"
        );
        g.set_strategy(Some(if stats { Strategy::Gpu } else { Strategy::Cpu }));
        let a = depthwise_with_weights(&g, &x, &windows, cfg, (recompute, stats), &cv);
        let s = depthwise_with_weights(&g, &x, &storage, cfg, (recompute, stats), &cv);
        assert_eq!(a.len(), 2 + shapes.len(), "{name}");
        assert_same_values(&name, &["y", "dx", "d(dw)", "d(pw)"], &a, &s);
    }
    g.set_strategy(None);
}
