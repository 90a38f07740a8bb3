//! The architecture read from α: softmax(α) of every edge, and the genotype (DARTS) or
//! cell (NAS-Bench-201) derived from it.

use super::genotype::Genotype;
use super::nb201::{Nb201Arch, Nb201Entry, Nb201Table};
use super::settings::Space;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The architecture read from α.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Derived {
    Darts(Genotype),
    Nb201(Nb201Arch),
}

impl Derived {
    /// The upstream Python `Genotype(...)` string, or the NAS-Bench-201 arch string.
    pub fn text(&self) -> String {
        match self {
            Derived::Darts(g) => g.to_python(),
            Derived::Nb201(a) => a.arch_string(),
        }
    }

    /// The benchmark's accuracies of a NAS-Bench-201 cell.
    pub fn nb201_entry(&self) -> Option<Nb201Entry> {
        match self {
            Derived::Nb201(a) => Nb201Table::builtin().lookup(a).cloned(),
            Derived::Darts(_) => None,
        }
    }
}

/// Row-wise softmax on the CPU (for logging and genotypes).
pub fn softmax_rows(x: &[f32], cols: usize) -> Vec<Vec<f32>> {
    x.chunks(cols)
        .map(|r| {
            let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = r.iter().map(|&v| ((v - m) as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|v| (v / s) as f32).collect()
        })
        .collect()
}

/// Derives the architecture from raw α tables (name → row-major values).
pub fn derive_from_alphas(
    space: &Space,
    alphas: &BTreeMap<String, Vec<Vec<f32>>>,
) -> Result<Derived> {
    let get = |name: &str| {
        alphas
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("no '{name}' among the architecture parameters")))
    };
    match space {
        Space::Darts(c) => {
            let (normal, reduce) = (get("alphas_normal")?, get("alphas_reduce")?);
            // Lists for as many rows as α has: a wrong row count is the genotype's to report.
            let lists =
                |reduction: bool, rows: &[Vec<f32>]| c.candidates.cell_ops(reduction, rows.len());
            Ok(Derived::Darts(Genotype::derive_per_edge(
                normal,
                reduce,
                &lists(false, normal)?,
                &lists(true, reduce)?,
            )?))
        }
        Space::Nb201(_) => Ok(Derived::Nb201(Nb201Arch::derive(get("arch_parameters")?)?)),
    }
}
