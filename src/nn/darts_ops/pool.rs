//! The pooling candidates (`max_pool_3x3`, `avg_pool_3x3`): 3×3 pooling, count_include_pad =
//! False, then a batch norm during a DARTS search.

use super::candidate::{CandidateOp, Pooled, Split};
use crate::autodiff::{PoolCfg, Tape, Tensor};
use crate::error::Result;
use crate::nn::{join, BatchNorm2d, Ctx, Module, Slot};

pub struct Pool {
    pub max: bool,
    pub stride: usize,
    pub bn: Option<BatchNorm2d>,
}

impl Pool {
    /// The pooling of x (taken from `pooled` when given).
    fn pooled_input(&self, tape: &mut Tape, x: &Tensor, pooled: Option<&Pooled>) -> Result<Tensor> {
        let cfg = PoolCfg::new(3, self.stride, 1);
        Ok(match (pooled.and_then(|p| p.get(self.max)), self.max) {
            (Some((y, _)), _) => y.clone(),
            (None, true) => tape.max_pool2d(x, cfg)?,
            (None, false) => tape.avg_pool2d(x, cfg)?,
        })
    }

    fn forward_pooled(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
        pooled: Option<&Pooled>,
    ) -> Result<Tensor> {
        let h = self.pooled_input(tape, x, pooled)?;
        match &self.bn {
            Some(bn) => bn.forward(tape, &h, ctx),
            None => Ok(h),
        }
    }
}

impl CandidateOp for Pool {
    fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        self.forward_pooled(tape, x, ctx, None)
    }

    fn forward_split(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        ctx: Ctx,
        pooled: Option<&Pooled>,
    ) -> Result<Split<'_>> {
        let Some(bn) = self
            .bn
            .as_ref()
            .filter(|bn| Split::can_leave(bn, ctx, tape))
        else {
            return Ok(Split::whole(self.forward_pooled(tape, x, ctx, pooled)?));
        };
        let stats = pooled.and_then(|p| p.get(self.max)?.1.clone());
        Ok(Split {
            y: self.pooled_input(tape, x, pooled)?,
            bn: Some(bn),
            stats,
        })
    }

    fn pooling(&self) -> Option<(bool, usize)> {
        Some((self.max, self.stride))
    }
}

impl Module for Pool {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        if let Some(bn) = &self.bn {
            bn.visit(&join(prefix, "1"), f);
        }
    }
}
