//! Max, average (count_include_pad = False) and global average pooling, forward and backward
//! side by side. Kernels: `shaders/pool.wgsl`.

use super::conv::out_size;
use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};

/// Square pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolCfg {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PoolCfg {
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        PoolCfg {
            kernel,
            stride,
            padding,
        }
    }
}

pub(crate) struct PoolNode {
    /// Max pooling keeps x (usually alive anyway: the edge's convolutions read it too) and
    /// recomputes the argmax in backward instead of holding it between the passes.
    x: Saved,
    params: [u32; 12],
}

pub(crate) struct GlobalPoolNode {
    x: Saved,
    params: [u32; 12],
}

fn params(x: &Tensor, cfg: PoolCfg, op: &'static str) -> Result<([u32; 12], [usize; 4])> {
    let (n, c, h, w) = x.nchw(op)?;
    if cfg.kernel == 0 || cfg.stride == 0 || 2 * cfg.padding > cfg.kernel {
        return Err(Error::shape(
            op,
            format!("invalid window {cfg:?} (padding must be at most half the kernel)"),
        ));
    }
    let (Some(ho), Some(wo)) = (
        out_size(h, cfg.kernel, cfg.stride, cfg.padding, 1),
        out_size(w, cfg.kernel, cfg.stride, cfg.padding, 1),
    ) else {
        return Err(Error::shape(
            op,
            format!("window {} does not fit input {h}x{w}", cfg.kernel),
        ));
    };
    let p = [
        n,
        c,
        h,
        w,
        ho,
        wo,
        cfg.kernel,
        cfg.kernel,
        cfg.stride,
        cfg.stride,
        cfg.padding,
        cfg.padding,
    ]
    .map(|v| v as u32);
    Ok((p, [n, c, ho, wo]))
}

impl Tape {
    /// Max pooling; padding counts as −inf.
    pub fn max_pool2d(&mut self, x: &Tensor, cfg: PoolCfg) -> Result<Tensor> {
        let (params, shape) = params(x, cfg, "max_pool2d")?;
        let y = Tensor::empty(self.gpu(), &shape, "max_pool2d output")?;
        self.gpu().launch(
            "pool",
            "max_forward",
            &params,
            &[x.buffer(), y.buffer()],
            y.numel(),
        )?;
        Ok(self.record(&[x], y, || {
            Op::MaxPool(PoolNode {
                x: Saved::keep(x),
                params,
            })
        }))
    }

    /// Average pooling dividing by the in-bounds count (count_include_pad = False).
    pub fn avg_pool2d(&mut self, x: &Tensor, cfg: PoolCfg) -> Result<Tensor> {
        let (params, shape) = params(x, cfg, "avg_pool2d")?;
        let y = Tensor::empty(self.gpu(), &shape, "avg_pool2d output")?;
        self.gpu().launch(
            "pool",
            "avg_forward",
            &params,
            &[x.buffer(), y.buffer()],
            y.numel(),
        )?;
        Ok(self.record(&[x], y, || {
            Op::AvgPool(PoolNode {
                x: Saved::key_only(x),
                params,
            })
        }))
    }

    /// Mean over the spatial dimensions: (n, c, h, w) → (n, c).
    pub fn global_avg_pool(&mut self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.nchw("global_avg_pool")?;
        let params = [n, c, h, w, 1, 1, h, w, 1, 1, 0, 0].map(|v| v as u32);
        let y = Tensor::empty(self.gpu(), &[n, c], "global_avg_pool output")?;
        self.gpu().launch(
            "pool",
            "global_forward",
            &params,
            &[x.buffer(), y.buffer()],
            n * c,
        )?;
        Ok(self.record(&[x], y, || {
            Op::GlobalAvgPool(GlobalPoolNode {
                x: Saved::key_only(x),
                params,
            })
        }))
    }
}

impl PoolNode {
    pub(crate) fn backward_max(&self, gy: &Tensor) -> Result<InputGrads> {
        let gpu = gy.gpu();
        let argmax = gpu.alloc("max_pool2d argmax", gy.numel())?;
        gpu.launch(
            "pool",
            "max_argmax",
            &self.params,
            &[self.x.data()?.buffer(), &argmax],
            gy.numel(),
        )?;
        let dx = Tensor::empty(gpu, self.x.shape(), "max_pool2d dx")?;
        gpu.launch(
            "pool",
            "max_backward",
            &self.params,
            &[&argmax, gy.buffer(), dx.buffer()],
            dx.numel(),
        )?;
        Ok(vec![(self.x.key(), dx)])
    }

    pub(crate) fn backward_avg(&self, gy: &Tensor) -> Result<InputGrads> {
        let dx = Tensor::empty(gy.gpu(), self.x.shape(), "avg_pool2d dx")?;
        gy.gpu().launch(
            "pool",
            "avg_backward",
            &self.params,
            &[gy.buffer(), dx.buffer()],
            dx.numel(),
        )?;
        Ok(vec![(self.x.key(), dx)])
    }
}

impl GlobalPoolNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        let dx = Tensor::empty(gy.gpu(), self.x.shape(), "global_avg_pool dx")?;
        gy.gpu().launch(
            "pool",
            "global_backward",
            &self.params,
            &[gy.buffer(), dx.buffer()],
            dx.numel(),
        )?;
        Ok(vec![(self.x.key(), dx)])
    }
}
