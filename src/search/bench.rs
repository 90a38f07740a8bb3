//! The search-step benchmark behind `darts-minus bench`: the full DARTS- step (α step and
//! w step, SPEC §5) on synthetic batches, timed as the median of N steps after warm-up, with
//! the peak memory of the project's buffer pool and the dispatches per step.
//!
//! Synthetic batches keep data loading out of the measurement; the arithmetic is the same as
//! on real images. Each step ends with the loss read back (as PyTorch's `loss.item()`), so
//! a step's time includes all of its GPU work.

use super::darts_net::DartsConfig;
use super::nb201_net::Nb201Config;
use super::trainer::{Search, SearchSettings, Space};
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::darts_ops::DartsSpace;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What to benchmark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    pub space: Space,
    pub batch: usize,
    /// Timed steps (the median is reported).
    pub steps: usize,
    /// Untimed steps first (the first one records the step for replay).
    pub warmup: usize,
    /// Replay the recorded step (the default), or build every step eagerly.
    pub replay: bool,
    /// Recompute intermediates in backward (the default), or keep them.
    pub recompute: bool,
    pub seed: u64,
    /// After timing, run one more (eager) step with every launch timed on its own.
    #[serde(default)]
    pub profile: bool,
}

impl BenchConfig {
    /// The paper's search configuration (C = 16, 8 cells, batch 64) in the DARTS space.
    pub fn paper() -> Self {
        BenchConfig {
            space: Space::Darts(DartsConfig::default()),
            batch: 64,
            steps: 10,
            warmup: 2,
            replay: true,
            recompute: true,
            seed: 0,
            profile: false,
        }
    }

    /// "darts C=16 L=8 batch=64" or "nb201 C=16 N=5 batch=64".
    pub fn label(&self) -> String {
        match self.space {
            Space::Darts(c) => format!(
                "{} C={} L={} batch={}",
                c.candidates.name(),
                c.channels,
                c.layers,
                self.batch
            ),
            Space::Nb201(c) => format!(
                "nb201 C={} N={} batch={}",
                c.channels, c.cells_per_stage, self.batch
            ),
        }
    }
}

/// One configuration's measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub config: BenchConfig,
    pub label: String,
    pub adapter: String,
    pub backend: String,
    /// Median wall time of one search step, milliseconds.
    pub step_ms: f64,
    pub step_ms_min: f64,
    pub step_ms_max: f64,
    /// Training images per second (batch / median step time).
    pub images_per_sec: f64,
    /// The first step: building the graph, compiling the pipelines it is the first to use, and
    /// recording it.
    pub first_step_ms: f64,
    /// Pipelines this configuration created (building the network and the warm-up steps) and
    /// the milliseconds their creation took: the compilation share of start-up.
    pub pipelines_built: usize,
    pub pipeline_build_ms: f64,
    /// The most bytes held by live buffers at once, weights and optimiser state included.
    pub peak_bytes: u64,
    /// Bytes of device buffers created (the pool's footprint on the device).
    pub reserved_bytes: u64,
    pub dispatches_per_step: f64,
    pub submissions_per_step: f64,
    /// CPU milliseconds a step spends encoding and submitting its commands (mean over the
    /// timed steps): near `step_ms` on Vulkan, Metal or DX12, the step is bound by encoding,
    /// not by the GPU. On GL, whose backend runs the commands as it submits them, it holds
    /// the execution too.
    #[serde(default)]
    pub encode_ms: f64,
    pub weights: usize,
    /// Per kernel (slowest first) with `profile`: each launch timed alone, by the GPU's
    /// timestamps where the adapter has them, else by the wall clock around a synced launch
    /// (then the sum exceeds the step time by the per-launch waits); for finding hot kernels.
    pub kernels: Vec<KernelTime>,
    /// Whether `kernels` holds GPU time (timestamps) rather than synced wall time.
    #[serde(default)]
    pub kernels_gpu_time: bool,
}

fn synthetic_batch(rng: &mut rand_chacha::ChaCha8Rng, n: usize, classes: usize) -> Batch {
    let x = (0..n * 3 * 32 * 32)
        .map(|_| StandardNormal.sample(rng))
        .collect();
    let y = (0..n)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    Batch {
        x,
        y,
        indices: (0..n).collect(),
    }
}

/// One kernel entry's launches and time in a profiled step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelTime {
    /// "file:entry", e.g. "depthwise:forward4".
    pub kernel: String,
    pub launches: u64,
    pub ms: f64,
}

/// Times the search step of `cfg` on `gpu`.
pub fn bench_search_step(gpu: &Gpu, cfg: &BenchConfig) -> Result<BenchResult> {
    if cfg.steps == 0 {
        return Err(Error::Invalid("--steps must be at least 1".into()));
    }
    let base = match cfg.space {
        Space::Darts(_) => SearchSettings::darts_paper(),
        Space::Nb201(_) => SearchSettings::nb201_benchmark(),
    };
    let settings = SearchSettings {
        space: cfg.space,
        batch_size: cfg.batch,
        seed: cfg.seed,
        ..base
    };
    let built_before = gpu.pipeline_build_time();
    let mut search = Search::new(gpu, settings)?;
    search.replay = cfg.replay;
    search.recompute = cfg.recompute;
    search.set_epoch(0)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let classes = cfg.space.classes();
    // Two pairs of batches, alternated: every step sees new data, as in a real search.
    let batches: Vec<(Batch, Batch)> = (0..2)
        .map(|_| {
            (
                synthetic_batch(&mut rng, cfg.batch, classes),
                synthetic_batch(&mut rng, cfg.batch, classes),
            )
        })
        .collect();
    gpu.sync()?;
    gpu.reset_peak_memory();
    let mut first_step_ms = f64::NAN;
    for i in 0..cfg.warmup.max(1) {
        let (t, v) = &batches[i % 2];
        let t0 = Instant::now();
        search.step(t, v)?;
        if i == 0 {
            first_step_ms = t0.elapsed().as_secs_f64() * 1e3;
        }
    }
    let built = gpu.pipeline_build_time();
    let (d0, s0, e0) = (
        gpu.dispatch_count(),
        gpu.submission_count(),
        gpu.encode_seconds(),
    );
    let mut times = Vec::with_capacity(cfg.steps);
    for i in 0..cfg.steps {
        let (t, v) = &batches[i % 2];
        let t0 = Instant::now();
        search.step(t, v)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let n = cfg.steps as f64;
    let dispatches_per_step = (gpu.dispatch_count() - d0) as f64 / n;
    let submissions_per_step = (gpu.submission_count() - s0) as f64 / n;
    let encode_ms = (gpu.encode_seconds() - e0) * 1e3 / n;
    times.sort_by(|a, b| a.total_cmp(b));
    let step_ms = median(&times);
    let mem = gpu.memory();
    let mut kernels = Vec::new();
    if cfg.profile {
        // Replay submits the recorded program whole; an eager step launches kernel by kernel.
        search.replay = false;
        let (t, v) = &batches[0];
        gpu.start_profile();
        let stepped = search.step(t, v);
        let profile = gpu.take_profile();
        stepped?;
        kernels = profile
            .into_iter()
            .map(|(kernel, launches, secs)| KernelTime {
                kernel,
                launches,
                ms: secs * 1e3,
            })
            .collect();
    }
    Ok(BenchResult {
        config: cfg.clone(),
        label: cfg.label(),
        adapter: gpu.adapter().name.clone(),
        backend: gpu.adapter().backend.clone(),
        step_ms,
        step_ms_min: times[0],
        step_ms_max: times[times.len() - 1],
        images_per_sec: cfg.batch as f64 / (step_ms / 1e3),
        first_step_ms,
        pipelines_built: built.0 - built_before.0,
        pipeline_build_ms: (built.1 - built_before.1).as_secs_f64() * 1e3,
        peak_bytes: mem.peak,
        reserved_bytes: mem.reserved,
        dispatches_per_step,
        submissions_per_step,
        encode_ms,
        weights: search.weight_count(),
        kernels,
        kernels_gpu_time: cfg.profile && gpu.profiles_gpu_time(),
    })
}

/// Median of sorted values.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// A NAS-Bench-201 space of `channels` and `cells_per_stage` (10 classes, with the aux skip).
pub fn nb201_space(channels: usize, cells_per_stage: usize) -> Space {
    Space::Nb201(Nb201Config {
        channels,
        cells_per_stage,
        ..Nb201Config::default()
    })
}

/// A DARTS-cell space (`candidates`: DARTS' or RobustDARTS' S1–S4) of `channels` and
/// `layers` (10 classes, 4 nodes, with the aux skip).
pub fn darts_space(channels: usize, layers: usize, candidates: DartsSpace) -> Space {
    Space::Darts(DartsConfig {
        channels,
        layers,
        candidates,
        ..DartsConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }
}
