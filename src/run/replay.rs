//! Recording and replay of a step: the first step of a batch shape is recorded as a GPU
//! program; later steps of that shape only write their batches into the recorded inputs and
//! replay it, skipping the graph building (the same kernels, grids and parameters). One
//! program is kept: a new shape (an epoch's smaller last batch) records afresh.

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

/// The recorded step of the latest batch shape `K`, with its input tensors `I` and output
/// tensors `O`.
pub struct Recorder<K, I, O> {
    recording: Option<Recording<K, I, O>>,
}

impl<K, I, O> Default for Recorder<K, I, O> {
    fn default() -> Self {
        Recorder { recording: None }
    }
}

impl<K: PartialEq, I, O> Recorder<K, I, O> {
    /// Dispatches in the recorded program (0 before the first step or without replay).
    pub fn dispatches(&self) -> usize {
        self.recording
            .as_ref()
            .map_or(0, |r| r.program.dispatches())
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
        if let Some(r) = self
            .recording
            .as_ref()
            .filter(|r| key.as_ref() == Some(&r.key))
        {
            write(&r.inputs)?;
            gpu.replay(&r.program);
            add_counts(module, &r.counted);
            return read(&r.outputs);
        }
        // Release the old program's buffers before building the new step.
        self.recording = None;
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
        self.recording = Some(Recording {
            key,
            program,
            inputs,
            outputs,
            counted,
        });
        Ok(result)
    }
}
