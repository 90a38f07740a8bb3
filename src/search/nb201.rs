//! NAS-Bench-201 space (SPEC §7): the discrete cell (one op per edge), its arch string, and the
//! benchmark's table of 200-epoch accuracies for all 15,625 cells, built into the binary.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

/// Candidate operations of the NAS-Bench-201 space, in α column order (from its table).
pub use crate::nn::darts_ops::NB201_OPS;

/// The six edges as (to, from) node pairs, in α row order: 1←0, 2←0, 2←1, 3←0, 3←1, 3←2.
pub const NB201_EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

/// A NAS-Bench-201 cell: `ops[e]` indexes [`NB201_OPS`] for edge `e` of [`NB201_EDGES`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Nb201Arch {
    pub ops: [usize; 6],
}

impl Nb201Arch {
    /// Checks every op index (useful for values built by hand or deserialized).
    pub fn new(ops: [usize; 6]) -> Result<Nb201Arch> {
        if let Some(e) = ops.iter().position(|&k| k >= NB201_OPS.len()) {
            return Err(Error::Invalid(format!(
                "NAS-Bench-201 edge {e} has op index {}; valid are 0..=4 ({})",
                ops[e],
                NB201_OPS.join(", ")
            )));
        }
        Ok(Nb201Arch { ops })
    }

    /// Derives the cell from softmax(α) (6 rows × 5 ops): per edge the argmax over all ops,
    /// `none` included (SPEC §7), ties → lower op index.
    pub fn derive(weights: &[Vec<f32>]) -> Result<Nb201Arch> {
        if weights.len() != 6 {
            return Err(Error::Invalid(format!(
                "NAS-Bench-201 weights have {} rows, expected 6 (one per edge)",
                weights.len()
            )));
        }
        let mut ops = [0; 6];
        for (e, row) in weights.iter().enumerate() {
            if row.len() != NB201_OPS.len() {
                return Err(Error::Invalid(format!(
                    "NAS-Bench-201 weights row {e} has {} entries, expected 5 (one per op: {})",
                    row.len(),
                    NB201_OPS.join(", ")
                )));
            }
            if let Some(k) = row.iter().position(|v| !v.is_finite()) {
                return Err(Error::Invalid(format!(
                    "NAS-Bench-201 weights row {e} op '{}' is {} (the search diverged?)",
                    NB201_OPS[k], row[k]
                )));
            }
            // Strictly-greater scan: ties keep the lower index.
            for k in 1..row.len() {
                if row[k] > row[ops[e]] {
                    ops[e] = k;
                }
            }
        }
        Ok(Nb201Arch { ops })
    }

    /// Op name of each edge (`"?"` for an out-of-range index, which [`Nb201Arch::new`] and
    /// [`Nb201Arch::parse`] never produce).
    pub fn op_names(&self) -> [&'static str; 6] {
        self.ops.map(|k| NB201_OPS.get(k).copied().unwrap_or("?"))
    }

    /// The benchmark's arch string, `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
    pub fn arch_string(&self) -> String {
        let n = self.op_names();
        format!(
            "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|",
            n[0], n[1], n[2], n[3], n[4], n[5]
        )
    }

    /// Reads an arch string. Within a node the `op~j` entries may come in any order, but each
    /// node `i` (1..=3) must name each input `0..i` exactly once.
    pub fn parse(s: &str) -> Result<Nb201Arch> {
        let t = s.trim();
        let bad = |msg: String| {
            let shown: String = t.chars().take(100).collect();
            Error::Invalid(format!(
                "invalid NAS-Bench-201 arch string '{shown}': {msg} \
                 (expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2| with ops {})",
                NB201_OPS.join(", ")
            ))
        };
        let nodes: Vec<&str> = t.split('+').collect();
        if nodes.len() != 3 {
            return Err(bad(format!(
                "{} node groups separated by '+', expected 3",
                nodes.len()
            )));
        }
        let mut ops = [usize::MAX; 6];
        for (n, group) in nodes.iter().enumerate() {
            let node = n + 1;
            let inner = group
                .strip_prefix('|')
                .and_then(|g| g.strip_suffix('|'))
                .ok_or_else(|| bad(format!("node {node} '{group}' must start and end with '|'")))?;
            let entries: Vec<&str> = inner.split('|').collect();
            if entries.len() != node {
                return Err(bad(format!(
                    "node {node} '{group}' has {} entries, expected {node} (one per input 0..{node})",
                    entries.len()
                )));
            }
            // Edges into `node` start at row node(node-1)/2.
            let first = node * (node - 1) / 2;
            for entry in entries {
                let (op, j) = entry
                    .split_once('~')
                    .ok_or_else(|| bad(format!("entry '{entry}' is not op~input")))?;
                let k = NB201_OPS
                    .iter()
                    .position(|&o| o == op)
                    .ok_or_else(|| bad(format!("unknown op '{op}' in '{entry}'")))?;
                let j: usize = j.parse().ok().filter(|&j| j < node).ok_or_else(|| {
                    bad(format!(
                        "input '{j}' in '{entry}' is not a node before {node} (0..={})",
                        node - 1
                    ))
                })?;
                if ops[first + j] != usize::MAX {
                    return Err(bad(format!("node {node} names input {j} twice")));
                }
                ops[first + j] = k;
            }
        }
        Ok(Nb201Arch { ops })
    }
}

impl fmt::Display for Nb201Arch {
    /// Writes the arch string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arch_string())
    }
}

impl FromStr for Nb201Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Nb201Arch> {
        Nb201Arch::parse(s)
    }
}

/// A column of accuracies (%) in the benchmark table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nb201Column {
    Cifar10Valid,
    Cifar10Test,
    Cifar100Valid,
    Cifar100Test,
    Imagenet16Valid,
    Imagenet16Test,
}

impl Nb201Column {
    /// All columns, in CSV order.
    pub const ALL: [Nb201Column; 6] = [
        Nb201Column::Cifar10Valid,
        Nb201Column::Cifar10Test,
        Nb201Column::Cifar100Valid,
        Nb201Column::Cifar100Test,
        Nb201Column::Imagenet16Valid,
        Nb201Column::Imagenet16Test,
    ];

    /// The CSV header name, e.g. `cifar10_valid`.
    pub fn name(self) -> &'static str {
        match self {
            Nb201Column::Cifar10Valid => "cifar10_valid",
            Nb201Column::Cifar10Test => "cifar10_test",
            Nb201Column::Cifar100Valid => "cifar100_valid",
            Nb201Column::Cifar100Test => "cifar100_test",
            Nb201Column::Imagenet16Valid => "imagenet16_valid",
            Nb201Column::Imagenet16Test => "imagenet16_test",
        }
    }
}

impl fmt::Display for Nb201Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Nb201Column {
    type Err = Error;
    fn from_str(s: &str) -> Result<Nb201Column> {
        Nb201Column::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Nb201Column::ALL.iter().map(|c| c.name()).collect();
                Error::Invalid(format!(
                    "unknown NAS-Bench-201 column '{s}'; use one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// One cell's row: its benchmark index and 200-epoch accuracies in percent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nb201Entry {
    pub index: usize,
    pub cifar10_valid: f64,
    pub cifar10_test: f64,
    pub cifar100_valid: f64,
    pub cifar100_test: f64,
    pub imagenet16_valid: f64,
    pub imagenet16_test: f64,
}

impl Nb201Entry {
    /// The accuracy in `column`.
    pub fn get(&self, column: Nb201Column) -> f64 {
        match column {
            Nb201Column::Cifar10Valid => self.cifar10_valid,
            Nb201Column::Cifar10Test => self.cifar10_test,
            Nb201Column::Cifar100Valid => self.cifar100_valid,
            Nb201Column::Cifar100Test => self.cifar100_test,
            Nb201Column::Imagenet16Valid => self.imagenet16_valid,
            Nb201Column::Imagenet16Test => self.imagenet16_test,
        }
    }
}

/// The benchmark table: every cell with its accuracies, in file order, indexed by arch.
#[derive(Clone, Debug)]
pub struct Nb201Table {
    rows: Vec<(Nb201Arch, Nb201Entry)>,
    by_arch: HashMap<Nb201Arch, usize>,
}

const BUILTIN_CSV: &str = include_str!("../../assets/nb201_acc_200ep.csv");
const BUILTIN_NAME: &str = "assets/nb201_acc_200ep.csv (built in)";
const COLUMNS: [&str; 8] = [
    "index",
    "arch",
    "cifar10_valid",
    "cifar10_test",
    "cifar100_valid",
    "cifar100_test",
    "imagenet16_valid",
    "imagenet16_test",
];

impl Nb201Table {
    /// The table built into the binary (assets/nb201_acc_200ep.csv), parsed on first use.
    pub fn builtin() -> &'static Nb201Table {
        static TABLE: OnceLock<Nb201Table> = OnceLock::new();
        TABLE.get_or_init(|| {
            // The embedded file is checked by the tests, so failing here is a build defect.
            Nb201Table::from_csv_str(BUILTIN_CSV, Path::new(BUILTIN_NAME))
                .unwrap_or_else(|e| panic!("built-in NAS-Bench-201 table is corrupt: {e}"))
        })
    }

    /// Loads a table from a CSV file with the columns
    /// `index,arch,cifar10_valid,cifar10_test,cifar100_valid,cifar100_test,imagenet16_valid,imagenet16_test`
    /// (any order; extra columns ignored).
    pub fn from_csv(path: impl AsRef<Path>) -> Result<Nb201Table> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::File {
            path: path.to_path_buf(),
            msg: format!("cannot read NAS-Bench-201 table: {e}"),
        })?;
        Nb201Table::from_csv_str(&text, path)
    }

    /// Parses CSV text; `path` only names the source in errors.
    pub fn from_csv_str(text: &str, path: &Path) -> Result<Nb201Table> {
        let err = |line: usize, msg: String| Error::File {
            path: PathBuf::from(path),
            msg: format!("line {line}: {msg}"),
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        let (_, header) = lines
            .next()
            .ok_or_else(|| err(1, "empty file; expected a CSV header".into()))?;
        let names: Vec<&str> = header.split(',').map(str::trim).collect();
        let mut col = [0usize; 8];
        for (c, want) in COLUMNS.iter().enumerate() {
            col[c] = names.iter().position(|n| n == want).ok_or_else(|| {
                err(
                    1,
                    format!("header has no column '{want}'; need {}", COLUMNS.join(",")),
                )
            })?;
        }
        let width = names.len();
        let mut rows = Vec::with_capacity(16_000);
        let mut by_arch = HashMap::with_capacity(16_000);
        let mut line_of = Vec::with_capacity(16_000);
        for (n, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != width {
                return Err(err(
                    n,
                    format!("{} fields, the header has {width}", fields.len()),
                ));
            }
            let index = fields[col[0]].trim().parse::<usize>().map_err(|_| {
                err(
                    n,
                    format!("index '{}' is not a non-negative integer", fields[col[0]]),
                )
            })?;
            let arch = Nb201Arch::parse(fields[col[1]]).map_err(|e| err(n, e.to_string()))?;
            let mut acc = [0f64; 6];
            for (a, &c) in acc.iter_mut().zip(&col[2..]) {
                *a = fields[c]
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        err(n, format!("{} '{}' is not a number", names[c], fields[c]))
                    })?;
            }
            if let Some(&prev) = by_arch.get(&arch) {
                return Err(err(
                    n,
                    format!("arch {arch} already appears on line {}", line_of[prev]),
                ));
            }
            by_arch.insert(arch.clone(), rows.len());
            line_of.push(n);
            rows.push((
                arch,
                Nb201Entry {
                    index,
                    cifar10_valid: acc[0],
                    cifar10_test: acc[1],
                    cifar100_valid: acc[2],
                    cifar100_test: acc[3],
                    imagenet16_valid: acc[4],
                    imagenet16_test: acc[5],
                },
            ));
        }
        Ok(Nb201Table { rows, by_arch })
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no cells.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row of `arch`, if the table has it (the built-in table has every cell).
    pub fn lookup(&self, arch: &Nb201Arch) -> Option<&Nb201Entry> {
        self.by_arch.get(arch).map(|&i| &self.rows[i].1)
    }

    /// All cells in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&Nb201Arch, &Nb201Entry)> {
        self.rows.iter().map(|(a, e)| (a, e))
    }

    /// The cell with the highest accuracy in `column` (ties → earlier in the file); `None`
    /// for an empty table.
    pub fn best_by(&self, column: Nb201Column) -> Option<(&Nb201Arch, &Nb201Entry)> {
        let mut best: Option<&(Nb201Arch, Nb201Entry)> = None;
        for r in &self.rows {
            if best.is_none_or(|b| r.1.get(column) > b.1.get(column)) {
                best = Some(r);
            }
        }
        best.map(|(a, e)| (a, e))
    }

    /// 1-based rank of `arch` by `column` (1 + the number of cells strictly better), so a
    /// search result can be reported as "rank 12 of 15,625".
    pub fn rank(&self, arch: &Nb201Arch, column: Nb201Column) -> Option<usize> {
        let v = self.lookup(arch)?.get(column);
        Some(1 + self.rows.iter().filter(|(_, e)| e.get(column) > v).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEST: &str =
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|";
    const ALL_SKIP: &str =
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|";

    fn r2(v: f64) -> f64 {
        (v * 100.0).round() / 100.0
    }

    fn err_text<T: fmt::Debug>(r: Result<T>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn arch_string_round_trip() {
        let s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
        let a = Nb201Arch::parse(s).unwrap();
        assert_eq!(a.ops, [3, 3, 4, 1, 3, 1]);
        assert_eq!(a.arch_string(), s);
        assert_eq!(a.to_string(), s);
        assert_eq!(s.parse::<Nb201Arch>().unwrap(), a);
        // Entries within a node in another order mean the same cell.
        let shuffled = "|nor_conv_3x3~0|+|avg_pool_3x3~1|nor_conv_3x3~0|+|skip_connect~2|skip_connect~0|nor_conv_3x3~1|";
        assert_eq!(Nb201Arch::parse(shuffled).unwrap(), a);
        assert_eq!(
            Nb201Arch::new([0, 1, 2, 3, 4, 0]).unwrap().op_names()[4],
            "avg_pool_3x3"
        );
        assert!(err_text(Nb201Arch::new([0, 1, 2, 3, 5, 0])).contains("edge 4 has op index 5"));
    }

    #[test]
    fn derive_argmax_includes_none_and_breaks_ties_low() {
        let w = vec![
            vec![0.5, 0.1, 0.1, 0.2, 0.1],   // none wins
            vec![0.1, 0.3, 0.3, 0.2, 0.1],   // tie 1/2 → 1
            vec![0.2, 0.2, 0.2, 0.2, 0.2],   // all tie → 0
            vec![0.1, 0.1, 0.1, 0.1, 0.6],   // avg_pool
            vec![0.1, 0.1, 0.1, 0.35, 0.35], // tie 3/4 → 3
            vec![0.0, 0.0, 0.9, 0.05, 0.05], // 1x1
        ];
        let a = Nb201Arch::derive(&w).unwrap();
        assert_eq!(a.ops, [0, 1, 0, 4, 3, 2]);
        assert_eq!(
            a.arch_string(),
            "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
        );
    }

    #[test]
    fn derive_rejects_bad_shapes() {
        let e = err_text(Nb201Arch::derive(&vec![vec![0.2; 5]; 5]));
        assert!(e.contains("5 rows, expected 6"), "{e}");
        let mut w = vec![vec![0.2; 5]; 6];
        w[2].push(0.0);
        let e = err_text(Nb201Arch::derive(&w));
        assert!(e.contains("row 2 has 6 entries, expected 5"), "{e}");
        w[2].pop();
        w[4][1] = f32::INFINITY;
        let e = err_text(Nb201Arch::derive(&w));
        assert!(e.contains("row 4 op 'skip_connect' is inf"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let cases = [
            ("|skip_connect~0|+|skip_connect~0|skip_connect~1|", "2 node groups"),
            ("skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|", "node 1 'skip_connect~0|' must start and end with '|'"),
            ("|skip_connect~0|+|skip_connect~0|+|skip_connect~0|skip_connect~1|skip_connect~2|", "node 2 '|skip_connect~0|' has 1 entries, expected 2"),
            ("|conv~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|", "unknown op 'conv' in 'conv~0'"),
            ("|skip_connect~1|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|", "input '1' in 'skip_connect~1' is not a node before 1"),
            ("|skip_connect~0|+|skip_connect~0|skip_connect~x|+|skip_connect~0|skip_connect~1|skip_connect~2|", "input 'x'"),
            ("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~0|skip_connect~2|", "node 3 names input 0 twice"),
            ("|skip_connect0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|", "entry 'skip_connect0' is not op~input"),
            ("", "1 node groups"),
        ];
        for (s, want) in cases {
            let e = err_text(Nb201Arch::parse(s));
            assert!(e.contains(want), "for {s}\n got: {e}\nwant: {want}");
            assert!(e.contains("expected |op~0|+|op~0|op~1|+"), "{e}");
        }
    }

    #[test]
    fn builtin_table() {
        let t = Nb201Table::builtin();
        assert_eq!(t.len(), 15_625);
        assert!(!t.is_empty());
        // Every possible cell is present exactly once (5^6 = 15,625 and the map is unique).
        let mut seen = std::collections::HashSet::new();
        for (a, e) in t.iter() {
            assert!(seen.insert(a.clone()));
            assert_eq!(t.lookup(a), Some(e));
        }
        let mut indices: Vec<usize> = t.iter().map(|(_, e)| e.index).collect();
        indices.sort_unstable();
        assert!(indices.iter().enumerate().all(|(i, &x)| i == x));

        let best = Nb201Arch::parse(BEST).unwrap();
        let e = t.lookup(&best).unwrap();
        assert_eq!((r2(e.cifar10_valid), r2(e.cifar10_test)), (91.61, 94.37));
        assert_eq!(e.index, 6111);
        let (a, top) = t.best_by(Nb201Column::Cifar10Valid).unwrap();
        assert_eq!(a, &best);
        assert_eq!(top, e);
        // Two cells share the best C10 test accuracy; the earlier row wins the tie.
        let (a, _) = t.best_by(Nb201Column::Cifar10Test).unwrap();
        assert_eq!(a, &best);
        assert_eq!(t.rank(&best, Nb201Column::Cifar10Valid), Some(1));

        let skip = Nb201Arch::parse(ALL_SKIP).unwrap();
        let e = t.lookup(&skip).unwrap();
        assert_eq!((r2(e.cifar10_valid), r2(e.cifar10_test)), (39.77, 54.30));
        assert!(t.rank(&skip, Nb201Column::Cifar10Test).unwrap() > 10_000);
        assert_eq!(e.get(Nb201Column::Cifar10Test), e.cifar10_test);
    }

    #[test]
    fn builtin_parse_is_fast() {
        let t0 = std::time::Instant::now();
        let t = Nb201Table::from_csv_str(BUILTIN_CSV, Path::new(BUILTIN_NAME)).unwrap();
        let dt = t0.elapsed();
        assert_eq!(t.len(), 15_625);
        // Generous bound for unoptimised test builds; release takes a few ms.
        assert!(dt.as_millis() < 2000, "parsing took {dt:?}");
    }

    #[test]
    fn columns() {
        for c in Nb201Column::ALL {
            assert_eq!(c.name().parse::<Nb201Column>().unwrap(), c);
        }
        let e = err_text("cifar10".parse::<Nb201Column>());
        assert!(e.contains("unknown NAS-Bench-201 column 'cifar10'"), "{e}");
    }

    #[test]
    fn csv_errors_name_file_and_line() {
        let p = Path::new("t.csv");
        let header = "index,arch,cifar10_valid,cifar10_test,cifar100_valid,cifar100_test,imagenet16_valid,imagenet16_test";
        let row = |i: usize, a: &str, v: &str| format!("{i},{a},{v},1,2,3,4,5");
        let check = |text: String, want: &str| {
            let e = err_text(Nb201Table::from_csv_str(&text, p));
            assert!(e.starts_with("t.csv: line"), "{e}");
            assert!(e.contains(want), "got: {e}\nwant: {want}");
        };
        check(String::new(), "line 1: empty file");
        check(
            header.replace(",cifar100_test", ""),
            "line 1: header has no column 'cifar100_test'",
        );
        check(
            format!("{header}\n{}", row(0, ALL_SKIP, "x")),
            "line 2: cifar10_valid 'x' is not a number",
        );
        check(
            format!("{header}\n{}\n1,{ALL_SKIP},1", row(0, BEST, "1")),
            "line 3: 3 fields, the header has 8",
        );
        check(
            format!("{header}\n{}\n{}", row(0, BEST, "1"), row(1, BEST, "2")),
            &format!("line 3: arch {BEST} already appears on line 2"),
        );
        check(
            format!("{header}\n{}", row(0, "|x~0|", "1")),
            "line 2: invalid NAS-Bench-201 arch string '|x~0|'",
        );
        check(
            format!("{header}\n-1,{ALL_SKIP},1,1,2,3,4,5"),
            "line 2: index '-1'",
        );

        // CRLF, blank lines, reordered and extra columns are fine.
        let text = format!(
            "arch,extra,index,cifar10_test,cifar10_valid,cifar100_valid,cifar100_test,imagenet16_valid,imagenet16_test\r\n\r\n{ALL_SKIP},z,7,54.3,39.77,1,2,3,4\r\n"
        );
        let t = Nb201Table::from_csv_str(&text, p).unwrap();
        let e = t.lookup(&Nb201Arch::parse(ALL_SKIP).unwrap()).unwrap();
        assert_eq!(
            (e.index, e.cifar10_valid, e.cifar10_test, e.imagenet16_test),
            (7, 39.77, 54.3, 4.0)
        );
        assert!(t.lookup(&Nb201Arch::parse(BEST).unwrap()).is_none());

        let dir = std::env::temp_dir().join(format!("nb201-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("table.csv");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(Nb201Table::from_csv(&path).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        let e = err_text(Nb201Table::from_csv(dir.join("missing.csv")));
        assert!(
            e.contains("missing.csv: cannot read NAS-Bench-201 table"),
            "{e}"
        );
        assert!(Nb201Table::from_csv_str(header, p)
            .unwrap()
            .best_by(Nb201Column::Cifar10Test)
            .is_none());
    }
}
