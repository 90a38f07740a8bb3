//! One error type for the whole crate: every failure names what went wrong and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no GPU adapter found{detail}. On Linux without a GPU install Mesa's software drivers (`apt-get install mesa-vulkan-drivers` for Vulkan/lavapipe; llvmpipe via GL comes with libgl1-mesa-dri); elsewhere install your GPU's Vulkan, Metal or DX12 driver")]
    NoAdapter { detail: String },

    #[error("could not open a device on adapter '{adapter}': {reason}")]
    Device { adapter: String, reason: String },

    #[error("unknown backend '{0}': use one of vulkan, metal, dx12, gl")]
    UnknownBackend(String),

    #[error("tensor '{name}' needs {bytes} bytes but the device allows at most {limit} bytes ({what}); use a smaller batch or channel count, or a GPU (and --limits) with larger limits")]
    TooLarge {
        name: String,
        bytes: u64,
        limit: u64,
        what: &'static str,
    },

    #[error("kernel {kernel} needs {need} {what} but the device allows {have} (limits: {limits}). This device or limit setting cannot run it: use --limits adapter (DARTS_MINUS_LIMITS=adapter) on an adapter that grants more, or another adapter")]
    KernelLimit {
        kernel: String,
        what: &'static str,
        need: u32,
        have: u32,
        limits: &'static str,
    },

    #[error("shape error in {op}: {msg}")]
    Shape { op: &'static str, msg: String },

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error("shader '{file}' failed validation: {msg}")]
    Shader { file: String, msg: String },

    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },

    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
}
