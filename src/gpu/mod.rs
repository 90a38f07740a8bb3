//! GPU runtime: adapter and device, kernel registry with pipeline cache, buffer pool,
//! batched command recording, readback, and step recording for replay.
//!
//! Nothing here knows about neural networks: callers launch named WGSL entry points on
//! buffers with a small block of `u32` parameters.
//!
//! The [`Gpu`] handle's methods live by job: `device` (opening, limits, counters), `buffers`,
//! `launch`, `submit` (batching, sync), `readback`, `program` (record, replay).

mod adapter;
mod buffers;
mod device;
mod kernels;
mod launch;
mod limits;
mod params;
mod pipeline_cache;
mod policy;
mod pool;
mod program;
mod readback;
mod submit;

pub use adapter::{list_adapters, mesa_version, AdapterChoice, AdapterSummary, FAST_MESA};
pub use kernels::{shader_sources, validate_all_shaders, PipelineVariant, WORKGROUP};
pub use launch::Work;
pub use limits::LimitsChoice;
pub use params::{
    params_layouts, BatchNormParams, ConvParams, DepthwiseParams, ElementwiseParams, KernelParams,
    LayoutBlockParams, LayoutParams, MatmulParams, MixedParams, MixedSumParams, NoiseParams,
    OptimParams, ParamsLayout, PointwiseParams, PoolParams, ReduceParams, Sgd4Params,
    SoftmaxParams, SumsqParams, WgslField,
};
pub use policy::{LaunchPolicy, Strategy, SUBMITTING_THREAD_MAX_WORK};
pub use pool::{BufId, GpuBuffer, MemoryStats};
pub use program::Program;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use submit::Command;

/// The handle's mutable state: queued commands, the recording, caches and counters.
#[derive(Default)]
struct State {
    pending: Vec<Command>,
    /// While recording: the commands, and the pooled buffers they touch.
    recording: Option<(Vec<Command>, Vec<BufId>)>,
    bind_groups: HashMap<(usize, Vec<BufId>), Arc<wgpu::BindGroup>>,
    uniforms: HashMap<Vec<u32>, GpuBuffer>,
    /// Bound at uniform weight windows that hold no weight (see `Gpu::window_placeholder`).
    window_placeholder: Option<GpuBuffer>,
    dispatches: u64,
    submissions: u64,
    /// Per-kernel (count, seconds) when profiling: every launch is synced and timed.
    profile: Option<HashMap<String, (u64, f64)>>,
    /// Profile entries also keyed by grid (`DM_PROFILE_GRID`, read when profiling starts).
    profile_grid: bool,
    /// CPU time spent encoding and submitting command buffers (eager flushes and replays).
    encode_secs: f64,
}

/// The GPU: device, queue, caches. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct Gpu {
    inner: Rc<GpuInner>,
}

struct GpuInner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    limits: wgpu::Limits,
    kernels: kernels::Registry,
    pool: pool::Pool,
    state: RefCell<State>,
    error: Arc<Mutex<Option<String>>>,
    /// How ops launch their work on this adapter (replaceable for tests and `bench`).
    policy: std::cell::Cell<LaunchPolicy>,
    /// Thresholds set by `DARTS_MINUS_POLICY`, kept over every preset this device switches to.
    policy_overrides: Vec<(String, usize)>,
    /// Timestamp queries for profiling, where the adapter has them (see `launch::GpuTimer`).
    timer: Option<launch::GpuTimer>,
    /// Bind groups the cache keeps at most (see [`bind_group_cap`]).
    bind_group_cap: usize,
}

/// The most bind groups to keep cached. Mesa 25's lavapipe backs every descriptor set with a
/// memory mapping of its own, and a process may hold `vm.max_map_count` mappings (65,530 by
/// default): 65,536 cached bind groups crashed it inside the driver. On CPU adapters the
/// cache keeps an eighth of that limit, leaving the rest to recorded programs (each keeps its
/// own bind groups: 12,714 at the paper's network), buffers and compiled kernels.
fn bind_group_cap(summary: &AdapterSummary) -> usize {
    const CAP: usize = 65_536;
    if summary.device_type != "Cpu" {
        return CAP;
    }
    (max_map_count() / 8).clamp(1_024, CAP)
}

/// The memory mappings a process may hold (Linux's `vm.max_map_count`; its default elsewhere).
fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(65_530)
}

#[cfg(test)]
mod cap_tests {
    use super::*;

    #[test]
    fn cpu_adapters_keep_fewer_bind_groups_than_a_process_may_map() {
        let mut a = adapter::software("Vulkan", "llvmpipe Mesa 25.0.7");
        let cpu = bind_group_cap(&a);
        let maps = max_map_count();
        // Room left for recorded programs, buffers and kernels; still a useful cache.
        assert!(cpu >= 1_024, "{cpu}");
        assert!(
            cpu <= maps.max(8_192) / 4,
            "{cpu} bind groups against {maps} mappings"
        );
        a.device_type = "DiscreteGpu".into();
        assert_eq!(bind_group_cap(&a), 65_536);
    }
}
