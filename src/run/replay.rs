//! Recording and replay of a step: the first step of a batch shape is recorded as a GPU
//! program; later steps of that shape only write their batches into the recorded inputs and
//! replay it, skipping the graph building (the same kernels, grids and parameters). One
//! program is kept: a new shape (an epoch's smaller last batch) records afresh.

use crate::error::Result;
use crate::gpu::{Gpu, Program};

struct Recording<K, I, O> {
    key: K,
    program: Program,
    inputs: I,
    outputs: O,
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
    /// `read` reads the outputs back either way.
    pub fn run<R>(
        &mut self,
        gpu: &Gpu,
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
            return read(&r.outputs);
        }
        // Release the old program's buffers before building the new step.
        self.recording = None;
        let inputs = upload()?;
        let Some(key) = key else {
            return read(&encode(&inputs)?);
        };
        gpu.begin_recording();
        let out = encode(&inputs);
        let program = gpu.end_recording();
        let outputs = out?;
        let result = read(&outputs)?;
        self.recording = Some(Recording {
            key,
            program,
            inputs,
            outputs,
        });
        Ok(result)
    }
}
