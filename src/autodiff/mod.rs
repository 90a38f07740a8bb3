//! Autodiff: tensor handles, the tape, the ops with their backward rules.

pub mod ops;
mod tape;
mod tensor;

pub use ops::conv::Conv2dCfg;
pub use ops::layout::SliceCfg;
pub use ops::norm::{BnState, ChannelStats, SumTerm};
pub use ops::pool::PoolCfg;
pub use tape::{Grads, Tape};
pub(crate) use tensor::Saved;
pub use tensor::{Labels, Tensor, TensorId};
