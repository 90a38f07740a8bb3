//! Kernel parameters as typed structs. Every kernel reads its shape through a uniform
//! `struct P` in its WGSL file; the Rust mirror here is `#[repr(C)]` + `Pod` with the same
//! field names in the same order, so host code fills fields by name and the launch passes the
//! struct's bytes unchanged. Fields are u32 unless declared `f32`, `[u32; 4]` (WGSL
//! `vec4<u32>`) or `[[u32; 4]; 2]` (`array<vec4<u32>, 2>`); none leaves implicit padding on the Rust side, so a WGSL vec4's 16-byte
//! alignment must be met by the declared order (the layout test checks the offsets), and
//! [`Gpu`](super::Gpu) pads the uniform to 16 bytes as before.
//!
//! `kernel_params!` declares a struct and registers nothing else by hand but one line in
//! [`params_layouts`]; `tests/params.rs` checks every registered layout against the shader
//! (naga), so a field renamed, reordered or added on one side only fails the build's tests.

use bytemuck::Pod;

/// A kernel's uniform parameters: the Rust mirror of `STRUCT` in `shaders/{SHADER}.wgsl`.
pub trait KernelParams: Pod {
    /// The shader file, as named in the kernel registry (`"conv"` for `shaders/conv.wgsl`).
    const SHADER: &'static str;
    /// The WGSL struct this mirrors.
    const STRUCT: &'static str;
    /// (field name, byte offset) in declaration order.
    const FIELDS: &'static [(&'static str, usize)];
    /// Each field's WGSL type (`"u32"`, `"f32"`, `"vec4<u32>"`), in `FIELDS` order.
    const TYPES: &'static [&'static str];

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
    pub fields: &'static [(&'static str, usize)],
    /// WGSL type of each field.
    pub types: &'static [&'static str],
}

impl ParamsLayout {
    pub fn of<P: KernelParams>() -> Self {
        ParamsLayout {
            rust: std::any::type_name::<P>(),
            shader: P::SHADER,
            strukt: P::STRUCT,
            size: std::mem::size_of::<P>(),
            fields: P::FIELDS,
            types: P::TYPES,
        }
    }
}

/// Every params type whose layout `tests/params.rs` checks. Add one line per new type.
pub fn params_layouts() -> Vec<ParamsLayout> {
    vec![
        ParamsLayout::of::<ConvParams>(),
        ParamsLayout::of::<PointwiseParams>(),
        ParamsLayout::of::<DepthwiseParams>(),
        ParamsLayout::of::<LayoutParams>(),
        ParamsLayout::of::<LayoutBlockParams>(),
        ParamsLayout::of::<PoolParams>(),
        ParamsLayout::of::<SoftmaxParams>(),
        ParamsLayout::of::<MatmulParams>(),
        ParamsLayout::of::<ReduceParams>(),
        ParamsLayout::of::<OptimParams>(),
        ParamsLayout::of::<SumsqParams>(),
        ParamsLayout::of::<Sgd4Params>(),
        ParamsLayout::of::<ElementwiseParams>(),
        ParamsLayout::of::<BatchNormParams>(),
        ParamsLayout::of::<MixedParams>(),
        ParamsLayout::of::<MixedSumParams>(),
        ParamsLayout::of::<NoiseParams>(),
    ]
}

/// The WGSL type a params field of this Rust type mirrors.
pub trait WgslField: Pod + Default {
    const WGSL: &'static str;
}

impl WgslField for u32 {
    const WGSL: &'static str = "u32";
}

impl WgslField for f32 {
    const WGSL: &'static str = "f32";
}

impl WgslField for [u32; 4] {
    const WGSL: &'static str = "vec4<u32>";
}

/// Per-term tables of up to eight terms (`mixed.wgsl` `MS`); a vec4 array's stride is its
/// 16 bytes, so the Rust array lays out the same.
impl WgslField for [[u32; 4]; 2] {
    const WGSL: &'static str = "array<vec4<u32>, 2>";
}

/// Declares a `#[repr(C)]` `Pod` params struct mirroring `struct $strukt` of
/// `shaders/$shader.wgsl`, with its [`KernelParams`] impl (field names, offsets and WGSL
/// types). Fields are u32 unless given a type (`f32`, `[u32; 4]`: see [`WgslField`]). Not
/// `Eq` by default (f32 fields); all-u32 structs may add `#[derive(Eq)]`.
macro_rules! kernel_params {
    (@ty) => { u32 };
    (@ty $ty:ty) => { $ty };
    ($(
        $(#[$meta:meta])*
        $vis:vis struct $name:ident = $shader:literal :: $strukt:ident {
            $($(#[$fmeta:meta])* $field:ident $(: $ty:ty)?),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$fmeta])* pub $field: kernel_params!(@ty $($ty)?)),*
        }

        impl $crate::gpu::KernelParams for $name {
            const SHADER: &'static str = $shader;
            const STRUCT: &'static str = stringify!($strukt);
            const FIELDS: &'static [(&'static str, usize)] =
                &[$((stringify!($field), ::std::mem::offset_of!($name, $field))),*];
            const TYPES: &'static [&'static str] = &[$(
                <kernel_params!(@ty $($ty)?) as $crate::gpu::WgslField>::WGSL
            ),*];
        }
    )*};
}

kernel_params! {
    /// `conv.wgsl`: a convolution's shape (weight (cout, cin/groups, kh, kw)); `per` and
    /// `chunks` only for the dense weight gradient (`weight_partial4`, `weight_sum*`).
    /// `per`: output rows per chunk of the weight gradient.
    /// `chunks`: chunks per weight block.
    #[derive(Eq)]
    pub struct ConvParams = "conv"::P {
        n, cin, h, w, cout, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw, groups, has_bias, per, chunks,
        _pad,
    }

    /// `pointwise.wgsl`: y (n, m, hw) = a (m × k, strides a_rs, a_cs) · x (n, k, hw); `per`
    /// and `chunks` only for the weight gradient.
    /// `per`: positions per chunk of the weight gradient.
    /// `chunks`: chunks per 4×4 block of dw.
    #[derive(Eq)]
    pub struct PointwiseParams = "pointwise"::P {
        n, m, k, hw, a_rs, a_cs, per, chunks,
    }

    /// `depthwise.wgsl`: x (n, c, h, w) → y (n, c, ho, wo); kernel size, stride and dilation
    /// are pipeline constants. `per` only for the weight gradient.
    /// `per`: output rows per chunk of the weight gradient.
    #[derive(Eq)]
    pub struct DepthwiseParams = "depthwise"::P {
        n, c, h, w, ho, wo, pad, per,
    }

    /// `layout.wgsl` `p`: `channel_copy` reads the first seven words, the slices the last
    /// eight (x (planes, h, w) → y (planes, ho, wo) at (oy + i·s, ox + j·s)).
    #[derive(Eq)]
    pub struct LayoutParams = "layout"::P {
        n, hw, cs, cd, s0, d0, cnt, _pad, h, w, ho, wo, oy, ox, s, planes,
    }

    /// `layout.wgsl` `pc` for `concat4` / `split4`: up to four channel blocks (`cnt[k]`
    /// channels at `off[k]`, written by split4 where `want[k]` != 0) at channel `base` of a
    /// tensor of `ctot` channels.
    #[derive(Eq)]
    pub struct LayoutBlockParams = "layout"::PC {
        cnt: [u32; 4], off: [u32; 4], want: [u32; 4], n, hw, ctot, base, gc, _p0, _p1, _p2,
    }

    /// `pool.wgsl`: x (n, c, h, w) → y (n, c, ho, wo), window kh × kw, stride, padding.
    #[derive(Eq)]
    pub struct PoolParams = "pool"::P {
        n, c, h, w, ho, wo, kh, kw, sh, sw, ph, pw,
    }

    /// `softmax.wgsl`: a row-major (rows, cols) matrix.
    #[derive(Eq)]
    pub struct SoftmaxParams = "softmax"::P { rows, cols }

    /// `matmul.wgsl`: C (m × n) = A (m × k) · B (k × n) with strides; `col_sum` reads m, n.
    #[derive(Eq)]
    pub struct MatmulParams = "matmul"::P {
        m, n, k, has_bias, a_rs, a_cs, b_rs, b_cs,
    }

    /// `reduce.wgsl`: out[offset] = (accumulate ? out[offset] : 0) + factor · Σ, over n
    /// values in chunks of `chunk` (`count` partials).
    pub struct ReduceParams = "reduce"::P {
        n, chunk, count, offset, accumulate, factor: f32,
    }

    /// `optim.wgsl` `p`: one parameter's update (`sgd*`, `adam`) or `clip_coef`; `lr_idx` and
    /// `step_idx` index the per-step `hyper` table.
    pub struct OptimParams = "optim"::P {
        n, lr_idx, step_idx, nesterov, momentum: f32, wd: f32, b1: f32, b2: f32, eps: f32,
        max_norm: f32,
    }

    /// `optim.wgsl` `q` for `sumsq4_partial`: four gradients of `n[k]` values, `count`
    /// workgroups of `chunk` each, partials from `base`.
    #[derive(Eq)]
    pub struct SumsqParams = "optim"::Q {
        n: [u32; 4], chunk, count, base, _p1,
    }

    /// `optim.wgsl` `s4` for `sgd4_clipped`: four parameters of `n[k]` values.
    pub struct Sgd4Params = "optim"::S4 {
        n: [u32; 4], lr_idx, nesterov, momentum: f32, wd: f32,
    }

    /// `elementwise.wgsl`: n elements; `idx` into the scalar table `s`, `factor` for the
    /// scaling maps, `value` for `fill`.
    pub struct ElementwiseParams = "elementwise"::P {
        n, idx, factor: f32, value: f32,
    }

    /// `noise.wgsl`: n values of stream `stream` under the key pair at `slot` of the key table.
    #[derive(Eq)]
    pub struct NoiseParams = "noise"::P {
        n, slot, stream,
    }

    /// `batchnorm.wgsl`: x (n, c, hw); `parts` chunks of `len` values per channel for the
    /// split reductions; `scaled` folds the output gradient's factor table[`sidx`] in.
    pub struct BatchNormParams = "batchnorm"::P {
        n, c, hw, affine, eps: f32, momentum: f32, update_running, train, x_is_xhat, parts, len,
        scaled, sidx,
    }

    /// `mixed.wgsl` `p`: weighted sums (`m` terms of n values, coefficient table `tab[k]`
    /// at `idx[k]`; terms 4..7 in `idx2`, `tab2`) and the dot products (`count` workgroups of
    /// `chunk`); `eval_sum8_vec4`: `count` channels of `chunk` vec4s, term k batch-normed
    /// (eval mode, eps = `f32::from_bits(eps_bits)`) where `norm` has bit k.
    #[derive(Eq)]
    pub struct MixedParams = "mixed"::P {
        n, m, accumulate, chunk, count, norm, eps_bits, _p2, idx: [u32; 4], tab: [u32; 4],
        idx2: [u32; 4], tab2: [u32; 4],
    }

    /// `mixed.wgsl` `ms`: the normalised sum of `g` batch-normed x (n, c, hw) and plain
    /// tensors (the term layout is pipeline constants); per term t, `tab`, `idx` at
    /// `[t / 4][t % 4]` (bit t of `pairs`: a plain tensor's two terms, tab and idx packed);
    /// `sidx`: each normalised slot's weight index in table A.
    pub struct MixedSumParams = "mixed"::MS {
        n, c, hw, g, pairs, _p, eps: f32, momentum: f32, tab: [[u32; 4]; 2],
        idx: [[u32; 4]; 2], sidx: [[u32; 4]; 2],
    }
}
