//! GPU tensors: f32, NCHW (or any row-major shape), shared handles to pooled buffers.

use crate::error::{Error, Result};
use crate::gpu::{ElementwiseParams, Gpu, GpuBuffer, KernelParams};
use std::cell::Cell;
use std::rc::Rc;

pub type TensorId = u64;

thread_local! {
    static NEXT_ID: Cell<TensorId> = const { Cell::new(1) };
}

fn next_id() -> TensorId {
    NEXT_ID.with(|c| {
        let v = c.get();
        c.set(v + 1);
        v
    })
}

/// A handle to a tensor on the GPU. Clones share the buffer; the buffer returns to the pool
/// when the last handle (including the tape's) is dropped.
#[derive(Clone)]
pub struct Tensor(Rc<Inner>);

struct Inner {
    id: TensorId,
    shape: Vec<usize>,
    buf: GpuBuffer,
    gpu: Gpu,
    /// A Cell so a parameter can be frozen for one pass (the α step needs no weight gradients).
    requires_grad: Cell<bool>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor#{}{:?}", self.0.id, self.0.shape)
    }
}

/// The number of values `shape` holds, or an error naming `what` if `data` has another count.
fn values_of(shape: &[usize], data: &[f32], what: &'static str) -> Result<usize> {
    let n = shape.iter().product::<usize>();
    if data.len() != n {
        return Err(Error::shape(
            what,
            format!(
                "shape {shape:?} holds {n} values but {} were given",
                data.len()
            ),
        ));
    }
    Ok(n)
}

impl Tensor {
    /// An uninitialised tensor (contents are whatever the pooled buffer held).
    pub fn empty(gpu: &Gpu, shape: &[usize], name: &str) -> Result<Tensor> {
        let n = shape.iter().product::<usize>();
        let buf = gpu.alloc(name, n)?;
        Ok(Self::from_buffer(gpu, shape, buf, false))
    }

    pub(crate) fn from_buffer(gpu: &Gpu, shape: &[usize], buf: GpuBuffer, rg: bool) -> Tensor {
        Tensor(Rc::new(Inner {
            id: next_id(),
            shape: shape.to_vec(),
            buf,
            gpu: gpu.clone(),
            requires_grad: Cell::new(rg),
        }))
    }

    pub fn from_slice(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let buf = gpu.alloc("tensor", values_of(shape, data, "tensor")?)?;
        Ok(Self::uploaded(gpu, shape, buf, data, false))
    }

    /// `data` written into `buf`, as a tensor of `shape`.
    fn uploaded(gpu: &Gpu, shape: &[usize], buf: GpuBuffer, data: &[f32], rg: bool) -> Tensor {
        let t = Self::from_buffer(gpu, shape, buf, rg);
        gpu.write(t.buffer(), data);
        t
    }

    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        Self::full(gpu, shape, 0.0)
    }

    pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
        let t = Self::empty(gpu, shape, "tensor")?;
        t.fill(value)?;
        Ok(t)
    }

    /// A trainable parameter: gradients flow to it.
    pub fn parameter(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let t = Self::from_slice(gpu, shape, data)?;
        Ok(t.with_grad())
    }

    /// A trainable parameter that kernels read at the same index in every lane (a dense
    /// convolution's weight): where the launch policy wants it and it fits, its buffer can
    /// also be bound as a uniform window (see [`Gpu::alloc_weight`]).
    pub fn weight_parameter(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let buf = gpu.alloc_weight("weight", values_of(shape, data, "weight")?)?;
        Ok(Self::uploaded(gpu, shape, buf, data, true))
    }

    /// The same storage, marked as requiring a gradient.
    pub fn with_grad(&self) -> Tensor {
        Tensor(Rc::new(Inner {
            id: self.0.id,
            shape: self.0.shape.clone(),
            buf: self.0.buf.clone(),
            gpu: self.0.gpu.clone(),
            requires_grad: Cell::new(true),
        }))
    }

    /// Sets every element to `value` (queued on the GPU).
    pub fn fill(&self, value: f32) -> Result<()> {
        let n = self.numel();
        if value.to_bits() == 0 && self.gpu().policy().clear_by_command() {
            // A memset on CPU adapters, where a launch costs ~45 µs.
            self.gpu().clear(self.buffer(), n);
            return Ok(());
        }
        self.gpu().launch(
            "elementwise",
            "fill",
            ElementwiseParams {
                n: n as u32,
                value,
                ..Default::default()
            }
            .words(),
            &[self.buffer()],
            n,
        )
    }

    /// Overwrites the contents from the CPU.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::shape(
                "write",
                format!(
                    "tensor {:?} needs {} values, got {}",
                    self.shape(),
                    self.numel(),
                    data.len()
                ),
            ));
        }
        self.gpu().write(self.buffer(), data);
        Ok(())
    }

    /// Copies the contents of `src` (same number of elements) into this tensor on the GPU.
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        if src.numel() != self.numel() {
            return Err(Error::shape(
                "copy_from",
                format!("{:?} into {:?}", src.shape(), self.shape()),
            ));
        }
        self.gpu().copy(src.buffer(), self.buffer(), self.numel());
        Ok(())
    }

    /// Reads the tensor back to the CPU (waits for the GPU).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.0.gpu.read(&self.0.buf, self.numel())
    }

    /// Reads several tensors (on the same GPU) back with one wait.
    pub fn read_all(ts: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        let Some(first) = ts.first() else {
            return Ok(Vec::new());
        };
        let bufs: Vec<(&GpuBuffer, usize)> = ts.iter().map(|t| (t.buffer(), t.numel())).collect();
        first.gpu().read_many(&bufs)
    }

    /// A fresh tensor with the same contents.
    pub fn duplicate(&self) -> Result<Tensor> {
        let t = Self::empty(self.gpu(), self.shape(), "copy")?;
        t.copy_from(self)?;
        Ok(t)
    }

    /// A view of the same storage with another shape of equal size.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("{:?} to {:?}", self.shape(), shape),
            ));
        }
        Ok(Tensor(Rc::new(Inner {
            id: next_id(),
            shape: shape.to_vec(),
            buf: self.0.buf.clone(),
            gpu: self.0.gpu.clone(),
            requires_grad: Cell::new(false),
        })))
    }

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub(crate) fn key(&self) -> TensorKey {
        TensorKey {
            id: self.0.id,
            shape: self.0.shape.clone(),
            requires_grad: self.requires_grad(),
        }
    }
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn numel(&self) -> usize {
        self.0.shape.iter().product()
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.get()
    }

    /// Freezes (false) or unfreezes a tensor for the ops recorded from now on; every handle
    /// of this tensor sees the change.
    pub fn set_requires_grad(&self, on: bool) {
        self.0.requires_grad.set(on);
    }
    pub fn buffer(&self) -> &GpuBuffer {
        &self.0.buf
    }
    pub fn gpu(&self) -> &Gpu {
        &self.0.gpu
    }

    /// (n, c, h, w) of a 4-D tensor, or a shape error naming `op`.
    pub fn nchw(&self, op: &'static str) -> Result<(usize, usize, usize, usize)> {
        match self.shape() {
            &[n, c, h, w] => Ok((n, c, h, w)),
            s => Err(Error::shape(
                op,
                format!("expected an NCHW tensor, got shape {s:?}"),
            )),
        }
    }
}

/// The identity of a tensor without its storage: enough for a backward rule to route a
/// gradient to an input whose values it does not read.
#[derive(Clone, Debug)]
pub(crate) struct TensorKey {
    id: TensorId,
    shape: Vec<usize>,
    requires_grad: bool,
}

impl TensorKey {
    pub fn id(&self) -> TensorId {
        self.id
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Whether the tensor needed a gradient when the op was recorded.
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }
}

/// An op input as its tape node keeps it: always its identity, its values only when the
/// backward rule reads them, so activations nobody reads again are freed during forward.
#[derive(Clone)]
pub(crate) struct Saved {
    key: TensorKey,
    data: Option<Tensor>,
}

impl Saved {
    /// Identity only: backward does not read the values.
    pub fn key_only(t: &Tensor) -> Saved {
        Saved {
            key: t.key(),
            data: None,
        }
    }
    /// The identity of an intermediate that backward never materialises (a fresh id; it
    /// requires a gradient): for rules that only route a gradient through it.
    pub fn virtual_input(shape: &[usize]) -> Saved {
        Saved {
            key: TensorKey {
                id: next_id(),
                shape: shape.to_vec(),
                requires_grad: true,
            },
            data: None,
        }
    }
    /// Identity and values.
    pub fn keep(t: &Tensor) -> Saved {
        Self::keep_if(t, true)
    }
    /// Values kept only when `need`.
    pub fn keep_if(t: &Tensor, need: bool) -> Saved {
        Saved {
            key: t.key(),
            data: need.then(|| t.clone()),
        }
    }
    pub fn key(&self) -> TensorKey {
        self.key.clone()
    }
    pub fn shape(&self) -> &[usize] {
        &self.key.shape
    }
    pub fn requires_grad(&self) -> bool {
        self.key.requires_grad
    }
    /// The saved values; an internal error if the node chose not to keep them.
    pub fn data(&self) -> Result<&Tensor> {
        self.data.as_ref().ok_or_else(|| {
            Error::Gpu(format!(
                "internal: backward needs the values of tensor #{} {:?}, which were not saved",
                self.key.id, self.key.shape
            ))
        })
    }
}

/// Class labels on the GPU (u32).
#[derive(Clone)]
pub struct Labels {
    pub(crate) buf: GpuBuffer,
    pub(crate) n: usize,
}

impl Labels {
    pub fn new(gpu: &Gpu, labels: &[u32]) -> Result<Labels> {
        let buf = gpu.alloc("labels", labels.len())?;
        gpu.write_u32(&buf, labels);
        Ok(Labels {
            buf,
            n: labels.len(),
        })
    }

    /// Overwrites the labels in place (same count), e.g. for the next batch of a replayed step.
    pub fn write(&self, gpu: &Gpu, labels: &[u32]) -> Result<()> {
        if labels.len() != self.n {
            return Err(Error::shape(
                "labels",
                format!("expected {} labels, got {}", self.n, labels.len()),
            ));
        }
        gpu.write_u32(&self.buf, labels);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}
