//! Which limits the device is opened with. Real adapters grant less than Mesa's software
//! drivers (WebGPU guarantees only 8 storage buffers per shader stage, GLES 3.1-class devices
//! 4), so a run can ask for those limits on any adapter and prove it fits them.

use crate::error::{Error, Result};

/// `--limits` / `DARTS_MINUS_LIMITS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitsChoice {
    /// Everything the adapter grants.
    #[default]
    Adapter,
    /// The adapter's limits clamped to WebGPU's guaranteed ones (`wgpu::Limits::default()`:
    /// 8 storage buffers per stage, 16 KiB of workgroup memory, 128 MiB per binding, …).
    WebGpu,
    /// Clamped to the downlevel (GLES 3.1-class) ones: 4 storage buffers per stage.
    Downlevel,
}

impl LimitsChoice {
    pub const NAMES: [&'static str; 3] = ["adapter", "webgpu", "downlevel"];

    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "adapter" | "" => Ok(LimitsChoice::Adapter),
            "webgpu" => Ok(LimitsChoice::WebGpu),
            "downlevel" => Ok(LimitsChoice::Downlevel),
            other => Err(Error::Invalid(format!(
                "unknown limits '{other}' (--limits / DARTS_MINUS_LIMITS): use one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LimitsChoice::Adapter => "adapter",
            LimitsChoice::WebGpu => "webgpu",
            LimitsChoice::Downlevel => "downlevel",
        }
    }

    /// The limits to open the device with, given the adapter's: each no better than both.
    pub fn apply(self, adapter: wgpu::Limits) -> wgpu::Limits {
        match self {
            LimitsChoice::Adapter => adapter,
            LimitsChoice::WebGpu => adapter.or_worse_values_from(&wgpu::Limits::default()),
            LimitsChoice::Downlevel => {
                adapter.or_worse_values_from(&wgpu::Limits::downlevel_defaults())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LimitsChoice;

    #[test]
    fn clamps_to_the_chosen_limits() {
        let generous = wgpu::Limits {
            max_storage_buffers_per_shader_stage: 32,
            max_compute_workgroup_storage_size: 65536,
            max_storage_buffer_binding_size: 1 << 31,
            ..wgpu::Limits::default()
        };
        let w = LimitsChoice::WebGpu.apply(generous.clone());
        assert_eq!(w.max_storage_buffers_per_shader_stage, 8);
        assert_eq!(w.max_compute_workgroup_storage_size, 16384);
        assert_eq!(w.max_storage_buffer_binding_size, 128 << 20);
        let d = LimitsChoice::Downlevel.apply(generous.clone());
        assert_eq!(d.max_storage_buffers_per_shader_stage, 4);
        let a = LimitsChoice::Adapter.apply(generous.clone());
        assert_eq!(a.max_storage_buffers_per_shader_stage, 32);
        // A limit the adapter grants below WebGPU's stays the adapter's.
        let poor = wgpu::Limits {
            max_storage_buffers_per_shader_stage: 6,
            ..generous
        };
        let w = LimitsChoice::WebGpu.apply(poor);
        assert_eq!(w.max_storage_buffers_per_shader_stage, 6);
    }

    #[test]
    fn parses_names() {
        for name in LimitsChoice::NAMES {
            assert_eq!(LimitsChoice::parse(name).unwrap().name(), name);
        }
        assert_eq!(LimitsChoice::parse("WebGPU").unwrap(), LimitsChoice::WebGpu);
        let e = LimitsChoice::parse("strict").unwrap_err().to_string();
        assert!(e.contains("'strict'") && e.contains("webgpu"), "{e}");
    }
}
