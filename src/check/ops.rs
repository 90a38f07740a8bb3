//! The op checks `darts-minus check` runs: every op of the tape (and the DARTS fusions above
//! it) on small awkward shapes, forward against the CPU f64 reference and gradients against
//! finite differences, under both launch strategies where they pick different kernels. The
//! test suite's `tests/ops.rs` covers more shapes on the same harness.

use super::reference::{self as cpu, Shape4};
use super::{op_check, Check, CheckLine, CpuOp, GpuOp, Input, Rng, Tolerance};
use crate::autodiff::{BnState, Conv2dCfg, Labels, PoolCfg, SliceCfg, Tape, Tensor};
use crate::error::Result;
use crate::gpu::{Gpu, Strategy};
use crate::nn::mixed::{MixedSums, SumTerm};

const TOLS: (Tolerance, Tolerance) = (Tolerance::FORWARD, Tolerance::GRADIENT);

fn s4(s: &[usize]) -> Shape4 {
    Shape4(s[0], s[1], s[2], s[3])
}

/// Random differentiable inputs of these shapes.
fn inputs(seed: u64, shapes: &[&[usize]]) -> Vec<Input> {
    let mut rng = Rng::new(seed);
    shapes
        .iter()
        .map(|s| Input::random(&mut rng, s, true))
        .collect()
}

/// A constant (non-differentiable) input.
fn constant(shape: &[usize], data: Vec<f64>) -> Input {
    Input {
        shape: shape.to_vec(),
        data,
        diff: false,
    }
}

/// The check under both launch strategies (their kernels differ): lines named `… [cpu]` and
/// `… [gpu]`.
fn both(gpu: &Gpu, name: &str, inputs: &[Input], cpu_op: CpuOp, gpu_op: GpuOp) -> Lines {
    both_within(gpu, name, inputs, cpu_op, gpu_op, TOLS)
}

fn both_within(
    gpu: &Gpu,
    name: &str,
    inputs: &[Input],
    cpu_op: CpuOp,
    gpu_op: GpuOp,
    tols: (Tolerance, Tolerance),
) -> Lines {
    let mut lines = Vec::new();
    for (strategy, tag) in [(Strategy::Cpu, "cpu"), (Strategy::Gpu, "gpu")] {
        gpu.set_strategy(Some(strategy));
        let name = format!("{name} [{tag} strategy]");
        lines.extend(op_check(gpu, &name, inputs, cpu_op, gpu_op, tols)?);
    }
    gpu.set_strategy(None);
    Ok(lines)
}

type Lines = Result<Vec<CheckLine>>;

/// conv2d(relu?(x), w) (+ b) against the CPU reference, both strategies.
fn conv(
    gpu: &Gpu,
    name: &str,
    xs: [usize; 4],
    ws: [usize; 4],
    bias: bool,
    cfg: Conv2dCfg,
) -> Lines {
    let mut shapes: Vec<&[usize]> = vec![&xs, &ws];
    let bs = [ws[0]];
    if bias {
        shapes.push(&bs);
    }
    let ins = inputs(xs.iter().sum::<usize>() as u64 + ws[0] as u64, &shapes);
    let cpu_op = |v: &[Vec<f64>]| {
        let x: Vec<f64> = if cfg.relu_input {
            v[0].iter().map(|&a| a.max(0.0)).collect()
        } else {
            v[0].clone()
        };
        let b = v.get(2).map(|b| b.as_slice());
        let (s, p, d, g) = (cfg.stride, cfg.padding, cfg.dilation, cfg.groups);
        cpu::conv2d(&x, s4(&xs), &v[1], s4(&ws), b, s, p, d, g).0
    };
    let gpu_op = |t: &mut Tape, v: &[Tensor]| t.conv2d(&v[0], &v[1], v.get(2), cfg);
    both(gpu, name, &ins, &cpu_op, &gpu_op)
}

fn conv_dense(gpu: &Gpu) -> Lines {
    let mut l = conv(
        gpu,
        "conv2d dense 3×3 + bias",
        [2, 3, 7, 5],
        [4, 3, 3, 3],
        true,
        Conv2dCfg::new(1, 1),
    )?;
    let cfg = Conv2dCfg::new(1, 4).dilation(2);
    l.extend(conv(
        gpu,
        "conv2d dense 5×5 dilation 2",
        [1, 2, 9, 10],
        [3, 2, 5, 5],
        false,
        cfg,
    )?);
    Ok(l)
}

fn conv_dense_rows4(gpu: &Gpu) -> Lines {
    let mut l = conv(
        gpu,
        "conv2d dense rows of 4 + bias",
        [2, 5, 5, 8],
        [6, 5, 3, 3],
        true,
        Conv2dCfg::new(1, 1),
    )?;
    let cfg = Conv2dCfg::new(2, 1).relu_input(true);
    l.extend(conv(
        gpu,
        "conv2d(relu x) dense rows of 4, stride 2",
        [2, 3, 6, 8],
        [4, 3, 3, 3],
        false,
        cfg,
    )?);
    Ok(l)
}

fn conv_pointwise(gpu: &Gpu) -> Lines {
    let cfg = Conv2dCfg::new(1, 0).relu_input(true);
    let mut l = conv(
        gpu,
        "conv2d(relu x) 1×1",
        [2, 5, 4, 4],
        [20, 5, 1, 1],
        false,
        cfg,
    )?;
    l.extend(conv(
        gpu,
        "conv2d 1×1 odd plane",
        [3, 5, 5, 3],
        [6, 5, 1, 1],
        false,
        Conv2dCfg::new(1, 0),
    )?);
    l.extend(conv(
        gpu,
        "conv2d 1×1 stride 2",
        [2, 4, 7, 7],
        [2, 4, 1, 1],
        false,
        Conv2dCfg::new(2, 0),
    )?);
    Ok(l)
}

fn conv_depthwise(gpu: &Gpu) -> Lines {
    let cfg = Conv2dCfg::new(1, 1).groups(3).relu_input(true);
    let mut l = conv(
        gpu,
        "depthwise(relu x) 3×3",
        [2, 3, 6, 5],
        [3, 1, 3, 3],
        false,
        cfg,
    )?;
    let cfg = Conv2dCfg::new(2, 2).groups(2);
    l.extend(conv(
        gpu,
        "depthwise 5×5 stride 2, rows of 4",
        [2, 2, 7, 16],
        [2, 1, 5, 5],
        false,
        cfg,
    )?);
    let cfg = Conv2dCfg::new(1, 2).dilation(2).groups(3);
    l.extend(conv(
        gpu,
        "depthwise 3×3 dilation 2, rows of 4",
        [2, 3, 5, 8],
        [3, 1, 3, 3],
        false,
        cfg,
    )?);
    Ok(l)
}

/// pw(dw(relu x)) as one node, its depthwise output recomputed in the backward or kept.
fn dw_pw(gpu: &Gpu) -> Lines {
    let (xs, c, k) = ([2, 2, 6, 8], 2, 3);
    let ins = inputs(45, &[&xs, &[c, 1, k, k], &[c + 1, c, 1, 1]]);
    let cfg = Conv2dCfg::new(1, 2).dilation(2).groups(c).relu_input(true);
    let cpu_op = |v: &[Vec<f64>]| {
        let r: Vec<f64> = v[0].iter().map(|&a| a.max(0.0)).collect();
        let (mid, ms) = cpu::conv2d(&r, s4(&xs), &v[1], Shape4(c, 1, k, k), None, 1, 2, 2, c);
        cpu::conv2d(&mid, ms, &v[2], Shape4(c + 1, c, 1, 1), None, 1, 0, 1, 1).0
    };
    let mut l = Vec::new();
    for recompute in [true, false] {
        let gpu_op = |t: &mut Tape, v: &[Tensor]| {
            t.set_recompute(recompute);
            t.dw_pw(&v[0], &v[1], cfg, &v[2])
        };
        let name = format!("dw_pw (relu, dilation 2), recompute={recompute}");
        l.extend(both(gpu, &name, &ins, &cpu_op, &gpu_op)?);
    }
    Ok(l)
}

fn pools(gpu: &Gpu) -> Lines {
    let mut l = Vec::new();
    let cases = [
        ("max pool 3×3", [2, 3, 5, 8], 3, 1, 1, true),
        ("max pool 3×3 stride 2", [1, 2, 9, 7], 3, 2, 1, true),
        (
            "avg pool 3×3 (padding excluded)",
            [2, 3, 6, 12],
            3,
            1,
            1,
            false,
        ),
        ("avg pool 3×3 stride 2", [1, 1, 7, 9], 3, 2, 1, false),
        ("avg pool 2×2 stride 2", [2, 2, 8, 6], 2, 2, 0, false),
    ];
    for (i, (name, xs, k, s, p, max)) in cases.into_iter().enumerate() {
        let ins = inputs(20 + i as u64, &[&xs]);
        let cpu_op = |v: &[Vec<f64>]| cpu::pool2d(&v[0], s4(&xs), k, s, p, max).0;
        let cfg = PoolCfg::new(k, s, p);
        let gpu_op = |t: &mut Tape, v: &[Tensor]| {
            if max {
                t.max_pool2d(&v[0], cfg)
            } else {
                t.avg_pool2d(&v[0], cfg)
            }
        };
        l.extend(op_check(gpu, name, &ins, &cpu_op, &gpu_op, TOLS)?);
    }
    // Both 3×3 poolings of one input in one launch (a mixed edge's pooling candidates).
    let xs = [2, 3, 6, 8];
    let ins = inputs(63, &[&xs]);
    let cpu_op = |v: &[Vec<f64>]| {
        let m = cpu::pool2d(&v[0], s4(&xs), 3, 1, 1, true).0;
        let a = cpu::pool2d(&v[0], s4(&xs), 3, 1, 1, false).0;
        m.iter().zip(&a).map(|(m, a)| m + 2.0 * a).collect()
    };
    let gpu_op = |t: &mut Tape, v: &[Tensor]| {
        let (m, a) = t.max_avg_pool2d(&v[0], PoolCfg::new(3, 1, 1))?;
        let a2 = t.scale(&a, 2.0)?;
        t.sum(&[&m, &a2])
    };
    l.extend(both(
        gpu,
        "max + 2·avg pool in one launch",
        &ins,
        &cpu_op,
        &gpu_op,
    )?);
    let xs = [3, 2, 5, 3];
    let ins = inputs(26, &[&xs]);
    let cpu_op = |v: &[Vec<f64>]| cpu::global_avg(&v[0], s4(&xs));
    let gpu_op = |t: &mut Tape, v: &[Tensor]| t.global_avg_pool(&v[0]);
    l.extend(op_check(
        gpu,
        "global avg pool",
        &ins,
        &cpu_op,
        &gpu_op,
        TOLS,
    )?);
    Ok(l)
}

/// Train- and eval-mode batch norm, affine and plain; the per-channel reductions in one
/// workgroup, in one thread (CPU strategy, small channels) and split over workgroups.
fn batch_norm(gpu: &Gpu) -> Lines {
    let mut l = Vec::new();
    let xs = [2, 3, 5, 4];
    let c = xs[1];
    let mut rng = Rng::new(70);
    let mut ins = vec![Input::random(&mut rng, &xs, true)];
    ins.push(constant(&[c], rng.vec(c)));
    ins.push(constant(
        &[c],
        (0..c)
            .map(|_| rng.uniform(0.5, 2.0) as f32 as f64)
            .collect(),
    ));
    ins.push(Input::random(&mut rng, &[c], true));
    ins.push(Input::random(&mut rng, &[c], true));
    for train in [true, false] {
        let cpu_op = |v: &[Vec<f64>]| {
            let affine = Some((v[3].as_slice(), v[4].as_slice()));
            if train {
                cpu::batch_norm_train(&v[0], s4(&xs), affine, 1e-5).0
            } else {
                cpu::batch_norm_eval(&v[0], s4(&xs), affine, &v[1], &v[2], 1e-5)
            }
        };
        let gpu_op = |t: &mut Tape, v: &[Tensor]| {
            // Fresh running statistics: the forward pass updates them in train mode.
            let rm = Tensor::from_slice(t.gpu(), &[c], &super::f32s(&ins[1].data))?;
            let rv = Tensor::from_slice(t.gpu(), &[c], &super::f32s(&ins[2].data))?;
            let state = BnState {
                running_mean: &rm,
                running_var: &rv,
                momentum: 0.1,
                eps: 1e-5,
            };
            t.batch_norm(&v[0], Some((&v[3], &v[4])), state, train)
        };
        let mode = if train { "train" } else { "eval" };
        l.extend(both(
            gpu,
            &format!("batch norm ({mode}, affine)"),
            &ins,
            &cpu_op,
            &gpu_op,
        )?);
        if train {
            gpu.set_channel_split(Some(2));
            let name = "batch norm (train, affine), reductions split over 2 workgroups";
            l.extend(op_check(gpu, name, &ins, &cpu_op, &gpu_op, TOLS)?);
            gpu.set_channel_split(None);
        }
    }
    Ok(l)
}

fn elementwise(gpu: &Gpu) -> Lines {
    let mut l = Vec::new();
    let s = [2, 3, 4, 5];
    let ins = inputs(40, &[&s]);
    let cpu_op = |v: &[Vec<f64>]| v[0].iter().map(|x| x.max(0.0)).collect();
    let gpu_op = |t: &mut Tape, v: &[Tensor]| t.relu(&v[0]);
    l.extend(op_check(gpu, "relu", &ins, &cpu_op, &gpu_op, TOLS)?);
    let ins = inputs(41, &[&s, &s, &s]);
    let cpu_op = |v: &[Vec<f64>]| {
        (0..v[0].len())
            .map(|i| v[0][i] + v[1][i] * v[2][i])
            .collect()
    };
    let gpu_op = |t: &mut Tape, v: &[Tensor]| {
        let m = t.mul(&v[1], &v[2])?;
        t.sum(&[&v[0], &m])
    };
    l.extend(op_check(gpu, "sum and mul", &ins, &cpu_op, &gpu_op, TOLS)?);
    let mut ins = inputs(44, &[&[3, 2, 5, 5]]);
    ins.push(constant(&[3], vec![0.5, -1.25, 3.0]));
    let cpu_op = |v: &[Vec<f64>]| v[0].iter().map(|x| -2.5 * x * v[1][1]).collect();
    let gpu_op = |t: &mut Tape, v: &[Tensor]| {
        let y = t.scale_by(&v[0], &v[1], 1)?;
        t.scale(&y, -2.5)
    };
    l.extend(op_check(
        gpu,
        "scale, and scale by a GPU scalar",
        &ins,
        &cpu_op,
        &gpu_op,
        TOLS,
    )?);
    let mut ins = inputs(55, &[&[3, 2, 3, 5]]);
    ins.push(constant(&[3], vec![0.0, 1.25, 2.5]));
    let cpu_op = |v: &[Vec<f64>]| {
        v[0].iter()
            .enumerate()
            .map(|(i, x)| x * v[1][i / 30])
            .collect()
    };
    let gpu_op = |t: &mut Tape, v: &[Tensor]| t.scale_rows(&v[0], &v[1]);
    l.extend(op_check(
        gpu,
        "scale rows (drop path)",
        &ins,
        &cpu_op,
        &gpu_op,
        TOLS,
    )?);
    let ins = inputs(46, &[&[3001]]);
    let cpu_op = |v: &[Vec<f64>]| vec![v[0].iter().sum()];
    let gpu_op = |t: &mut Tape, v: &[Tensor]| t.sum_all(&v[0]);
    l.extend(op_check(gpu, "sum of all", &ins, &cpu_op, &gpu_op, TOLS)?);
    Ok(l)
}

fn layout(gpu: &Gpu) -> Lines {
    let mut l = Vec::new();
    let (a, b) = ([2, 1, 3, 4], [2, 3, 3, 4]);
    let ins = inputs(47, &[&a, &b]);
    let cpu_op = |v: &[Vec<f64>]| cpu::concat(&[(&v[0], s4(&a)), (&v[1], s4(&b))]).0;
    let gpu_op = |t: &mut Tape, v: &[Tensor]| t.concat(&[&v[0], &v[1]]);
    l.extend(both(gpu, "concat", &ins, &cpu_op, &gpu_op)?);
    let s = [2, 2, 7, 6];
    let ins = inputs(48, &[&s]);
    for (offset, stride) in [(1, 1), (1, 2)] {
        let cpu_op = |v: &[Vec<f64>]| cpu::slice2d(&v[0], s4(&s), offset, stride).0;
        let gpu_op = |t: &mut Tape, v: &[Tensor]| t.slice2d(&v[0], SliceCfg { offset, stride });
        let name = format!("slice x[:, :, {offset}::{stride}, {offset}::{stride}]");
        l.extend(both(gpu, &name, &ins, &cpu_op, &gpu_op)?);
    }
    let ins = inputs(50, &[&[2, 3, 1, 1]]);
    let cpu_op = |v: &[Vec<f64>]| v[0].clone();
    let gpu_op = |t: &mut Tape, v: &[Tensor]| t.reshape(&v[0], &[2, 3]);
    l.extend(op_check(gpu, "reshape", &ins, &cpu_op, &gpu_op, TOLS)?);
    Ok(l)
}

fn classifier(gpu: &Gpu) -> Lines {
    let mut l = Vec::new();
    let mut rng = Rng::new(51);
    let ins = vec![Input {
        shape: vec![14, 8],
        data: rng.vec(112).iter().map(|x| 3.0 * x).collect(),
        diff: true,
    }];
    let cpu_op = |v: &[Vec<f64>]| cpu::softmax_rows(&v[0], 8);
    let gpu_op = |t: &mut Tape, v: &[Tensor]| t.softmax_rows(&v[0]);
    l.extend(op_check(gpu, "row softmax", &ins, &cpu_op, &gpu_op, TOLS)?);
    let ins = inputs(52, &[&[5, 7], &[3, 7], &[3]]);
    let cpu_op = |v: &[Vec<f64>]| cpu::linear(&v[0], 5, 7, &v[1], 3, Some(&v[2]));
    let gpu_op = |t: &mut Tape, v: &[Tensor]| t.linear(&v[0], &v[1], Some(&v[2]));
    l.extend(op_check(gpu, "linear", &ins, &cpu_op, &gpu_op, TOLS)?);
    let labels: Vec<u32> = (0..6).map(|_| rng.below(10)).collect();
    let ins = vec![Input {
        shape: vec![6, 10],
        data: rng.vec(60).iter().map(|x| 4.0 * x).collect(),
        diff: true,
    }];
    let cpu_op = |v: &[Vec<f64>]| vec![cpu::cross_entropy(&v[0], 10, &labels)];
    let gpu_op = |t: &mut Tape, v: &[Tensor]| {
        let l = Labels::new(t.gpu(), &labels)?;
        t.cross_entropy(&v[0], &l)
    };
    l.extend(op_check(
        gpu,
        "cross entropy",
        &ins,
        &cpu_op,
        &gpu_op,
        TOLS,
    )?);
    Ok(l)
}

/// The mixed edge's fusions: Σ_k α[row, k]·y_k, and the same over batch-normed terms.
fn mixed(gpu: &Gpu) -> Lines {
    let mut l = Vec::new();
    let s = [2, 3, 4, 4];
    let ins = inputs(45, &[&s, &s, &s, &[2, 4]]);
    let cpu_op = |v: &[Vec<f64>]| {
        (0..v[0].len())
            .map(|i| (0..3).map(|k| v[3][5 + k] * v[k][i]).sum())
            .collect()
    };
    let gpu_op =
        |t: &mut Tape, v: &[Tensor]| t.weighted_sum(&[&v[0], &v[1], &v[2]], &v[3], &[5, 6, 7]);
    l.extend(both(
        gpu,
        "mixed edge weighted sum",
        &ins,
        &cpu_op,
        &gpu_op,
    )?);
    // Terms (input, batch-normed, table, index): tables are inputs 4 (α, 2×5) and 5 (β).
    let plan = [
        (0, true, 4, 5),
        (1, false, 4, 6),
        (2, true, 4, 7),
        (3, false, 5, 1),
    ];
    let ins = inputs(66, &[&s, &s, &s, &s, &[2, 5], &[3]]);
    let cpu_op = |v: &[Vec<f64>]| {
        let ys: Vec<Vec<f64>> = plan
            .iter()
            .map(|&(k, bn, _, _)| match bn {
                true => cpu::batch_norm_train(&v[k], s4(&s), None, 1e-5).0,
                false => v[k].clone(),
            })
            .collect();
        (0..v[0].len())
            .map(|i| {
                plan.iter()
                    .zip(&ys)
                    .map(|(&(_, _, tab, idx), y)| v[tab][idx] * y[i])
                    .sum()
            })
            .collect()
    };
    let gpu_op = |t: &mut Tape, v: &[Tensor]| {
        let stats: Vec<Tensor> = (0..8)
            .map(|_| Tensor::zeros(t.gpu(), &[s[1]]))
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
    };
    // Sums of up to four unit-variance terms: the forward's absolute part scaled to them.
    let tols = (Tolerance::FORWARD.scaled(&[4.0]), Tolerance::GRADIENT);
    let name = "mixed edge normalised sum";
    l.extend(both_within(gpu, name, &ins, &cpu_op, &gpu_op, tols)?);
    Ok(l)
}

pub(super) fn checks() -> Vec<Check> {
    let op = |name, run| Check {
        name,
        kind: "op",
        run,
    };
    vec![
        op("conv2d dense", conv_dense as fn(&Gpu) -> Lines),
        op("conv2d dense rows of 4", conv_dense_rows4),
        op("conv2d 1×1", conv_pointwise),
        op("conv2d depthwise", conv_depthwise),
        op("dw_pw", dw_pw),
        op("pooling", pools),
        op("batch norm", batch_norm),
        op("elementwise", elementwise),
        op("layout", layout),
        op("classifier", classifier),
        op("mixed edge sums", mixed),
    ]
}
