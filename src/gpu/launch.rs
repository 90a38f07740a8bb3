//! Kernel launches: grid shaping within the adapter limits, cached uniforms and bind groups,
//! and per-kernel profiling.

use super::submit::Command;
use super::{Gpu, GpuBuffer, WORKGROUP};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

/// How much work a launch covers: invocations, in workgroups of [`WORKGROUP`] (a plain count
/// converts to this), or whole workgroups, for kernels with one workgroup per reduction (both
/// 1-D, spread over the grid limits: kernels recover their linear id from the grid), or an
/// explicit grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    Threads(usize),
    Groups(usize),
    /// An explicit 3-D grid of workgroups (kernels that index by grid axis).
    Grid([usize; 3]),
}

impl From<[usize; 3]> for Work {
    fn from(grid: [usize; 3]) -> Work {
        Work::Grid(grid)
    }
}

/// `groups` workgroups as a grid within `max` per dimension.
fn spread(groups: usize, max: usize) -> [usize; 3] {
    let x = groups.clamp(1, max);
    let rest = groups.div_ceil(x);
    let y = rest.min(max);
    [x, y, rest.div_ceil(y.max(1))]
}

impl From<usize> for Work {
    fn from(threads: usize) -> Work {
        Work::Threads(threads)
    }
}

impl Gpu {
    /// Launches `entry` of shader `file` over `work` (1-D, spread over the grid limits).
    /// `params` become the uniform at binding 0; `buffers` bind 1, 2, ….
    pub fn launch(
        &self,
        file: &'static str,
        entry: &'static str,
        params: &[u32],
        buffers: &[&GpuBuffer],
        work: impl Into<Work>,
    ) -> Result<()> {
        self.launch_spec(file, entry, &[], params, buffers, work)
    }

    /// The general launch: `entry` of `file` specialised with `consts`, on `grid` workgroups.
    pub fn launch_spec(
        &self,
        file: &'static str,
        entry: &'static str,
        consts: &[(&'static str, u32)],
        params: &[u32],
        buffers: &[&GpuBuffer],
        work: impl Into<Work>,
    ) -> Result<()> {
        let max = self.inner.limits.max_compute_workgroups_per_dimension as usize;
        let grid = match work.into() {
            Work::Grid(grid) => grid,
            Work::Threads(t) => spread(t.div_ceil(WORKGROUP as usize), max),
            Work::Groups(g) => spread(g, max),
        };
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
                // workloads (ever-changing shapes) from growing the cache without limit, and
                // CPU adapters within their mappings (`bind_group_cap`).
                if st.bind_groups.len() >= self.inner.bind_group_cap {
                    st.bind_groups.clear();
                }
                st.bind_groups.insert(key, bg.clone());
                bg
            }
        };
        if let Some((_, touched)) = self.inner.state.borrow_mut().recording.as_mut() {
            touched.extend(buffers.iter().map(|b| b.id()));
        }
        let grid = [x as u32, y as u32, z as u32];
        let profiling = self.inner.state.borrow().profile.is_some();
        // Profiling: the launch submitted alone, after everything before it.
        if profiling {
            self.sync()?;
        }
        let t0 = std::time::Instant::now();
        self.push(Command::Dispatch {
            pipeline,
            bind_group,
            grid,
        });
        if !profiling {
            return Ok(());
        }
        let dt = match &self.inner.timer {
            // The GPU's own clock: the kernel alone, without the submit and wait around it.
            Some(timer) => {
                let dt = self.flush_timed(timer)?;
                self.check_error()?;
                dt
            }
            // No timestamps: the wall time of the launch submitted and waited for.
            None => {
                self.sync()?;
                t0.elapsed().as_secs_f64()
            }
        };
        let mut st = self.inner.state.borrow_mut();
        let key = if st.profile_grid {
            format!("{file}:{entry} {x}x{y}x{z}")
        } else {
            format!("{file}:{entry}")
        };
        let e = st.profile.as_mut().unwrap().entry(key).or_default();
        e.0 += 1;
        e.1 += dt;
        Ok(())
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

    /// Whether profiles time kernels with the GPU's timestamps (else: each launch's synced
    /// wall time, which includes a submit and a wait).
    pub fn profiles_gpu_time(&self) -> bool {
        self.inner.timer.is_some()
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
}

/// Times one compute pass with the GPU's timestamps: two queries, resolved and read back
/// (`Gpu::flush_timed`).
pub(super) struct GpuTimer {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
}

impl GpuTimer {
    pub(super) fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> GpuTimer {
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 16,
                usage,
                mapped_at_creation: false,
            })
        };
        GpuTimer {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolved: buffer(
                "timestamps resolved",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "timestamps read back",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            period_ns: queue.get_timestamp_period() as f64,
        }
    }

    /// The timestamp writes of the one compute pass being timed.
    pub(super) fn writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        }
    }

    /// Copies the pass's two timestamps where `read` finds them (encoded after the pass).
    pub(super) fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        enc.resolve_query_set(&self.queries, 0..2, &self.resolved, 0);
        enc.copy_buffer_to_buffer(&self.resolved, 0, &self.readback, 0, 16);
    }

    /// Seconds between the timed pass's start and end (waits for the submitted pass).
    pub(super) fn read(&self, gpu: &Gpu) -> Result<f64> {
        gpu.wait_mapped(&self.readback)?;
        let ticks = {
            let view = self
                .readback
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(e.to_string()))?;
            let t: &[u64] = bytemuck::cast_slice(&view);
            t[1].saturating_sub(t[0])
        };
        self.readback.unmap();
        Ok(ticks as f64 * self.period_ns * 1e-9)
    }
}
