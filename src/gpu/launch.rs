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
