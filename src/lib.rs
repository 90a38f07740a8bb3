//! darts-minus: differentiable architecture search (DARTS-) on any GPU through WebGPU.
//!
//! Layers, bottom up: [`gpu`] (adapter, kernels, buffers, command batching, replay) →
//! [`autodiff`] (tensors, tape, ops with their gradients) → [`optim`] (SGD, Adam, clipping) → [`run`] (the epoch loop, step replay, metrics,
//! run checkpoints) → [`search`] and [`train`] → [`experiment`] (sweeps of many runs, their reports).

pub mod autodiff;
pub mod check;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod experiment;
pub mod gpu;
pub mod nn;
pub mod optim;
pub mod report;
pub mod run;
pub mod search;
pub mod train;

pub use error::{Error, Result};
