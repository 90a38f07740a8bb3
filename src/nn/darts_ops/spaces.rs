//! The DARTS-cell search spaces (SPEC §10): DARTS' own, every edge with all eight candidates,
//! and RobustDARTS' S1–S4, whose edges each have their own short list (α column order), as the
//! DARTS- reference's `src/spaces.py` defines them. Cell, network, auxiliary skip and β are
//! the same in all five; only the candidates of each edge differ.

use super::DARTS_OPS;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

const SKIP: &str = "skip_connect";
const MAX: &str = "max_pool_3x3";
const AVG: &str = "avg_pool_3x3";
const SEP3: &str = "sep_conv_3x3";
const DIL3: &str = "dil_conv_3x3";
const DIL5: &str = "dil_conv_5x5";

/// S1's normal-cell lists, edge 0..13 (the reference's `primitives_1`).
const S1_NORMAL: [[&str; 2]; 14] = [
    [SKIP, DIL3],
    [SKIP, DIL5],
    [SKIP, DIL5],
    [SKIP, SEP3],
    [SKIP, DIL3],
    [MAX, SKIP],
    [SKIP, SEP3],
    [SKIP, SEP3],
    [SKIP, DIL3],
    [SKIP, SEP3],
    [MAX, SKIP],
    [SKIP, DIL3],
    [DIL3, DIL5],
    [DIL3, DIL5],
];

/// S1's reduction-cell lists.
const S1_REDUCE: [[&str; 2]; 14] = [
    [MAX, AVG],
    [MAX, DIL3],
    [MAX, AVG],
    [MAX, AVG],
    [SKIP, DIL5],
    [MAX, AVG],
    [MAX, SEP3],
    [SKIP, DIL3],
    [SKIP, DIL5],
    [MAX, AVG],
    [MAX, AVG],
    [SKIP, DIL5],
    [SKIP, DIL5],
    [SKIP, DIL5],
];

const S2: [&str; 2] = [SKIP, SEP3];
const S3: [&str; 3] = ["none", SKIP, SEP3];
const S4: [&str; 2] = ["noise", SEP3];

/// Which candidates the edges of a DARTS cell have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DartsSpace {
    /// Every edge all eight DARTS candidates (the reference's `s5`).
    #[default]
    Darts,
    /// A different pair on every edge, chosen by RobustDARTS where DARTS fails.
    S1,
    /// {skip_connect, sep_conv_3x3} on every edge.
    S2,
    /// {none, skip_connect, sep_conv_3x3} on every edge.
    S3,
    /// {noise, sep_conv_3x3} on every edge.
    S4,
}

impl DartsSpace {
    pub const ALL: [DartsSpace; 5] = [
        DartsSpace::Darts,
        DartsSpace::S1,
        DartsSpace::S2,
        DartsSpace::S3,
        DartsSpace::S4,
    ];

    /// The `--space` value and the name in settings and outputs.
    pub fn name(self) -> &'static str {
        match self {
            DartsSpace::Darts => "darts",
            DartsSpace::S1 => "s1",
            DartsSpace::S2 => "s2",
            DartsSpace::S3 => "s3",
            DartsSpace::S4 => "s4",
        }
    }

    /// How messages name the space.
    pub fn label(self) -> &'static str {
        match self {
            DartsSpace::Darts => "DARTS",
            DartsSpace::S1 => "RobustDARTS S1",
            DartsSpace::S2 => "RobustDARTS S2",
            DartsSpace::S3 => "RobustDARTS S3",
            DartsSpace::S4 => "RobustDARTS S4",
        }
    }

    pub fn from_name(name: &str) -> Option<DartsSpace> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Candidates per edge: the number of α columns.
    pub fn width(self) -> usize {
        self.edge_ops(false, 0).map_or(0, <[&str]>::len)
    }

    /// Whether some edge has the `noise` candidate.
    pub fn has_noise(self) -> bool {
        self == DartsSpace::S4
    }

    /// The candidates of edge `edge` (SPEC §3 order) of a normal or reduction cell, in α
    /// column order. S1 lists exist for the 14 edges of a 4-node cell only.
    pub fn edge_ops(self, reduction: bool, edge: usize) -> Result<&'static [&'static str]> {
        Ok(match self {
            DartsSpace::Darts => &DARTS_OPS,
            DartsSpace::S1 => {
                let lists = if reduction { &S1_REDUCE } else { &S1_NORMAL };
                lists.get(edge).ok_or_else(|| {
                    Error::Invalid(format!(
                        "the {} space defines 14 edges (4 nodes per cell); edge {edge} has no \
                         candidate list: pass --nodes 4",
                        self.label()
                    ))
                })?
            }
            DartsSpace::S2 => &S2,
            DartsSpace::S3 => &S3,
            DartsSpace::S4 => &S4,
        })
    }

    /// Every edge's list for a cell of `edges` edges.
    pub fn cell_ops(self, reduction: bool, edges: usize) -> Result<Vec<&'static [&'static str]>> {
        (0..edges).map(|e| self.edge_ops(reduction, e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lists_are_the_references() {
        for s in DartsSpace::ALL {
            assert_eq!(DartsSpace::from_name(s.name()), Some(s));
            assert_eq!(s.cell_ops(true, 14).unwrap().len(), 14);
        }
        assert_eq!(DartsSpace::from_name("s5"), None);
        let s1 = DartsSpace::S1;
        assert_eq!(s1.edge_ops(false, 5).unwrap(), [MAX, SKIP]);
        assert_eq!(s1.edge_ops(false, 12).unwrap(), [DIL3, DIL5]);
        assert_eq!(s1.edge_ops(true, 1).unwrap(), [MAX, DIL3]);
        assert_eq!(s1.edge_ops(true, 6).unwrap(), [MAX, SEP3]);
        assert_eq!(s1.edge_ops(true, 13).unwrap(), [SKIP, DIL5]);
        let widths: Vec<usize> = DartsSpace::ALL.iter().map(|s| s.width()).collect();
        assert_eq!(widths, [8, 2, 2, 3, 2]);
        assert!(DartsSpace::S4.has_noise() && !DartsSpace::S3.has_noise());
    }

    #[test]
    fn s1_beyond_fourteen_edges_is_refused_by_name() {
        let e = DartsSpace::S1.edge_ops(false, 14).unwrap_err().to_string();
        assert!(
            e.contains("RobustDARTS S1") && e.contains("--nodes 4"),
            "{e}"
        );
        assert_eq!(DartsSpace::S2.cell_ops(false, 20).unwrap().len(), 20);
    }

    #[test]
    fn every_listed_candidate_is_buildable() {
        for s in DartsSpace::ALL {
            for reduction in [false, true] {
                for ops in s.cell_ops(reduction, 14).unwrap() {
                    for op in ops {
                        assert!(super::super::DARTS_FAMILY.get(op).is_ok(), "{op}");
                    }
                }
            }
        }
    }
}
