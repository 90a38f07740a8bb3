//! Recording and replay of a step: the first step of a batch shape is recorded as a GPU
//! program; later steps of that shape only write their batches into the recorded inputs and
//! replay it, skipping the graph building (the same kernels, grids and parameters). The
//! programs of the two latest shapes are kept: an epoch's smaller last batch is recorded once
//! and replayed every epoch after, instead of both shapes being recorded afresh each epoch.
//! The price is the second program's buffers (sized by its batch: at most the first's).

use crate::error::Result;
use crate::gpu::{Gpu, Program};

struct Recording<K, I, O> {
    key: K,
    program: Program,
    inputs: I,
    outputs: O,
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
        gpu.begin_recording();
        let out = encode(&inputs);
        let program = gpu.end_recording();
        let outputs = out?;
        let result = read(&outputs)?;
        self.recorded += 1;
        self.recordings.push(Recording {
            key,
            program,
            inputs,
            outputs,
        });
        Ok(result)
    }
}
