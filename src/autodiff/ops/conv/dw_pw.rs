//! The depthwise + 1×1 pair of DARTS' sep_conv and dil_conv as one op: one fused launch
//! where the shapes allow, and a node that recomputes (or keeps) the intermediate.

use super::{depthwise, Conv2dCfg, Conv2dNode, ConvAlgo, ConvPlan};
use crate::autodiff::ops::norm::ChannelStats;
use crate::autodiff::tape::{InputGrads, Op, Tape};
use crate::autodiff::{Saved, Tensor};
use crate::error::{Error, Result};

/// A depthwise convolution followed by a 1×1 one (DARTS' sep_conv and dil_conv halves),
/// recorded as one node that keeps the depthwise input and, where [`Tape::dw_pw`] says so, the
/// depthwise output; otherwise backward recomputes that output (one extra depthwise pass)
/// instead of holding it between the passes.
pub(crate) struct DwPwNode {
    x: Saved,
    w_dw: Saved,
    w_pw: Saved,
    /// The intermediate, when kept instead of recomputed.
    mid: Option<Tensor>,
    dw: ConvPlan,
    pw: ConvPlan,
    mid_shape: [usize; 4],
    relu: bool,
}

impl Tape {
    /// pw(dw(x)): `w_dw` a depthwise (or any) convolution with `cfg_dw`, then the 1×1
    /// convolution `w_pw`. Where the shapes allow (a depthwise pass of ≤ 16 channels on rows
    /// of a multiple of 4) both run in one kernel, `dw_pw4`. The intermediate is needed in
    /// backward only for the 1×1 weight's gradient (not in the α step). With recomputation on
    /// (the default) backward recomputes it, except that where launches are costly a small
    /// one (`LaunchPolicy::keep_intermediate`) is kept: written by the fused kernel on the way,
    /// or unfused the depthwise pass's own output (a node of its own); with it off it is kept
    /// either way.
    pub fn dw_pw(
        &mut self,
        x: &Tensor,
        w_dw: &Tensor,
        cfg_dw: Conv2dCfg,
        w_pw: &Tensor,
    ) -> Result<Tensor> {
        Ok(self.dw_pw_impl(x, w_dw, cfg_dw, w_pw, false)?.0)
    }

    /// [`Tape::dw_pw`] for a train-mode batch norm to follow: where that batch norm would
    /// split its reductions (GPUs) the 1×1 kernel also writes the output's statistics
    /// (`dw_pw4_stats`, `gemm4_stats`), for [`Tape::batch_norm_with_stats`].
    pub fn dw_pw_with_stats(
        &mut self,
        x: &Tensor,
        w_dw: &Tensor,
        cfg_dw: Conv2dCfg,
        w_pw: &Tensor,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        self.dw_pw_impl(x, w_dw, cfg_dw, w_pw, true)
    }

    fn dw_pw_impl(
        &mut self,
        x: &Tensor,
        w_dw: &Tensor,
        cfg_dw: Conv2dCfg,
        w_pw: &Tensor,
        stats: bool,
    ) -> Result<(Tensor, Option<ChannelStats>)> {
        let pw_cfg = Conv2dCfg::new(1, 0);
        let wants = self.wants(&[x, w_dw, w_pw]);
        let (dw, mid_shape) = ConvPlan::of(x, w_dw, cfg_dw, false)?;
        let fused = match dw.algo {
            ConvAlgo::Depthwise => depthwise::fused(&dw.p, w_pw),
            _ => None,
        };
        // The intermediate kept for the 1×1 weight's gradient, written by the fused kernel on
        // the way: with recomputation off, or where launches are costly and it is small (the
        // recomputing launch costs more there than the memory is worth).
        let mid_numel: usize = mid_shape.iter().product();
        let small = self.gpu().policy().keep_intermediate(mid_numel);
        let keep_mid =
            wants && w_pw.requires_grad() && fused.is_some() && (!self.recompute() || small);
        // Unfused, the intermediate is written anyway: where it is small and launches costly,
        // keep it (two nodes) rather than recompute it.
        let recompute = self.recompute() && !(fused.is_none() && small);
        // One node whose backward needs no intermediate (the 1×1 weight frozen: the α step),
        // recomputes it, or has it kept; otherwise (unfused, intermediate kept) two nodes.
        let one_node = wants && (!w_pw.requires_grad() || recompute || keep_mid);
        // Without a tape, one fused launch serves too.
        let fused_inference = fused.is_some() && !wants;
        if !(one_node || fused_inference) {
            let mid = self.conv2d(x, w_dw, None, cfg_dw)?;
            return self.conv2d_impl(&mid, w_pw, None, pw_cfg, stats);
        }
        let (pw, out_shape) = ConvPlan::new(mid_shape, w_pw, pw_cfg, false)?;
        if !matches!(pw.algo, ConvAlgo::Pointwise) {
            return Err(Error::shape(
                "dw_pw",
                format!("the second weight must be 1×1, got {:?}", w_pw.shape()),
            ));
        }
        let [n, co, ho, wo] = out_shape;
        let stats = stats && self.gpu().policy().stats_in_producer(co, n * ho * wo);
        let relu = cfg_dw.relu_input;
        let mut kept = None;
        let (y, channel_stats) = match fused {
            // Both convolutions in one launch; the intermediate stays in registers (or is
            // also written out, to be kept).
            Some(f) => {
                let gpu = self.gpu().clone();
                let y = Tensor::empty(&gpu, &out_shape, "dw_pw output")?;
                let mid = if keep_mid {
                    Tensor::empty(&gpu, &mid_shape, "dw_pw intermediate")?
                } else {
                    Tensor::empty(&gpu, &[4], "dw_pw unused intermediate")?
                };
                // With statistics, the workgroups are their chunks.
                let part = if stats {
                    let name = "dw_pw output statistics";
                    Some(Tensor::empty(&gpu, &[3 * co * f.groups()], name)?)
                } else {
                    None
                };
                f.forward(x, w_dw, w_pw, &y, &mid, relu, keep_mid, part.as_ref())?;
                kept = keep_mid.then_some(mid);
                let channel_stats = part.map(|part| ChannelStats::new(part, f.groups(), &y));
                (y, channel_stats)
            }
            None => {
                let mid = dw.forward(x, w_dw, None, &mid_shape, relu, false)?.0;
                pw.forward(&mid, w_pw, None, &out_shape, false, stats)?
            }
        };
        self.add_macs(mid_numel as u64 * w_dw.numel() as u64 / w_dw.shape()[0] as u64);
        self.add_macs(y.numel() as u64 * w_pw.numel() as u64 / w_pw.shape()[0] as u64);
        let y = self.record(&[x, w_dw, w_pw], y, || {
            Op::DwPw(DwPwNode {
                x: Saved::keep(x),
                w_dw: Saved::keep(w_dw),
                w_pw: Saved::keep(w_pw),
                mid: kept,
                dw,
                pw,
                mid_shape,
                relu,
            })
        });
        Ok((y, channel_stats))
    }
}

impl DwPwNode {
    pub(crate) fn backward(&self, gy: &Tensor) -> Result<InputGrads> {
        // The intermediate is read only for the 1×1 weight's gradient: recomputed for it, not
        // at all when that weight is frozen (the α step).
        let mid = if let (true, Some(mid)) = (self.w_pw.requires_grad(), &self.mid) {
            Saved::keep(&mid.with_grad())
        } else if self.w_pw.requires_grad() {
            let (x, w_dw) = (self.x.data()?, self.w_dw.data()?);
            let mid = self
                .dw
                .forward(x, w_dw, None, &self.mid_shape, self.relu, false)?;
            Saved::keep(&mid.0.with_grad())
        } else {
            Saved::virtual_input(&self.mid_shape)
        };
        let mid_id = mid.key().id();
        let pw = Conv2dNode {
            x: mid,
            w: self.w_pw.clone(),
            b: None,
            plan: self.pw,
            relu: false,
        };
        let mut out = Vec::new();
        let mut dmid = None;
        for (key, g) in pw.backward(gy)? {
            if key.id() == mid_id {
                dmid = Some(g);
            } else {
                out.push((key, g));
            }
        }
        drop(pw);
        let dmid = dmid.ok_or_else(|| Error::Gpu("internal: dw_pw lost its gradient".into()))?;
        let dw = Conv2dNode {
            x: self.x.clone(),
            w: self.w_dw.clone(),
            b: None,
            plan: self.dw,
            relu: self.relu,
        };
        out.extend(dw.backward(&dmid)?);
        Ok(out)
    }
}
