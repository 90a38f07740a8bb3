//! Autodiff: tensor handles, the tape, the ops with their backward rules.

pub mod ops;
mod tape;
mod tensor;

pub use ops::conv::Conv2dCfg;
pub use ops::layout::SliceCfg;
pub use ops::norm::{BnState, ChannelStats};
pub use ops::pool::PoolCfg;
pub use tape::{Grads, Tape};
// What a layer above needs to define a fused op (nn/mixed/).
pub(crate) use tape::{FusedNode, GradTerm, Op};
pub use tensor::{Labels, Tensor, TensorId};
pub(crate) use tensor::{Saved, TensorKey};
