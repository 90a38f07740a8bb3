//! The op checks `darts-minus check` runs: every op of the tape (and the DARTS fusions above
//! it) on small awkward shapes, forward against the CPU f64 reference and gradients against
//! finite differences, under both launch strategies where they pick different kernels. The
//! test suite's `tests/ops.rs` covers more shapes on the same harness.

use super::reference::{self as cpu, Shape4};
use super::{f32s, op_check, Check, CheckLine, CpuOp, GpuOp, Input, Rng, Tolerance};
use crate::autodiff::{BnState, Conv2dCfg, Labels, PoolCfg, SliceCfg, Tape, Tensor};
use crate::error::Result;
use crate::gpu::{Gpu, LaunchPolicy, Strategy};
use crate::nn::mixed::{MixedSums, SumTerm};

type Lines = Result<Vec<CheckLine>>;

fn s4(s: &[usize]) -> Shape4 {
    Shape4(s[0], s[1], s[2], s[3])
}

/// Random inputs of these shapes, differentiable.
fn inputs(seed: u64, shapes: &[&[usize]]) -> Vec<Input> {
    let mut rng = Rng::new(seed);
    let random = |s: &&[usize]| Input::random(&mut rng, s, true);
    shapes.iter().map(random).collect()
}

/// A constant (non-differentiable) input.
fn constant(shape: &[usize], data: Vec<f64>) -> Input {
    let shape = shape.to_vec();
    Input {
        shape,
        data,
        diff: false,
    }
}

fn relu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&a| a.max(0.0)).collect()
}

/// The lines of one check's cases on one GPU.
struct Cases<'g> {
    gpu: &'g Gpu,
    tols: (Tolerance, Tolerance),
    lines: Vec<CheckLine>,
}

impl<'g> Cases<'g> {
    fn new(gpu: &'g Gpu) -> Self {
        let tols = (Tolerance::FORWARD, Tolerance::GRADIENT);
        Cases {
            gpu,
            tols,
            lines: Vec::new(),
        }
    }

    /// A case under the adapter's own launch strategy.
    fn one(&mut self, name: &str, ins: &[Input], cpu: CpuOp, op: GpuOp) -> Result<&mut Self> {
        let lines = op_check(self.gpu, name, ins, cpu, op, self.tols)?;
        self.lines.extend(lines);
        Ok(self)
    }

    /// A case under both launch strategies (their kernels differ): `… [cpu strategy]`, `…
    /// [gpu strategy]`.
    fn both(&mut self, name: &str, ins: &[Input], cpu: CpuOp, op: GpuOp) -> Result<&mut Self> {
        let gpu = self.gpu;
        for (strategy, tag) in [(Strategy::Cpu, "cpu"), (Strategy::Gpu, "gpu")] {
            gpu.set_strategy(Some(strategy));
            let r = self
                .one(&format!("{name} [{tag} strategy]"), ins, cpu, op)
                .map(|_| ());
            gpu.set_strategy(None);
            r?;
        }
        Ok(self)
    }

    fn done(&mut self) -> Lines {
        Ok(std::mem::take(&mut self.lines))
    }
}

/// A convolution case: (name, x shape, weight shape, bias, [stride, padding, dilation, groups,
/// relu folded in]).
type ConvCase = (&'static str, [usize; 4], [usize; 4], bool, [usize; 5]);

/// The convolution cases:
/// dense on odd and on rows-of-4 shapes, 1×1 (GEMM), depthwise, dilated, strided.
#[rustfmt::skip]
const CONVS: [ConvCase; 9] = [
    ("conv2d dense 3×3 + bias", [2, 3, 7, 5], [4, 3, 3, 3], true, [1, 1, 1, 1, 0]),
    ("conv2d dense 5×5, dilation 2", [1, 2, 9, 10], [3, 2, 5, 5], false, [1, 4, 2, 1, 0]),
    ("conv2d dense rows of 4 + bias", [2, 5, 5, 8], [6, 5, 3, 3], true, [1, 1, 1, 1, 0]),
    ("conv2d(relu) dense rows of 4 s2", [2, 3, 6, 8], [4, 3, 3, 3], false, [2, 1, 1, 1, 1]),
    ("conv2d(relu) 1×1", [2, 5, 4, 4], [20, 5, 1, 1], false, [1, 0, 1, 1, 1]),
    ("conv2d 1×1 odd plane, stride 2", [3, 5, 7, 7], [6, 5, 1, 1], false, [2, 0, 1, 1, 0]),
    ("depthwise(relu) 3×3", [2, 3, 6, 5], [3, 1, 3, 3], false, [1, 1, 1, 3, 1]),
    ("depthwise 5×5 s2, rows of 4", [2, 2, 7, 16], [2, 1, 5, 5], false, [2, 2, 1, 2, 0]),
    ("depthwise 3×3 d2, rows of 4", [2, 3, 5, 8], [3, 1, 3, 3], false, [1, 2, 2, 3, 0]),
];

fn convolutions(gpu: &Gpu) -> Lines {
    let mut cases = Cases::new(gpu);
    for (i, (name, xs, ws, bias, [s, p, d, g, r])) in CONVS.into_iter().enumerate() {
        let cfg = Conv2dCfg::new(s, p)
            .dilation(d)
            .groups(g)
            .relu_input(r == 1);
        let bs = [ws[0]];
        let shapes: &[&[usize]] = if bias { &[&xs, &ws, &bs] } else { &[&xs, &ws] };
        let cpu_op = |v: &[Vec<f64>]| {
            let x = if cfg.relu_input {
                relu(&v[0])
            } else {
                v[0].clone()
            };
            let (b, (s, p, d, g)) = (
                v.get(2),
                (cfg.stride, cfg.padding, cfg.dilation, cfg.groups),
            );
            let b = b.map(|b| b.as_slice());
            cpu::conv2d(&x, s4(&xs), &v[1], s4(&ws), b, s, p, d, g).0
        };
        let op = |t: &mut Tape, v: &[Tensor]| t.conv2d(&v[0], &v[1], v.get(2), cfg);
        cases.both(name, &inputs(10 + i as u64, shapes), &cpu_op, &op)?;
        if i == 0 {
            // The generic kernel's weight gradient by a workgroup per weight (these short
            // reductions take a thread per weight).
            let policy = gpu.policy();
            gpu.set_policy(LaunchPolicy {
                serial_weight_grad_max: 0,
                ..policy
            });
            let r = cases.one(
                &format!("{name}, dw by workgroups"),
                &inputs(10, shapes),
                &cpu_op,
                &op,
            );
            gpu.set_policy(policy);
            r?;
        }
    }
    cases.done()
}

/// pw(dw(relu x)) as one node, its depthwise output recomputed in the backward or kept.
fn dw_pw(gpu: &Gpu) -> Lines {
    let (xs, c, k) = ([2, 2, 6, 8], 2, 3);
    let ins = inputs(45, &[&xs, &[c, 1, k, k], &[c + 1, c, 1, 1]]);
    let cfg = Conv2dCfg::new(1, 2).dilation(2).groups(c).relu_input(true);
    let cpu_op = |v: &[Vec<f64>]| {
        let (mid, ms) = cpu::conv2d(
            &relu(&v[0]),
            s4(&xs),
            &v[1],
            Shape4(c, 1, k, k),
            None,
            1,
            2,
            2,
            c,
        );
        cpu::conv2d(&mid, ms, &v[2], Shape4(c + 1, c, 1, 1), None, 1, 0, 1, 1).0
    };
    let mut cases = Cases::new(gpu);
    for recompute in [true, false] {
        let op = |t: &mut Tape, v: &[Tensor]| {
            t.set_recompute(recompute);
            t.dw_pw(&v[0], &v[1], cfg, &v[2])
        };
        let name = format!("dw_pw (relu, dilation 2), recompute={recompute}");
        cases.both(&name, &ins, &cpu_op, &op)?;
    }
    cases.done()
}

/// A pooling case: (name, x shape, window, stride, padding, max).
type PoolCase = (&'static str, [usize; 4], usize, usize, usize, bool);

/// The pooling cases.
#[rustfmt::skip]
const POOLS: [PoolCase; 5] = [
    ("max pool 3×3", [2, 3, 5, 8], 3, 1, 1, true),
    ("max pool 3×3 stride 2", [1, 2, 9, 7], 3, 2, 1, true),
    ("avg pool 3×3 (padding excluded)", [2, 3, 6, 12], 3, 1, 1, false),
    ("avg pool 3×3 stride 2", [1, 1, 7, 9], 3, 2, 1, false),
    ("avg pool 2×2 stride 2", [2, 2, 8, 6], 2, 2, 0, false),
];

fn pools(gpu: &Gpu) -> Lines {
    let mut cases = Cases::new(gpu);
    for (i, (name, xs, k, s, p, max)) in POOLS.into_iter().enumerate() {
        let cpu_op = |v: &[Vec<f64>]| cpu::pool2d(&v[0], s4(&xs), k, s, p, max).0;
        let cfg = PoolCfg::new(k, s, p);
        let op = |t: &mut Tape, v: &[Tensor]| match max {
            true => t.max_pool2d(&v[0], cfg),
            false => t.avg_pool2d(&v[0], cfg),
        };
        cases.one(name, &inputs(20 + i as u64, &[&xs]), &cpu_op, &op)?;
    }
    // Both 3×3 poolings of one input in one launch (a mixed edge's pooling candidates).
    let xs = [2, 3, 6, 8];
    let both_pools = |v: &[Vec<f64>]| {
        let m = cpu::pool2d(&v[0], s4(&xs), 3, 1, 1, true).0;
        let a = cpu::pool2d(&v[0], s4(&xs), 3, 1, 1, false).0;
        m.iter().zip(&a).map(|(m, a)| m + 2.0 * a).collect()
    };
    let max_avg = |t: &mut Tape, v: &[Tensor]| {
        let (m, a) = t.max_avg_pool2d(&v[0], PoolCfg::new(3, 1, 1))?;
        let a2 = t.scale(&a, 2.0)?;
        t.sum(&[&m, &a2])
    };
    cases.both(
        "max + 2·avg pool in one launch",
        &inputs(63, &[&xs]),
        &both_pools,
        &max_avg,
    )?;
    let gs = [3, 2, 5, 3];
    let global = |v: &[Vec<f64>]| cpu::global_avg(&v[0], s4(&gs));
    let gap = |t: &mut Tape, v: &[Tensor]| t.global_avg_pool(&v[0]);
    cases
        .one("global avg pool", &inputs(26, &[&gs]), &global, &gap)?
        .done()
}

/// Train- and eval-mode affine batch norm: the per-channel reductions in one workgroup, in
/// one thread (CPU strategy, small channels) and split over workgroups.
fn batch_norm(gpu: &Gpu) -> Lines {
    let (xs, c) = ([2, 3, 5, 4], 3);
    let mut rng = Rng::new(70);
    let mut ins = vec![
        Input::random(&mut rng, &xs, true),
        constant(&[c], rng.vec(c)),
    ];
    let var: Vec<f64> = (0..c)
        .map(|_| rng.uniform(0.5, 2.0) as f32 as f64)
        .collect();
    ins.push(constant(&[c], var));
    ins.extend(inputs(71, &[&[c], &[c]]));
    let mut cases = Cases::new(gpu);
    for train in [true, false] {
        let cpu_op = |v: &[Vec<f64>]| {
            let affine = Some((v[3].as_slice(), v[4].as_slice()));
            match train {
                true => cpu::batch_norm_train(&v[0], s4(&xs), affine, 1e-5).0,
                false => cpu::batch_norm_eval(&v[0], s4(&xs), affine, &v[1], &v[2], 1e-5),
            }
        };
        let op = |t: &mut Tape, v: &[Tensor]| {
            // Fresh running statistics: the forward pass updates them in train mode.
            let rm = Tensor::from_slice(t.gpu(), &[c], &f32s(&ins[1].data))?;
            let rv = Tensor::from_slice(t.gpu(), &[c], &f32s(&ins[2].data))?;
            let state = BnState {
                running_mean: &rm,
                running_var: &rv,
                momentum: 0.1,
                eps: 1e-5,
            };
            t.batch_norm(&v[0], Some((&v[3], &v[4])), state, train)
        };
        let mode = if train { "train" } else { "eval" };
        cases.both(&format!("batch norm ({mode}, affine)"), &ins, &cpu_op, &op)?;
        if train {
            gpu.set_channel_split(Some(2));
            let split = "batch norm (train, affine), reductions split over 2 workgroups";
            let r = cases.one(split, &ins, &cpu_op, &op).map(|_| ());
            gpu.set_channel_split(None);
            r?;
        }
    }
    cases.done()
}

/// ReLU, sums, products and scalings, the sum of all elements.
fn elementwise(gpu: &Gpu) -> Lines {
    let s = [2, 3, 4, 5];
    let mut cases = Cases::new(gpu);
    cases.one("relu", &inputs(40, &[&s]), &|v| relu(&v[0]), &|t, v| {
        t.relu(&v[0])
    })?;
    let sum_mul = |v: &[Vec<f64>]| {
        (0..v[0].len())
            .map(|i| v[0][i] + v[1][i] * v[2][i])
            .collect()
    };
    let fused = |t: &mut Tape, v: &[Tensor]| {
        let m = t.mul(&v[1], &v[2])?;
        t.sum(&[&v[0], &m])
    };
    cases.one("sum and mul", &inputs(41, &[&s, &s, &s]), &sum_mul, &fused)?;
    let mut ins = inputs(44, &[&[3, 2, 5, 5]]);
    ins.push(constant(&[3], vec![0.5, -1.25, 3.0]));
    let by = |v: &[Vec<f64>]| v[0].iter().map(|x| -2.5 * x * v[1][1]).collect();
    let scaled = |t: &mut Tape, v: &[Tensor]| {
        let y = t.scale_by(&v[0], &v[1], 1)?;
        t.scale(&y, -2.5)
    };
    cases.one("scale, and scale by a GPU scalar", &ins, &by, &scaled)?;
    let mut ins = inputs(55, &[&[3, 2, 3, 5]]);
    ins.push(constant(&[3], vec![0.0, 1.25, 2.5]));
    let rows = |v: &[Vec<f64>]| {
        v[0].iter()
            .enumerate()
            .map(|(i, x)| x * v[1][i / 30])
            .collect()
    };
    cases.one("scale rows (drop path)", &ins, &rows, &|t, v| {
        t.scale_rows(&v[0], &v[1])
    })?;
    let total = |v: &[Vec<f64>]| vec![v[0].iter().sum()];
    cases
        .one("sum of all", &inputs(46, &[&[3001]]), &total, &|t, v| {
            t.sum_all(&v[0])
        })?
        .done()
}

/// Concatenation, crops and subsampling, reshapes.
fn layout(gpu: &Gpu) -> Lines {
    let (a, b, s) = ([2, 1, 3, 4], [2, 3, 3, 4], [2, 2, 7, 6]);
    let mut cases = Cases::new(gpu);
    let cat = |v: &[Vec<f64>]| cpu::concat(&[(&v[0], s4(&a)), (&v[1], s4(&b))]).0;
    let concat = |t: &mut Tape, v: &[Tensor]| t.concat(&[&v[0], &v[1]]);
    cases.both("concat", &inputs(47, &[&a, &b]), &cat, &concat)?;
    for (offset, stride) in [(1, 1), (1, 2)] {
        let sliced = |v: &[Vec<f64>]| cpu::slice2d(&v[0], s4(&s), offset, stride).0;
        let slice = |t: &mut Tape, v: &[Tensor]| t.slice2d(&v[0], SliceCfg { offset, stride });
        let name = format!("slice x[:, :, {offset}::{stride}, {offset}::{stride}]");
        cases.both(&name, &inputs(48, &[&s]), &sliced, &slice)?;
    }
    let same = |v: &[Vec<f64>]| v[0].clone();
    let reshape = |t: &mut Tape, v: &[Tensor]| t.reshape(&v[0], &[2, 3]);
    cases
        .one("reshape", &inputs(50, &[&[2, 3, 1, 1]]), &same, &reshape)?
        .done()
}

/// Row softmax, the linear layer, cross-entropy.
fn classifier(gpu: &Gpu) -> Lines {
    let mut rng = Rng::new(51);
    let spread = |rng: &mut Rng, shape: &[usize], k: f64| Input {
        shape: shape.to_vec(),
        data: rng
            .vec(shape.iter().product())
            .iter()
            .map(|x| k * x)
            .collect(),
        diff: true,
    };
    let mut cases = Cases::new(gpu);
    let ins = [spread(&mut rng, &[14, 8], 3.0)];
    let softmax = |v: &[Vec<f64>]| cpu::softmax_rows(&v[0], 8);
    cases.one("row softmax", &ins, &softmax, &|t, v| t.softmax_rows(&v[0]))?;
    let lin = |v: &[Vec<f64>]| cpu::linear(&v[0], 5, 7, &v[1], 3, Some(&v[2]));
    let linear = |t: &mut Tape, v: &[Tensor]| t.linear(&v[0], &v[1], Some(&v[2]));
    cases.one(
        "linear",
        &inputs(52, &[&[5, 7], &[3, 7], &[3]]),
        &lin,
        &linear,
    )?;
    let labels: Vec<u32> = (0..6).map(|_| rng.below(10)).collect();
    let ins = [spread(&mut rng, &[6, 10], 4.0)];
    let ce = |v: &[Vec<f64>]| vec![cpu::cross_entropy(&v[0], 10, &labels)];
    let cross_entropy = |t: &mut Tape, v: &[Tensor]| {
        let l = Labels::new(t.gpu(), &labels)?;
        t.cross_entropy(&v[0], &l)
    };
    cases
        .one("cross entropy", &ins, &ce, &cross_entropy)?
        .done()
}

/// The mixed edge's fusions: Σ_k α[row, k]·y_k, and the same over batch-normed terms.
fn mixed(gpu: &Gpu) -> Lines {
    let s = [2, 3, 4, 4];
    let mut cases = Cases::new(gpu);
    let weighted = |v: &[Vec<f64>]| {
        let at = |i: usize| (0..3).map(|k| v[3][5 + k] * v[k][i]).sum();
        (0..v[0].len()).map(at).collect()
    };
    let ws = |t: &mut Tape, v: &[Tensor]| t.weighted_sum(&[&v[0], &v[1], &v[2]], &v[3], &[5, 6, 7]);
    cases.both(
        "mixed edge weighted sum",
        &inputs(45, &[&s, &s, &s, &[2, 4]]),
        &weighted,
        &ws,
    )?;
    // Terms (input, batch-normed, table, index): tables are inputs 4 (α, 2×5) and 5 (β).
    let plan = [
        (0, true, 4, 5),
        (1, false, 4, 6),
        (2, true, 4, 7),
        (3, false, 5, 1),
    ];
    let normalised = |v: &[Vec<f64>]| {
        let ys: Vec<Vec<f64>> = plan
            .iter()
            .map(|&(k, bn, _, _)| match bn {
                true => cpu::batch_norm_train(&v[k], s4(&s), None, 1e-5).0,
                false => v[k].clone(),
            })
            .collect();
        let at = |i: usize| {
            plan.iter()
                .zip(&ys)
                .map(|(&(_, _, tab, idx), y)| v[tab][idx] * y[i])
                .sum()
        };
        (0..v[0].len()).map(at).collect()
    };
    let ns = |t: &mut Tape, v: &[Tensor]| {
        let stats = (0..8)
            .map(|_| Tensor::zeros(t.gpu(), &[s[1]]))
            .collect::<Result<Vec<_>>>()?;
        let term = |&(k, bn, tab, idx): &(usize, bool, usize, usize)| SumTerm {
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
        };
        t.normalized_sum(&plan.iter().map(term).collect::<Vec<_>>())
    };
    // Sums of up to four unit-variance terms: the forward's absolute part scaled to them.
    cases.tols.0 = Tolerance::FORWARD.scaled(&[4.0]);
    let ins = inputs(66, &[&s, &s, &s, &s, &[2, 5], &[3]]);
    cases
        .both("mixed edge normalised sum", &ins, &normalised, &ns)?
        .done()
}

pub(super) fn checks() -> Vec<Check> {
    let op = |name, run| Check {
        name,
        kind: "op",
        run,
    };
    vec![
        op("convolutions", convolutions as fn(&Gpu) -> Lines),
        op("dw_pw", dw_pw),
        op("pooling", pools),
        op("batch norm", batch_norm),
        op("elementwise", elementwise),
        op("layout", layout),
        op("classifier", classifier),
        op("mixed edge sums", mixed),
    ]
}
