//! Network layers built from autodiff ops: convolution, batch norm, linear, and the DARTS
//! candidate operations with the mixed edge. Every layer names its state exactly as the
//! reference PyTorch `state_dict` does, so weights move both ways.

pub mod darts_ops;
mod layers;
pub mod mixed;

pub use layers::{BatchNorm2d, BeforeBn, Conv2d, ConvShape, Linear, ReluDwPwBn};

use crate::autodiff::Tensor;
use std::cell::Cell;

/// Forward-pass settings.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// Train mode: batch statistics in batch norm (and running-statistics updates).
    pub train: bool,
}

/// One piece of named module state.
pub enum Slot<'a> {
    /// Trainable weight.
    Param(&'a Tensor),
    /// Non-trainable tensor (batch-norm running statistics).
    Buffer(&'a Tensor),
    /// Integer counter (batch-norm `num_batches_tracked`).
    Counter(&'a Cell<i64>),
}

/// Anything with named state.
pub trait Module {
    /// Calls `f` with the full name and slot of every piece of state, in a fixed order.
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>));
}

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Visits each part under `prefix.name`: a composite op's state with the reference
/// PyTorch names spelled out in one place (`op.1`, `conv_1`, …).
pub fn visit_named<'a>(
    prefix: &str,
    parts: &[(&str, &'a dyn Module)],
    f: &mut dyn FnMut(&str, Slot<'a>),
) {
    for (name, part) in parts {
        part.visit(&join(prefix, name), f);
    }
}

/// Every trainable parameter with its name.
pub fn parameters(m: &dyn Module, prefix: &str) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    m.visit(prefix, &mut |name, slot| {
        if let Slot::Param(t) = slot {
            out.push((name.to_string(), t.clone()));
        }
    });
    out
}

/// Number of trainable weights.
pub fn count_parameters(m: &dyn Module) -> usize {
    parameters(m, "").iter().map(|(_, t)| t.numel()).sum()
}
