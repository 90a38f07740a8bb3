//! The candidates without state or kernels of their own: `none` and the stride-1
//! `skip_connect`.

use super::candidate::CandidateOp;
use crate::autodiff::{Tape, Tensor};
use crate::error::Result;
use crate::nn::{Ctx, Module, Slot};

/// `none`: zeros shaped like `x[:, :, ::stride, ::stride]`.
pub struct Zero {
    pub stride: usize,
}

impl CandidateOp for Zero {
    fn forward(&self, tape: &mut Tape, x: &Tensor, _: Ctx) -> Result<Tensor> {
        let (n, c, h, w) = x.nchw("zero")?;
        let s = self.stride;
        Tensor::zeros(tape.gpu(), &[n, c, h.div_ceil(s), w.div_ceil(s)])
    }

    fn is_zero(&self) -> bool {
        true
    }
}

impl Module for Zero {
    fn visit<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, Slot<'a>)) {}
}

/// `skip_connect` at stride 1: x itself.
pub struct Identity;

impl CandidateOp for Identity {
    fn forward(&self, _: &mut Tape, x: &Tensor, _: Ctx) -> Result<Tensor> {
        Ok(x.clone())
    }
}

impl Module for Identity {
    fn visit<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, Slot<'a>)) {}
}
