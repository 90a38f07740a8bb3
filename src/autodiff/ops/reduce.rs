//! Two-pass reductions (no float atomics): whole-tensor sums and dot products written to one
//! slot of an output buffer. Kernels: `shaders/reduce.wgsl`. Not tape ops: the building block
//! for the gradients of weighted sums, the loss mean, and gradient-norm clipping.

use crate::autodiff::Tensor;
use crate::error::Result;
use crate::gpu::Work;
use crate::gpu::{Gpu, GpuBuffer, KernelParams, ReduceParams};

/// (elements per first-pass workgroup, workgroups) for n values: enough work per group, at
/// most ~1024 partials. Every two-pass reduction splits its input this way.
pub(crate) fn split(n: usize) -> (usize, usize) {
    let chunk = n.div_ceil(1024).next_multiple_of(256).max(1024);
    (chunk, n.div_ceil(chunk).max(1))
}

/// out[offset] = (accumulate ? out[offset] : 0) + factor · Σ a·b  (Σ a when `b` is None).
#[allow(clippy::too_many_arguments)]
pub(crate) fn reduce_into(
    gpu: &Gpu,
    a: &GpuBuffer,
    b: Option<&GpuBuffer>,
    n: usize,
    out: &GpuBuffer,
    offset: usize,
    accumulate: bool,
    factor: f32,
) -> Result<()> {
    let (chunk, groups) = split(n);
    let partial = gpu.alloc("reduction partials", groups)?;
    let p = ReduceParams {
        n: n as u32,
        chunk: chunk as u32,
        count: groups as u32,
        offset: offset as u32,
        accumulate: accumulate as u32,
        factor,
    };
    let p = p.words();
    match b {
        Some(b) => gpu.launch(
            "reduce",
            "dot_partial",
            p,
            &[a, b, &partial],
            Work::Groups(groups),
        )?,
        None => gpu.launch(
            "reduce",
            "sum_partial",
            p,
            &[a, &partial],
            Work::Groups(groups),
        )?,
    }
    gpu.launch("reduce", "finish", p, &[&partial, out], Work::Groups(1))
}

/// out[offset] = (accumulate ? out[offset] : 0) + factor · Σ partial[0..count): the second
/// pass of any two-pass reduction.
pub(crate) fn finish_into(
    gpu: &Gpu,
    partial: &GpuBuffer,
    count: usize,
    out: &GpuBuffer,
    offset: usize,
    accumulate: bool,
    factor: f32,
) -> Result<()> {
    // `finish` reads neither n nor chunk.
    let p = ReduceParams {
        n: 0,
        chunk: 0,
        count: count as u32,
        offset: offset as u32,
        accumulate: accumulate as u32,
        factor,
    };
    gpu.launch(
        "reduce",
        "finish",
        p.words(),
        &[partial, out],
        Work::Groups(1),
    )
}

/// Σ a·b as a new 1-element tensor.
pub fn dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(a.gpu(), &[1], "dot")?;
    reduce_into(
        a.gpu(),
        a.buffer(),
        Some(b.buffer()),
        a.numel(),
        out.buffer(),
        0,
        false,
        1.0,
    )?;
    Ok(out)
}
