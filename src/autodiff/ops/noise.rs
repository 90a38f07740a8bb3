//! N(0, 1) noise (RobustDARTS S4's `noise` candidate): values drawn on the GPU by a
//! counter-based generator (`shaders/noise.wgsl`), so a recorded step replays fresh noise
//! once the host rewrites the key table, and a run is reproducible from its seed. The output
//! is a constant on the tape: its input gets no gradient.

use crate::autodiff::Tensor;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, KernelParams, NoiseParams};

/// Key pairs a key table holds (one per slot).
pub const NOISE_SLOTS: usize = 2;

/// A table of [`NOISE_SLOTS`] 64-bit keys (u32 pairs), all 0 until [`write_noise_keys`].
pub fn noise_key_table(gpu: &Gpu) -> Result<Tensor> {
    let t = Tensor::empty(gpu, &[2 * NOISE_SLOTS], "noise keys")?;
    write_noise_keys(gpu, &t, &[0; NOISE_SLOTS])?;
    Ok(t)
}

/// Writes every slot's key; kernels already queued or recorded read the new keys when they
/// run.
pub fn write_noise_keys(gpu: &Gpu, table: &Tensor, keys: &[u64; NOISE_SLOTS]) -> Result<()> {
    if table.numel() != 2 * NOISE_SLOTS {
        return Err(Error::shape(
            "noise keys",
            format!(
                "a key table holds {} words, not {}",
                2 * NOISE_SLOTS,
                table.numel()
            ),
        ));
    }
    let words: Vec<u32> = keys
        .iter()
        .flat_map(|&k| [k as u32, (k >> 32) as u32])
        .collect();
    gpu.write_u32(table.buffer(), &words);
    Ok(())
}

/// `shape`-many N(0, 1) values of stream `stream` under the key in `slot` of `keys`.
pub fn normal_noise(
    gpu: &Gpu,
    shape: &[usize],
    keys: &Tensor,
    slot: usize,
    stream: u32,
) -> Result<Tensor> {
    let out = Tensor::empty(gpu, shape, "noise")?;
    let n = out.numel();
    let p = NoiseParams {
        n: n as u32,
        slot: slot as u32,
        stream,
    };
    gpu.launch(
        "noise",
        "normal",
        p.words(),
        &[keys.buffer(), out.buffer()],
        n,
    )?;
    Ok(out)
}

fn lowbias32(x: u32) -> u32 {
    let mut v = x;
    v ^= v >> 16;
    v = v.wrapping_mul(0x7feb_352d);
    v ^= v >> 15;
    v = v.wrapping_mul(0x846c_a68b);
    v ^ (v >> 16)
}

/// The kernel's values on the CPU in f64 (the reference of the tests).
pub fn normal_noise_cpu(key: u64, stream: u32, n: usize) -> Vec<f64> {
    let (k0, k1) = (key as u32, (key >> 32) as u32);
    let base = lowbias32(k0 ^ lowbias32(k1 ^ lowbias32(stream)));
    (0..n as u32)
        .map(|i| {
            let a = lowbias32(base ^ lowbias32(2 * i));
            let b = lowbias32(base ^ lowbias32(2 * i + 1));
            let u1 = ((a >> 8) as f64 + 1.0) / 16_777_216.0;
            let u2 = (b >> 8) as f64 / 16_777_216.0;
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2 - std::f64::consts::PI).cos()
        })
        .collect()
}
