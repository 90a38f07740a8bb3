//! The tape: each differentiable op appends a node holding what its backward needs; backward
//! walks the nodes in reverse, dispatching on one enum (so adding an op makes the compiler
//! point at every place to touch), accumulates gradients, and frees each node's saved
//! tensors as soon as its rule has run.

use super::ops::{conv, elementwise, layout, linear, norm, pool, softmax};
use super::tensor::{Tensor, TensorId, TensorKey};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use std::collections::HashMap;

/// Every recorded op. Each variant's node type lives beside its forward in `ops/`.
pub(crate) enum Op {
    Conv2d(conv::Conv2dNode),
    DwPw(conv::DwPwNode),
    MaxPool(pool::PoolNode),
    AvgPool(pool::PoolNode),
    GlobalAvgPool(pool::GlobalPoolNode),
    BatchNorm(norm::BatchNormNode),
    Relu(elementwise::ReluNode),
    Sum(elementwise::SumNode),
    Mul(elementwise::MulNode),
    Scale(elementwise::ScaleNode),
    ScaleBy(elementwise::ScaleByNode),
    ScaleRows(elementwise::ScaleRowsNode),
    WeightedSum(elementwise::WeightedSumNode),
    SumAll(elementwise::SumAllNode),
    Concat(layout::ConcatNode),
    Slice(layout::SliceNode),
    Reshape(layout::ReshapeNode),
    Softmax(softmax::SoftmaxNode),
    CrossEntropy(softmax::CrossEntropyNode),
    Linear(linear::LinearNode),
}

/// Gradients for the inputs of one node: (input, gradient) pairs.
pub(crate) type InputGrads = Vec<(TensorKey, Tensor)>;

impl Op {
    fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        match self {
            Op::Conv2d(n) => n.backward(gy),
            Op::DwPw(n) => n.backward(gy),
            Op::MaxPool(n) => n.backward_max(gy),
            Op::AvgPool(n) => n.backward_avg(gy),
            Op::GlobalAvgPool(n) => n.backward(gy),
            Op::BatchNorm(n) => n.backward(gy),
            Op::Relu(n) => n.backward(gy),
            Op::Sum(n) => n.backward(gy),
            Op::Mul(n) => n.backward(gy),
            Op::Scale(n) => n.backward(gy),
            Op::ScaleBy(n) => n.backward(gy),
            Op::ScaleRows(n) => n.backward(gy),
            Op::WeightedSum(n) => n.backward(gy),
            Op::SumAll(n) => n.backward(gy),
            Op::Concat(n) => n.backward(gy),
            Op::Slice(n) => n.backward(gy),
            Op::Reshape(n) => n.backward(gy),
            Op::Softmax(n) => n.backward(gy),
            Op::CrossEntropy(n) => n.backward(gy),
            Op::Linear(n) => n.backward(gy),
        }
    }
}

struct Node {
    op: Op,
    out: TensorId,
}

/// Records differentiable ops. A tape made with [`Tape::inference`] records nothing.
pub struct Tape {
    gpu: Gpu,
    nodes: Vec<Node>,
    recording: bool,
    /// Multiply-adds of the convolutions and linear layers run through this tape.
    macs: u64,
    /// Recompute cheap intermediates in backward instead of keeping them (see `dw_pw`).
    recompute: bool,
}

/// Gradients by tensor.
#[derive(Default)]
pub struct Grads {
    map: HashMap<TensorId, Tensor>,
}

impl Grads {
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.id())
    }
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.map.remove(&t.id())
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn accumulate(&mut self, t: &TensorKey, g: Tensor) -> Result<()> {
        if g.shape() != t.shape() {
            return Err(Error::Gpu(format!(
                "internal: gradient shape {:?} for tensor {:?}",
                g.shape(),
                t.shape()
            )));
        }
        let g = match self.map.remove(&t.id()) {
            // Out of place: a rule may hand the same gradient buffer to several inputs.
            Some(prev) => elementwise::add_raw(&prev, &g)?,
            None => g,
        };
        self.map.insert(t.id(), g);
        Ok(())
    }
}

impl Tape {
    /// A tape that records ops for backward.
    pub fn new(gpu: &Gpu) -> Tape {
        Tape {
            gpu: gpu.clone(),
            nodes: Vec::new(),
            recording: true,
            macs: 0,
            recompute: true,
        }
    }

    /// A tape that records nothing (evaluation, no gradients).
    pub fn inference(gpu: &Gpu) -> Tape {
        Tape {
            gpu: gpu.clone(),
            nodes: Vec::new(),
            recording: false,
            macs: 0,
            recompute: true,
        }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Trades memory for time: on (the default), ops such as [`Tape::dw_pw`] recompute
    /// intermediates in backward instead of keeping them. Results are identical either way.
    pub fn set_recompute(&mut self, on: bool) {
        self.recompute = on;
    }

    pub fn recompute(&self) -> bool {
        self.recompute
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Multiply-adds of the convolutions and linear layers run so far (forward only).
    pub fn macs(&self) -> u64 {
        self.macs
    }

    pub(crate) fn add_macs(&mut self, n: u64) {
        self.macs += n;
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether an op with these inputs must be recorded.
    pub(crate) fn wants(&self, inputs: &[&Tensor]) -> bool {
        self.recording && inputs.iter().any(|t| t.requires_grad())
    }

    /// Records `op` as producing `out` (marking `out` as requiring grad), if any input needs it.
    pub(crate) fn record(
        &mut self,
        inputs: &[&Tensor],
        out: Tensor,
        op: impl FnOnce() -> Op,
    ) -> Tensor {
        if !self.wants(inputs) {
            return out;
        }
        let out = out.with_grad();
        self.nodes.push(Node {
            op: op(),
            out: out.id(),
        });
        out
    }

    /// Backpropagates from `loss` (seeded with ones), consuming the tape.
    pub fn backward(self, loss: &Tensor) -> Result<Grads> {
        let seed = Tensor::full(&self.gpu, loss.shape(), 1.0)?;
        self.backward_with(loss, seed)
    }

    /// Backpropagates `seed` = d(objective)/d(out) from `out`.
    pub fn backward_with(mut self, out: &Tensor, seed: Tensor) -> Result<Grads> {
        let mut grads = Grads::default();
        grads.accumulate(&out.key(), seed)?;
        while let Some(node) = self.nodes.pop() {
            let Some(gy) = grads.map.get(&node.out).cloned() else {
                continue;
            };
            for (input, g) in node.op.backward(&gy)? {
                if input.requires_grad() {
                    grads.accumulate(&input, g)?;
                }
            }
            // Intermediate gradients are no longer needed once their producer has run.
            if node.out != out.id() {
                grads.map.remove(&node.out);
            }
            // `node` (and the activations it saved) is dropped here.
        }
        Ok(grads)
    }
}
