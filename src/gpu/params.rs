//! Kernel parameters as typed structs. Every kernel reads its shape through a uniform
//! `struct P` in its WGSL file; the Rust mirror here is `#[repr(C)]` + `Pod` with the same
//! field names in the same order, so host code fills fields by name and the launch passes the
//! struct's bytes unchanged (4-byte scalar fields: no implicit padding on either side, and
//! [`Gpu`](super::Gpu) pads the uniform to 16 bytes as before).
//!
//! `kernel_params!` declares a struct and registers nothing else by hand but one line in
//! [`params_layouts`]; `tests/params.rs` checks every registered layout against the shader
//! (naga), so a field renamed, reordered or added on one side only fails the build's tests.

use bytemuck::Pod;

/// One field of a params struct: (name, byte offset, Rust type: `u32`, `i32` or `f32`).
pub type Field = (&'static str, usize, &'static str);

/// A kernel's uniform parameters: the Rust mirror of `STRUCT` in `shaders/{SHADER}.wgsl`.
pub trait KernelParams: Pod {
    /// The shader file, as named in the kernel registry (`"conv"` for `shaders/conv.wgsl`).
    const SHADER: &'static str;
    /// The WGSL struct this mirrors.
    const STRUCT: &'static str;
    /// The fields in declaration order.
    const FIELDS: &'static [Field];

    /// The uniform's contents, for the `params` of the `Gpu::launch*` calls.
    fn words(&self) -> &[u32] {
        bytemuck::cast_slice(std::slice::from_ref(self))
    }
}

/// The layout of one registered params type, for checking against its shader.
#[derive(Clone, Copy, Debug)]
pub struct ParamsLayout {
    /// The Rust type's name.
    pub rust: &'static str,
    pub shader: &'static str,
    pub strukt: &'static str,
    /// `size_of` the Rust struct.
    pub size: usize,
    pub fields: &'static [Field],
}

impl ParamsLayout {
    pub fn of<P: KernelParams>() -> Self {
        ParamsLayout {
            rust: std::any::type_name::<P>(),
            shader: P::SHADER,
            strukt: P::STRUCT,
            size: std::mem::size_of::<P>(),
            fields: P::FIELDS,
        }
    }
}

/// Every params type whose layout `tests/params.rs` checks. Add one line per new type.
pub fn params_layouts() -> Vec<ParamsLayout> {
    vec![
        ParamsLayout::of::<ConvParams>(),
        ParamsLayout::of::<PointwiseParams>(),
        ParamsLayout::of::<DepthwiseParams>(),
    ]
}

/// Declares a `#[repr(C)]` `Pod` params struct (fields u32, i32 or f32) mirroring
/// `struct $strukt` of `shaders/$shader.wgsl`, with its [`KernelParams`] impl.
macro_rules! kernel_params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident = $shader:literal :: $strukt:ident {
            $($(#[$fmeta:meta])* $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$fmeta])* pub $field: $ty),*
        }

        impl KernelParams for $name {
            const SHADER: &'static str = $shader;
            const STRUCT: &'static str = stringify!($strukt);
            const FIELDS: &'static [Field] = &[$((
                stringify!($field),
                ::std::mem::offset_of!($name, $field),
                stringify!($ty),
            )),*];
        }
    };
}

kernel_params! {
    /// `conv.wgsl`: a convolution's shape (weight (cout, cin/groups, kh, kw)); `per` and
    /// `chunks` only for the dense weight gradient (`weight_partial4`, `weight_sum*`).
    pub struct ConvParams = "conv"::P {
        n: u32, cin: u32, h: u32, w: u32,
        cout: u32, ho: u32, wo: u32, kh: u32,
        kw: u32, sh: u32, sw: u32, ph: u32,
        pw: u32, dh: u32, dw: u32, groups: u32,
        has_bias: u32,
        /// Output rows per chunk of the weight gradient.
        per: u32,
        /// Chunks per weight block.
        chunks: u32,
        _pad: u32,
    }
}

kernel_params! {
    /// `pointwise.wgsl`: y (n, m, hw) = a (m × k, strides a_rs, a_cs) · x (n, k, hw); `per`
    /// and `chunks` only for the weight gradient.
    pub struct PointwiseParams = "pointwise"::P {
        n: u32, m: u32, k: u32, hw: u32,
        a_rs: u32, a_cs: u32,
        /// Positions per chunk of the weight gradient.
        per: u32,
        /// Chunks per 4×4 block of dw.
        chunks: u32,
    }
}

kernel_params! {
    /// `depthwise.wgsl`: x (n, c, h, w) → y (n, c, ho, wo); kernel size, stride and dilation
    /// are pipeline constants. `per` only for the weight gradient.
    pub struct DepthwiseParams = "depthwise"::P {
        n: u32, c: u32, h: u32, w: u32,
        ho: u32, wo: u32, pad: u32,
        /// Output rows per chunk of the weight gradient.
        per: u32,
    }
}
