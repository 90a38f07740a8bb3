//! Optimisers on the GPU: SGD with momentum and weight decay, Adam with L2 weight decay, and
//! global-norm gradient clipping. Per-step values (learning rate, Adam's step count) live in
//! a small GPU table written before each step, so a recorded step replays unchanged.
//! Kernels: `shaders/optim.wgsl`.

use crate::autodiff::ops::reduce::{finish_into, split};
use crate::autodiff::Tensor;
use crate::error::{Error, Result};
use crate::gpu::Work;
use crate::gpu::{ElementwiseParams, Gpu, KernelParams, OptimParams, Sgd4Params, SumsqParams};
use std::cell::RefCell;

fn check(params: &[Tensor], grads: &[&Tensor]) -> Result<()> {
    if params.len() != grads.len() {
        return Err(Error::shape(
            "optimizer",
            format!("{} parameters but {} gradients", params.len(), grads.len()),
        ));
    }
    for (p, g) in params.iter().zip(grads) {
        if p.shape() != g.shape() {
            return Err(Error::shape(
                "optimizer",
                format!("parameter {:?} with gradient {:?}", p.shape(), g.shape()),
            ));
        }
    }
    Ok(())
}

/// The gradients present, after checking that `grads` pairs with `params` and each present
/// one has its parameter's shape.
fn check_some<'a>(params: &[Tensor], grads: &[Option<&'a Tensor>]) -> Result<Vec<&'a Tensor>> {
    if params.len() != grads.len() {
        return Err(Error::shape(
            "optimizer",
            format!("{} parameters but {} gradients", params.len(), grads.len()),
        ));
    }
    let present: Vec<&Tensor> = grads.iter().flatten().copied().collect();
    let with: Vec<Tensor> = params
        .iter()
        .zip(grads)
        .filter(|(_, g)| g.is_some())
        .map(|(p, _)| p.clone())
        .collect();
    check(&with, &present)?;
    Ok(present)
}

/// One parameter's update: the learning rate (or Adam's step size) at `hyper[0]`, Adam's
/// √(1−β2ᵗ) at `hyper[1]`.
fn params_block(n: usize, momentum: f32, wd: f32, b1: f32, b2: f32, eps: f32) -> OptimParams {
    OptimParams {
        n: n as u32,
        lr_idx: 0,
        step_idx: 1,
        nesterov: 0,
        momentum,
        wd,
        b1,
        b2,
        eps,
        max_norm: 0.0,
    }
}

/// SGD: d = g + wd·w; buf = momentum·buf + d; w −= lr·buf, or with Nesterov
/// w −= lr·(d + momentum·buf) (PyTorch semantics).
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    bufs: Vec<Tensor>,
    hyper: Tensor,
    /// Flat gradient, weight and momentum buffers for [`Sgd::encode_clipped_norm`] where
    /// launches are costly (made on first use, sized for every parameter).
    flat: RefCell<Option<[Tensor; 3]>>,
}

impl Sgd {
    pub fn new(
        gpu: &Gpu,
        params: &[Tensor],
        lr: f32,
        momentum: f32,
        weight_decay: f32,
    ) -> Result<Sgd> {
        let bufs = params
            .iter()
            .map(|p| Tensor::zeros(gpu, p.shape()))
            .collect::<Result<_>>()?;
        Ok(Sgd {
            lr,
            momentum,
            weight_decay,
            nesterov: false,
            bufs,
            hyper: Tensor::zeros(gpu, &[2])?,
            flat: RefCell::new(None),
        })
    }

    /// Momentum buffers, in parameter order (for checkpoints).
    pub fn state(&self) -> &[Tensor] {
        &self.bufs
    }

    /// Writes this step's learning rate to the GPU; call before `encode` (or before replay).
    pub fn prepare(&self) -> Result<()> {
        self.hyper.write(&[self.lr, 0.0])
    }

    /// Queues the update of every parameter.
    pub fn encode(&self, params: &[Tensor], grads: &[&Tensor]) -> Result<()> {
        let some: Vec<Option<&Tensor>> = grads.iter().map(|g| Some(*g)).collect();
        self.encode_some(params, &some)
    }

    /// Like [`Sgd::encode`], skipping parameters without a gradient (PyTorch leaves those, and
    /// their momentum, untouched: no weight decay either).
    pub fn encode_some(&self, params: &[Tensor], grads: &[Option<&Tensor>]) -> Result<()> {
        self.encode_some_scaled(params, grads, None)
    }

    /// [`Sgd::encode_some`] with every gradient scaled by `coef[0]` on the fly when given (the
    /// clipping coefficient of [`clip_coefficient`]).
    pub fn encode_some_scaled(
        &self,
        params: &[Tensor],
        grads: &[Option<&Tensor>],
        coef: Option<&Tensor>,
    ) -> Result<()> {
        check_some(params, grads)?;
        self.encode_checked(params, grads, coef)
    }

    /// [`Sgd::encode_some_scaled`] once `check_some` has accepted `params` and `grads`.
    fn encode_checked(
        &self,
        params: &[Tensor],
        grads: &[Option<&Tensor>],
        coef: Option<&Tensor>,
    ) -> Result<()> {
        // (parameter, gradient, momentum) of those with a gradient
        let mut present: Vec<(&Tensor, &Tensor, &Tensor)> = params
            .iter()
            .zip(grads)
            .zip(&self.bufs)
            .filter_map(|((p, g), b)| g.map(|g| (p, g, b)))
            .collect();
        if let (Some(coef), Some(first)) = (coef, present.first()) {
            let gpu = first.0.gpu();
            if gpu.policy().sgd_four_per_launch() {
                // Four parameters per launch, grouped by size so each launch's threads are
                // mostly busy; a remainder of fewer than four goes one by one below.
                present.sort_by_key(|t| t.0.numel());
                let whole = present.len() / 4 * 4;
                for four in present[..whole].chunks(4) {
                    self.encode_four(gpu, four, coef)?;
                }
                present.drain(..whole);
            }
        }
        for (p, g, b) in present {
            let mut pb = params_block(p.numel(), self.momentum, self.weight_decay, 0.0, 0.0, 0.0);
            pb.nesterov = self.nesterov as u32;
            let mut bufs = vec![g.buffer(), self.hyper.buffer(), p.buffer(), b.buffer()];
            let entry = match coef {
                Some(c) => {
                    bufs.push(c.buffer());
                    "sgd_clipped"
                }
                None => "sgd",
            };
            p.gpu()
                .launch("optim", entry, pb.words(), &bufs, p.numel())?;
        }
        Ok(())
    }

    /// `sgd4_clipped`: the clipped update of four (parameter, gradient, momentum) triples.
    fn encode_four(
        &self,
        gpu: &Gpu,
        four: &[(&Tensor, &Tensor, &Tensor)],
        coef: &Tensor,
    ) -> Result<()> {
        let n = four.iter().map(|t| t.0.numel()).max().unwrap_or(0);
        let mut s4 = Sgd4Params {
            n: [0; 4],
            lr_idx: 0,
            nesterov: self.nesterov as u32,
            momentum: self.momentum,
            wd: self.weight_decay,
        };
        for (k, t) in four.iter().enumerate() {
            s4.n[k] = t.0.numel() as u32;
        }
        let mut bufs = vec![self.hyper.buffer(), coef.buffer()];
        bufs.extend(four.iter().map(|t| t.1.buffer()));
        bufs.extend(four.iter().map(|t| t.0.buffer()));
        bufs.extend(four.iter().map(|t| t.2.buffer()));
        gpu.launch("optim", "sgd4_clipped", s4.words(), &bufs, n)
    }

    pub fn step(&self, params: &[Tensor], grads: &[&Tensor]) -> Result<()> {
        self.prepare()?;
        self.encode(params, grads)
    }

    /// Clips the gradients present to a global L2 norm of `max_norm` (PyTorch
    /// `clip_grad_norm_`) and queues the update of their parameters; parameters without a
    /// gradient are left alone, as in [`Sgd::encode_some`]. Returns the table [norm², coef].
    ///
    /// Where the launch policy gathers ([`LaunchPolicy::gather_optimizer`]) the gradients, weights and
    /// momenta are gathered by copy commands into flat buffers, so the norm and the update
    /// take four launches in all instead of about two per parameter; the new weights and
    /// momenta are copied back. Elsewhere every parameter is updated by its own launch.
    pub fn encode_clipped_norm(
        &self,
        params: &[Tensor],
        grads: &[Option<&Tensor>],
        max_norm: f32,
    ) -> Result<Tensor> {
        self.encode_clipped_norm_with(params, grads, &[], max_norm)
    }

    /// [`Sgd::encode_clipped_norm`] with `norm_only` gradients counted in the clipping norm
    /// but neither clipped nor applied (α's in NAS-Bench-201's DARTS).
    pub fn encode_clipped_norm_with(
        &self,
        params: &[Tensor],
        grads: &[Option<&Tensor>],
        norm_only: &[&Tensor],
        max_norm: f32,
    ) -> Result<Tensor> {
        let present = check_some(params, grads)?;
        let Some(first) = present.first() else {
            return Err(Error::Invalid("no parameter received a gradient".into()));
        };
        let gpu = first.gpu();
        if !gpu.policy().gather_optimizer() {
            let counted: Vec<&Tensor> = present.iter().chain(norm_only).copied().collect();
            let (table, coef) = clip_coefficient(&counted, max_norm)?;
            self.encode_checked(params, grads, Some(&coef))?;
            return Ok(table);
        }
        let mut flat = self.flat.borrow_mut();
        // Whole quads, so the update and the norm read and write vec4s.
        let total = params
            .iter()
            .map(|p| p.numel())
            .sum::<usize>()
            .next_multiple_of(4);
        if flat.as_ref().is_none_or(|f| f[0].numel() < total) {
            let mk = |name| Tensor::empty(gpu, &[total], name);
            *flat = Some([
                mk("flat gradients")?,
                mk("flat weights")?,
                mk("flat momenta")?,
            ]);
        }
        let [fg, fw, fm] = flat.as_ref().expect("made above");
        // (parameter, its momentum, its gradient, offset in the flat buffers)
        let mut at = 0;
        let mut parts = Vec::with_capacity(present.len());
        for ((p, g), m) in params.iter().zip(grads).zip(&self.bufs) {
            if let Some(g) = g {
                parts.push((p, m, *g, at));
                at += p.numel();
            }
        }
        for &(p, m, g, at) in &parts {
            gpu.copy_range(g.buffer(), 0, fg.buffer(), at, p.numel());
            gpu.copy_range(p.buffer(), 0, fw.buffer(), at, p.numel());
            gpu.copy_range(m.buffer(), 0, fm.buffer(), at, p.numel());
        }
        let len = at;
        let flat_grads = Tensor::from_buffer(gpu, &[len], fg.buffer().clone(), false);
        let (table, coef) = clip_coefficient_of(Some(&flat_grads), norm_only, max_norm)?;
        let mut pb = params_block(len, self.momentum, self.weight_decay, 0.0, 0.0, 0.0);
        pb.nesterov = self.nesterov as u32;
        let bufs = [
            fg.buffer(),
            self.hyper.buffer(),
            fw.buffer(),
            fm.buffer(),
            coef.buffer(),
        ];
        gpu.launch("optim", "sgd_clipped4", pb.words(), &bufs, len.div_ceil(4))?;
        for &(p, m, _, at) in &parts {
            gpu.copy_range(fw.buffer(), at, p.buffer(), 0, p.numel());
            gpu.copy_range(fm.buffer(), at, m.buffer(), 0, p.numel());
        }
        Ok(table)
    }

    /// Like [`Sgd::encode`] with every gradient scaled by `coef[0]` on the fly (the clipping
    /// coefficient of [`clip_coefficient`]): the clipped gradients are never written out.
    pub fn encode_clipped(
        &self,
        params: &[Tensor],
        grads: &[&Tensor],
        coef: &Tensor,
    ) -> Result<()> {
        let some: Vec<Option<&Tensor>> = grads.iter().map(|g| Some(*g)).collect();
        self.encode_some_scaled(params, &some, Some(coef))
    }
}

/// Adam with L2 weight decay added to the gradient (PyTorch `Adam(weight_decay=…)`).
pub struct Adam {
    pub lr: f32,
    pub betas: (f32, f32),
    pub eps: f32,
    pub weight_decay: f32,
    /// Steps taken so far.
    pub t: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    hyper: Tensor,
}

impl Adam {
    pub fn new(
        gpu: &Gpu,
        params: &[Tensor],
        lr: f32,
        betas: (f32, f32),
        eps: f32,
        weight_decay: f32,
    ) -> Result<Adam> {
        let z = |p: &Tensor| Tensor::zeros(gpu, p.shape());
        Ok(Adam {
            lr,
            betas,
            eps,
            weight_decay,
            t: 0,
            m: params.iter().map(z).collect::<Result<_>>()?,
            v: params.iter().map(z).collect::<Result<_>>()?,
            hyper: Tensor::zeros(gpu, &[2])?,
        })
    }

    /// First and second moments, in parameter order (for checkpoints).
    pub fn state(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// Advances the step count and writes this step's step size lr/(1−β1ᵗ) and √(1−β2ᵗ) to
    /// the GPU (in f64 here: 1 − βᵗ loses most of its digits in f32); call once per step
    /// before `encode` (or before replaying a recorded step).
    pub fn prepare(&mut self) -> Result<()> {
        self.t += 1;
        let t = self.t as i32;
        let bc1 = 1.0 - (self.betas.0 as f64).powi(t);
        let bc2 = 1.0 - (self.betas.1 as f64).powi(t);
        self.hyper
            .write(&[(self.lr as f64 / bc1) as f32, bc2.sqrt() as f32])
    }

    pub fn encode(&self, params: &[Tensor], grads: &[&Tensor]) -> Result<()> {
        check(params, grads)?;
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            let pb = params_block(
                p.numel(),
                0.0,
                self.weight_decay,
                self.betas.0,
                self.betas.1,
                self.eps,
            );
            p.gpu().launch(
                "optim",
                "adam",
                pb.words(),
                &[
                    g.buffer(),
                    self.hyper.buffer(),
                    p.buffer(),
                    self.m[i].buffer(),
                    self.v[i].buffer(),
                ],
                p.numel(),
            )?;
        }
        Ok(())
    }

    pub fn step(&mut self, params: &[Tensor], grads: &[&Tensor]) -> Result<()> {
        self.prepare()?;
        self.encode(params, grads)
    }
}

/// PyTorch `clip_grad_norm_`'s coefficient for `grads`: coef = max_norm / (norm + 1e-6),
/// capped at 1. Everything stays on the GPU; returns a 2-element table [norm², coef] (for
/// logging) and the 1-element coefficient (for [`Sgd::encode_clipped`]).
pub fn clip_coefficient(grads: &[&Tensor], max_norm: f32) -> Result<(Tensor, Tensor)> {
    clip_coefficient_of(None, grads, max_norm)
}

/// [`clip_coefficient`] of `quads` and `grads` together, where `quads` is a gradient whose
/// buffer holds whole quads past its length (the gathered flat gradient): its Σ g² is read
/// as vec4s in the launch policy's few dot-product workgroups (one tree sum each, where
/// barriers are costly) instead of four gradients' worth of ~1,000-value chunks.
fn clip_coefficient_of(
    quads: Option<&Tensor>,
    grads: &[&Tensor],
    max_norm: f32,
) -> Result<(Tensor, Tensor)> {
    let Some(first) = quads.or(grads.first().copied()) else {
        return Err(Error::Invalid(
            "clip_grad_norm needs at least one gradient".into(),
        ));
    };
    let gpu = first.gpu();
    let table = Tensor::empty(gpu, &[2], "grad norm")?;
    // Σ g² four gradients per launch (most are small: one launch each would be all overhead),
    // every launch's partials side by side in one buffer, summed by one final pass.
    let splits: Vec<(usize, usize)> = grads
        .chunks(4)
        .map(|four| split(four.iter().map(|g| g.numel()).max().unwrap_or(1)))
        .collect();
    let quad_split = quads.map(|g| gpu.policy().dot_chunks(g.numel(), split(g.numel())));
    let total: usize = splits.iter().map(|&(_, groups)| 4 * groups).sum::<usize>()
        + quad_split.map_or(0, |(_, groups)| groups);
    let partial = gpu.alloc("gradient norm partials", total)?;
    let mut base = 0;
    if let (Some(g), Some((chunk, groups))) = (quads, quad_split) {
        let q = SumsqParams {
            n: [g.numel() as u32, 0, 0, 0],
            chunk: chunk as u32,
            count: groups as u32,
            base: 0,
            ..SumsqParams::default()
        };
        gpu.launch(
            "optim",
            "sumsq_vec4_partial",
            q.words(),
            &[g.buffer(), &partial],
            Work::Groups(groups),
        )?;
        base = groups;
    }
    for (four, &(chunk, groups)) in grads.chunks(4).zip(&splits) {
        let mut q = SumsqParams {
            chunk: chunk as u32,
            count: groups as u32,
            base: base as u32,
            ..SumsqParams::default()
        };
        for (k, g) in four.iter().enumerate() {
            q.n[k] = g.numel() as u32;
        }
        let g = |k: usize| four.get(k).unwrap_or(&four[0]).buffer();
        let bufs = [g(0), g(1), g(2), g(3), &partial];
        gpu.launch(
            "optim",
            "sumsq4_partial",
            q.words(),
            &bufs,
            Work::Groups(groups),
        )?;
        base += 4 * groups;
    }
    finish_into(gpu, &partial, total, table.buffer(), 0, false, 1.0)?;
    // clip_coef reads only max_norm.
    let p = OptimParams {
        max_norm,
        ..OptimParams::default()
    };
    // coef goes to slot 1: bind the table once for reading (sumsq) and once, offset, for writing
    // would alias; a separate 1-element buffer keeps the bindings disjoint.
    let coef = Tensor::empty(gpu, &[1], "clip coef")?;
    gpu.launch(
        "optim",
        "clip_coef",
        p.words(),
        &[table.buffer(), coef.buffer()],
        Work::Groups(1),
    )?;
    gpu.copy_range(coef.buffer(), 0, table.buffer(), 1, 1);
    Ok((table, coef))
}

/// Scales `grads` in place so their global L2 norm is at most `max_norm` (PyTorch
/// `clip_grad_norm_`). Returns the table [norm², coef] of [`clip_coefficient`].
pub fn clip_grad_norm(grads: &[&Tensor], max_norm: f32) -> Result<Tensor> {
    let (table, coef) = clip_coefficient(grads, max_norm)?;
    for g in grads {
        g.gpu().launch(
            "elementwise",
            "scale_inplace_by",
            ElementwiseParams {
                n: g.numel() as u32,
                ..Default::default()
            }
            .words(),
            &[coef.buffer(), g.buffer()],
            g.numel(),
        )?;
    }
    Ok(table)
}
