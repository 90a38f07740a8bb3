//! The check of RobustDARTS' `noise` op (no gradient, so no finite differences): its values
//! against the CPU recomputation of the same counter-based generator (both key slots, two
//! streams, a length off the workgroup size), the moments of N(0, 1), fresh values for a new
//! key, and a zero gradient to the input.

use super::{Check, CheckLine, Tolerance};
use crate::autodiff::ops::noise::{
    noise_key_table, normal_noise, normal_noise_cpu, write_noise_keys,
};
use crate::autodiff::{Tape, Tensor};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::darts_ops::{CandidateOp, Noise, NoiseSource};
use crate::nn::Ctx;

/// WGSL bounds `cos` to 2^-11 absolute error on [−π, π] and `log` to 2^-21 near 1 (3 ULP
/// elsewhere); times Box–Muller's radius (at most √(2 ln 2^24) ≈ 5.8) that is 3e-3.
pub const NOISE_TOL: Tolerance = Tolerance {
    rel: 1e-5,
    abs: 3e-3,
};

const CHECK: &str = "noise";

/// The moments of `v` against N(0, 1): |mean| and |variance − 1| as two lines, bounded at
/// about six standard errors.
fn moments(what: &str, v: &[f32]) -> Vec<CheckLine> {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let within = |name: &str, got: f64, se: f64| {
        let tol = Tolerance {
            rel: 0.0,
            abs: 6.0 * se,
        };
        CheckLine::compare(
            CHECK,
            &format!("{what}: {name}"),
            tol,
            &[got as f32],
            &[0.0],
        )
    };
    vec![
        within("mean", mean, 1.0 / n.sqrt()),
        within("variance − 1", var - 1.0, (2.0 / n).sqrt()),
    ]
}

pub fn noise(gpu: &Gpu) -> Result<Vec<CheckLine>> {
    let keys = [0x0123_4567_89ab_cdef_u64, 42];
    let table = noise_key_table(gpu)?;
    write_noise_keys(gpu, &table, &keys)?;
    let mut lines = Vec::new();
    for (slot, stream, n) in [(0, 0, 1000), (1, 7, 4099)] {
        let got = normal_noise(gpu, &[n], &table, slot, stream)?.to_vec()?;
        let want = normal_noise_cpu(keys[slot], stream, n);
        let what = format!("values, key slot {slot}, stream {stream}");
        lines.push(CheckLine::compare(CHECK, &what, NOISE_TOL, &got, &want));
    }
    let many = normal_noise(gpu, &[1 << 16], &table, 0, 3)?.to_vec()?;
    lines.extend(moments("65,536 values", &many));

    // Through the candidate: a stride-2 draw has `x[:, :, ::2, ::2]`'s shape; a stride-1
    // draw is fresh under a new key, and x's gradient through `noise(x) + x` is the upstream
    // gradient alone.
    let source = NoiseSource::new(gpu)?;
    let op = |stride| Noise {
        stride,
        source: source.clone(),
    };
    let train = Ctx { train: true };
    let x = Tensor::from_slice(gpu, &[2, 3, 5, 4], &[0.5; 120])?.with_grad();
    let strided = op(2).forward(&mut Tape::new(gpu), &x, train)?;
    if strided.shape() != [2, 3, 3, 2] {
        lines.push(CheckLine::failed(
            CHECK,
            "stride-2 shape",
            format!("{:?}, not [2, 3, 3, 2]", strided.shape()),
        ));
    }
    let c: Vec<f32> = (0..120).map(|i| i as f32 * 0.02 - 1.0).collect();
    let want_grad: Vec<f64> = c.iter().map(|&v| v as f64).collect();
    let c = Tensor::from_slice(gpu, x.shape(), &c)?;
    let mut draws = Vec::new();
    for key in [7, 8] {
        source.start(true, key)?;
        let mut tape = Tape::new(gpu);
        let y = op(1).forward(&mut tape, &x, train)?;
        draws.push(y.to_vec()?);
        let sum = tape.sum(&[&y, &x])?;
        let weighted = tape.mul(&sum, &c)?;
        let loss = tape.sum_all(&weighted)?;
        let grads = tape.backward(&loss)?;
        let exact = Tolerance::FORWARD;
        lines.push(match grads.get(&x) {
            Some(g) => CheckLine::compare(CHECK, "grad of x", exact, &g.to_vec()?, &want_grad),
            None => CheckLine::failed(CHECK, "grad of x", "no gradient".into()),
        });
    }
    let want = normal_noise_cpu(7, 0, 120);
    lines.push(CheckLine::compare(
        CHECK,
        "the candidate's values",
        NOISE_TOL,
        &draws[0],
        &want,
    ));
    let same = draws[0]
        .iter()
        .zip(&draws[1])
        .filter(|(a, b)| a == b)
        .count();
    lines.push(CheckLine::compare(
        CHECK,
        "values equal under a new key",
        Tolerance { rel: 0.0, abs: 0.0 },
        &[same as f32],
        &[0.0],
    ));
    Ok(lines)
}

pub(super) fn checks() -> Vec<Check> {
    vec![Check {
        name: "noise",
        kind: "op",
        run: noise,
    }]
}
