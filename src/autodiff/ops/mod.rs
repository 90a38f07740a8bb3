//! The differentiable ops. Each file holds an op's forward (a method on [`Tape`]) and, right
//! beside it, the node type whose `backward` is its gradient rule.
//!
//! [`Tape`]: crate::autodiff::Tape

pub mod conv;
pub mod elementwise;
pub mod layout;
pub mod linear;
pub mod noise;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod softmax;
