//! Shared test support: the GPU under test, and (from the library's `check` module, which
//! `darts-minus check` runs on a user's adapter) a deterministic RNG, explicit tolerances, CPU
//! f64 reference implementations of every op, and central finite differences.
#![allow(dead_code)]

pub mod cli;

#[allow(unused_imports)]
pub use darts_minus::check::{f32s, finite_diff, reference, Rng, Tolerance};

use darts_minus::check::CheckLine;
use darts_minus::gpu::{AdapterChoice, Gpu, Strategy};

/// Every line of a check must pass; a failing one is named with the reason.
#[track_caller]
pub fn assert_passes(lines: &[CheckLine]) {
    for l in lines {
        let why = l.detail.as_deref().unwrap_or_default();
        assert!(l.pass, "{} — {}: {why}", l.check, l.what);
    }
}

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
