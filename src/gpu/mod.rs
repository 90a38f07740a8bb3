//! GPU runtime: adapter and device, kernel registry with pipeline cache, buffer pool,
//! batched command recording, readback, and step recording for replay.
//!
//! Nothing here knows about neural networks: callers launch named WGSL entry points on
//! buffers with a small block of `u32` parameters.

mod adapter;
mod kernels;
mod params;
mod policy;
mod pool;

pub use adapter::{list_adapters, AdapterChoice, AdapterSummary};
pub use kernels::{shader_sources, validate_all_shaders, WORKGROUP};
pub use params::{
    params_layouts, ConvParams, DepthwiseParams, Field, KernelParams, ParamsLayout, PointwiseParams,
};
pub use policy::{LaunchPolicy, Strategy, SUBMITTING_THREAD_MAX_WORK};
pub use pool::{BufId, GpuBuffer, MemoryStats};

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// One recorded command: replay re-encodes these in order.
#[derive(Clone)]
enum Command {
    Dispatch {
        pipeline: Arc<wgpu::ComputePipeline>,
        bind_group: Arc<wgpu::BindGroup>,
        grid: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        bytes: u64,
    },
    Clear {
        dst: wgpu::Buffer,
        bytes: u64,
    },
}

#[derive(Default)]
struct State {
    pending: Vec<Command>,
    /// While recording: the commands, and the pooled buffers they touch.
    recording: Option<(Vec<Command>, Vec<BufId>)>,
    bind_groups: HashMap<(usize, Vec<BufId>), Arc<wgpu::BindGroup>>,
    uniforms: HashMap<Vec<u32>, GpuBuffer>,
    dispatches: u64,
    submissions: u64,
    /// Per-kernel (count, seconds) when profiling: every launch is synced and timed.
    profile: Option<HashMap<String, (u64, f64)>>,
    /// Profile entries also keyed by grid (`DM_PROFILE_GRID`, read when profiling starts).
    profile_grid: bool,
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
}

/// A recorded sequence of GPU commands (a whole training step, say) that can be replayed
/// with new contents in its buffers. Every buffer it touched stays out of the pool while it
/// lives; buffers reused within the recording (by liveness) stay shared, so a program needs
/// no more memory than one eager run of the same commands.
pub struct Program {
    commands: Vec<Command>,
    _pins: pool::PinGuard,
}

impl Program {
    pub fn dispatches(&self) -> usize {
        self.commands
            .iter()
            .filter(|c| matches!(c, Command::Dispatch { .. }))
            .count()
    }
}

impl Gpu {
    /// Opens the adapter `choice` selects (see [`AdapterChoice`]) with its own limits.
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
        let summary = adapter::summarize(adapter, true);
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("darts-minus"),
            required_features: wgpu::Features::empty(),
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
        let kernels = kernels::Registry::new(&device);
        let policy = LaunchPolicy::for_adapter(&summary);
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
            Some(s) => LaunchPolicy::preset(s, adapter.max_storage_buffers_per_stage),
            None => LaunchPolicy::for_adapter(adapter),
        };
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

    /// A storage buffer of at least `len` f32 values (contents undefined), from the pool.
    pub fn alloc(&self, name: &str, len: usize) -> Result<GpuBuffer> {
        let bytes = (len.max(1) * 4) as u64;
        let limit = self.inner.limits.max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                name: name.to_string(),
                bytes,
                limit,
                what: "max_storage_buffer_binding_size",
            });
        }
        if bytes > self.inner.limits.max_buffer_size {
            return Err(Error::TooLarge {
                name: name.to_string(),
                bytes,
                limit: self.inner.limits.max_buffer_size,
                what: "max_buffer_size",
            });
        }
        Ok(self.inner.pool.get(&self.inner.device, bytes))
    }

    /// Writes f32 data at the start of `buf` (queued; ordered before later submissions).
    pub fn write(&self, buf: &GpuBuffer, data: &[f32]) {
        self.write_bytes(buf, bytemuck::cast_slice(data));
    }

    pub fn write_u32(&self, buf: &GpuBuffer, data: &[u32]) {
        self.write_bytes(buf, bytemuck::cast_slice(data));
    }

    fn write_bytes(&self, buf: &GpuBuffer, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // Writes land before the next submit, so flush what was recorded earlier first:
        // otherwise a kernel queued before this write would see the new data.
        self.flush();
        self.inner.queue.write_buffer(buf.raw(), 0, bytes);
    }

    /// Launches `entry` of shader `file` over `threads` invocations (1-D, spread over the grid
    /// limits). `params` become the uniform at binding 0; `buffers` bind 1, 2, ….
    pub fn launch(
        &self,
        file: &'static str,
        entry: &'static str,
        params: &[u32],
        buffers: &[&GpuBuffer],
        threads: usize,
    ) -> Result<()> {
        let groups = threads.div_ceil(WORKGROUP as usize).max(1);
        self.launch_groups(file, entry, params, buffers, groups)
    }

    /// Like [`Gpu::launch`] but with an explicit number of workgroups (for kernels with one
    /// workgroup per reduction); the kernel recovers its linear workgroup id from the grid.
    pub fn launch_groups(
        &self,
        file: &'static str,
        entry: &'static str,
        params: &[u32],
        buffers: &[&GpuBuffer],
        groups: usize,
    ) -> Result<()> {
        let max = self.inner.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.min(max);
        let rest = groups.div_ceil(x);
        let y = rest.min(max);
        let z = rest.div_ceil(y);
        self.launch_grid(file, entry, params, buffers, [x, y, z])
    }

    /// Launches `entry` on an explicit 3-D grid of workgroups (kernels that index by grid axis).
    pub fn launch_grid(
        &self,
        file: &'static str,
        entry: &'static str,
        params: &[u32],
        buffers: &[&GpuBuffer],
        grid: [usize; 3],
    ) -> Result<()> {
        self.launch_spec(file, entry, &[], params, buffers, grid)
    }

    /// 1-D launch of a kernel specialised with pipeline constants (see [`Gpu::launch`]).
    pub fn launch_specialized(
        &self,
        file: &'static str,
        entry: &'static str,
        consts: &[(&'static str, u32)],
        params: &[u32],
        buffers: &[&GpuBuffer],
        groups: usize,
    ) -> Result<()> {
        let max = self.inner.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.clamp(1, max);
        let rest = groups.div_ceil(x);
        let y = rest.min(max);
        let z = rest.div_ceil(y.max(1));
        self.launch_spec(file, entry, consts, params, buffers, [x, y, z])
    }

    /// The general launch: `entry` of `file` specialised with `consts`, on `grid` workgroups.
    pub fn launch_spec(
        &self,
        file: &'static str,
        entry: &'static str,
        consts: &[(&'static str, u32)],
        params: &[u32],
        buffers: &[&GpuBuffer],
        grid: [usize; 3],
    ) -> Result<()> {
        let max = self.inner.limits.max_compute_workgroups_per_dimension as usize;
        if grid.iter().any(|&g| g > max) {
            return Err(Error::Gpu(format!(
                "{file}:{entry} needs a grid of {grid:?} workgroups; this adapter allows {max} per dimension. Use a smaller batch or channel count"
            )));
        }
        let [x, y, z] = grid.map(|g| g.max(1));
        let (pid, pipeline) =
            self.inner
                .kernels
                .pipeline(&self.inner.device, file, entry, consts)?;
        let uniform = self.uniform(params);
        let mut key_ids = Vec::with_capacity(buffers.len() + 1);
        key_ids.push(uniform.id());
        key_ids.extend(buffers.iter().map(|b| b.id()));
        let bind_group = {
            let mut st = self.inner.state.borrow_mut();
            let key = (pid, key_ids);
            if let Some(bg) = st.bind_groups.get(&key) {
                bg.clone()
            } else {
                let layout = pipeline.get_bind_group_layout(0);
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.raw().as_entire_binding(),
                }];
                for (i, b) in buffers.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: b.raw(),
                            offset: 0,
                            size: None,
                        }),
                    });
                }
                let bg = Arc::new(self.inner.device.create_bind_group(
                    &wgpu::BindGroupDescriptor {
                        label: Some(entry),
                        layout: &layout,
                        entries: &entries,
                    },
                ));
                // Steps repeat the same buffer combinations; a bound keeps pathological
                // workloads (ever-changing shapes) from growing the cache without limit.
                if st.bind_groups.len() >= 65_536 {
                    st.bind_groups.clear();
                }
                st.bind_groups.insert(key, bg.clone());
                bg
            }
        };
        if let Some((_, touched)) = self.inner.state.borrow_mut().recording.as_mut() {
            touched.extend(buffers.iter().map(|b| b.id()));
        }
        let profiling = self.inner.state.borrow().profile.is_some();
        let t0 = profiling.then(|| {
            let _ = self.sync();
            std::time::Instant::now()
        });
        self.push(Command::Dispatch {
            pipeline,
            bind_group,
            grid: [x as u32, y as u32, z as u32],
        });
        if let Some(t0) = t0 {
            self.sync()?;
            let dt = t0.elapsed().as_secs_f64();
            let mut st = self.inner.state.borrow_mut();
            let key = if st.profile_grid {
                format!("{file}:{entry} {x}x{y}x{z}")
            } else {
                format!("{file}:{entry}")
            };
            let e = st.profile.as_mut().unwrap().entry(key).or_default();
            e.0 += 1;
            e.1 += dt;
        }
        Ok(())
    }

    /// Starts timing every kernel launch (each is synced: slow, for finding hot kernels). With
    /// `DM_PROFILE_GRID` set in the environment, launches are also told apart by their grid.
    pub fn start_profile(&self) {
        let mut st = self.inner.state.borrow_mut();
        st.profile = Some(HashMap::new());
        st.profile_grid = std::env::var_os("DM_PROFILE_GRID").is_some();
    }

    /// Stops profiling; returns (kernel, launches, seconds), slowest first.
    pub fn take_profile(&self) -> Vec<(String, u64, f64)> {
        let map = self
            .inner
            .state
            .borrow_mut()
            .profile
            .take()
            .unwrap_or_default();
        let mut v: Vec<_> = map.into_iter().map(|(k, (n, t))| (k, n, t)).collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }

    /// Queues a buffer-to-buffer copy of `len` f32 values.
    pub fn copy(&self, src: &GpuBuffer, dst: &GpuBuffer, len: usize) {
        self.copy_range(src, 0, dst, 0, len);
    }

    /// Queues a copy of `len` f32 values from `src[src_at..]` to `dst[dst_at..]`.
    pub fn copy_range(
        &self,
        src: &GpuBuffer,
        src_at: usize,
        dst: &GpuBuffer,
        dst_at: usize,
        len: usize,
    ) {
        if len == 0 {
            return;
        }
        if let Some((_, touched)) = self.inner.state.borrow_mut().recording.as_mut() {
            touched.extend([src.id(), dst.id()]);
        }
        self.push(Command::Copy {
            src: src.raw().clone(),
            src_offset: (src_at * 4) as u64,
            dst: dst.raw().clone(),
            dst_offset: (dst_at * 4) as u64,
            bytes: (len * 4) as u64,
        });
    }

    /// Queues zeroing the first `len` f32 values of `buf` (a clear command, no launch).
    pub fn clear(&self, buf: &GpuBuffer, len: usize) {
        if len == 0 {
            return;
        }
        if let Some((_, touched)) = self.inner.state.borrow_mut().recording.as_mut() {
            touched.push(buf.id());
        }
        self.push(Command::Clear {
            dst: buf.raw().clone(),
            bytes: (len * 4) as u64,
        });
    }

    fn push(&self, cmd: Command) {
        let mut st = self.inner.state.borrow_mut();
        if let Some((rec, _)) = st.recording.as_mut() {
            rec.push(cmd.clone());
        }
        st.pending.push(cmd);
        // Keep command buffers bounded during long eager graphs.
        if st.pending.len() >= 4096 {
            drop(st);
            self.flush();
        }
    }

    /// Uniform buffers are cached by value: the same shapes every step reuse one buffer.
    fn uniform(&self, params: &[u32]) -> GpuBuffer {
        let mut padded = params.to_vec();
        padded.resize(params.len().div_ceil(4).max(1) * 4, 0);
        let mut st = self.inner.state.borrow_mut();
        if let Some(b) = st.uniforms.get(&padded) {
            return b.clone();
        }
        let buf = self.inner.pool.uniform(&self.inner.device, &padded);
        st.uniforms.insert(padded, buf.clone());
        buf
    }

    /// Submits everything queued so far in one command buffer.
    pub fn flush(&self) {
        let cmds = std::mem::take(&mut self.inner.state.borrow_mut().pending);
        if cmds.is_empty() {
            return;
        }
        self.encode_and_submit(&cmds);
    }

    fn encode_and_submit(&self, cmds: &[Command]) {
        let mut enc = self
            .inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let mut i = 0;
        let mut n_dispatch = 0u64;
        while i < cmds.len() {
            if let Command::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                bytes,
            } = &cmds[i]
            {
                enc.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *bytes);
                i += 1;
                continue;
            }
            if let Command::Clear { dst, bytes } = &cmds[i] {
                enc.clear_buffer(dst, 0, Some(*bytes));
                i += 1;
                continue;
            }
            // One compute pass for each run of dispatches.
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            while let Some(Command::Dispatch {
                pipeline,
                bind_group,
                grid,
                ..
            }) = cmds.get(i)
            {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, Some(bind_group.as_ref()), &[]);
                pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
                n_dispatch += 1;
                i += 1;
            }
        }
        self.inner.queue.submit([enc.finish()]);
        let mut st = self.inner.state.borrow_mut();
        st.dispatches += n_dispatch;
        st.submissions += 1;
    }

    /// Waits for all submitted work.
    pub fn sync(&self) -> Result<()> {
        self.flush();
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        self.check_error()
    }

    /// Returns the first GPU validation error seen since the last check.
    pub fn check_error(&self) -> Result<()> {
        match self.inner.error.lock().unwrap().take() {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Reads `len` f32 values from the start of `buf` (flushes and waits).
    pub fn read(&self, buf: &GpuBuffer, len: usize) -> Result<Vec<f32>> {
        Ok(self.read_many(&[(buf, len)])?.remove(0))
    }

    /// Reads several buffers (the first `len` values of each) with one copy submission and one
    /// wait, instead of a round trip per buffer.
    pub fn read_many(&self, bufs: &[(&GpuBuffer, usize)]) -> Result<Vec<Vec<f32>>> {
        let total: usize = bufs.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return Ok(bufs.iter().map(|_| Vec::new()).collect());
        }
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (total * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.flush();
        let mut enc = self
            .inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let mut at = 0u64;
        for (buf, n) in bufs {
            let bytes = (*n * 4) as u64;
            if bytes > 0 {
                enc.copy_buffer_to_buffer(buf.raw(), 0, &staging, at, bytes);
            }
            at += bytes;
        }
        self.inner.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        rx.recv()
            .map_err(|e| Error::Gpu(e.to_string()))?
            .map_err(|e| Error::Gpu(e.to_string()))?;
        self.check_error()?;
        let all = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        let mut out = Vec::with_capacity(bufs.len());
        let mut from = 0;
        for (_, n) in bufs {
            out.push(all[from..from + n].to_vec());
            from += n;
        }
        Ok(out)
    }

    /// Starts recording every command issued from now on into a [`Program`].
    pub fn begin_recording(&self) {
        self.flush();
        self.inner.state.borrow_mut().recording = Some((Vec::new(), Vec::new()));
    }

    /// Ends recording. None of the buffers the program touched is handed out again by the
    /// pool (where replay would overwrite someone else's data) while the program lives.
    pub fn end_recording(&self) -> Program {
        self.flush();
        let (commands, mut touched) = self
            .inner
            .state
            .borrow_mut()
            .recording
            .take()
            .unwrap_or_default();
        touched.sort_unstable();
        touched.dedup();
        let _pins = self.inner.pool.pin(&touched);
        Program { commands, _pins }
    }

    /// Restarts the peak of [`Gpu::memory`] from the bytes live now.
    pub fn reset_peak_memory(&self) {
        self.inner.pool.reset_peak();
    }

    /// Re-runs a recorded program as one submission.
    pub fn replay(&self, program: &Program) {
        self.flush();
        self.encode_and_submit(&program.commands);
    }
}
