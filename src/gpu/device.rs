//! Opening the device on the chosen adapter, and what the handle reports about it: limits,
//! launch policy, dispatch/submission counters, memory.

use super::adapter::{self, AdapterChoice, AdapterSummary};
use super::pool::{self, MemoryStats};
use super::{kernels, pipeline_cache, Gpu, GpuInner, LaunchPolicy, State, Strategy};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

impl Gpu {
    /// Opens the adapter `choice` selects (see [`AdapterChoice`]) with the limits it asks for
    /// (the adapter's own unless `choice.limits` clamps them).
    pub fn new(choice: &AdapterChoice) -> Result<Gpu> {
        let choice = choice.clone().with_env();
        let (_inst, adapters, chosen) = adapter::candidates(&choice)?;
        let Some(idx) = chosen else {
            let detail = match (&choice.name, &choice.backend) {
                (Some(n), _) if !adapters.is_empty() => format!(
                    " whose name contains '{n}' (available: {})",
                    adapters
                        .iter()
                        .map(|a| a.get_info().name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (_, Some(b)) => format!(" for backend '{b}'"),
                _ => String::new(),
            };
            return Err(Error::NoAdapter { detail });
        };
        let adapter = &adapters[idx];
        let limits_choice = choice.limits_choice()?;
        let summary = adapter::summarize(adapter, true, limits_choice);
        let limits = limits_choice.apply(adapter.limits());
        let cache_file = pipeline_cache::file_for(adapter, choice.pipeline_cache.as_deref());
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let desc = wgpu::DeviceDescriptor {
            label: Some("darts-minus"),
            required_features: {
                let mut f = wgpu::Features::empty();
                f.set(wgpu::Features::PIPELINE_CACHE, cache_file.is_some());
                f.set(wgpu::Features::SUBGROUP, summary.lanes8);
                // For `bench --profile`: each kernel's GPU time rather than a synced wall time.
                f.set(wgpu::Features::TIMESTAMP_QUERY, timestamps);
                f
            },
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&desc)).map_err(|e| Error::Device {
                adapter: summary.name.clone(),
                reason: e.to_string(),
            })?;
        let error = Arc::new(Mutex::new(None::<String>));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let disk = cache_file.map(|path| pipeline_cache::DiskCache::open(&device, path));
        let kernels = kernels::Registry::new(&limits, limits_choice, disk, summary.lanes8);
        // Thresholds to measure on a new adapter without a rebuild (see LaunchPolicy).
        let overrides = LaunchPolicy::env_overrides().map_err(Error::Invalid)?;
        let policy = LaunchPolicy::for_adapter(&summary).with_overrides(&overrides);
        let timer = timestamps.then(|| super::launch::GpuTimer::new(&device, &queue));
        let bind_group_cap = super::bind_group_cap(&summary);
        Ok(Gpu {
            inner: Rc::new(GpuInner {
                pool: pool::Pool::new(),
                device,
                queue,
                summary,
                limits,
                kernels,
                state: RefCell::new(State::default()),
                error,
                policy: std::cell::Cell::new(policy),
                policy_overrides: overrides,
                timer,
                bind_group_cap,
            }),
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.inner.summary
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The launch policy ops consult (see [`LaunchPolicy`]).
    pub fn policy(&self) -> LaunchPolicy {
        self.inner.policy.get()
    }

    /// Replaces the launch policy (tests run every path on any adapter; `bench --strategy`).
    pub fn set_policy(&self, policy: LaunchPolicy) {
        self.inner.policy.set(policy);
    }

    /// Switches to the `strategy` preset (None: the adapter's own), keeping a forced split.
    pub fn set_strategy(&self, strategy: Option<Strategy>) {
        let adapter = &self.inner.summary;
        let mut p = match strategy {
            Some(s) => {
                LaunchPolicy::preset(s, adapter.max_storage_buffers_per_stage).fitted(adapter)
            }
            None => LaunchPolicy::for_adapter(adapter),
        }
        .with_overrides(&self.inner.policy_overrides);
        p.forced_split = self.policy().forced_split;
        self.set_policy(p);
    }

    /// Forces the split of per-channel reductions to `parts` (tests run both paths on any
    /// adapter); None restores the policy's rule.
    pub fn set_channel_split(&self, parts: Option<usize>) {
        let mut p = self.policy();
        p.forced_split = parts;
        self.set_policy(p);
    }

    /// Every (file, entry point, pipeline constants) combination this device has compiled a
    /// pipeline for, sorted. The runtime specialises kernels by shape and launch policy, so
    /// this is the set to check on other targets: `tests/translate.rs` translates each to
    /// SPIR-V, MSL, HLSL and GLSL ES.
    pub fn pipeline_variants(&self) -> Vec<super::PipelineVariant> {
        self.inner.kernels.variants()
    }

    /// (pipelines created so far, the time creating them and their shader modules took): the
    /// compilation share of a run's start-up.
    pub fn pipeline_build_time(&self) -> (usize, std::time::Duration) {
        self.inner.kernels.build_time()
    }

    /// The file compiled pipelines are kept in across runs and the bytes read from it at start
    /// (None: the adapter has no pipeline cache, or it is `off`).
    pub fn pipeline_cache(&self) -> Option<(std::path::PathBuf, usize)> {
        self.inner.kernels.disk_cache()
    }

    /// Total dispatches issued so far (eager and replayed).
    pub fn dispatch_count(&self) -> u64 {
        self.inner.state.borrow().dispatches
    }

    /// Buffer-pool accounting: live, peak and reserved bytes.
    pub fn memory(&self) -> MemoryStats {
        self.inner.pool.usage()
    }

    /// Command submissions so far (each flush, readback or replay is one or two).
    pub fn submission_count(&self) -> u64 {
        self.inner.state.borrow().submissions
    }

    /// Seconds of CPU time spent encoding and submitting command buffers so far: with the
    /// step's wall time, it tells a step bound by encoding from one bound by the GPU.
    pub fn encode_seconds(&self) -> f64 {
        self.inner.state.borrow().encode_secs
    }

    /// Restarts the peak of [`Gpu::memory`] from the bytes live now.
    pub fn reset_peak_memory(&self) {
        self.inner.pool.reset_peak();
    }
}
