//! One op against its CPU f64 reference: the forward output, and every input's gradient
//! against central finite differences with the op placed mid-graph (inputs scaled before it,
//! a random weighting after it), so a backward that ignores its incoming gradient or drops a
//! path fails.

use super::{f32s, finite_diff, CheckLine, Rng, Tolerance};
use crate::autodiff::{Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;

/// Scale applied to every differentiable input before the op (the "upstream" graph).
const PRE: f64 = 0.75;

/// One input of an op under check.
#[derive(Clone, Debug)]
pub struct Input {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    /// Differentiable (gets a gradient and is pre-scaled); otherwise a constant.
    pub diff: bool,
}

impl Input {
    /// Values uniform in [-1, 1) from `rng`.
    pub fn random(rng: &mut Rng, shape: &[usize], diff: bool) -> Input {
        Input {
            shape: shape.to_vec(),
            data: rng.vec(shape.iter().product()),
            diff,
        }
    }
}

/// The CPU f64 reference of an op: its output for the inputs' values, in order.
pub type CpuOp<'a> = &'a dyn Fn(&[Vec<f64>]) -> Vec<f64>;
/// The op on the GPU, recorded on the tape.
pub type GpuOp<'a> = &'a dyn Fn(&mut Tape, &[Tensor]) -> Result<Tensor>;

/// Forward and gradients of one op: a line for the forward output and one per
/// differentiable input. `tols`: (forward, gradient); the gradient's absolute part is scaled
/// to the finite differences' magnitude.
pub fn op_check(
    gpu: &Gpu,
    name: &str,
    inputs: &[Input],
    cpu_op: CpuOp,
    gpu_op: GpuOp,
    tols: (Tolerance, Tolerance),
) -> Result<Vec<CheckLine>> {
    let raw: Vec<Vec<f64>> = inputs.iter().map(|i| i.data.clone()).collect();
    let mut lines = Vec::new();

    // Forward, no tape.
    let upload = |i: &Input| Tensor::from_slice(gpu, &i.shape, &f32s(&i.data));
    let ts = inputs.iter().map(upload).collect::<Result<Vec<_>>>()?;
    let mut tape = Tape::inference(gpu);
    let y = gpu_op(&mut tape, &ts)?;
    let expected = cpu_op(&raw);
    lines.push(CheckLine::compare(
        name,
        "forward",
        tols.0,
        &y.to_vec()?,
        &expected,
    ));

    // Mid-graph gradient: loss = Σ c ⊙ op(PRE · x) for differentiable x.
    let c = Rng::new(99).vec(expected.len());
    let mut tape = Tape::new(gpu);
    let mut leaves = Vec::new();
    let mut fed = Vec::new();
    for i in inputs {
        let t = upload(i)?;
        let t = if i.diff { t.with_grad() } else { t };
        fed.push(if i.diff {
            tape.scale(&t, PRE as f32)?
        } else {
            t.clone()
        });
        leaves.push(t);
    }
    let y = gpu_op(&mut tape, &fed)?;
    let ct = Tensor::from_slice(gpu, y.shape(), &f32s(&c))?;
    let weighted = tape.mul(&y, &ct)?;
    let loss = tape.sum_all(&weighted)?;
    let grads = tape.backward(&loss)?;

    let loss_cpu = |vals: &[Vec<f64>]| -> f64 {
        let scaled: Vec<Vec<f64>> = vals
            .iter()
            .zip(inputs)
            .map(|(v, i)| {
                let pre = if i.diff { PRE } else { 1.0 };
                v.iter().map(|x| x * pre).collect()
            })
            .collect();
        cpu_op(&scaled).iter().zip(&c).map(|(a, b)| a * b).sum()
    };
    for (k, inp) in inputs.iter().enumerate() {
        if !inp.diff {
            continue;
        }
        let fd = finite_diff(&raw[k], 1e-6, |xk| {
            let mut vals = raw.clone();
            vals[k] = xk.to_vec();
            loss_cpu(&vals)
        });
        let what = format!("gradient of input {k}");
        lines.push(match grads.get(&leaves[k]) {
            Some(g) => CheckLine::compare(name, &what, tols.1.scaled(&fd), &g.to_vec()?, &fd),
            None => CheckLine::failed(name, &what, "no gradient reached this input".into()),
        });
    }
    Ok(lines)
}
