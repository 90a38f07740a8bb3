//! DARTS-space genotypes (SPEC §6): deriving the discrete cell from softmax(α), writing it in
//! the upstream Python form (so the PyTorch repositories can retrain it), and reading it back
//! from that form, from JSON, or by the name of a published cell.

mod pyliteral;
mod python;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use crate::nn::darts_ops::DARTS_OPS;

/// Names accepted by [`named`] (case-insensitive; `DARTS-` and `DARTS` are aliases of
/// `DARTS_MINUS` and `DARTS_V2`, as in the upstream code).
pub const NAMED: &[&str] = &["DARTS_V1", "DARTS_V2", "DARTS_MINUS"];

/// A discrete DARTS cell pair. Each node takes two (op, input) genes, stored consecutively;
/// input 0 and 1 are the cell inputs, input `2 + i` is node `i`. The `*_concat` lists name the
/// states concatenated into the cell output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genotype {
    pub normal: Vec<(String, usize)>,
    pub normal_concat: Vec<usize>,
    pub reduce: Vec<(String, usize)>,
    pub reduce_concat: Vec<usize>,
}

impl Genotype {
    /// Derives the genotype from the softmax(α) rows of the normal and reduction cells
    /// (edges in node order, `Σ_i (i + 2)` rows of `ops.len()` weights; 14 × 8 for 4 nodes).
    ///
    /// Same rule as the reference code: per node, the two inputs with the largest non-`none`
    /// weight (ties → lower input), each with its best non-`none` op (ties → lower op index).
    /// If `ops` has no `none`, nothing is excluded.
    pub fn derive(normal: &[Vec<f32>], reduce: &[Vec<f32>], ops: &[&str]) -> Result<Genotype> {
        let (normal, n_nodes) = derive_cell("normal", normal, ops)?;
        let (reduce, r_nodes) = derive_cell("reduce", reduce, ops)?;
        Ok(Genotype {
            normal,
            normal_concat: (2..2 + n_nodes).collect(),
            reduce,
            reduce_concat: (2..2 + r_nodes).collect(),
        })
    }

    /// Number of intermediate nodes in the normal cell (two genes per node).
    pub fn nodes(&self) -> usize {
        self.normal.len() / 2
    }

    /// Reads a genotype from the upstream Python form (single or double quotes, any
    /// whitespace, concat as a list or `range(a, b)`), from its JSON form, or from a published
    /// name in [`NAMED`]. The result is validated (see [`Genotype::validate`]).
    pub fn parse(s: &str) -> Result<Genotype> {
        let t = s.trim();
        let g = if t.starts_with('{') {
            serde_json::from_str::<Genotype>(t)
                .map_err(|e| Error::Invalid(format!("invalid genotype JSON: {e}")))?
        } else if t.starts_with("Genotype") {
            python::read(t)?
        } else if let Some(g) = named(t) {
            g
        } else {
            let shown: String = t.chars().take(40).collect();
            return Err(Error::Invalid(format!(
                "cannot read genotype '{shown}': expected a Python string \
                 `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])`, \
                 its JSON form {{\"normal\": [[\"sep_conv_3x3\", 0], ...], ...}}, \
                 or a published name ({}, DARTS-)",
                NAMED.join(", ")
            )));
        };
        g.validate()?;
        Ok(g)
    }

    /// Checks that the genotype describes a buildable DARTS cell pair: two genes per node,
    /// every op a DARTS candidate other than `none`, every input an earlier state, and concat
    /// lists of distinct existing states.
    pub fn validate(&self) -> Result<()> {
        validate_cell("normal", &self.normal, &self.normal_concat)?;
        validate_cell("reduce", &self.reduce, &self.reduce_concat)
    }
}

impl fmt::Display for Genotype {
    /// Writes the upstream Python form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_python())
    }
}

impl FromStr for Genotype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Genotype> {
        Genotype::parse(s)
    }
}

/// A published genotype by name (case-insensitive): `DARTS_V1`, `DARTS_V2` (quark0/darts;
/// `DARTS` is V2 there too), `DARTS_MINUS` or `DARTS-` (the DARTS- paper's best CIFAR-10 cell).
pub fn named(name: &str) -> Option<Genotype> {
    let key = name.trim().to_ascii_uppercase().replace('-', "_");
    let (normal, reduce): (StaticGenes, StaticGenes) = match key.as_str() {
        "DARTS_V1" => (&DARTS_V1_NORMAL, &DARTS_V1_REDUCE),
        "DARTS_V2" | "DARTS" => (&DARTS_V2_NORMAL, &DARTS_V2_REDUCE),
        "DARTS_MINUS" | "DARTS_" => (&DARTS_MINUS_NORMAL, &DARTS_MINUS_REDUCE),
        _ => return None,
    };
    let own = |g: &[(&str, usize)]| g.iter().map(|&(op, j)| (op.to_string(), j)).collect();
    Some(Genotype {
        normal: own(normal),
        normal_concat: vec![2, 3, 4, 5],
        reduce: own(reduce),
        reduce_concat: vec![2, 3, 4, 5],
    })
}

/// A published cell's genes.
type StaticGenes = &'static [(&'static str, usize)];

// Published cells (data from quark0/darts cnn/genotypes.py and Meituan-AutoML/DARTS-
// src/eval/genotypes.py `cifar10_s0_0`, which is SPEC §6's cell).
const DARTS_V1_NORMAL: [(&str, usize); 8] = [
    ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 0),
    ("skip_connect", 0),
    ("sep_conv_3x3", 1),
    ("skip_connect", 0),
    ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 0),
    ("skip_connect", 2),
];
const DARTS_V1_REDUCE: [(&str, usize); 8] = [
    ("max_pool_3x3", 0),
    ("max_pool_3x3", 1),
    ("skip_connect", 2),
    ("max_pool_3x3", 0),
    ("max_pool_3x3", 0),
    ("skip_connect", 2),
    ("skip_connect", 2),
    ("avg_pool_3x3", 0),
];
const DARTS_V2_NORMAL: [(&str, usize); 8] = [
    ("sep_conv_3x3", 0),
    ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 0),
    ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 1),
    ("skip_connect", 0),
    ("skip_connect", 0),
    ("dil_conv_3x3", 2),
];
const DARTS_V2_REDUCE: [(&str, usize); 8] = [
    ("max_pool_3x3", 0),
    ("max_pool_3x3", 1),
    ("skip_connect", 2),
    ("max_pool_3x3", 1),
    ("max_pool_3x3", 0),
    ("skip_connect", 2),
    ("skip_connect", 2),
    ("max_pool_3x3", 1),
];
const DARTS_MINUS_NORMAL: [(&str, usize); 8] = [
    ("sep_conv_3x3", 0),
    ("sep_conv_5x5", 1),
    ("sep_conv_3x3", 1),
    ("dil_conv_3x3", 2),
    ("skip_connect", 1),
    ("sep_conv_3x3", 0),
    ("skip_connect", 1),
    ("sep_conv_3x3", 0),
];
const DARTS_MINUS_REDUCE: [(&str, usize); 8] = [
    ("sep_conv_3x3", 0),
    ("max_pool_3x3", 1),
    ("skip_connect", 2),
    ("max_pool_3x3", 0),
    ("skip_connect", 2),
    ("skip_connect", 3),
    ("skip_connect", 2),
    ("skip_connect", 3),
];

/// Derives one cell's genes; returns them with the node count.
fn derive_cell(cell: &str, w: &[Vec<f32>], ops: &[&str]) -> Result<(Vec<(String, usize)>, usize)> {
    let none = ops.iter().position(|&o| o == "none");
    if ops.len() == usize::from(none.is_some()) {
        return Err(Error::Invalid(format!(
            "cannot derive a genotype: the op list {ops:?} has no candidate other than 'none'"
        )));
    }
    // Edge count for n nodes is Σ_{i<n} (i + 2) = n(n + 3)/2; find the n that fits.
    let mut nodes = 0;
    while nodes * (nodes + 3) / 2 < w.len() {
        nodes += 1;
    }
    if nodes == 0 || nodes * (nodes + 3) / 2 != w.len() {
        return Err(Error::Invalid(format!(
            "{cell} weights have {} rows; a cell with n nodes has n(n+3)/2 edges \
             (2, 5, 9, 14, 20, …; 14 for the 4-node DARTS cell)",
            w.len()
        )));
    }
    for (e, row) in w.iter().enumerate() {
        if row.len() != ops.len() {
            return Err(Error::Invalid(format!(
                "{cell} weights row {e} has {} entries, expected {} (one per op: {})",
                row.len(),
                ops.len(),
                ops.join(", ")
            )));
        }
        if let Some(k) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "{cell} weights row {e} op '{}' is {} (the search diverged?)",
                ops[k], row[k]
            )));
        }
    }

    // Best non-none op of a row: strictly-greater scan, so ties go to the lower index.
    let best = |row: &[f32]| -> (usize, f32) {
        let mut best: Option<(usize, f32)> = None;
        for (k, &v) in row.iter().enumerate() {
            if Some(k) != none && best.is_none_or(|(_, b)| v > b) {
                best = Some((k, v));
            }
        }
        // At least one non-none op exists (checked above).
        best.unwrap_or((0, f32::NEG_INFINITY))
    };

    let mut genes = Vec::with_capacity(2 * nodes);
    let mut start = 0;
    for i in 0..nodes {
        let rows = &w[start..start + i + 2];
        let picks: Vec<(usize, f32)> = rows.iter().map(|r| best(r)).collect();
        let mut inputs: Vec<usize> = (0..rows.len()).collect();
        // Stable sort, descending strength: equal strengths keep the lower input first.
        // partial_cmp (not total_cmp) so -0.0 == 0.0 as in Python; values are finite here.
        inputs.sort_by(|&a, &b| {
            picks[b]
                .1
                .partial_cmp(&picks[a].1)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for &j in &inputs[..2] {
            genes.push((ops[picks[j].0].to_string(), j));
        }
        start += i + 2;
    }
    Ok((genes, nodes))
}

fn validate_cell(cell: &str, genes: &[(String, usize)], concat: &[usize]) -> Result<()> {
    if genes.is_empty() || !genes.len().is_multiple_of(2) {
        return Err(Error::Invalid(format!(
            "{cell} has {} (op, input) pairs; each node takes exactly two, so the count must be \
             even and positive (8 for the 4-node DARTS cell)",
            genes.len()
        )));
    }
    let nodes = genes.len() / 2;
    let known = || DARTS_OPS[1..].join(", ");
    for (p, (op, j)) in genes.iter().enumerate() {
        if op == "none" {
            return Err(Error::Invalid(format!(
                "{cell}[{p}] ('{op}', {j}): 'none' is a search candidate only and cannot appear \
                 in a discrete genotype; use one of {}",
                known()
            )));
        }
        if !DARTS_OPS.contains(&op.as_str()) {
            return Err(Error::Invalid(format!(
                "{cell}[{p}] ('{op}', {j}): unknown op '{op}'; known ops: {}",
                known()
            )));
        }
        let node = p / 2;
        if *j >= 2 + node {
            return Err(Error::Invalid(format!(
                "{cell}[{p}] ('{op}', {j}): node {node} can only take inputs 0..={} \
                 (0 and 1 are the cell inputs, 2 + i is node i)",
                1 + node
            )));
        }
    }
    let what = format!("{cell}_concat");
    if concat.is_empty() {
        return Err(Error::Invalid(format!(
            "{what} is empty; list the states concatenated into the cell output, usually {:?}",
            (2..2 + nodes).collect::<Vec<_>>()
        )));
    }
    for (p, &c) in concat.iter().enumerate() {
        if c >= 2 + nodes {
            return Err(Error::Invalid(format!(
                "{what}[{p}] = {c}: a {nodes}-node cell has states 0..={} only (usually {:?})",
                1 + nodes,
                (2..2 + nodes).collect::<Vec<_>>()
            )));
        }
        if concat[..p].contains(&c) {
            return Err(Error::Invalid(format!(
                "{what}[{p}] = {c}: state {c} is listed twice"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DARTS_V2_PY: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";

    /// A row with `v` at op `k`, and `rest` elsewhere.
    fn row(k: usize, v: f32, rest: f32) -> Vec<f32> {
        (0..8).map(|i| if i == k { v } else { rest }).collect()
    }

    fn uniform(edges: usize) -> Vec<Vec<f32>> {
        vec![vec![0.125; 8]; edges]
    }

    fn err_text(r: Result<Genotype>) -> String {
        match r {
            Ok(g) => panic!("expected an error, got {g:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn derive_picks_strongest_inputs_and_ops() {
        let mut w = uniform(14);
        // Node 0 (rows 0, 1): input 1 stronger than input 0.
        w[0] = row(4, 0.3, 0.1); // sep3 on input 0
        w[1] = row(5, 0.6, 0.05); // sep5 on input 1
                                  // Node 1 (rows 2..5): inputs 2 and 0 are strongest, 2 first.
        w[2] = row(6, 0.4, 0.05);
        w[3] = row(3, 0.2, 0.1);
        w[4] = row(7, 0.5, 0.05);
        let g = Genotype::derive(&w, &uniform(14), &DARTS_OPS).unwrap();
        assert_eq!(g.normal[0], ("sep_conv_5x5".to_string(), 1));
        assert_eq!(g.normal[1], ("sep_conv_3x3".to_string(), 0));
        assert_eq!(g.normal[2], ("dil_conv_5x5".to_string(), 2));
        assert_eq!(g.normal[3], ("dil_conv_3x3".to_string(), 0));
        assert_eq!(g.normal_concat, vec![2, 3, 4, 5]);
        assert_eq!(g.reduce_concat, vec![2, 3, 4, 5]);
        assert_eq!(g.normal.len(), 8);
    }

    #[test]
    fn derive_ties_go_to_lower_input_and_lower_op() {
        // Uniform weights: every input ties, every op ties → inputs 0, 1 and the first
        // non-none op (max_pool_3x3) everywhere.
        let g = Genotype::derive(&uniform(14), &uniform(14), &DARTS_OPS).unwrap();
        for (p, (op, j)) in g.normal.iter().enumerate() {
            assert_eq!(op, "max_pool_3x3");
            assert_eq!(*j, p % 2);
        }
        // Node 2 (rows 5..9): inputs 1 and 3 tie at the top; 1 comes first. Ops 4 and 6 tie in
        // row 8; 4 wins.
        let mut w = uniform(14);
        w[6] = row(5, 0.5, 0.0);
        w[8] = {
            let mut r = row(4, 0.5, 0.0);
            r[6] = 0.5;
            r
        };
        let g = Genotype::derive(&w, &uniform(14), &DARTS_OPS).unwrap();
        assert_eq!(g.normal[4], ("sep_conv_5x5".to_string(), 1));
        assert_eq!(g.normal[5], ("sep_conv_3x3".to_string(), 3));
    }

    #[test]
    fn derive_ignores_none() {
        let mut w = uniform(14);
        // Input 0's biggest weight is 'none', but its best real op (0.2) is weaker than
        // input 1's (0.3); without the exclusion input 0 would rank first.
        w[0] = vec![0.9, 0.01, 0.01, 0.01, 0.2, 0.01, 0.01, 0.01];
        w[1] = vec![0.1, 0.01, 0.01, 0.3, 0.01, 0.01, 0.01, 0.01];
        let g = Genotype::derive(&w, &uniform(14), &DARTS_OPS).unwrap();
        assert_eq!(g.normal[0], ("skip_connect".to_string(), 1));
        assert_eq!(g.normal[1], ("sep_conv_3x3".to_string(), 0));
        assert!(g.normal.iter().all(|(op, _)| op != "none"));
    }

    #[test]
    fn derive_without_none_excludes_nothing() {
        let ops = ["a", "b"];
        let w = vec![vec![0.9, 0.1], vec![0.2, 0.8]];
        let g = Genotype::derive(&w, &w, &ops).unwrap();
        assert_eq!(g.normal, vec![("a".to_string(), 0), ("b".to_string(), 1)]);
        assert_eq!(g.normal_concat, vec![2]);
    }

    #[test]
    fn derive_other_node_counts() {
        // 5 nodes: 2+3+4+5+6 = 20 edges.
        let g = Genotype::derive(&uniform(20), &uniform(20), &DARTS_OPS).unwrap();
        assert_eq!(g.normal.len(), 10);
        assert_eq!(g.normal_concat, vec![2, 3, 4, 5, 6]);
        assert_eq!(g.nodes(), 5);
    }

    #[test]
    fn derive_rejects_bad_shapes() {
        let e = err_text(Genotype::derive(&uniform(13), &uniform(14), &DARTS_OPS));
        assert!(e.contains("normal weights have 13 rows"), "{e}");
        let mut w = uniform(14);
        w[3].pop();
        let e = err_text(Genotype::derive(&uniform(14), &w, &DARTS_OPS));
        assert!(
            e.contains("reduce weights row 3 has 7 entries, expected 8"),
            "{e}"
        );
        w[3].push(f32::NAN);
        let e = err_text(Genotype::derive(&uniform(14), &w, &DARTS_OPS));
        assert!(e.contains("row 3 op 'dil_conv_5x5' is NaN"), "{e}");
        let e = err_text(Genotype::derive(&[], &[], &DARTS_OPS));
        assert!(e.contains("0 rows"), "{e}");
        let e = err_text(Genotype::derive(
            &vec![vec![1.0]; 2],
            &vec![vec![1.0]; 2],
            &["none"],
        ));
        assert!(e.contains("no candidate other than 'none'"), "{e}");
    }

    #[test]
    fn python_round_trip() {
        let g = named("DARTS_V2").unwrap();
        assert_eq!(g.to_python(), DARTS_V2_PY);
        assert_eq!(g.to_string(), DARTS_V2_PY);
        assert_eq!(Genotype::parse(DARTS_V2_PY).unwrap(), g);
        for name in NAMED {
            let g = named(name).unwrap();
            assert_eq!(Genotype::parse(&g.to_python()).unwrap(), g);
        }
    }

    #[test]
    fn parse_lenient_python_forms() {
        let g = named("DARTS_MINUS").unwrap();
        let s = "  Genotype(\n  normal = [\n    (\"sep_conv_3x3\", 0), ('sep_conv_5x5', 1),\n    ('sep_conv_3x3', 1), ('dil_conv_3x3', 2), ('skip_connect', 1),\n    ('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 0),\n  ],\n  normal_concat=range(2, 6),\n  reduce=[('sep_conv_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 3), ('skip_connect', 2), ('skip_connect', 3)], reduce_concat=range(2, 6),\n)\n";
        assert_eq!(Genotype::parse(s).unwrap(), g);
        // Fields in another order, tuple concat.
        let s = g
            .to_python()
            .replace("normal_concat=[2, 3, 4, 5], ", "")
            .replacen("Genotype(", "Genotype(normal_concat=(2, 3, 4, 5), ", 1);
        assert_eq!(Genotype::parse(&s).unwrap(), g);
    }

    #[test]
    fn parse_json_form() {
        let g = named("DARTS_V1").unwrap();
        let json = serde_json::to_string(&g).unwrap();
        assert!(
            json.starts_with("{\"normal\":[[\"sep_conv_3x3\",1],"),
            "{json}"
        );
        assert!(json.contains("\"normal_concat\":[2,3,4,5]"), "{json}");
        assert_eq!(Genotype::parse(&json).unwrap(), g);
        let e = err_text(Genotype::parse("{\"normal\": []}"));
        assert!(e.contains("invalid genotype JSON"), "{e}");
    }

    #[test]
    fn named_genotypes() {
        let v2 = named("darts_v2").unwrap();
        let normal: Vec<(&str, usize)> = v2.normal.iter().map(|(o, j)| (o.as_str(), *j)).collect();
        assert_eq!(normal, DARTS_V2_NORMAL);
        assert_eq!(named("DARTS"), Some(v2.clone()));
        assert_eq!(Genotype::parse("DARTS_V2").unwrap(), v2);
        let minus = named("DARTS-").unwrap();
        assert_eq!(named("darts_minus"), Some(minus.clone()));
        assert_eq!(Genotype::parse(" darts-minus ").unwrap(), minus);
        assert_eq!(minus.normal[3], ("dil_conv_3x3".to_string(), 2));
        assert_eq!(minus.reduce[1], ("max_pool_3x3".to_string(), 1));
        assert_ne!(named("DARTS_V1"), Some(v2));
        assert!(named("DARTS_V3").is_none());
        for name in NAMED {
            named(name).unwrap().validate().unwrap();
        }
        let e = err_text(Genotype::parse("DARTS_V3"));
        assert!(
            e.contains("'DARTS_V3'") && e.contains("DARTS_V1, DARTS_V2, DARTS_MINUS"),
            "{e}"
        );
    }

    /// Edits of DARTS_V2_PY, `from | to | error`: the first `from` replaced by `to` must fail
    /// to parse with an error containing `error`.
    const BAD_EDITS: &str = "
'dil_conv_3x3', 2 | 'dil_conv_3x3', 5 | normal[7] ('dil_conv_3x3', 5): node 3 can only take inputs 0..=4
('sep_conv_3x3', 1) | ('sep_conv_3x3', 2) | normal[1] ('sep_conv_3x3', 2): node 0 can only take inputs 0..=1
'skip_connect', 2 | 'sep_conv_7x7', 2 | reduce[2] ('sep_conv_7x7', 2): unknown op 'sep_conv_7x7'; known ops: max_pool_3x3
'max_pool_3x3', 0 | 'none', 0 | reduce[0] ('none', 0): 'none' is a search candidate only
, ('dil_conv_3x3', 2) |  | normal has 7 (op, input) pairs
normal_concat=[2, 3, 4, 5] | normal_concat=[2, 3, 4, 6] | normal_concat[3] = 6: a 4-node cell has states 0..=5 only
reduce_concat=[2, 3, 4, 5] | reduce_concat=[2, 3, 3] | reduce_concat[2] = 3: state 3 is listed twice
reduce_concat=[2, 3, 4, 5] | reduce_concat=[] | reduce_concat is empty
reduce=[ | reduce=[] | expected ',' or ')', found '('max_pool_3x3', 0)
normal_concat | normal_cat | unknown field 'normal_cat'
, reduce_concat=[2, 3, 4, 5] |  | field 'reduce_concat' is missing
4, 5]) | 4, 5] | expected ',' or ')', found end of input
4, 5]) | 4, 5]) extra | expected end of input after 'Genotype(...)', found 'extra'
'sep_conv_3x3', 0 | 'sep_conv_3x3', -1 | unexpected character '-'
'sep_conv_3x3', 0 | sep_conv_3x3, 0 | expected a quoted op name
('sep_conv_3x3', 0) | ('sep_conv_3x3', 0 | expected ')'
normal_concat=[2, 3, 4, 5] | normal_concat=rnge(2, 6) | expected a list like [2, 3, 4, 5] or range(2, 6)
[2, 3, 4, 5] | range(0, 99999999) | far longer than any cell
[2, 3, 4, 5] | [99999999999999999999999] | is too large
normal= | normal=[], normal= | field 'normal' given twice
";

    fn check_rejected(s: &str, want: &str) {
        let e = err_text(Genotype::parse(s));
        assert!(e.contains(want), "for {s}\n got: {e}\nwant: {want}");
    }

    #[test]
    fn parse_rejects_bad_edits() {
        for line in BAD_EDITS.lines().filter(|l| !l.is_empty()) {
            let &[from, to, want] = &line.split(" | ").collect::<Vec<_>>()[..] else {
                panic!("table line {line:?} is not 'from | to | error'");
            };
            assert!(DARTS_V2_PY.contains(from), "{from:?} is not in DARTS_V2_PY");
            check_rejected(&DARTS_V2_PY.replacen(from, to, 1), want);
        }
    }

    #[test]
    fn parse_rejects_bad_text() {
        let json = "{\"normal\": [[\"sep_conv_3x3\", 0]], \"normal_concat\": [2], \"reduce\": [[\"skip_connect\", 0]], \"reduce_concat\": [2], \"x\": 1}";
        let cases = [
            (
                "Genotype(normal=[('sep_conv_3x3, 0)])",
                "unterminated string",
            ),
            (
                "Genotype(\n  normal=[('sep_conv_3x3', x)],",
                "at line 2, column 28",
            ),
            ("Genotype", "expected '('"),
            ("", "cannot read genotype ''"),
            (json, "unknown field `x`"),
        ];
        for (s, want) in cases {
            check_rejected(s, want);
        }
    }

    #[test]
    fn range_forms() {
        let g = Genotype::parse(&DARTS_V2_PY.replace("[2, 3, 4, 5]", "range(2, 6)")).unwrap();
        assert_eq!(g, named("DARTS_V2").unwrap());
        let s = DARTS_V2_PY.replace("[2, 3, 4, 5]", "range(6)");
        let g = Genotype::parse(&s).unwrap();
        assert_eq!(g.normal_concat, vec![0, 1, 2, 3, 4, 5]);
    }
}
