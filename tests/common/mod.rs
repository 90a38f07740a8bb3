//! Shared test support: the GPU under test, a deterministic RNG, explicit tolerances, CPU f64
//! reference implementations of every op, and central finite differences.
#![allow(dead_code)]

pub mod reference;

use darts_minus::gpu::{AdapterChoice, Gpu, Strategy};

/// The launch-policy preset a test forces: the CPU one (launches costly) or the GPU one.
pub fn strategy_of(costly_launches: bool) -> Strategy {
    if costly_launches {
        Strategy::Cpu
    } else {
        Strategy::Gpu
    }
}

/// The adapter the environment selects (WGPU_BACKEND / WGPU_ADAPTER_NAME), else the best,
/// under the limits DARTS_MINUS_LIMITS asks for (CI runs the suite once under WebGPU's).
pub fn gpu() -> Gpu {
    Gpu::new(&AdapterChoice::default()).expect("a GPU adapter (install mesa-vulkan-drivers)")
}

/// The environment's adapter under `limits` (adapter, webgpu or downlevel).
pub fn gpu_with_limits(limits: &str) -> darts_minus::Result<Gpu> {
    Gpu::new(&AdapterChoice {
        limits: Some(limits.into()),
        ..AdapterChoice::default()
    })
}

/// Deterministic xorshift generator; tests never depend on global state.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    /// `n` values uniform in [-1, 1), rounded to f32 so CPU and GPU see the same inputs.
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| self.uniform(-1.0, 1.0) as f32 as f64)
            .collect()
    }
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

pub fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// An explicit tolerance: |actual − expected| ≤ abs + rel·|expected|, per element.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub rel: f64,
    pub abs: f64,
}

impl Tolerance {
    /// f32 forward results against an f64 reference.
    pub const FORWARD: Tolerance = Tolerance {
        rel: 1e-4,
        abs: 1e-5,
    };
    /// f32 gradients (longer reductions) against f64 finite differences.
    pub const GRADIENT: Tolerance = Tolerance {
        rel: 1e-3,
        abs: 1e-4,
    };

    /// Same relative part, absolute part scaled by the largest magnitude in `expected`, for
    /// results that cancel to near zero (batch-norm gradients, say).
    pub fn scaled(self, expected: &[f64]) -> Tolerance {
        let m = expected
            .iter()
            .fold(0.0f64, |a, &b| a.max(b.abs()))
            .max(1.0);
        Tolerance {
            rel: self.rel,
            abs: self.abs * m,
        }
    }

    #[track_caller]
    pub fn assert_close(&self, what: &str, actual: &[f32], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{what}: length");
        let mut worst = (0usize, 0.0f64);
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            let err = (a as f64 - e).abs();
            let excess = err - (self.abs + self.rel * e.abs());
            // NaN counts as a failure.
            let bad = excess > 0.0 || excess.is_nan();
            if bad && (excess > worst.1 || worst.1 == 0.0) {
                worst = (i, excess.max(f64::MIN_POSITIVE));
            }
        }
        if worst.1 > 0.0 {
            let i = worst.0;
            panic!(
                "{what}: element {i} is {} but the reference is {} (tolerance rel {} abs {}); first values {:?} vs {:?}",
                actual[i],
                expected[i],
                self.rel,
                self.abs,
                &actual[..actual.len().min(6)],
                &expected[..expected.len().min(6)]
            );
        }
    }
}

/// Central finite differences of the scalar `f` at `x`, one coordinate at a time.
pub fn finite_diff(x: &[f64], h: f64, mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xp[i];
            xp[i] = orig + h;
            let fp = f(&xp);
            xp[i] = orig - h;
            let fm = f(&xp);
            xp[i] = orig;
            (fp - fm) / (2.0 * h)
        })
        .collect()
}
