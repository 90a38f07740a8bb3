//! Convolutions no faster kernel covers (groups other than 1 or the channel count, output rows
//! not a multiple of 4, …): one output per thread (forward, input gradient), one workgroup
//! per weight element or output channel (weight and bias gradients). Kernels:
//! `shaders/conv.wgsl`.

use super::{relu_consts, Fwd, InGrad, WGrad};
use crate::autodiff::Tensor;
use crate::error::Result;
use crate::gpu::Work;
use crate::gpu::{ConvParams, ElementwiseParams, KernelParams};

/// y = conv(relu?(x), w) (+ b).
pub(super) fn forward(p: &ConvParams, f: &Fwd) -> Result<()> {
    let Fwd { x, w, b, y, .. } = *f;
    // Without a bias its binding is a placeholder (w).
    let bias = b.unwrap_or(w);
    x.gpu().launch_spec(
        "conv",
        "forward",
        relu_consts(f.relu),
        p.words(),
        &[x.buffer(), w.buffer(), bias.buffer(), y.buffer()],
        Work::Groups(y.numel().div_ceil(256)),
    )
}

/// dx by gathering over dy, then through the folded ReLU's `mask` (x > 0) where there is one
/// (a `relu_backward` pass: these kernels do not mask).
pub(super) fn input_grad(p: &ConvParams, g: &InGrad) -> Result<Tensor> {
    let InGrad { gy, w, dx, mask } = *g;
    let gpu = gy.gpu();
    let entry = if p.sh == 1 && p.sw == 1 {
        "backward_input_s1"
    } else {
        "backward_input"
    };
    let bufs = [gy.buffer(), w.buffer(), dx.buffer()];
    gpu.launch("conv", entry, p.words(), &bufs, dx.numel())?;
    let Some(x) = mask else {
        return Ok(dx.clone());
    };
    let masked = Tensor::empty(gpu, dx.shape(), "conv2d dx")?;
    gpu.launch(
        "elementwise",
        "relu_backward",
        ElementwiseParams {
            n: dx.numel() as u32,
            ..Default::default()
        }
        .words(),
        &[x.buffer(), dx.buffer(), masked.buffer()],
        dx.numel(),
    )?;
    Ok(masked)
}

/// dw: each weight element reduces over batch × output positions, in one thread where that
/// is short (the policy's `weight_grad_serial`), else in a workgroup.
pub(super) fn weight_grad(p: &ConvParams, g: &WGrad) -> Result<()> {
    let WGrad { x, gy, dw, relu } = *g;
    let bufs = [x.buffer(), gy.buffer(), dw.buffer()];
    let per_weight = (p.n * p.ho * p.wo) as usize;
    let (entry, work) = match gy.gpu().policy().weight_grad_serial(per_weight) {
        true => ("backward_weight_serial", Work::Threads(dw.numel())),
        false => ("backward_weight", Work::Groups(dw.numel())),
    };
    let consts = relu_consts(relu);
    gy.gpu()
        .launch_spec("conv", entry, consts, p.words(), &bufs, work)
}

/// db: one workgroup per output channel (every path without its own bias gradient).
pub(super) fn bias_grad(p: &ConvParams, gy: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let db = Tensor::empty(gy.gpu(), shape, "conv2d db")?;
    let bufs = [gy.buffer(), db.buffer()];
    // Planes of vec4s: a run of vec4s per thread (2-4x fewer loads on CPU adapters).
    let entry = match (p.ho * p.wo).is_multiple_of(4) {
        true => "backward_bias4",
        false => "backward_bias",
    };
    gy.gpu()
        .launch("conv", entry, p.words(), &bufs, Work::Groups(db.numel()))?;
    Ok(db)
}
