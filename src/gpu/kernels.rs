//! Kernel registry: WGSL files from `shaders/` embedded in the binary, compiled once per
//! (file, entry point) and cached. Before a pipeline is created its entry point's needs
//! (storage buffers per stage, workgroup memory) are checked against the device's limits, so
//! a kernel that does not fit stops the run with an error naming it, not a driver failure.

use super::pipeline_cache::DiskCache;
use super::LimitsChoice;
use crate::error::{Error, Result};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Threads per workgroup of every 1-D kernel (WebGPU's guaranteed minimum maximum).
pub const WORKGROUP: u32 = 256;

/// Helpers every kernel file may use; prepended to each file before compilation.
const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

/// Lane broadcasts, prepended after the prelude on devices opened with subgroups of 8
/// consecutive invocations ([`crate::gpu::LaunchPolicy::lanes`]); elsewhere (and for naga's
/// checks here) their stand-ins, which no launch reaches there.
const LANES: &str = include_str!("../../shaders/lanes.wgsl");
const LANES_NONE: &str = include_str!("../../shaders/lanes_none.wgsl");

/// A kernel file's full source: prelude, lane helpers (real ones with `lanes`), the file.
fn full_source(src: &str, lanes: bool) -> String {
    let helpers = if lanes { LANES } else { LANES_NONE };
    format!("{PRELUDE}\n{helpers}\n{src}")
}

const FILES: &[(&str, &str)] = &[
    (
        "elementwise",
        include_str!("../../shaders/elementwise.wgsl"),
    ),
    ("conv", include_str!("../../shaders/conv.wgsl")),
    ("pointwise", include_str!("../../shaders/pointwise.wgsl")),
    ("depthwise", include_str!("../../shaders/depthwise.wgsl")),
    ("pool", include_str!("../../shaders/pool.wgsl")),
    ("batchnorm", include_str!("../../shaders/batchnorm.wgsl")),
    ("reduce", include_str!("../../shaders/reduce.wgsl")),
    ("layout", include_str!("../../shaders/layout.wgsl")),
    ("softmax", include_str!("../../shaders/softmax.wgsl")),
    ("matmul", include_str!("../../shaders/matmul.wgsl")),
    ("optim", include_str!("../../shaders/optim.wgsl")),
    ("mixed", include_str!("../../shaders/mixed.wgsl")),
    ("noise", include_str!("../../shaders/noise.wgsl")),
];

/// (file name, full source with prelude) of every kernel family.
pub fn shader_sources() -> Vec<(&'static str, String)> {
    FILES
        .iter()
        .map(|(name, src)| (*name, full_source(src, false)))
        .collect()
}

/// Parses and validates every shader with naga; returns the first failure.
pub fn validate_all_shaders() -> Result<()> {
    for (name, _) in FILES {
        entry_needs(name)?;
    }
    Ok(())
}

/// A compiled pipeline and its small integer id (for bind-group cache keys).
type CachedPipeline = (usize, Arc<wgpu::ComputePipeline>);

/// (file, entry point, pipeline constants).
type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u32)>);

/// What one entry point needs from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryNeeds {
    /// Storage buffers it binds (in its one shader stage).
    pub storage_buffers: u32,
    /// Bytes of workgroup memory.
    pub workgroup_bytes: u32,
    /// Invocations per workgroup.
    pub invocations: u32,
}

/// The needs of every compute entry point of shader `file` (by name), from naga's analysis
/// of the validated module (a shader that does not parse or validate is an error):
/// only the globals an entry point (or a function it calls) uses count, as in the pipeline
/// layout wgpu derives.
pub fn entry_needs(file: &str) -> Result<Vec<(String, EntryNeeds)>> {
    let src = FILES
        .iter()
        .find(|(n, _)| *n == file)
        .ok_or_else(|| Error::Gpu(format!("no shader file '{file}'")))?
        .1;
    let src = full_source(src, false);
    let shader_err = |msg: String| Error::Shader {
        file: format!("{file}.wgsl"),
        msg,
    };
    let module =
        naga::front::wgsl::parse_str(&src).map_err(|e| shader_err(e.emit_to_string(&src)))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .map_err(|e| shader_err(e.emit_to_string(&src)))?;
    let mut out = Vec::new();
    for (i, ep) in module.entry_points.iter().enumerate() {
        let fi = info.get_entry_point(i);
        let mut needs = EntryNeeds {
            storage_buffers: 0,
            workgroup_bytes: 0,
            invocations: ep.workgroup_size.iter().product(),
        };
        for (h, var) in module.global_variables.iter() {
            if fi[h].is_empty() {
                continue;
            }
            match var.space {
                naga::AddressSpace::Storage { .. } => needs.storage_buffers += 1,
                naga::AddressSpace::WorkGroup => {
                    needs.workgroup_bytes += module.types[var.ty].inner.size(module.to_ctx())
                }
                _ => {}
            }
        }
        out.push((ep.name.clone(), needs));
    }
    Ok(out)
}

/// One pipeline the registry has created: a kernel and the pipeline constants it was
/// specialised with (see [`crate::gpu::Gpu::pipeline_variants`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineVariant {
    /// Shader file name without `.wgsl` (a name in [`shader_sources`]).
    pub file: &'static str,
    pub entry: &'static str,
    /// (override name, value) as passed to the pipeline; overrides not listed keep defaults.
    pub constants: Vec<(&'static str, u32)>,
}

pub(crate) struct Registry {
    modules: RefCell<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: RefCell<HashMap<PipelineKey, CachedPipeline>>,
    /// Per file, its entry points' needs (computed when the file is first used).
    needs: RefCell<HashMap<&'static str, Vec<(String, EntryNeeds)>>>,
    limits: wgpu::Limits,
    limits_choice: LimitsChoice,
    /// Pipelines created so far and the time their creation took (shader modules included).
    built: Cell<(usize, Duration)>,
    /// Compiled pipelines kept across runs, where the adapter supports it.
    disk: Option<DiskCache>,
    /// Whether the device was opened with subgroups of 8 consecutive invocations (lanes.wgsl).
    lanes: bool,
}

impl Registry {
    pub fn new(
        limits: &wgpu::Limits,
        limits_choice: LimitsChoice,
        disk: Option<DiskCache>,
        lanes: bool,
    ) -> Self {
        Registry {
            modules: RefCell::new(HashMap::new()),
            pipelines: RefCell::new(HashMap::new()),
            needs: RefCell::new(HashMap::new()),
            limits: limits.clone(),
            limits_choice,
            built: Cell::new((0, Duration::ZERO)),
            disk,
            lanes,
        }
    }

    pub fn disk_cache(&self) -> Option<(std::path::PathBuf, usize)> {
        self.disk.as_ref().map(|d| (d.path.clone(), d.loaded))
    }

    pub fn save_cache(&self) -> Result<usize> {
        let Some(d) = &self.disk else { return Ok(0) };
        d.save().map_err(|e| Error::File {
            path: d.path.clone(),
            msg: format!("cannot write the pipeline cache: {e}"),
        })
    }

    /// (pipelines created, time spent creating them and their shader modules).
    pub fn build_time(&self) -> (usize, Duration) {
        self.built.get()
    }

    /// Whether `file:entry` fits the device's limits; the error names the kernel, the limit
    /// and what to do.
    fn check_fits(&self, file: &'static str, entry: &'static str) -> Result<()> {
        let mut all = self.needs.borrow_mut();
        if !all.contains_key(file) {
            all.insert(file, entry_needs(file)?);
        }
        let Some((_, needs)) = all[file].iter().find(|(n, _)| n == entry) else {
            return Err(Error::Gpu(format!(
                "no entry point '{entry}' in {file}.wgsl"
            )));
        };
        let l = &self.limits;
        let checks = [
            (
                "storage buffers per shader stage",
                needs.storage_buffers,
                l.max_storage_buffers_per_shader_stage,
            ),
            (
                "bytes of workgroup memory",
                needs.workgroup_bytes,
                l.max_compute_workgroup_storage_size,
            ),
            (
                "invocations per workgroup",
                needs.invocations,
                l.max_compute_invocations_per_workgroup,
            ),
        ];
        for (what, need, have) in checks {
            if need > have {
                return Err(Error::KernelLimit {
                    kernel: format!("{file}.wgsl:{entry}"),
                    what,
                    need,
                    have,
                    limits: self.limits_choice.name(),
                });
            }
        }
        Ok(())
    }

    /// The pipeline for `file:entry` specialised with `consts`, and a small id for cache keys.
    pub fn pipeline(
        &self,
        device: &wgpu::Device,
        file: &'static str,
        entry: &'static str,
        consts: &[(&'static str, u32)],
    ) -> Result<(usize, Arc<wgpu::ComputePipeline>)> {
        let key = (file, entry, consts.to_vec());
        if let Some(p) = self.pipelines.borrow().get(&key) {
            return Ok(p.clone());
        }
        self.check_fits(file, entry)?;
        let started = Instant::now();
        let mut modules = self.modules.borrow_mut();
        if !modules.contains_key(file) {
            let src = FILES
                .iter()
                .find(|(n, _)| *n == file)
                .ok_or_else(|| Error::Gpu(format!("no shader file '{file}'")))?
                .1;
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(full_source(src, self.lanes).into()),
            };
            // Without naga's loop bounding: it adds a 64-bit counter to every loop, which on
            // llvmpipe is a loop-carried value (a masked load, blend and store each iteration):
            // the dense 3×3 convolution ran 16 % fewer instructions without it (callgrind,
            // `tools/kernel_instructions.sh`). Its only purpose is to keep an infinite loop
            // from being undefined behaviour; every loop in `shaders/` runs to a uniform or
            // constant bound by a constant step (`tests/translate.rs` checks the source).
            // Bounds checks and integer-division checks stay.
            // SAFETY: no shader of this crate contains an infinite loop (see above).
            let module = unsafe {
                device.create_shader_module_trusted(
                    desc,
                    wgpu::ShaderRuntimeChecks {
                        force_loop_bounding: false,
                        ..wgpu::ShaderRuntimeChecks::checked()
                    },
                )
            };
            modules.insert(file, module);
        }
        let constants: Vec<(&str, f64)> = consts.iter().map(|&(k, v)| (k, v as f64)).collect();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &modules[file],
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                // Every kernel writes its workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: self.disk.as_ref().map(|d| &d.cache),
        });
        let (n, t) = self.built.get();
        self.built.set((n + 1, t + started.elapsed()));
        let mut pipelines = self.pipelines.borrow_mut();
        let id = pipelines.len();
        let val = (id, Arc::new(pipeline));
        pipelines.insert(key, val.clone());
        Ok(val)
    }

    /// Every pipeline created so far, sorted.
    pub fn variants(&self) -> Vec<PipelineVariant> {
        let mut v: Vec<PipelineVariant> = self
            .pipelines
            .borrow()
            .keys()
            .map(|(file, entry, constants)| PipelineVariant {
                file,
                entry,
                constants: constants.clone(),
            })
            .collect();
        v.sort();
        v
    }
}

impl Drop for Registry {
    /// Keeps what this run compiled for the next one. Best effort: a cache that cannot be
    /// written costs the next run its compile time, nothing else.
    fn drop(&mut self) {
        if self.built.get().0 > 0 {
            let _ = self.save_cache();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{entry_needs, FILES};
    use crate::gpu::policy::WIDE_KERNELS;

    /// Every kernel fits WebGPU's guaranteed limits, except the wide ones the launch policy
    /// chooses only where the device binds what they need.
    #[test]
    fn every_kernel_fits_webgpu_limits_or_is_gated() {
        let webgpu = wgpu::Limits::default();
        let mut wide_seen = 0;
        for (file, _) in FILES {
            for (entry, n) in entry_needs(file).unwrap() {
                let at = format!("{file}:{entry} {n:?}");
                assert!(
                    n.workgroup_bytes <= webgpu.max_compute_workgroup_storage_size,
                    "{at}"
                );
                assert!(
                    n.invocations <= webgpu.max_compute_invocations_per_workgroup,
                    "{at}"
                );
                let gate = WIDE_KERNELS.iter().find(|w| w.0 == *file && w.1 == entry);
                match gate {
                    Some(&(_, _, binds)) => {
                        assert_eq!(n.storage_buffers, binds, "{at}: WIDE_KERNELS is stale");
                        wide_seen += 1;
                    }
                    None => assert!(
                        n.storage_buffers <= webgpu.max_storage_buffers_per_shader_stage,
                        "{at}: wider than WebGPU allows; give it a narrow path chosen by the \
                         launch policy and list it in WIDE_KERNELS"
                    ),
                }
            }
        }
        assert_eq!(wide_seen, WIDE_KERNELS.len());
    }
}
