//! DARTS-space genotypes (SPEC §6): deriving the discrete cell from softmax(α), writing it in
//! the upstream Python form (so the PyTorch repositories can retrain it), and reading it back
//! from that form, from JSON, or by the name of a published cell.

mod derive;
mod pyliteral;
mod python;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::nn::darts_ops::DARTS_FAMILY_OPS;
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

    /// Checks that the genotype describes a DARTS cell pair: two genes per node, every op a
    /// candidate of a DARTS-cell space other than `none` (RobustDARTS S4's `noise` included),
    /// every input an earlier state, and concat lists of distinct existing states.
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

fn validate_cell(cell: &str, genes: &[(String, usize)], concat: &[usize]) -> Result<()> {
    if genes.is_empty() || !genes.len().is_multiple_of(2) {
        return Err(Error::Invalid(format!(
            "{cell} has {} (op, input) pairs; each node takes exactly two, so the count must be \
             even and positive (8 for the 4-node DARTS cell)",
            genes.len()
        )));
    }
    let nodes = genes.len() / 2;
    let known = || DARTS_FAMILY_OPS[1..].join(", ");
    for (p, (op, j)) in genes.iter().enumerate() {
        if op == "none" {
            return Err(Error::Invalid(format!(
                "{cell}[{p}] ('{op}', {j}): 'none' is a search candidate only and cannot appear \
                 in a discrete genotype; use one of {}",
                known()
            )));
        }
        if !DARTS_FAMILY_OPS.contains(&op.as_str()) {
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

    fn err_text(r: Result<Genotype>) -> String {
        match r {
            Ok(g) => panic!("expected an error, got {g:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn noise_parses_and_writes_back() {
        let s = DARTS_V2_PY.replacen("'dil_conv_3x3', 2", "'noise', 2", 1);
        let g = Genotype::parse(&s).unwrap();
        assert_eq!(g.to_python(), s);
        assert_eq!(g.normal[7].0, "noise");
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
