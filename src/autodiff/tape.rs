//! The tape: each differentiable op appends a node holding what its backward needs; backward
//! walks the nodes in reverse, dispatching on one enum (so adding an op makes the compiler
//! point at every place to touch), accumulates gradients, and frees each node's saved
//! tensors as soon as its rule has run. Ops fused for one network layer (the DARTS mixed
//! edge, `nn/mixed/`) come in through [`FusedNode`], so this file never names them.

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
    SumAll(elementwise::SumAllNode),
    Concat(layout::ConcatNode),
    Slice(layout::SliceNode),
    Reshape(layout::ReshapeNode),
    Softmax(softmax::SoftmaxNode),
    CrossEntropy(softmax::CrossEntropyNode),
    Linear(linear::LinearNode),
    /// An op defined above the autodiff layer (see [`FusedNode`]).
    Fused(Box<dyn FusedNode>),
}

/// The backward rule of an op defined outside the autodiff: a layer's fusion of several ops
/// into fewer launches (the DARTS mixed edge's weighted and normalised sums). Unlike the
/// rules here it may leave its inputs' gradients lazy ([`GradTerm`] scaled by a table entry),
/// for the consumer's backward or the gradient sum to fold in.
pub(crate) trait FusedNode {
    fn backward(&self, gy: &Tensor) -> Result<Vec<(TensorKey, GradTerm)>>;
}

/// Gradients for the inputs of one node: (input, gradient) pairs.
pub(crate) type InputGrads = Vec<(TensorKey, Tensor)>;

/// A gradient contribution kept lazy: `t`, or `t`·table[idx] when scaled (a mixed edge's
/// weight, from a [`FusedNode`]). Batch norm's backward folds the factor into its own kernel,
/// and up to eight contributions to one tensor add up in one launch, so neither the scaled
/// copies nor the pairwise sums are written out.
pub(crate) struct GradTerm {
    pub t: Tensor,
    pub scale: Option<(Tensor, usize)>,
}

impl GradTerm {
    pub fn plain(t: Tensor) -> GradTerm {
        GradTerm { t, scale: None }
    }

    /// The contribution as a tensor of its own.
    pub fn materialize(self) -> Result<Tensor> {
        sum_terms(vec![self])
    }
}

/// Σ of the contributions in order: a single plain one as it is, otherwise one launch per four
/// (scaled terms from more than two tables are scaled separately first).
fn sum_terms(mut terms: Vec<GradTerm>) -> Result<Tensor> {
    if let [GradTerm { t, scale: None }] = terms.as_slice() {
        return Ok(t.clone());
    }
    let mut tables: Vec<TensorId> = Vec::new();
    for term in &mut terms {
        if let Some((table, idx)) = &term.scale {
            if !tables.contains(&table.id()) {
                if tables.len() == 2 {
                    *term = GradTerm::plain(elementwise::scale_by_raw(&term.t, table, *idx, 1.0)?);
                    continue;
                }
                tables.push(table.id());
            }
        }
    }
    let first = &terms[0].t;
    let out = Tensor::empty(first.gpu(), first.shape(), "gradient")?;
    let refs: Vec<(&Tensor, Option<(&Tensor, usize)>)> = terms
        .iter()
        .map(|g| (&g.t, g.scale.as_ref().map(|(t, i)| (t, *i))))
        .collect();
    elementwise::weighted_sum_into(&refs, &out)?;
    Ok(out)
}

/// Gradient contributions not yet summed, by tensor; at most as many as one weighted-sum
/// launch takes (eight or four) are held per tensor (one more sums them first), which bounds
/// the memory they keep.
#[derive(Default)]
struct Pending {
    map: HashMap<TensorId, Vec<GradTerm>>,
}

impl Pending {
    fn add(&mut self, t: &TensorKey, g: GradTerm) -> Result<()> {
        if g.t.shape() != t.shape() {
            return Err(Error::Gpu(format!(
                "internal: gradient shape {:?} for tensor {:?}",
                g.t.shape(),
                t.shape()
            )));
        }
        let terms = self.map.entry(t.id()).or_default();
        if terms.len() == g.t.gpu().policy().weighted_sum_terms(g.t.numel()) {
            let sum = sum_terms(std::mem::take(terms))?;
            terms.push(GradTerm::plain(sum));
        }
        terms.push(g);
        Ok(())
    }
}

fn plain(grads: InputGrads) -> Vec<(TensorKey, GradTerm)> {
    grads
        .into_iter()
        .map(|(k, t)| (k, GradTerm::plain(t)))
        .collect()
}

impl Op {
    /// The gradients of this op's inputs for the output gradient `gy`. Batch norm folds a
    /// scaled `gy` into its own kernel (every other rule gets it materialised), and fused ops
    /// may leave their inputs' gradients scaled.
    fn backward(&self, gy: GradTerm) -> Result<Vec<(TensorKey, GradTerm)>> {
        if let (Op::BatchNorm(n), Some((table, i))) = (self, &gy.scale) {
            return Ok(plain(n.backward_scaled(&gy.t, Some((table, *i)))?));
        }
        let gy = &gy.materialize()?;
        let grads = match self {
            Op::Fused(n) => return n.backward(gy),
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
            Op::SumAll(n) => n.backward(gy),
            Op::Concat(n) => n.backward(gy),
            Op::Slice(n) => n.backward(gy),
            Op::Reshape(n) => n.backward(gy),
            Op::Softmax(n) => n.backward(gy),
            Op::CrossEntropy(n) => n.backward(gy),
            Op::Linear(n) => n.backward(gy),
        }?;
        Ok(plain(grads))
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
    /// intermediates in backward instead of keeping them (small ones are kept anyway where
    /// launches are costly). Results are identical either way.
    pub fn set_recompute(&mut self, on: bool) {
        self.recompute = on;
    }

    /// An inference tape ([`Tape::inference`]): nothing is recorded, no backward follows.
    pub fn is_inference(&self) -> bool {
        !self.recording
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
        let mut pending = Pending::default();
        pending.add(&out.key(), GradTerm::plain(seed))?;
        let mut grads = Grads::default();
        while let Some(node) = self.nodes.pop() {
            // Intermediate gradients are consumed by their producer (`out`'s is also kept).
            let Some(terms) = pending.map.remove(&node.out) else {
                continue;
            };
            // Several contributions are summed first; a single one goes in as it is.
            let mut gy = match <[GradTerm; 1]>::try_from(terms) {
                Ok([one]) => one,
                Err(terms) => GradTerm::plain(sum_terms(terms)?),
            };
            if node.out == out.id() {
                let t = gy.materialize()?;
                grads.map.insert(node.out, t.clone());
                gy = GradTerm::plain(t);
            }
            let contributions = node.op.backward(gy)?;
            for (input, g) in contributions {
                if input.requires_grad() {
                    pending.add(&input, g)?;
                }
            }
            // `node` (and the activations it saved) is dropped here.
        }
        // What is left are the leaves' gradients (and `out`'s if no node produced it).
        for (id, terms) in pending.map {
            grads.map.insert(id, sum_terms(terms)?);
        }
        Ok(grads)
    }
}
