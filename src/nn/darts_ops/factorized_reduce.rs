//! FactorizedReduce: the stride-2 `skip_connect`, a reduction cell's preprocessing and the
//! DARTS- auxiliary skip at stride 2.

use super::candidate::{CandidateOp, EndsInBn};
use crate::autodiff::{Conv2dCfg, SliceCfg, Tape, Tensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::ConvShape;
use crate::nn::{visit_named, BatchNorm2d, BeforeBn, Conv2d, Ctx, Module, Slot};
use rand::Rng;

/// ReLU, then two stride-2 1×1 convs (on x and on x[:, :, 1:, 1:]) concatenated, then BN.
pub struct FactorizedReduce {
    pub conv_1: Conv2d,
    pub conv_2: Conv2d,
    pub bn: BatchNorm2d,
}

impl FactorizedReduce {
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        cin: usize,
        cout: usize,
        affine: bool,
    ) -> Result<Self> {
        if !cout.is_multiple_of(2) {
            return Err(Error::Invalid(format!(
                "FactorizedReduce needs an even output channel count, got {cout}"
            )));
        }
        let half = ConvShape::new([cin, cout / 2, 1], 2, 0);
        Ok(FactorizedReduce {
            conv_1: Conv2d::new(gpu, rng, half, false)?,
            conv_2: Conv2d::new(gpu, rng, half, false)?,
            bn: BatchNorm2d::new(gpu, cout, affine)?,
        })
    }

    pub fn forward(&self, tape: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        CandidateOp::forward(self, tape, x, ctx)
    }
}

impl EndsInBn for FactorizedReduce {
    fn final_bn(&self) -> &BatchNorm2d {
        &self.bn
    }

    /// No statistics: the concatenation writes none.
    fn before_bn(&self, tape: &mut Tape, x: &Tensor, _: Ctx) -> Result<BeforeBn> {
        // The ReLU is folded into both convolutions (it commutes with the slicing).
        let a = self.conv_1.forward_relu(tape, x)?;
        // conv_2 (1×1, stride 2) on x[:, :, 1:, 1:] reads exactly x[:, :, 1::2, 1::2].
        let shifted = tape.slice2d(
            x,
            SliceCfg {
                offset: 1,
                stride: 2,
            },
        )?;
        let cfg = Conv2dCfg::new(1, 0).relu_input(true);
        let b = tape.conv2d(&shifted, &self.conv_2.weight, None, cfg)?;
        Ok((tape.concat(&[&a, &b])?, None))
    }
}

impl Module for FactorizedReduce {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        let parts: [(&str, &dyn Module); 3] = [
            ("conv_1", &self.conv_1),
            ("conv_2", &self.conv_2),
            ("bn", &self.bn),
        ];
        visit_named(prefix, &parts, f);
    }
}
