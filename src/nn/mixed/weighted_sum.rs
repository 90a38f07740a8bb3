//! The mixed edge's weighted sum Σ_k table_k[idx_k]·y_k over its candidates' outputs (and
//! β·aux), forward and backward: each y_k's gradient is left lazy (gy scaled by its weight),
//! each table's is the dot products <gy, y_k>. Kernels: `shaders/mixed.wgsl`.

use crate::autodiff::ops::elementwise::weighted_sum_into;
use crate::autodiff::ops::reduce;
use crate::autodiff::{FusedNode, GradTerm, Op, Saved, Tape, Tensor, TensorKey};
use crate::error::{Error, Result};
use crate::gpu::Work;
use crate::gpu::{KernelParams, MixedParams};

pub(super) struct WeightedSumNode {
    /// (y, its weight table, index in the table).
    terms: Vec<(Saved, Saved, usize)>,
}

/// See [`MixedSums::weighted_sum`](super::MixedSums::weighted_sum).
pub(super) fn weighted_sum(
    tape: &mut Tape,
    ys: &[&Tensor],
    w: &Tensor,
    idx: &[usize],
) -> Result<Tensor> {
    if idx.len() != ys.len() {
        return Err(Error::shape(
            "weighted_sum",
            format!("{} terms with {} weight indices", ys.len(), idx.len()),
        ));
    }
    let terms: Vec<(&Tensor, &Tensor, usize)> =
        ys.iter().zip(idx).map(|(y, &i)| (*y, w, i)).collect();
    weighted_sum_terms(tape, &terms)
}

/// See [`MixedSums::weighted_sum_terms`](super::MixedSums::weighted_sum_terms).
pub(super) fn weighted_sum_terms(
    tape: &mut Tape,
    terms: &[(&Tensor, &Tensor, usize)],
) -> Result<Tensor> {
    let Some(&(first, _, _)) = terms.first() else {
        return Err(Error::shape("weighted_sum", "needs at least one tensor"));
    };
    let mut inputs: Vec<&Tensor> = terms.iter().map(|t| t.0).collect();
    for &(y, table, i) in terms {
        if y.shape() != first.shape() {
            return Err(Error::shape(
                "weighted_sum",
                format!("shapes differ: {:?} and {:?}", first.shape(), y.shape()),
            ));
        }
        if i >= table.numel() {
            return Err(Error::shape(
                "weighted_sum",
                format!("weight index {i} into a table of {}", table.numel()),
            ));
        }
        if !inputs[terms.len()..].iter().any(|t| t.id() == table.id()) {
            inputs.push(table);
        }
    }
    // weighted_sum_into refuses more than two tables before launching anything.
    let out = Tensor::empty(tape.gpu(), first.shape(), "weighted sum")?;
    let scaled: Vec<(&Tensor, Option<(&Tensor, usize)>)> =
        terms.iter().map(|&(y, t, i)| (y, Some((t, i)))).collect();
    weighted_sum_into(&scaled, &out)?;
    Ok(tape.record(&inputs, out, || {
        Op::Fused(Box::new(WeightedSumNode {
            terms: terms
                .iter()
                .map(|&(y, table, i)| {
                    // y's values are read only for its table's gradient (the α step).
                    (
                        Saved::keep_if(y, table.requires_grad()),
                        Saved::keep(table),
                        i,
                    )
                })
                .collect(),
        }))
    }))
}

impl FusedNode for WeightedSumNode {
    /// The gradients with y_k's left lazy: gy scaled by its weight, for the tape to fold into
    /// the consumer (batch norm's backward) or into a sum of contributions.
    fn backward(&self, gy: &Tensor) -> Result<Vec<(TensorKey, GradTerm)>> {
        let terms: Vec<(&Saved, &Saved, usize)> =
            self.terms.iter().map(|(y, t, i)| (y, t, *i)).collect();
        let tables = self.terms.iter().map(|(_, t, _)| t);
        lazy_sum_grads(gy, &terms, tables, |_, _| Ok(()))
    }
}

/// The gradients of a weighted sum's plain terms (y, table, idx): each y gets gy scaled by
/// its weight, left lazy; each of `tables` that needs a gradient gets d[idx] = <gy, y> over
/// its terms, added after `own` has written what else it holds into the zeroed gradient.
pub(super) fn lazy_sum_grads<'a>(
    gy: &Tensor,
    terms: &[(&Saved, &Saved, usize)],
    tables: impl Iterator<Item = &'a Saved>,
    mut own: impl FnMut(&Saved, &Tensor) -> Result<()>,
) -> Result<Vec<(TensorKey, GradTerm)>> {
    let mut out = Vec::new();
    for (y, table, i) in terms {
        if y.requires_grad() {
            let scale = Some((table.data()?.clone(), *i));
            out.push((
                y.key(),
                GradTerm {
                    t: gy.clone(),
                    scale,
                },
            ));
        }
    }
    // The rest of a table's gradient is zero.
    let mut done: Vec<u64> = Vec::new();
    for table in tables {
        let id = table.key().id();
        if !table.requires_grad() || done.contains(&id) {
            continue;
        }
        done.push(id);
        let d = Tensor::zeros(gy.gpu(), table.shape())?;
        own(table, &d)?;
        let mine: Vec<(&Tensor, usize)> = terms
            .iter()
            .filter(|(_, t, _)| t.key().id() == id)
            .map(|(y, _, i)| Ok((y.data()?, *i)))
            .collect::<Result<_>>()?;
        if !mine.is_empty() {
            dots_into(gy, &mine, &d)?;
        }
        out.push((table.key(), GradTerm::plain(d)));
    }
    Ok(out)
}

/// out[idx_k] += <g, y_k> for every (y_k, idx_k), four dot products per pair of launches.
fn dots_into(g: &Tensor, terms: &[(&Tensor, usize)], out: &Tensor) -> Result<()> {
    let gpu = g.gpu();
    let n = g.numel();
    // One workgroup and no finishing launch where launches cost more than its serial work.
    let policy = gpu.policy();
    let (chunk, groups) = if policy.dot_one_group(n) {
        (n.next_multiple_of(256), 1)
    } else {
        policy.dot_chunks(n, reduce::split(n))
    };
    // Small vec4 products in one thread where barriers (and launches) are costly.
    let serial = policy.dot_serial(n);
    for four in terms.chunks(4) {
        let mut p = MixedParams {
            n: n as u32,
            m: four.len() as u32,
            accumulate: 1,
            chunk: chunk as u32,
            count: groups as u32,
            ..Default::default()
        };
        for (k, &(_, i)) in four.iter().enumerate() {
            p.idx[k] = i as u32;
        }
        let y = |k: usize| four.get(k).unwrap_or(&four[0]).0.buffer();
        let entry = if n.is_multiple_of(4) {
            "dot4_partial_vec4"
        } else {
            "dot4_partial"
        };
        if groups == 1 {
            let bufs = [g.buffer(), y(0), y(1), y(2), y(3), out.buffer()];
            if serial {
                gpu.launch(
                    "mixed",
                    "dot4_serial_vec4",
                    p.words(),
                    &bufs,
                    Work::Groups(1),
                )?;
            } else {
                gpu.launch_spec(
                    "mixed",
                    entry,
                    &[("DIRECT", 1)],
                    p.words(),
                    &bufs,
                    Work::Groups(1),
                )?;
            }
            continue;
        }
        let partial = gpu.alloc("dot partials", 4 * groups)?;
        let bufs = [g.buffer(), y(0), y(1), y(2), y(3), &partial];
        gpu.launch("mixed", entry, p.words(), &bufs, Work::Groups(groups))?;
        gpu.launch(
            "mixed",
            "dot4_finish",
            p.words(),
            &[&partial, out.buffer()],
            Work::Groups(four.len()),
        )?;
    }
    Ok(())
}
