//! Recording and replay of a step: the first step of a batch shape is recorded as a GPU
//! program; later steps of that shape only write their batches into the recorded inputs and
//! replay it, skipping the graph building (the same kernels, grids and parameters). The
//! programs of the two latest shapes are kept: an epoch's smaller last batch is recorded once
//! and replayed every epoch after, instead of both shapes being recorded afresh each epoch.
//! The price is the second program's buffers (sized by its batch: at most the first's).

use crate::autodiff::{Labels, Tensor};
use crate::data::Batch;
use crate::error::Result;
use crate::gpu::{Gpu, Program};
use crate::nn::{Module, Slot};

struct Recording<K, I, O> {
    key: K,
    program: Program,
    inputs: I,
    outputs: O,
    /// How much the recorded step advanced each batch-norm counter: host-side state that a
    /// replayed program does not touch, so a replay adds it.
    counted: Vec<i64>,
}

/// The module's counters (`num_batches_tracked`), in visit order.
fn counters(m: &dyn Module) -> Vec<i64> {
    let mut v = Vec::new();
    m.visit("", &mut |_, s| {
        if let Slot::Counter(c) = s {
            v.push(c.get());
        }
    });
    v
}

fn add_counts(m: &dyn Module, counted: &[i64]) {
    let mut i = 0;
    m.visit("", &mut |_, s| {
        if let Slot::Counter(c) = s {
            c.set(c.get() + counted.get(i).copied().unwrap_or(0));
            i += 1;
        }
    });
}

/// Programs kept: a run's full batch and its last, smaller one.
const KEPT: usize = 2;

/// The recorded steps of the latest batch shapes `K`, with their input tensors `I` and
/// output tensors `O`.
pub struct Recorder<K, I, O> {
    /// Least recently used first.
    recordings: Vec<Recording<K, I, O>>,
    recorded: usize,
}

impl<K, I, O> Default for Recorder<K, I, O> {
    fn default() -> Self {
        Recorder {
            recordings: Vec::new(),
            recorded: 0,
        }
    }
}

impl<K: PartialEq, I, O> Recorder<K, I, O> {
    /// Dispatches in the latest step's program (0 before the first step or without replay).
    pub fn dispatches(&self) -> usize {
        self.recordings.last().map_or(0, |r| r.program.dispatches())
    }

    /// Programs recorded so far (a step of a shape whose program was kept records none).
    pub fn recorded(&self) -> usize {
        self.recorded
    }

    /// Runs one step of batch shape `key` (`None`: eager, nothing recorded). With a program
    /// of that shape, `write` fills its inputs and the program is replayed; otherwise `upload`
    /// makes the inputs and `encode` queues the step on them, recorded when there is a key.
    /// `read` reads the outputs back either way. `module` is the network the step trains:
    /// a replay advances its batch-norm counters as the recorded step did.
    #[allow(clippy::too_many_arguments)]
    pub fn run<R>(
        &mut self,
        gpu: &Gpu,
        module: &dyn Module,
        key: Option<K>,
        write: impl FnOnce(&I) -> Result<()>,
        upload: impl FnOnce() -> Result<I>,
        encode: impl FnOnce(&I) -> Result<O>,
        read: impl FnOnce(&O) -> Result<R>,
    ) -> Result<R> {
        if let Some(i) = self
            .recordings
            .iter()
            .position(|r| key.as_ref() == Some(&r.key))
        {
            let r = self.recordings.remove(i);
            self.recordings.push(r);
            let r = self.recordings.last().expect("just pushed");
            write(&r.inputs)?;
            gpu.replay(&r.program);
            add_counts(module, &r.counted);
            return read(&r.outputs);
        }
        // Release the least recent program's buffers before building the new step (all of
        // them for an eager step).
        let keep = if key.is_some() { KEPT - 1 } else { 0 };
        while self.recordings.len() > keep {
            self.recordings.remove(0);
        }
        let inputs = upload()?;
        let Some(key) = key else {
            return read(&encode(&inputs)?);
        };
        let before = counters(module);
        gpu.begin_recording();
        let out = encode(&inputs);
        let program = gpu.end_recording();
        let outputs = out?;
        let result = read(&outputs)?;
        let counted = counters(module)
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect();
        self.recorded += 1;
        self.recordings.push(Recording {
            key,
            program,
            inputs,
            outputs,
            counted,
        });
        Ok(result)
    }
}

/// An evaluation forward's programs: keyed by (batch size, image height, width), with the
/// uploaded images and labels in and two tensors out (the loss, and the label ranks or the
/// logits).
pub type EvalRecorder = Recorder<(usize, usize, usize), (Tensor, Labels), (Tensor, Tensor)>;

impl EvalRecorder {
    /// The forward of one evaluation batch `b` of `size` (height, width) images: the program
    /// of its batch size replayed on it, or (none yet, or `replay` off) the batch uploaded and
    /// `encode`d, recorded when `replay`. `read` reads the two outputs back.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate<R>(
        &mut self,
        gpu: &Gpu,
        module: &dyn Module,
        replay: bool,
        b: &Batch,
        size: (usize, usize),
        encode: impl FnOnce(&Tensor, &Labels) -> Result<(Tensor, Tensor)>,
        read: impl FnOnce(&Tensor, &Tensor) -> Result<R>,
    ) -> Result<R> {
        self.run(
            gpu,
            module,
            replay.then_some((b.y.len(), size.0, size.1)),
            |(x, y)| {
                x.write(&b.x)?;
                y.write(gpu, &b.y)
            },
            || super::upload_batch(gpu, b, size),
            |(x, y)| encode(x, y),
            |(a, c)| read(a, c),
        )
    }
}
