//! Adapter discovery and choice.
//!
//! Default order: a real discrete GPU, then an integrated one, then a software Vulkan adapter
//! (lavapipe), then anything else (llvmpipe through GL last). `--backend` / `WGPU_BACKEND`
//! restrict the backends searched; `--adapter` / `WGPU_ADAPTER_NAME` pick by name substring;
//! `--limits` / `DARTS_MINUS_LIMITS` clamp the limits the device is opened with.

use super::LimitsChoice;
use crate::error::{Error, Result};

/// What the user asked for. Empty fields mean "choose for me".
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    /// One of vulkan, metal, dx12, gl.
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name.
    pub name: Option<String>,
    /// adapter, webgpu or downlevel (see [`LimitsChoice`]); None: the adapter's.
    pub limits: Option<String>,
    /// Where compiled pipelines are kept across runs: a directory, or `off`; None: the user's
    /// cache directory (see `gpu::pipeline_cache`).
    pub pipeline_cache: Option<String>,
}

impl AdapterChoice {
    /// Fills unset fields from `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `DARTS_MINUS_LIMITS` and
    /// `DARTS_MINUS_PIPELINE_CACHE`.
    pub fn with_env(mut self) -> Self {
        if self.pipeline_cache.is_none() {
            self.pipeline_cache = std::env::var("DARTS_MINUS_PIPELINE_CACHE")
                .ok()
                .filter(|s| !s.is_empty());
        }
        if self.limits.is_none() {
            self.limits = std::env::var("DARTS_MINUS_LIMITS")
                .ok()
                .filter(|s| !s.is_empty());
        }
        if self.backend.is_none() {
            self.backend = std::env::var("WGPU_BACKEND").ok().filter(|s| !s.is_empty());
        }
        if self.name.is_none() {
            self.name = std::env::var("WGPU_ADAPTER_NAME")
                .ok()
                .filter(|s| !s.is_empty());
        }
        self
    }

    /// The limits asked for (the adapter's when none).
    pub fn limits_choice(&self) -> Result<LimitsChoice> {
        self.limits
            .as_deref()
            .map_or(Ok(LimitsChoice::Adapter), LimitsChoice::parse)
    }

    pub fn backends(&self) -> Result<wgpu::Backends> {
        match &self.backend {
            None => Ok(wgpu::Backends::all()),
            Some(list) => {
                let mut b = wgpu::Backends::empty();
                for part in list.split(',').map(|s| s.trim().to_ascii_lowercase()) {
                    b |= match part.as_str() {
                        "vulkan" | "vk" => wgpu::Backends::VULKAN,
                        "metal" | "mtl" => wgpu::Backends::METAL,
                        "dx12" | "d3d12" => wgpu::Backends::DX12,
                        "gl" | "gles" | "opengl" => wgpu::Backends::GL,
                        "" => continue,
                        other => return Err(Error::UnknownBackend(other.to_string())),
                    };
                }
                Ok(b)
            }
        }
    }
}

/// Facts about one adapter, as `darts-minus devices` prints them; the limits are those a device
/// opened under the chosen [`LimitsChoice`] gets.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub limits_choice: LimitsChoice,
    pub max_storage_binding: u64,
    pub max_buffer: u64,
    pub max_workgroups_per_dim: u32,
    pub max_storage_buffers_per_stage: u32,
    /// A CPU adapter with subgroups of exactly 8 lanes (llvmpipe's 256-bit vectors): kernels
    /// can share loads across a vector's lanes by broadcasts (shaders/lanes.wgsl).
    /// `DARTS_MINUS_LANES=off` turns it off (to measure what it buys).
    pub lanes8: bool,
    /// Threads a CPU adapter runs a launch's workgroups on (Mesa's `LP_NUM_THREADS`, else
    /// one per core; 0 there, the submitting thread, counts as 1); 1 on GPUs.
    pub cpu_threads: usize,
    pub chosen: bool,
}

/// The Mesa release (major, minor) named in a driver string such as "llvmpipe Mesa
/// 25.0.7-2~bpo12+1 (LLVM 15.0.6)" or GL's "4.5 (Core Profile) Mesa 22.3.6"; None for other
/// drivers.
pub fn mesa_version(driver: &str) -> Option<(u32, u32)> {
    let rest = &driver[driver.find("Mesa ")? + 5..];
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The first Mesa release whose software adapters the project is measured and tested on
/// besides Debian 12's 22.3 (docs/performance.md, "Mesa 25").
pub const FAST_MESA: (u32, u32) = (25, 0);

impl AdapterSummary {
    /// The Mesa release of this adapter's driver, if it is Mesa's.
    pub fn mesa(&self) -> Option<(u32, u32)> {
        mesa_version(&self.driver)
    }

    /// What to install for faster runs, where this is a software (CPU) adapter from a Mesa
    /// older than [`FAST_MESA`]: the same kernels run 1.3–1.5× as fast on Mesa 25's lavapipe
    /// on the same CPU (its JIT loads buffers without a per-lane loop).
    pub fn driver_advice(&self) -> Option<String> {
        if self.device_type != "Cpu" {
            return None;
        }
        let (major, minor) = self.mesa()?;
        if (major, minor) >= FAST_MESA {
            return None;
        }
        let which = if self.backend == "Gl" {
            "llvmpipe through GL"
        } else {
            "lavapipe"
        };
        Some(format!(
            "note: this adapter is Mesa {major}.{minor}'s {which}; Mesa 25's lavapipe runs \
             darts-minus 1.3-1.5x as fast on the same CPU (docs/performance.md, \"Mesa 25\"). \
             On Debian 12: tools/mesa_lavapipe.sh, or enable bookworm-backports and \
             `apt-get install -t bookworm-backports mesa-vulkan-drivers`; elsewhere your \
             distribution's Mesa 25 or newer"
        ))
    }
}

/// Lower is better.
fn rank(info: &wgpu::AdapterInfo) -> u32 {
    use wgpu::{Backend, DeviceType};
    let ty = match info.device_type {
        DeviceType::DiscreteGpu => 0,
        DeviceType::IntegratedGpu => 1,
        DeviceType::VirtualGpu => 2,
        DeviceType::Cpu => 3,
        DeviceType::Other => 4,
    };
    // Among equals prefer the native compute-friendly backends over GL.
    let be = match info.backend {
        Backend::Vulkan | Backend::Metal | Backend::Dx12 => 0,
        Backend::Gl => 1,
        _ => 2,
    };
    ty * 10 + be
}

pub(crate) fn instance(choice: &AdapterChoice) -> Result<wgpu::Instance> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = choice.backends()?;
    desc.flags = wgpu::InstanceFlags::default().with_env();
    desc.backend_options = wgpu::BackendOptions::default().with_env();
    Ok(wgpu::Instance::new(desc))
}

/// All adapters the backends allow, best first, with the index of the one `choice` selects.
pub(crate) fn enumerate(
    choice: &AdapterChoice,
) -> Result<(wgpu::Instance, Vec<wgpu::Adapter>, Option<usize>)> {
    let inst = instance(choice)?;
    let mut adapters = pollster::block_on(inst.enumerate_adapters(choice.backends()?));
    adapters.retain(|a| {
        choice
            .backends()
            .is_ok_and(|b| b.contains(a.get_info().backend.into()))
    });
    adapters.sort_by_key(|a| rank(&a.get_info()));
    let chosen = match &choice.name {
        Some(name) => {
            let needle = name.to_lowercase();
            adapters
                .iter()
                .position(|a| a.get_info().name.to_lowercase().contains(&needle))
        }
        None => (!adapters.is_empty()).then_some(0),
    };
    Ok((inst, adapters, chosen))
}

/// The facts of `a` with its limits under `choice`.
pub fn summarize(a: &wgpu::Adapter, chosen: bool, choice: LimitsChoice) -> AdapterSummary {
    let info = a.get_info();
    let lim = choice.apply(a.limits());
    AdapterSummary {
        limits_choice: choice,
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        max_storage_binding: lim.max_storage_buffer_binding_size,
        max_buffer: lim.max_buffer_size,
        max_workgroups_per_dim: lim.max_compute_workgroups_per_dimension,
        max_storage_buffers_per_stage: lim.max_storage_buffers_per_shader_stage,
        lanes8: info.device_type == wgpu::DeviceType::Cpu
            && a.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == 8
            && info.subgroup_max_size == 8
            && std::env::var("DARTS_MINUS_LANES").map_or(true, |v| v != "off"),
        cpu_threads: if info.device_type == wgpu::DeviceType::Cpu {
            cpu_adapter_threads()
        } else {
            1
        },
        chosen,
    }
}

/// The threads Mesa's software drivers run a launch on: `LP_NUM_THREADS` where set (0 runs it
/// on the submitting thread), else one per core, at most 16 (llvmpipe's own cap).
fn cpu_adapter_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::env::var("LP_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(cores)
        .clamp(1, 16)
}

/// The adapters a run may use: with no backend named, the native APIs (Vulkan, Metal, DX12)
/// first and GL only when none of them has an adapter (probing GL is slow and noisy).
pub(crate) fn candidates(
    choice: &AdapterChoice,
) -> Result<(wgpu::Instance, Vec<wgpu::Adapter>, Option<usize>)> {
    if choice.backend.is_some() {
        return enumerate(choice);
    }
    let primary = AdapterChoice {
        backend: Some("vulkan,metal,dx12".into()),
        ..choice.clone()
    };
    let found = enumerate(&primary)?;
    if found.2.is_some() {
        return Ok(found);
    }
    enumerate(choice)
}

/// Every adapter visible under `choice`, marking the one that would be used.
pub fn list_adapters(choice: &AdapterChoice) -> Result<Vec<AdapterSummary>> {
    let limits = choice.limits_choice()?;
    let (_inst, adapters, _) = enumerate(choice)?;
    let (_, cands, idx) = candidates(choice)?;
    let chosen = idx.map(|i| cands[i].get_info());
    let mut marked = false;
    Ok(adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            let is = !marked
                && chosen
                    .as_ref()
                    .is_some_and(|c| c.name == info.name && c.backend == info.backend);
            marked |= is;
            summarize(a, is, limits)
        })
        .collect())
}

/// A CPU adapter's summary for unit tests: llvmpipe on `backend` with `driver`.
#[cfg(test)]
pub(crate) fn software(backend: &str, driver: &str) -> AdapterSummary {
    AdapterSummary {
        name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
        backend: backend.into(),
        device_type: "Cpu".into(),
        driver: driver.into(),
        limits_choice: LimitsChoice::Adapter,
        max_storage_binding: 1 << 27,
        max_buffer: 1 << 31,
        max_workgroups_per_dim: 65535,
        max_storage_buffers_per_stage: 8,
        lanes8: true,
        cpu_threads: 2,
        chosen: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesa_releases_are_read_from_the_driver_strings() {
        let bpo = "llvmpipe Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)";
        assert_eq!(mesa_version(bpo), Some((25, 0)));
        assert_eq!(
            mesa_version("llvmpipe Mesa 22.3.6 (LLVM 15.0.6)"),
            Some((22, 3))
        );
        let gl = "4.5 (Core Profile) Mesa 22.3.6";
        assert_eq!(mesa_version(gl), Some((22, 3)));
        assert_eq!(mesa_version("NVIDIA 570.86.15"), None);
        assert_eq!(mesa_version("Mesa"), None);
        assert_eq!(mesa_version("Mesa x.y"), None);
    }

    #[test]
    fn only_software_adapters_of_an_older_mesa_are_advised() {
        let old = software("Vulkan", "llvmpipe Mesa 22.3.6 (LLVM 15.0.6)");
        let advice = old.driver_advice().expect("Mesa 22.3 is older than 25");
        assert!(advice.contains("Mesa 22.3's lavapipe"), "{advice}");
        assert!(advice.contains("tools/mesa_lavapipe.sh"), "{advice}");
        let gl = software("Gl", "4.5 (Core Profile) Mesa 24.2.8");
        let advice = gl.driver_advice().expect("Mesa 24.2 is older than 25");
        assert!(advice.contains("llvmpipe through GL"), "{advice}");
        assert_eq!(
            software("Vulkan", "llvmpipe Mesa 25.0.7").driver_advice(),
            None
        );
        assert_eq!(
            software("Vulkan", "llvmpipe Mesa 26.1.0").driver_advice(),
            None
        );
        let mut gpu = software("Vulkan", "radv Mesa 22.3.6");
        gpu.device_type = "DiscreteGpu".into();
        assert_eq!(gpu.driver_advice(), None);
        assert_eq!(
            software("Vulkan", "some other driver").driver_advice(),
            None
        );
    }
}
