//! Deriving the discrete cells from softmax(α) (SPEC §6, §10), with each edge's own candidate
//! list, and checking a genotype against a space's lists.

use super::Genotype;
use crate::error::{Error, Result};
use crate::nn::darts_ops::DartsSpace;

impl Genotype {
    /// Derives the genotype from the softmax(α) rows of the normal and reduction cells
    /// (edges in node order, `Σ_i (i + 2)` rows of `ops.len()` weights; 14 × 8 for 4 nodes),
    /// every edge with the candidates `ops`.
    pub fn derive(normal: &[Vec<f32>], reduce: &[Vec<f32>], ops: &[&str]) -> Result<Genotype> {
        Self::derive_per_edge(
            normal,
            reduce,
            &vec![ops; normal.len()],
            &vec![ops; reduce.len()],
        )
    }

    /// [`Genotype::derive`] with each edge's own candidates: row e of `normal` weighs the ops
    /// `normal_ops[e]` (RobustDARTS' spaces).
    ///
    /// Same rule as the reference code: per node, the two inputs with the largest non-`none`
    /// weight (ties → lower input), each with its best non-`none` op (ties → lower op index);
    /// an edge without `none` excludes nothing. The name written is the edge's own candidate.
    pub fn derive_per_edge(
        normal: &[Vec<f32>],
        reduce: &[Vec<f32>],
        normal_ops: &[&[&str]],
        reduce_ops: &[&[&str]],
    ) -> Result<Genotype> {
        let (normal, n_nodes) = derive_cell("normal", normal, normal_ops)?;
        let (reduce, r_nodes) = derive_cell("reduce", reduce, reduce_ops)?;
        Ok(Genotype {
            normal,
            normal_concat: (2..2 + n_nodes).collect(),
            reduce,
            reduce_concat: (2..2 + r_nodes).collect(),
        })
    }

    /// Checks that every gene's op is a candidate of its edge in `space` (the edge of node
    /// `p / 2` from input j), naming the gene and the edge's list when not.
    pub fn check_space(&self, space: DartsSpace) -> Result<()> {
        for (cell, genes, reduction) in [
            ("normal", &self.normal, false),
            ("reduce", &self.reduce, true),
        ] {
            for (p, (op, j)) in genes.iter().enumerate() {
                let node = p / 2;
                // Edges of earlier nodes come first: node i has inputs 0..i+2.
                let edge = (0..node).map(|i| i + 2).sum::<usize>() + j;
                let ops = space.edge_ops(reduction, edge)?;
                if !ops.contains(&op.as_str()) {
                    return Err(Error::Invalid(format!(
                        "{cell}[{p}] ('{op}', {j}): edge {edge} of the {} space's {} cell has \
                         the candidates {} only",
                        space.label(),
                        if reduction { "reduction" } else { "normal" },
                        ops.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Derives one cell's genes from its rows, edge e weighing `ops[e]`; returns them with the
/// node count.
fn derive_cell(
    cell: &str,
    w: &[Vec<f32>],
    ops: &[&[&str]],
) -> Result<(Vec<(String, usize)>, usize)> {
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
    if ops.len() != w.len() {
        return Err(Error::Invalid(format!(
            "{cell} weights have {} rows but {} edges have candidate lists",
            w.len(),
            ops.len()
        )));
    }
    for (e, (row, ops)) in w.iter().zip(ops).enumerate() {
        if ops.len() == usize::from(ops.contains(&"none")) {
            return Err(Error::Invalid(format!(
                "cannot derive a genotype: the op list {ops:?} has no candidate other than 'none'"
            )));
        }
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

    // Best non-none op of edge e: strictly-greater scan, so ties go to the lower index.
    let best = |e: usize| -> (usize, f32) {
        let none = ops[e].iter().position(|&o| o == "none");
        let mut best: Option<(usize, f32)> = None;
        for (k, &v) in w[e].iter().enumerate() {
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
        let picks: Vec<(usize, f32)> = (start..start + i + 2).map(best).collect();
        let mut inputs: Vec<usize> = (0..i + 2).collect();
        // Stable sort, descending strength: equal strengths keep the lower input first.
        // partial_cmp (not total_cmp) so -0.0 == 0.0 as in Python; values are finite here.
        inputs.sort_by(|&a, &b| {
            picks[b]
                .1
                .partial_cmp(&picks[a].1)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for &j in &inputs[..2] {
            genes.push((ops[start + j][picks[j].0].to_string(), j));
        }
        start += i + 2;
    }
    Ok((genes, nodes))
}

#[cfg(test)]
mod tests {
    use super::super::DARTS_OPS;
    use super::*;

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

    /// Two-column rows: `first` on column 0.
    fn pairs(first: &[f32]) -> Vec<Vec<f32>> {
        first.iter().map(|&a| vec![a, 1.0 - a]).collect()
    }

    #[test]
    fn s1_writes_each_edges_own_candidate() {
        let space = DartsSpace::S1;
        let (normal, reduce) = (
            space.cell_ops(false, 14).unwrap(),
            space.cell_ops(true, 14).unwrap(),
        );
        // Node 0: edge 1 (input 1) is strongest with its column 1, dil_conv_5x5; edge 0's
        // column 0 is skip_connect. Node 1: edges 2..4, edge 4 column 0 (skip) then edge 3
        // column 1 (sep_conv_3x3).
        let mut a = vec![0.5; 14];
        a[0] = 0.7;
        a[1] = 0.1;
        a[3] = 0.2;
        a[4] = 0.9;
        // Reduction edge 5 (node 2, input 0): [max, avg], avg strongest.
        let mut r = vec![0.5; 14];
        r[5] = 0.05;
        let g = Genotype::derive_per_edge(&pairs(&a), &pairs(&r), &normal, &reduce).unwrap();
        assert_eq!(g.normal[0], ("dil_conv_5x5".into(), 1));
        assert_eq!(g.normal[1], ("skip_connect".into(), 0));
        assert_eq!(g.normal[2], ("skip_connect".into(), 2));
        assert_eq!(g.normal[3], ("sep_conv_3x3".into(), 1));
        assert_eq!(g.reduce[4], ("avg_pool_3x3".into(), 0));
        g.check_space(space).unwrap();
        // The same genes read against S2 name the first gene not in its lists.
        let e = g.check_space(DartsSpace::S2).unwrap_err().to_string();
        assert!(
            e.contains("normal[0] ('dil_conv_5x5', 1): edge 1 of the RobustDARTS S2 space's normal cell has the candidates skip_connect, sep_conv_3x3 only"),
            "{e}"
        );
    }

    #[test]
    fn s3_excludes_none_and_s4_keeps_noise() {
        let s3 = DartsSpace::S3.cell_ops(false, 14).unwrap();
        // none strongest everywhere; among the rest, sep_conv on even edges, skip on odd.
        let w: Vec<Vec<f32>> = (0..14)
            .map(|e| {
                if e % 2 == 0 {
                    vec![0.6, 0.1, 0.3]
                } else {
                    vec![0.6, 0.3, 0.1]
                }
            })
            .collect();
        let g = Genotype::derive_per_edge(&w, &w, &s3, &s3).unwrap();
        assert!(g.normal.iter().all(|(op, _)| op != "none"));
        assert_eq!(g.normal[0], ("sep_conv_3x3".into(), 0));
        assert_eq!(g.normal[1], ("skip_connect".into(), 1));
        // S4 has no none: noise is a candidate like any other and may be written.
        let s4 = DartsSpace::S4.cell_ops(false, 14).unwrap();
        let g =
            Genotype::derive_per_edge(&pairs(&[0.9; 14]), &pairs(&[0.2; 14]), &s4, &s4).unwrap();
        assert!(g.normal.iter().all(|(op, _)| op == "noise"));
        assert!(g.reduce.iter().all(|(op, _)| op == "sep_conv_3x3"));
        g.check_space(DartsSpace::S4).unwrap();
        assert!(g.check_space(DartsSpace::Darts).is_err());
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
        let two: Vec<&[&str]> = vec![&DARTS_OPS; 2];
        let e = err_text(Genotype::derive_per_edge(
            &uniform(14),
            &uniform(14),
            &two,
            &two,
        ));
        assert!(
            e.contains("14 rows but 2 edges have candidate lists"),
            "{e}"
        );
    }
}
