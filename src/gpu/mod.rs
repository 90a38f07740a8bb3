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

pub use adapter::{list_adapters, AdapterChoice, AdapterSummary};
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
}
