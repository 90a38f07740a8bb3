//! Every pipeline the runtime creates, through every naga backend wgpu uses: SPIR-V (Vulkan),
//! MSL (Metal), HLSL (DX12) and GLSL ES 3.10 (GL). This machine runs only the first (and GL
//! through llvmpipe), so a kernel that a shader model, an MSL version or GLSL ES cannot
//! express would otherwise surface only on someone else's GPU.
//!
//! The variants are collected, not listed by hand: tiny search, retraining and optimiser steps
//! run under each launch strategy, with the WebGPU-minimum storage-buffer limit (the narrow
//! fallback kernels) and with forced channel splits, and the registry reports every
//! (file, entry point, pipeline constants) it compiled. Every other compute entry point is
//! added with its default overrides, so kernels no run reaches are still translated.
//!
//! Each variant is specialised with `process_overrides` (as wgpu-hal does), validated by naga
//! with the target's capabilities, written, and checked by `spirv-val` / `glslangValidator`
//! where they are installed (Debian: spirv-tools, glslang-tools).

mod common;

use common::gpu;
use darts_minus::data::Dataset;
use darts_minus::gpu::{shader_sources, Gpu, LaunchPolicy, Strategy};
use darts_minus::nn::darts_ops::DartsSpace;
use darts_minus::search::darts_net::DartsConfig;
use darts_minus::search::genotype::Genotype;
use darts_minus::search::nb201::Nb201Arch;
use darts_minus::search::nb201_net::Nb201Config;
use darts_minus::search::trainer::{Search, SearchSettings, Space};
use darts_minus::train::darts_eval::EvalConfig;
use darts_minus::train::trainer::{Retrain, TrainSettings};
use darts_minus::train::Arch;
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

// ---- driving the runtime -------------------------------------------------------------------

/// A DARTS-space genotype with every candidate op in both cells (pools, skips and the
/// factorised reduction, both separable and both dilated convolutions).
fn every_op_genotype() -> Genotype {
    let genes = |g: &[(&str, usize)]| -> Vec<(String, usize)> {
        g.iter().map(|&(op, i)| (op.to_string(), i)).collect()
    };
    let g = Genotype {
        normal: genes(&[
            ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 1),
            ("dil_conv_3x3", 0),
            ("dil_conv_5x5", 2),
            ("skip_connect", 1),
            ("avg_pool_3x3", 3),
            ("max_pool_3x3", 0),
            ("sep_conv_3x3", 4),
        ]),
        normal_concat: vec![2, 3, 4, 5],
        reduce: genes(&[
            ("max_pool_3x3", 0),
            ("avg_pool_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_5x5", 2),
            ("dil_conv_3x3", 1),
            ("dil_conv_5x5", 3),
            ("sep_conv_3x3", 0),
            ("skip_connect", 4),
        ]),
        reduce_concat: vec![2, 3, 4, 5],
    };
    g.validate().expect("a valid genotype");
    g
}

/// One search step (α and w) and the validation pass, in the DARTS space with the DARTS-
/// auxiliary skip, in RobustDARTS' S4 (its `noise`), and in NAS-Bench-201 without it.
fn search_steps(g: &Gpu, data: &Arc<Dataset>) {
    let split = ((0..2).collect::<Vec<_>>(), (2..4).collect::<Vec<_>>());
    let darts = SearchSettings {
        space: Space::Darts(DartsConfig {
            channels: 4,
            layers: 3,
            classes: 10,
            nodes: 4,
            aux: true,
            ..DartsConfig::default()
        }),
        ..SearchSettings::darts_paper()
    };
    let nb201 = SearchSettings {
        space: Space::Nb201(Nb201Config {
            channels: 4,
            cells_per_stage: 1,
            classes: 10,
            aux: false,
        }),
        ..SearchSettings::nb201_benchmark()
    };
    let mut s4 = darts.clone();
    if let Space::Darts(c) = &mut s4.space {
        c.candidates = DartsSpace::S4;
    }
    for mut s in [darts, s4, nb201] {
        s.epochs = 1;
        s.batch_size = 2;
        s.max_steps = Some(1);
        let what = s.space.name();
        let mut search = Search::new(g, s).unwrap_or_else(|e| panic!("{what} search: {e}"));
        search
            .run_epoch(data, &split, &mut |_| {})
            .unwrap_or_else(|e| panic!("{what} search step: {e}"));
    }
}

/// One retraining step (drop path, clipped SGD) and a test pass, for a DARTS cell with every
/// op and a NAS-Bench-201 cell with every op; the DARTS network with its auxiliary head if
/// `aux_head`.
fn retrain_steps(g: &Gpu, train: &Arc<Dataset>, test: &Arc<Dataset>, aux_head: bool) {
    let mut darts = TrainSettings::paper(Arch::Darts(every_op_genotype()));
    darts.network = EvalConfig {
        channels: 4,
        layers: 5,
        classes: 10,
        auxiliary: aux_head,
    };
    let arch = Nb201Arch::new([3, 2, 1, 4, 0, 3]).expect("a valid NAS-Bench-201 cell");
    let mut nb201 = TrainSettings::paper(Arch::Nb201(arch));
    nb201.network = EvalConfig {
        channels: 4,
        layers: 1,
        classes: 10,
        auxiliary: false,
    };
    for mut s in [darts, nb201] {
        // The second of two epochs: drop path is 0 in the first.
        s.epochs = 2;
        s.batch_size = 2;
        s.max_steps = Some(1);
        let what = s.arch.text();
        let mut run = Retrain::new(g, s).unwrap_or_else(|e| panic!("retrain {what}: {e}"));
        run.epoch = 1;
        run.run_epoch(train, test, &mut |_| {})
            .unwrap_or_else(|e| panic!("retrain step {what}: {e}"));
    }
}

/// The optimisers' and clipping's public paths on a few odd-sized parameters, one without a
/// gradient.
fn optimizer_steps(g: &Gpu) {
    use darts_minus::autodiff::Tensor;
    use darts_minus::optim::{clip_coefficient, clip_grad_norm, Adam, Sgd};
    let sizes = [37usize, 5000, 5, 300, 1, 64];
    let values = |n: usize, k: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 + k) % 13) as f32 / 13.0 - 0.5)
            .collect()
    };
    let tensors = |k: usize, param: bool| -> Vec<Tensor> {
        sizes
            .iter()
            .map(|&n| {
                let v = values(n, k);
                if param {
                    Tensor::parameter(g, &[n], &v)
                } else {
                    Tensor::from_slice(g, &[n], &v)
                }
                .expect("a tensor")
            })
            .collect()
    };
    let ps = tensors(1, true);
    let gs = tensors(2, false);
    let refs: Vec<&Tensor> = gs.iter().collect();
    let some: Vec<Option<&Tensor>> = gs
        .iter()
        .enumerate()
        .map(|(k, t)| (k != 2).then_some(t))
        .collect();
    let run = || -> darts_minus::error::Result<()> {
        let mut sgd = Sgd::new(g, &ps, 0.1, 0.9, 3e-4)?;
        sgd.step(&ps, &refs)?;
        sgd.nesterov = true;
        sgd.step(&ps, &refs)?;
        sgd.prepare()?;
        sgd.encode_clipped_norm(&ps, &some, 5.0)?.to_vec()?;
        let (_, coef) = clip_coefficient(&refs, 5.0)?;
        sgd.encode_clipped(&ps, &refs, &coef)?;
        sgd.encode_some_scaled(&ps, &some, Some(&coef))?;
        let mut adam = Adam::new(g, &ps, 3e-4, (0.5, 0.999), 1e-8, 1e-3)?;
        adam.step(&ps, &refs)?;
        clip_grad_norm(&refs, 5.0)?.to_vec()?;
        Ok(())
    };
    run().unwrap_or_else(|e| panic!("optimiser steps: {e}"));
}

/// Runs every path under each launch policy the runtime can pick; prints what each added.
fn exercise(g: &Gpu) {
    let data = Arc::new(Dataset::builtin_train().expect("the built-in training set"));
    let train = Arc::new(data.subset(&[0, 1]));
    let test = Arc::new(
        Dataset::builtin_test()
            .expect("the built-in test set")
            .subset(&[0, 1]),
    );
    let wide = g.policy().max_storage_buffers;
    // WebGPU's guaranteed storage buffers per stage: the fallbacks of the 11-, 14- and
    // 15-binding kernels.
    let narrow = 8.min(wide);
    for (k, (strategy, buffers, split)) in [
        (Strategy::Cpu, wide, None),
        (Strategy::Gpu, wide, None),
        (Strategy::Cpu, narrow, None),
        (Strategy::Gpu, narrow, None),
        // Every per-channel reduction split, as the GPU rule does at real batch sizes (here
        // only the stem's is): the statistics-writing producers at every width.
        (Strategy::Gpu, wide, Some(2)),
    ]
    .into_iter()
    .enumerate()
    {
        g.set_policy(LaunchPolicy {
            forced_split: split,
            ..LaunchPolicy::preset(strategy, buffers)
        });
        let (t, before) = (Instant::now(), g.pipeline_variants().len());
        search_steps(g, &data);
        // The auxiliary head's weight gradient takes ~8 s a step on lavapipe (a workgroup per
        // weight of its 128→768 2×2 convolution), and what only it launches does not depend
        // on the policy (running it under every policy adds no pipeline), so it runs once.
        retrain_steps(g, &train, &test, k == 0);
        optimizer_steps(g);
        let what = format!(
            "{} strategy, {buffers} storage buffers, split {}",
            strategy.name(),
            split.map_or("by rule".to_string(), |s| s.to_string())
        );
        g.check_error()
            .unwrap_or_else(|e| panic!("{what}: the device reported {e}"));
        eprintln!(
            "{what}: {} new pipelines, {:.1} s",
            g.pipeline_variants().len() - before,
            t.elapsed().as_secs_f64()
        );
    }
    g.set_strategy(None);
}

// ---- translating ---------------------------------------------------------------------------

/// A kernel specialisation to translate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Variant {
    file: &'static str,
    entry: String,
    constants: Vec<(String, u32)>,
    /// Created by a run (else added with default overrides).
    hit: bool,
}

impl Variant {
    fn name(&self) -> String {
        let c: Vec<String> = self
            .constants
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}.wgsl:{} [{}]", self.file, self.entry, c.join(", "))
    }
}

#[derive(Clone, Copy, Debug)]
enum Target {
    /// SPIR-V 1.0, the version wgpu-hal writes for Vulkan 1.0 devices.
    Spirv,
    /// Naga's MSL writer has no platform switch beyond the language version; each version
    /// stands for the macOS and iOS releases that ship it (wgpu-hal's table).
    Msl((u8, u8), &'static str),
    Hlsl(hlsl::ShaderModel),
    /// GLSL ES 3.10, compute stage: the oldest GL wgpu runs compute on.
    GlslEs310,
}

const TARGETS: [Target; 6] = [
    Target::Spirv,
    Target::Msl((2, 1), "msl 2.1 (macOS 10.14, iOS 12)"),
    Target::Msl((2, 4), "msl 2.4 (macOS 12, iOS 15)"),
    Target::Hlsl(hlsl::ShaderModel::V5_1),
    Target::Hlsl(hlsl::ShaderModel::V6_0),
    Target::GlslEs310,
];

impl Target {
    fn name(self) -> String {
        match self {
            Target::Spirv => "spir-v 1.0 (vulkan 1.0)".into(),
            Target::Msl(_, name) => name.into(),
            Target::Hlsl(sm) => format!("hlsl sm {}", sm.to_str().replace('_', ".")),
            Target::GlslEs310 => "glsl es 3.10".into(),
        }
    }

    /// The capabilities to validate with. The device requests no features, so every kernel
    /// must pass with none: the two oldest targets check that (naga's lists for their writers
    /// include what needs a newer shader model or desktop GL); the others get what their
    /// writer supports.
    fn capabilities(self) -> Capabilities {
        match self {
            Target::Spirv => spv::supported_capabilities(),
            Target::Msl(..) => msl::supported_capabilities(),
            Target::Hlsl(hlsl::ShaderModel::V5_0 | hlsl::ShaderModel::V5_1) => {
                Capabilities::empty()
            }
            Target::Hlsl(_) => hlsl::supported_capabilities(),
            Target::GlslEs310 => Capabilities::empty(),
        }
    }
}

/// The external validators, if installed.
struct Tools {
    spirv_val: bool,
    glslang: bool,
}

impl Tools {
    fn find() -> Tools {
        let has = |tool: &str, arg: &str| {
            let ok = Command::new(tool)
                .arg(arg)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !ok {
                eprintln!("{tool} not found: skipping its checks (Debian: apt-get install spirv-tools glslang-tools)");
            }
            ok
        };
        Tools {
            spirv_val: has("spirv-val", "--version"),
            glslang: has("glslangValidator", "--version"),
        }
    }
}

/// Runs `cmd`; Err with its output if it fails.
fn run_tool(mut cmd: Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The module's bound globals (all in group 0), in binding order, with whether each is
/// a uniform and whether it is writable.
fn bindings(module: &naga::Module) -> Vec<(naga::ResourceBinding, bool, bool)> {
    let mut v: Vec<_> = module
        .global_variables
        .iter()
        .filter_map(|(_, gv)| {
            let rb = gv.binding?;
            let (uniform, writable) = match gv.space {
                naga::AddressSpace::Uniform => (true, false),
                naga::AddressSpace::Storage { access } => {
                    (false, access.contains(naga::StorageAccess::STORE))
                }
                _ => (false, false),
            };
            Some((rb, uniform, writable))
        })
        .collect();
    v.sort_by_key(|(rb, ..)| (rb.group, rb.binding));
    v
}

/// Workgroup memory of the (compacted) module: the globals of its one entry point.
fn workgroup_bytes(module: &naga::Module) -> u32 {
    module
        .global_variables
        .iter()
        .filter(|(_, gv)| gv.space == naga::AddressSpace::WorkGroup)
        .map(|(_, gv)| module.types[gv.ty].inner.size(module.to_ctx()))
        .sum()
}

/// WebGPU's default `maxComputeWorkgroupStorageSize`, and the threadgroup memory of the oldest
/// iOS GPUs Metal supports.
const WORKGROUP_BYTES_MAX: u32 = 16384;

/// Translates `v` for `target` and validates the result (spirv-val on the SPIR-V); writes
/// files for the external validators under `dir`. Returns the GLSL file for glslangValidator,
/// which checks them in batches (it takes ~70 ms to start).
fn translate(
    v: &Variant,
    target: Target,
    p: &Parsed,
    dir: &Path,
    tools: &Tools,
    serial: usize,
) -> Result<Option<PathBuf>, String> {
    let (source, module, info) = (&p.source, &p.module, &p.info);
    let stage = naga::ShaderStage::Compute;
    let constants: naga::back::PipelineConstants = v
        .constants
        .iter()
        .map(|(k, x)| (k.clone(), *x as f64))
        .collect();
    let (module, _) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((stage, &v.entry)),
        &constants,
    )
    .map_err(|e| format!("process_overrides: {e}"))?;
    let module = module.as_ref();
    let info = Validator::new(ValidationFlags::all(), target.capabilities())
        .validate(module)
        .map_err(|e| format!("naga validation: {}", e.emit_to_string(source)))?;
    let wg = workgroup_bytes(module);
    if wg > WORKGROUP_BYTES_MAX {
        return Err(format!(
            "{wg} bytes of workgroup memory; portable is {WORKGROUP_BYTES_MAX}"
        ));
    }
    let bound = bindings(module);
    let stem = dir.join(format!("{serial:04}-{}-{}", v.file, v.entry));
    match target {
        Target::Spirv => {
            // The capabilities every Vulkan implementation has (the list wgpu-hal starts
            // from): the writer refuses a shader that needs another.
            let caps = [
                spv::Capability::Shader,
                spv::Capability::Matrix,
                spv::Capability::Sampled1D,
                spv::Capability::Image1D,
                spv::Capability::ImageQuery,
                spv::Capability::DerivativeControl,
                spv::Capability::StorageImageExtendedFormats,
            ];
            let restrict = naga::proc::BoundsCheckPolicy::Restrict;
            let options = spv::Options {
                lang_version: (1, 0),
                flags: spv::WriterFlags::empty(),
                capabilities: Some(caps.into_iter().collect()),
                bounds_check_policies: naga::proc::BoundsCheckPolicies {
                    index: restrict,
                    buffer: restrict,
                    image_load: restrict,
                    binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
                },
                // The runtime creates every pipeline without zero-initialised workgroup memory.
                zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
                ..spv::Options::default()
            };
            let words = spv::write_vec(
                module,
                &info,
                &options,
                Some(&spv::PipelineOptions {
                    shader_stage: stage,
                    entry_point: v.entry.clone(),
                }),
            )
            .map_err(|e| format!("SPIR-V writer: {e}"))?;
            if tools.spirv_val {
                let path = stem.with_extension("spv");
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                // SPIR-V 1.0 under Vulkan 1.0's rules: the oldest environment wgpu targets.
                let mut cmd = Command::new("spirv-val");
                cmd.args(["--target-env", "vulkan1.0"]).arg(&path);
                run_tool(cmd)?;
            }
        }
        Target::Msl(lang_version, _) => {
            // Buffers in binding order in Metal's one buffer namespace, then the array sizes,
            // as wgpu-hal lays them out.
            let mut resources = msl::BindingMap::default();
            for (slot, (rb, _, writable)) in bound.iter().enumerate() {
                resources.insert(
                    *rb,
                    msl::BindTarget {
                        buffer: Some(slot as u8),
                        mutable: *writable,
                        ..Default::default()
                    },
                );
            }
            let restrict = naga::proc::BoundsCheckPolicy::Restrict;
            let options = msl::Options {
                lang_version,
                per_entry_point_map: [(
                    v.entry.clone(),
                    msl::EntryPointResources {
                        resources,
                        immediates_buffer: None,
                        sizes_buffer: Some(bound.len() as u8),
                    },
                )]
                .into_iter()
                .collect(),
                fake_missing_bindings: false,
                bounds_check_policies: naga::proc::BoundsCheckPolicies {
                    index: restrict,
                    buffer: restrict,
                    image_load: restrict,
                    binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
                },
                zero_initialize_workgroup_memory: false,
                ..msl::Options::default()
            };
            let pipeline = msl::PipelineOptions {
                entry_point: Some((stage, v.entry.clone())),
                ..Default::default()
            };
            let (_, ti) = msl::write_string(module, &info, &options, &pipeline)
                .map_err(|e| format!("MSL writer: {e}"))?;
            for name in ti.entry_point_names {
                name.map_err(|e| format!("MSL writer: {e}"))?;
            }
        }
        Target::Hlsl(shader_model) => {
            // Registers by binding, in space 0 (b, t and u registers do not collide).
            let binding_map = bound
                .iter()
                .map(|(rb, ..)| {
                    (
                        *rb,
                        hlsl::BindTarget {
                            space: rb.group as u8,
                            register: rb.binding,
                            ..Default::default()
                        },
                    )
                })
                .collect();
            let options = hlsl::Options {
                shader_model,
                binding_map,
                fake_missing_bindings: false,
                zero_initialize_workgroup_memory: false,
                ..hlsl::Options::default()
            };
            let pipeline = hlsl::PipelineOptions {
                entry_point: Some((stage, v.entry.clone())),
            };
            let mut out = String::new();
            let ri = hlsl::Writer::new(&mut out, &options, &pipeline)
                .write(module, &info, None)
                .map_err(|e| format!("HLSL writer: {e}"))?;
            for name in ri.entry_point_names {
                name.map_err(|e| format!("HLSL writer: {e}"))?;
            }
        }
        Target::GlslEs310 => {
            // Uniform blocks and storage blocks count their binding points separately, in
            // binding order (as wgpu-hal's GL backend assigns them).
            let mut binding_map = glsl::BindingMap::default();
            let (mut uniforms, mut storage) = (0u8, 0u8);
            for (rb, uniform, _) in &bound {
                let counter = if *uniform {
                    &mut uniforms
                } else {
                    &mut storage
                };
                binding_map.insert(*rb, *counter);
                *counter += 1;
            }
            let options = glsl::Options {
                version: glsl::Version::Embedded {
                    version: 310,
                    is_webgl: false,
                },
                writer_flags: glsl::WriterFlags::empty(),
                binding_map,
                zero_initialize_workgroup_memory: false,
            };
            let pipeline = glsl::PipelineOptions {
                shader_stage: stage,
                entry_point: v.entry.clone(),
                multiview: None,
            };
            let mut out = String::new();
            glsl::Writer::new(
                &mut out,
                module,
                &info,
                &options,
                &pipeline,
                // wgpu-hal's GL backend: GLSL itself keeps indices in bounds.
                naga::proc::BoundsCheckPolicies::default(),
            )
            .and_then(|mut w| w.write())
            .map_err(|e| format!("GLSL writer: {e}"))?;
            if tools.glslang {
                let path = stem.with_extension("comp");
                std::fs::write(&path, &out).map_err(|e| format!("{}: {e}", path.display()))?;
                return Ok(Some(path));
            }
        }
    }
    Ok(None)
}

/// glslangValidator over `files` (path, what it is) in one run (it checks each file on its
/// own, the stage from the `.comp` extension); on failure, file by file to name the culprits.
fn glslang_check(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut all = Command::new("glslangValidator");
    all.args(files.iter().map(|(p, _)| p));
    if run_tool(all).is_ok() {
        return Vec::new();
    }
    files
        .iter()
        .filter_map(|(path, what)| {
            let mut one = Command::new("glslangValidator");
            one.arg(path);
            run_tool(one).err().map(|e| format!("{what}: {e}"))
        })
        .collect()
}

/// Parsed and validated (all capabilities: the per-target check comes after specialising).
struct Parsed {
    file: &'static str,
    source: String,
    module: naga::Module,
    info: ModuleInfo,
}

fn parse_all() -> Vec<Parsed> {
    shader_sources()
        .into_iter()
        .map(|(file, source)| {
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{file}.wgsl: {}", e.emit_to_string(&source)));
            let info = Validator::new(ValidationFlags::all(), Capabilities::all())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{file}.wgsl: {}", e.emit_to_string(&source)));
            Parsed {
                file,
                source,
                module,
                info,
            }
        })
        .collect()
}

/// The variants the runs created, and every other compute entry point with its defaults.
fn variants(g: &Gpu, parsed: &[Parsed]) -> Vec<Variant> {
    let mut out: BTreeSet<Variant> = g
        .pipeline_variants()
        .into_iter()
        .map(|p| Variant {
            file: p.file,
            entry: p.entry.to_string(),
            constants: p
                .constants
                .iter()
                .map(|&(k, x)| (k.to_string(), x))
                .collect(),
            hit: true,
        })
        .collect();
    let hit: BTreeSet<(&str, String)> = out.iter().map(|v| (v.file, v.entry.clone())).collect();
    let mut unreached = Vec::new();
    for p in parsed {
        let missed: Vec<&naga::EntryPoint> = p
            .module
            .entry_points
            .iter()
            .filter(|ep| !hit.contains(&(p.file, ep.name.clone())))
            .collect();
        if missed.is_empty() {
            continue;
        }
        // An override without a default needs values from the code that launches the kernel;
        // none lacks one now, and one that appears must not be dropped silently.
        for (_, o) in p.module.overrides.iter() {
            assert!(
                o.init.is_some(),
                "{}.wgsl: override {:?} has no default and no run reached {:?}: add \
                 representative values to tests/translate.rs",
                p.file,
                o.name,
                missed.iter().map(|ep| &ep.name).collect::<Vec<_>>()
            );
        }
        for ep in missed {
            assert_eq!(
                ep.stage,
                naga::ShaderStage::Compute,
                "{}:{}: only compute entry points are translated",
                p.file,
                ep.name
            );
            unreached.push(format!("{}:{}", p.file, ep.name));
            out.insert(Variant {
                file: p.file,
                entry: ep.name.clone(),
                constants: Vec::new(),
                hit: false,
            });
        }
    }
    if !unreached.is_empty() {
        eprintln!(
            "{} entry points no run reached, translated with default overrides: {}",
            unreached.len(),
            unreached.join(", ")
        );
    }
    out.into_iter().collect()
}

#[test]
fn every_pipeline_translates_to_every_backend() {
    let g = gpu();
    eprintln!(
        "adapter: {} ({}), {} storage buffers per stage",
        g.adapter().name,
        g.adapter().backend,
        g.policy().max_storage_buffers
    );
    exercise(&g);

    let parsed = parse_all();
    let variants = variants(&g, &parsed);
    let created = variants.iter().filter(|v| v.hit).count();
    let mut per_file: BTreeMap<&str, (usize, usize)> =
        parsed.iter().map(|p| (p.file, (0, 0))).collect();
    for v in &variants {
        let e = per_file.entry(v.file).or_default();
        if v.hit {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    eprintln!(
        "{} variants: {created} created by the runs, {} more entry points with defaults",
        variants.len(),
        variants.len() - created
    );
    for (file, (hit, default)) in &per_file {
        eprintln!("  {file:<12} {hit:>4} created {default:>3} default");
    }
    // Not vacuous: every kernel family is launched by the runs, and they specialise plenty.
    let missing: Vec<&&str> = per_file
        .iter()
        .filter(|(_, (hit, _))| *hit == 0)
        .map(|(f, _)| f)
        .collect();
    assert!(
        missing.is_empty(),
        "no run created a pipeline from {missing:?}"
    );
    assert!(
        created >= 150,
        "only {created} pipelines created: the runs no longer reach the kernels"
    );

    let t1 = Instant::now();
    let tools = Tools::find();
    let dir = std::env::temp_dir().join(format!("darts-minus-translate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let jobs: Vec<(usize, Target)> = (0..variants.len())
        .flat_map(|i| TARGETS.iter().map(move |&t| (i, t)))
        .collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let done = Mutex::new(BTreeMap::<String, usize>::new());
    let glsl_files = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(i, target)) = jobs.get(k) else {
                    break;
                };
                let v = &variants[i];
                let p = parsed
                    .iter()
                    .find(|p| p.file == v.file)
                    .expect("a parsed file");
                let what = format!("{} on {}", v.name(), target.name());
                match translate(v, target, p, &dir, &tools, k) {
                    Ok(file) => {
                        *done.lock().unwrap().entry(target.name()).or_default() += 1;
                        if let Some(f) = file {
                            glsl_files.lock().unwrap().push((f, what));
                        }
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{what}: {e}")),
                }
            });
        }
    });
    // The GLSL in one batch per thread.
    let glsl_files = glsl_files.into_inner().unwrap();
    let batch = glsl_files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for files in glsl_files.chunks(batch) {
            s.spawn(|| {
                let bad = glslang_check(files);
                if let Some(n) = done.lock().unwrap().get_mut(&Target::GlslEs310.name()) {
                    *n -= bad.len();
                }
                failures.lock().unwrap().extend(bad);
            });
        }
    });
    std::fs::remove_dir_all(&dir).ok();
    eprintln!(
        "translated in {:.1} s on {threads} threads ({} with spirv-val, {} with glslangValidator):",
        t1.elapsed().as_secs_f64(),
        if tools.spirv_val {
            "checked"
        } else {
            "not checked"
        },
        if tools.glslang {
            "checked"
        } else {
            "not checked"
        },
    );
    for t in TARGETS {
        let n = done.lock().unwrap().get(&t.name()).copied().unwrap_or(0);
        eprintln!("  {:<32} {n:>4} variants passed", t.name());
    }
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} translations failed:\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n\n")
    );
}

/// The shaders are compiled without naga's loop bounding (`gpu/kernels.rs`), which is sound
/// only if no loop can run forever: every `for` must step its own counter by a constant (a
/// literal or WG; `step` in conv's `weight_rows`, whose callers pass 1 or WG), with no `while`,
/// and the only bare `loop`s are the tree sums' halving ones (`s = s / 2u` until 0).
#[test]
fn every_shader_loop_steps_by_a_constant() {
    let mut bad = Vec::new();
    for (file, source) in shader_sources() {
        for (n, line) in source.lines().enumerate() {
            let at = format!(
                "{file}.wgsl (with its prelude) line {}: {}",
                n + 1,
                line.trim()
            );
            if line.contains("while ") || line.contains("while(") {
                bad.push(format!("{at}: a while loop"));
            }
            if line.trim_start().starts_with("loop {") {
                // The body's first statement exits at 0 and a later one halves the counter.
                let body: Vec<&str> = source.lines().skip(n + 1).take(8).collect();
                let exits = body[0].trim() == "if (s == 0u) { break; }";
                if !exits || !body.iter().any(|l| l.trim() == "s = s / 2u;") {
                    bad.push(format!("{at}: a loop that is not a halving tree sum"));
                }
            }
            let Some(start) = line.find("for (") else {
                continue;
            };
            // The header up to its matching parenthesis.
            let mut depth = 0;
            let mut header = String::new();
            for ch in line[start + 4..].chars() {
                depth += match ch {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                header.push(ch);
                if depth == 0 {
                    break;
                }
            }
            let parts: Vec<&str> = header[1..header.len() - 1].split(';').collect();
            let ok = parts.len() == 3 && {
                // The counter is the one the step assigns (the init may be empty).
                let step = parts[2].trim();
                let var = step.split(" = ").next().unwrap_or("");
                let by = step
                    .strip_prefix(&format!("{var} = {var} + "))
                    .unwrap_or("");
                let constant = by == "WG"
                    || (!by.is_empty()
                        && by.trim_end_matches('u').chars().all(|c| c.is_ascii_digit()))
                    || (file == "conv" && by == "step");
                !var.is_empty() && constant && by.trim_end_matches('u') != "0"
            };
            if !ok {
                bad.push(format!(
                    "{at}: the loop does not step its counter by a constant"
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
