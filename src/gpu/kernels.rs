//! Kernel registry: WGSL files from `shaders/` embedded in the binary, compiled once per
//! (file, entry point) and cached.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Threads per workgroup of every 1-D kernel (WebGPU's guaranteed minimum maximum).
pub const WORKGROUP: u32 = 256;

/// Helpers every kernel file may use; prepended to each file before compilation.
const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

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
];

/// (file name, full source with prelude) of every kernel family.
pub fn shader_sources() -> Vec<(&'static str, String)> {
    FILES
        .iter()
        .map(|(name, src)| (*name, format!("{PRELUDE}\n{src}")))
        .collect()
}

/// Parses and validates every shader with naga; returns the first failure.
pub fn validate_all_shaders() -> Result<()> {
    for (name, src) in shader_sources() {
        let module = naga::front::wgsl::parse_str(&src).map_err(|e| Error::Shader {
            file: format!("{name}.wgsl"),
            msg: e.emit_to_string(&src),
        })?;
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .map_err(|e| Error::Shader {
            file: format!("{name}.wgsl"),
            msg: e.emit_to_string(&src),
        })?;
    }
    Ok(())
}

/// A compiled pipeline and its small integer id (for bind-group cache keys).
type CachedPipeline = (usize, Arc<wgpu::ComputePipeline>);

/// (file, entry point, pipeline constants).
type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u32)>);

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
}

impl Registry {
    pub fn new(_device: &wgpu::Device) -> Self {
        Registry {
            modules: RefCell::new(HashMap::new()),
            pipelines: RefCell::new(HashMap::new()),
        }
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
        let mut modules = self.modules.borrow_mut();
        if !modules.contains_key(file) {
            let src = FILES
                .iter()
                .find(|(n, _)| *n == file)
                .ok_or_else(|| Error::Gpu(format!("no shader file '{file}'")))?
                .1;
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(format!("{PRELUDE}\n{src}").into()),
            });
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
            cache: None,
        });
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
