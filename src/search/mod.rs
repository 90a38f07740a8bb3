//! Architecture search: the search spaces' supernets, schedules, the search and its steps,
//! genotypes, checkpoints and run outputs.

pub mod bench;
pub mod darts_net;
pub mod derived;
pub mod epoch;
pub mod genotype;
pub mod nb201;
pub(crate) mod nb201_body;
pub mod nb201_net;
pub mod outputs;
pub mod schedule;
pub mod settings;
mod state;
mod step;
pub mod supernet;
pub mod trainer;

pub use state::SearchRecord;
pub use supernet::Supernet;
