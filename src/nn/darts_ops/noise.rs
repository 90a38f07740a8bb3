//! `noise` (RobustDARTS S4, SPEC §10): fresh N(0, 1) values shaped like `x` (like
//! `x[:, :, ::2, ::2]` at stride 2), no gradient to `x`, no state.
//!
//! Every noise candidate of a network draws from one [`NoiseSource`]: a GPU table of keys
//! the run writes from its seed and step before each step (so a replayed step draws anew and
//! a resumed run continues where it stopped), and a stream counter that numbers the draws of
//! one step in forward order. Tests can feed the source fixed values instead (PyTorch's).

use super::candidate::CandidateOp;
use crate::autodiff::ops::noise::{noise_key_table, normal_noise, write_noise_keys, NOISE_SLOTS};
use crate::autodiff::{Tape, Tensor};
use crate::data::sub_seed;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{Ctx, Module, Slot};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// Seed stream of every run's noise draws (apart from its weights' and data's).
const TAG_NOISE: u64 = 2;

/// Which key a draw uses: train-mode forwards (the search step) or eval-mode ones.
fn slot(ctx: Ctx) -> usize {
    if ctx.train {
        0
    } else {
        1
    }
}

/// Where a network's noise candidates draw from.
pub struct NoiseSource {
    gpu: Gpu,
    table: Tensor,
    keys: Cell<[u64; NOISE_SLOTS]>,
    /// The next draw's stream number.
    next: Cell<u32>,
    /// Values to hand out in draw order instead of drawing (a test hook).
    fed: RefCell<Option<VecDeque<Vec<f32>>>>,
}

impl NoiseSource {
    pub fn new(gpu: &Gpu) -> Result<Rc<NoiseSource>> {
        Ok(Rc::new(NoiseSource {
            gpu: gpu.clone(),
            table: noise_key_table(gpu)?,
            keys: Cell::new([0; NOISE_SLOTS]),
            next: Cell::new(0),
            fed: RefCell::new(None),
        }))
    }

    /// Keys the coming draws from a run's `seed` and position: train-mode forwards by the
    /// step `step`, evaluation batch `batch` by the epoch `epoch`. The values follow from the
    /// seed and the position alone, so a resumed run draws what an uninterrupted one would.
    pub fn start_at(
        &self,
        seed: u64,
        train: bool,
        (epoch, step): (usize, usize),
        batch: usize,
    ) -> Result<()> {
        let stream = sub_seed(seed, TAG_NOISE);
        let key = if train {
            sub_seed(stream, step as u64)
        } else {
            sub_seed(sub_seed(stream, u64::MAX - epoch as u64), batch as u64)
        };
        self.start(train, key)
    }

    /// Sets the key of train-mode (`train`) or eval-mode draws and restarts the stream
    /// numbering: called before every step and every evaluation batch.
    pub fn start(&self, train: bool, key: u64) -> Result<()> {
        let mut keys = self.keys.get();
        keys[slot(Ctx { train })] = key;
        self.keys.set(keys);
        self.next.set(0);
        write_noise_keys(&self.gpu, &self.table, &keys)
    }

    /// From now on, draws hand out `values` in order (each must have the draw's size), and
    /// fail once they run out.
    pub fn feed(&self, values: Vec<Vec<f32>>) {
        *self.fed.borrow_mut() = Some(values.into());
    }

    /// Draws left in the fed values (None when not fed).
    pub fn fed_left(&self) -> Option<usize> {
        self.fed.borrow().as_ref().map(VecDeque::len)
    }

    fn draw(&self, shape: &[usize], ctx: Ctx) -> Result<Tensor> {
        if let Some(fed) = self.fed.borrow_mut().as_mut() {
            let v = fed.pop_front().ok_or_else(|| {
                Error::Invalid("the noise values fed to the network ran out".into())
            })?;
            return Tensor::from_slice(&self.gpu, shape, &v);
        }
        let stream = self.next.get();
        self.next.set(stream.wrapping_add(1));
        normal_noise(&self.gpu, shape, &self.table, slot(ctx), stream)
    }
}

/// The `noise` candidate.
pub struct Noise {
    pub stride: usize,
    pub source: Rc<NoiseSource>,
}

impl CandidateOp for Noise {
    fn forward(&self, _: &mut Tape, x: &Tensor, ctx: Ctx) -> Result<Tensor> {
        let (n, c, h, w) = x.nchw("noise")?;
        let s = self.stride;
        self.source.draw(&[n, c, h.div_ceil(s), w.div_ceil(s)], ctx)
    }
}

impl Module for Noise {
    fn visit<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, Slot<'a>)) {}
}
