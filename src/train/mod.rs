//! Retraining a searched architecture from scratch (SPEC §8): the discrete evaluation
//! networks built from a genotype.

pub mod darts_eval;
