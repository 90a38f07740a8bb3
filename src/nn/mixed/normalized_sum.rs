//! A mixed edge's tail: Σ_t table_t[idx_t]·v_t with v_t the train-mode batch norm (no affine)
//! of x_t or x_t itself. Where launches are costly it is one launch each way (`sum_forward4`,
//! `sum_backward4` with a thread per channel for small channels, their `_group4` forms with a
//! workgroup per channel for larger ones; `sum_alpha` in `shaders/mixed.wgsl`), else separate
//! batch norms and a weighted sum.

use crate::autodiff::ops::elementwise::{pack_pair, PAIR_INDEX_MAX};
use crate::autodiff::{
    BnState, ChannelStats, FusedNode, GradTerm, Op, Saved, Tape, Tensor, TensorKey,
};
use crate::error::{Error, Result};
use crate::gpu::Work;
use crate::gpu::{Gpu, GpuBuffer, KernelParams, MixedParams, MixedSumParams};

/// One term of [`MixedSums::normalized_sum`](super::MixedSums::normalized_sum): `table[idx]`
/// times `x`, or times the train-mode batch norm (no affine) of `x` when `bn` gives its
/// running statistics.
pub struct SumTerm<'a> {
    pub x: &'a Tensor,
    pub bn: Option<BnState<'a>>,
    /// x's statistics from the kernel that produced it, for a batch norm that runs on its own
    /// ([`Tape::batch_norm_with_stats`]); None computes them (the fused path always does).
    pub stats: Option<&'a ChannelStats>,
    pub table: &'a Tensor,
    pub idx: usize,
}

/// Most normalised and plain terms one fused launch takes (its bindings).
const MAX_NORMALIZED: usize = 6;
const MAX_PLAIN: usize = 2;

pub(super) struct NormalizedSumNode {
    /// Per term: its input (kept for normalised terms, whose x̂ backward recomputes, and for
    /// plain ones whose weight needs a gradient), table and index.
    terms: Vec<(Saved, Saved, usize, bool)>,
    /// [mean | invstd | Σgy | Σgy·x̂] per normalised term, 4·c floats each.
    saved: Tensor,
    params: MixedSumParams,
    layout: SumLayout,
    /// Per plain slot, the indices into `terms` of its terms (a tensor in two terms: both).
    slots: Vec<(usize, Option<usize>)>,
    /// One thread per channel (`sum_forward4` / `sum_backward4`), else a workgroup per channel
    /// (their `_group4` forms).
    serial: bool,
    /// The sum the output was added onto (ACC): it gets gy.
    onto: Option<Saved>,
}

/// The fused launches' term layout, with the parameters' `g` (normalised slots) their
/// pipeline constants (`shaders/mixed.wgsl`): m terms, term t's kind in bits 4t.. of `kinds`
/// (slot k < 6 of x_k, 8 + j of z_j).
#[derive(Clone, Copy)]
struct SumLayout {
    m: u32,
    kinds: u32,
}

/// Which way a fused launch goes.
enum Pass {
    /// The sum, added onto a node's sum so far where `onto` (ACC).
    Forward { onto: bool },
    /// `need`: the normalised slots whose dx is wanted; `dots`: the plain slots whose dot
    /// products with gy are folded in.
    Backward { need: u32, dots: u32 },
}

/// Launches the fused forward or backward over c channels: one thread per channel (small
/// channels) or a workgroup per channel.
fn launch_fused(
    gpu: &Gpu,
    serial: bool,
    layout: SumLayout,
    pass: Pass,
    p: &MixedSumParams,
    bufs: &[&GpuBuffer],
) -> Result<()> {
    let c = p.c as usize;
    let (forward, backward, grid) = match serial {
        true => ("sum_forward4", "sum_backward4", Work::Groups(c.div_ceil(8))),
        false => ("sum_forward_group4", "sum_backward_group4", Work::Groups(c)),
    };
    let words = p.words();
    match pass {
        Pass::Backward { need, dots } => {
            let consts = [("SG", p.g), ("SNEED", need), ("SDOT", dots)];
            gpu.launch_spec("mixed", backward, &consts, words, bufs, grid)
        }
        Pass::Forward { onto } => {
            let consts = [
                ("SG", p.g),
                ("SM", layout.m),
                ("SKIND", layout.kinds),
                ("ACC", onto as u32),
            ];
            gpu.launch_spec("mixed", forward, &consts, words, bufs, grid)
        }
    }
}

/// An error where `onto` (a node's sum so far) is not of `x`'s shape.
fn check_onto(op: &'static str, x: &Tensor, onto: Option<&Tensor>) -> Result<()> {
    match onto.filter(|o| o.shape() != x.shape()) {
        Some(o) => Err(Error::shape(
            op,
            format!("a sum of {:?} onto one of {:?}", x.shape(), o.shape()),
        )),
        None => Ok(()),
    }
}

/// See [`MixedSums::normalized_sum`](super::MixedSums::normalized_sum).
pub(super) fn normalized_sum(tape: &mut Tape, terms: &[SumTerm]) -> Result<Tensor> {
    Ok(normalized_sum_onto(tape, terms, None)?.0)
}

/// [`normalized_sum`] added onto `onto` (a cell node's sum over the edges before this one)
/// where the fused launch runs: `(onto + sum, true)`, one launch and no sum of the node's own;
/// else `(sum, false)` and the caller adds.
pub(super) fn normalized_sum_onto(
    tape: &mut Tape,
    terms: &[SumTerm],
    onto: Option<&Tensor>,
) -> Result<(Tensor, bool)> {
    // More normalised terms than one launch binds (a reduction edge's seven): the last
    // ones normalise on their own and join as plain terms, where those slots allow.
    let normalized = terms.iter().filter(|t| t.bn.is_some()).count();
    let excess = normalized.saturating_sub(MAX_NORMALIZED);
    if excess > 0 && plain_slots(terms).len() + excess <= MAX_PLAIN {
        let mut seen = 0;
        let mut own: Vec<Option<Tensor>> = Vec::with_capacity(terms.len());
        for t in terms {
            own.push(match &t.bn {
                Some(state) => {
                    seen += 1;
                    if seen > MAX_NORMALIZED {
                        Some(term_batch_norm(tape, t, state)?)
                    } else {
                        None
                    }
                }
                None => None,
            });
        }
        let fewer: Vec<SumTerm> = terms
            .iter()
            .zip(&own)
            .map(|(t, y)| match y {
                Some(y) => SumTerm {
                    x: y,
                    bn: None,
                    stats: None,
                    table: t.table,
                    idx: t.idx,
                },
                None => SumTerm {
                    x: t.x,
                    bn: t.bn.clone(),
                    stats: t.stats,
                    table: t.table,
                    idx: t.idx,
                },
            })
            .collect();
        return normalized_sum_onto(tape, &fewer, onto);
    }
    if !can_fuse_sum(tape, terms)? {
        return Ok((separate_then_sum(tape, terms, true)?, false));
    }
    let gpu = tape.gpu().clone();
    let x0 = terms[0].x;
    check_onto("normalized_sum", x0, onto)?;
    let (n, c, h, w) = x0.nchw("normalized_sum")?;
    let table_a = terms
        .iter()
        .find(|t| t.bn.is_some())
        .expect("checked")
        .table;
    let table_b = terms
        .iter()
        .map(|t| t.table)
        .find(|t| t.id() != table_a.id())
        .unwrap_or(table_a);
    let norm: Vec<&SumTerm> = terms.iter().filter(|t| t.bn.is_some()).collect();
    let slots = plain_slots(terms);
    let g = norm.len();
    let state0 = norm[0].bn.as_ref().expect("normalised");
    let mut layout = SumLayout { m: 0, kinds: 0 };
    let mut p = MixedSumParams {
        n: n as u32,
        c: c as u32,
        hw: (h * w) as u32,
        g: g as u32,
        eps: state0.eps,
        momentum: state0.momentum,
        ..Default::default()
    };
    // The launch's terms: every normalised one, and a plain tensor once (at its first term's
    // place, with both coefficients where it is in two terms: bit e of `pairs`).
    let tab = |t: &SumTerm| (t.table.id() != table_a.id()) as u32;
    let (mut k, mut e) = (0u32, 0usize);
    for (t, term) in terms.iter().enumerate() {
        let at = (e / 4, e % 4);
        if term.bn.is_some() {
            layout.kinds |= k << (4 * e);
            k += 1;
            (p.tab[at.0][at.1], p.idx[at.0][at.1]) = (tab(term), term.idx as u32);
        } else if let Some(j) = slots.iter().position(|&(first, _)| first == t) {
            layout.kinds |= (8 + j as u32) << (4 * e);
            (p.tab[at.0][at.1], p.idx[at.0][at.1]) = match slots[j].1 {
                None => (tab(term), term.idx as u32),
                Some(second) => {
                    p.pairs |= 1 << e;
                    let t2 = &terms[second];
                    let (idx, tab) =
                        pack_pair((term.idx as u32, tab(term)), (t2.idx as u32, tab(t2)))
                            .expect("plain_slots pairs only 16-bit indices");
                    (tab, idx)
                }
            };
        } else {
            continue; // read with its tensor's first term
        }
        e += 1;
    }
    layout.m = e as u32;
    for (k, term) in norm.iter().enumerate() {
        p.sidx[k / 4][k % 4] = term.idx as u32;
    }
    // The running statistics, gathered into one buffer for the launch and copied back.
    let running = Tensor::empty(&gpu, &[g * 2 * c], "normalized_sum running statistics")?;
    let states: Vec<&BnState> = norm.iter().map(|t| t.bn.as_ref().expect("bn")).collect();
    for (k, s) in states.iter().enumerate() {
        gpu.copy_range(s.running_mean.buffer(), 0, running.buffer(), 2 * k * c, c);
        gpu.copy_range(
            s.running_var.buffer(),
            0,
            running.buffer(),
            (2 * k + 1) * c,
            c,
        );
    }
    // Room for two plain slots' folded dot products after the statistics (backward).
    let saved = Tensor::empty(
        &gpu,
        &[(g * 4 + MAX_PLAIN) * c],
        "normalized_sum statistics",
    )?;
    let out = Tensor::empty(&gpu, x0.shape(), "normalized_sum output")?;
    let xb = |k: usize| norm.get(k).unwrap_or(&norm[0]).x.buffer();
    let zb = |j: usize| slots.get(j).map_or(x0, |&(t, _)| terms[t].x).buffer();
    let bufs = [
        xb(0),
        xb(1),
        xb(2),
        xb(3),
        xb(4),
        xb(5),
        saved.buffer(),
        running.buffer(),
        table_a.buffer(),
        table_b.buffer(),
        out.buffer(),
        zb(0),
        zb(1),
        onto.unwrap_or(x0).buffer(),
    ];
    let serial = gpu.policy().normalized_sum_serial(c, n * h * w);
    let pass = Pass::Forward {
        onto: onto.is_some(),
    };
    launch_fused(&gpu, serial, layout, pass, &p, &bufs)?;
    for (k, s) in states.iter().enumerate() {
        gpu.copy_range(running.buffer(), 2 * k * c, s.running_mean.buffer(), 0, c);
        gpu.copy_range(
            running.buffer(),
            (2 * k + 1) * c,
            s.running_var.buffer(),
            0,
            c,
        );
    }
    let mut inputs: Vec<&Tensor> = terms.iter().map(|t| t.x).collect();
    inputs.push(table_a);
    if table_b.id() != table_a.id() {
        inputs.push(table_b);
    }
    inputs.extend(onto);
    let y = tape.record(&inputs, out, || {
        Op::Fused(Box::new(NormalizedSumNode {
            terms: terms
                .iter()
                .map(|t| {
                    let keep = t.bn.is_some() || t.table.requires_grad();
                    (
                        Saved::keep_if(t.x, keep),
                        Saved::keep(t.table),
                        t.idx,
                        t.bn.is_some(),
                    )
                })
                .collect(),
            saved,
            params: p,
            layout,
            slots,
            serial,
            onto: onto.map(Saved::key_only),
        }))
    });
    Ok((y, onto.is_some()))
}

/// See [`MixedSums::eval_normalized_sum`](super::MixedSums::eval_normalized_sum).
pub(super) fn eval_normalized_sum(tape: &mut Tape, terms: &[SumTerm]) -> Result<Tensor> {
    Ok(eval_normalized_sum_onto(tape, terms, None)?.0)
}

/// [`eval_normalized_sum`] added onto `onto` where its one launch runs: `(onto + sum, true)`;
/// else `(sum, false)` and the caller adds (as [`normalized_sum_onto`]).
pub(super) fn eval_normalized_sum_onto(
    tape: &mut Tape,
    terms: &[SumTerm],
    onto: Option<&Tensor>,
) -> Result<(Tensor, bool)> {
    let (n, c, h, w) = checked_terms("eval_normalized_sum", terms)?;
    let first = &terms[0];
    check_onto("eval_normalized_sum", first.x, onto)?;
    let mut inputs: Vec<&Tensor> = terms.iter().flat_map(|t| [t.x, t.table]).collect();
    inputs.extend(onto);
    inputs.extend(
        terms
            .iter()
            .filter_map(|t| t.bn.as_ref())
            .flat_map(|s| [s.running_mean, s.running_var]),
    );
    let table_a = first.table;
    let table_b = terms
        .iter()
        .map(|t| t.table)
        .find(|t| t.id() != table_a.id())
        .unwrap_or(table_a);
    let eps = terms.iter().find_map(|t| t.bn.as_ref().map(|s| s.eps));
    let fused = tape.gpu().policy().eval_sum_fused(h * w)
        && !tape.wants(&inputs)
        && terms.len() <= 8
        && terms.iter().all(|t| {
            (t.table.id() == table_a.id() || t.table.id() == table_b.id())
                && t.bn.as_ref().is_none_or(|s| Some(s.eps) == eps)
        });
    let Some(eps) = eps.filter(|_| fused) else {
        // A batch norm per normalised term (`normalize4` in an inference pass), then the sum.
        return Ok((separate_then_sum(tape, terms, false)?, false));
    };
    let gpu = tape.gpu().clone();
    let m = terms.len();
    let mut p = MixedParams {
        n: (n * c * h * w) as u32,
        m: m as u32,
        chunk: (h * w / 4) as u32,
        count: c as u32,
        eps_bits: eps.to_bits(),
        ..Default::default()
    };
    // Term k's running statistics at 2k·c (mean) and (2k+1)·c (variance) of one buffer.
    let running = Tensor::empty(&gpu, &[2 * m * c], "eval sum running statistics")?;
    for (k, t) in terms.iter().enumerate() {
        let at = (t.idx as u32, (t.table.id() != table_a.id()) as u32);
        if k < 4 {
            (p.idx[k], p.tab[k]) = at;
        } else {
            (p.idx2[k - 4], p.tab2[k - 4]) = at;
        }
        if let Some(s) = &t.bn {
            p.norm |= 1 << k;
            gpu.copy_range(s.running_mean.buffer(), 0, running.buffer(), 2 * k * c, c);
            gpu.copy_range(
                s.running_var.buffer(),
                0,
                running.buffer(),
                (2 * k + 1) * c,
                c,
            );
        }
    }
    let out = Tensor::empty(&gpu, first.x.shape(), "eval sum output")?;
    let y = |k: usize| terms.get(k).unwrap_or(first).x.buffer();
    let bufs = [
        y(0),
        y(1),
        y(2),
        y(3),
        table_a.buffer(),
        table_b.buffer(),
        out.buffer(),
        y(4),
        y(5),
        y(6),
        y(7),
        running.buffer(),
        onto.unwrap_or(first.x).buffer(),
    ];
    let consts = [("EACC", onto.is_some() as u32)];
    let work = out.numel() / 4;
    gpu.launch_spec("mixed", "eval_sum8_vec4", &consts, p.words(), &bufs, work)?;
    Ok((out, onto.is_some()))
}

/// A normalised term's batch norm on its own (train mode, no affine), with the statistics
/// its producer wrote where it did.
fn term_batch_norm(tape: &mut Tape, t: &SumTerm, state: &BnState) -> Result<Tensor> {
    tape.batch_norm_with_stats(t.x, t.stats.cloned(), None, state.clone(), true)
}

/// The unfused form: each normalised term's own batch norm (train mode with the producer's
/// statistics, or eval mode), then the weighted sum.
fn separate_then_sum(tape: &mut Tape, terms: &[SumTerm], train: bool) -> Result<Tensor> {
    let mut ys = Vec::with_capacity(terms.len());
    for t in terms {
        ys.push(match &t.bn {
            Some(state) if train => term_batch_norm(tape, t, state)?,
            Some(state) => tape.batch_norm_with_stats(t.x, None, None, state.clone(), false)?,
            None => t.x.clone(),
        });
    }
    let ws: Vec<(&Tensor, &Tensor, usize)> = ys
        .iter()
        .zip(terms)
        .map(|(y, t)| (y, t.table, t.idx))
        .collect();
    super::weighted_sum::weighted_sum_terms(tape, &ws)
}

/// The terms' (n, c, h, w), once every term has the first's shape and an index inside its
/// table.
fn checked_terms(op: &'static str, terms: &[SumTerm]) -> Result<(usize, usize, usize, usize)> {
    let Some(first) = terms.first() else {
        return Err(Error::shape(op, "needs at least one term"));
    };
    let dims = first.x.nchw(op)?;
    for t in terms {
        if t.x.shape() != first.x.shape() {
            return Err(Error::shape(
                op,
                format!(
                    "terms of shapes {:?} and {:?}",
                    first.x.shape(),
                    t.x.shape()
                ),
            ));
        }
        if t.idx >= t.table.numel() {
            return Err(Error::shape(
                op,
                format!("weight index {} into a table of {}", t.idx, t.table.numel()),
            ));
        }
    }
    Ok(dims)
}

/// The plain (not normalised) terms as the fused launch reads them: (term, second term of the
/// same tensor) in order of first appearance, so a tensor in two terms (an edge's skip and its
/// β·x) is one binding and one read, as the weighted sum merges it.
fn plain_slots(terms: &[SumTerm]) -> Vec<(usize, Option<usize>)> {
    let mut slots: Vec<(usize, Option<usize>)> = Vec::new();
    for (t, term) in terms.iter().enumerate() {
        if term.bn.is_some() {
            continue;
        }
        // Pairs pack both indices in 16 bits each (pack_pair).
        let small = |t: &SumTerm| t.idx <= PAIR_INDEX_MAX as usize;
        match slots.iter_mut().find(|(first, second)| {
            terms[*first].x.id() == term.x.id()
                && second.is_none()
                && small(&terms[*first])
                && small(term)
        }) {
            Some((_, second)) => *second = Some(t),
            None => slots.push((t, None)),
        }
    }
    slots
}

/// Whether [`normalized_sum`] can run `terms` fused; shape errors are errors.
fn can_fuse_sum(tape: &Tape, terms: &[SumTerm]) -> Result<bool> {
    let (n, c, h, w) = checked_terms("normalized_sum", terms)?;
    let norm: Vec<&SumTerm> = terms.iter().filter(|t| t.bn.is_some()).collect();
    let Some(first_norm) = norm.first() else {
        return Ok(false);
    };
    let s0 = first_norm.bn.as_ref().expect("normalised");
    let same_bn = norm.iter().all(|t| {
        let s = t.bn.as_ref().expect("normalised");
        t.table.id() == first_norm.table.id() && s.eps == s0.eps && s.momentum == s0.momentum
    });
    let mut tables: Vec<u64> = terms.iter().map(|t| t.table.id()).collect();
    tables.sort_unstable();
    tables.dedup();
    // A thread or a workgroup per channel does every term (LaunchPolicy::fuse_normalized_sum).
    Ok(tape.gpu().policy().fuse_normalized_sum(n * h * w)
        && same_bn
        && tables.len() <= 2
        && norm.len() <= MAX_NORMALIZED
        && plain_slots(terms).len() <= MAX_PLAIN
        && (h * w).is_multiple_of(4)
        && n * h * w >= 2
        && c > 0)
}

impl FusedNode for NormalizedSumNode {
    /// Input gradients: one launch for every normalised term's dx (and, where the weights
    /// need a gradient, one per table for theirs); plain terms get gy scaled by their weight,
    /// lazily. The plain terms' dot products with gy (their weights' gradients) come out of
    /// the backward launch where their tensors fit the free input slots, else from dot
    /// product launches.
    fn backward(&self, gy: &Tensor) -> Result<Vec<(TensorKey, GradTerm)>> {
        let gpu = gy.gpu();
        let params = &self.params;
        let norm: Vec<&(Saved, Saved, usize, bool)> = self.terms.iter().filter(|t| t.3).collect();
        let g = norm.len();
        let table_a = &norm[0].1;
        let a = table_a.key().id();
        let mut need = 0u32;
        let mut out = Vec::new();
        let mut dx = Vec::with_capacity(MAX_NORMALIZED);
        for (k, t) in norm.iter().enumerate() {
            if t.0.requires_grad() {
                need |= 1 << k;
                dx.push(Tensor::empty(gpu, t.0.shape(), "normalized_sum dx")?);
            } else {
                // Never written (its `need` bit is clear): a minimal stand-in.
                dx.push(Tensor::empty(gpu, &[4], "normalized_sum unused dx")?);
            }
        }
        while dx.len() < MAX_NORMALIZED {
            dx.push(Tensor::empty(gpu, &[4], "normalized_sum unused dx")?);
        }
        // A plain slot's dot product is folded where one of its terms' weights wants a
        // gradient (that term kept the tensor) and the slot fits after the normalised ones.
        let kept = |&(first, second): &(usize, Option<usize>)| {
            [Some(first), second]
                .into_iter()
                .flatten()
                .find(|&t| self.terms[t].1.requires_grad())
        };
        let fold = g + self.slots.len() <= MAX_NORMALIZED;
        let mut dots = 0u32;
        let mut inputs: Vec<&GpuBuffer> = Vec::with_capacity(MAX_NORMALIZED);
        for t in &norm {
            inputs.push(t.0.data()?.buffer());
        }
        for (j, slot) in self.slots.iter().enumerate() {
            match kept(slot) {
                Some(t) if fold => {
                    dots |= 1 << j;
                    inputs.push(self.terms[t].0.data()?.buffer());
                }
                _ => inputs.push(norm[0].0.data()?.buffer()),
            }
        }
        while inputs.len() < MAX_NORMALIZED {
            inputs.push(norm[0].0.data()?.buffer());
        }
        let mut bufs = inputs[..MAX_NORMALIZED].to_vec();
        bufs.extend([gy.buffer(), self.saved.buffer(), table_a.data()?.buffer()]);
        bufs.extend(dx.iter().map(|d| d.buffer()));
        let pass = Pass::Backward { need, dots };
        launch_fused(gpu, self.serial, self.layout, pass, params, &bufs)?;
        if let Some(o) = self.onto.as_ref().filter(|o| o.requires_grad()) {
            out.push((o.key(), GradTerm::plain(gy.clone())));
        }
        for (k, t) in norm.iter().enumerate() {
            if t.0.requires_grad() {
                out.push((t.0.key(), GradTerm::plain(dx[k].clone())));
            }
        }
        // Each table's gradient: the normalised terms' from the sums the backward launch left
        // in `saved` (table A), the folded plain slots' likewise, the rest by dot products.
        let alpha = |table: &Saved, d: &Tensor| -> Result<()> {
            let st = (table.key().id() != a) as u32;
            let consts = [
                ("ST", st),
                ("SG", params.g),
                ("SM", self.layout.m),
                ("SKIND", self.layout.kinds),
                ("SDOT", dots),
            ];
            let bufs = [self.saved.buffer(), d.buffer()];
            gpu.launch_spec(
                "mixed",
                "sum_alpha",
                &consts,
                params.words(),
                &bufs,
                Work::Groups(1),
            )
        };
        let folded = |t: usize| {
            self.slots
                .iter()
                .position(|&(first, second)| first == t || second == Some(t))
                .is_some_and(|j| dots >> j & 1 == 1)
        };
        // Plain terms: lazy input gradients (folded or not); the weights' gradients of those
        // not folded by dot product launches.
        let mut unfolded = Vec::new();
        for (i, (x, table, idx, normalised)) in self.terms.iter().enumerate() {
            if *normalised {
                continue;
            }
            if !folded(i) {
                unfolded.push((x, table, *idx));
            } else if x.requires_grad() {
                let scale = Some((table.data()?.clone(), *idx));
                out.push((
                    x.key(),
                    GradTerm {
                        t: gy.clone(),
                        scale,
                    },
                ));
            }
        }
        let tables = self.terms.iter().map(|t| &t.1);
        out.extend(super::weighted_sum::lazy_sum_grads(
            gy,
            &unfolded,
            tables,
            |table, d| match table.key().id() == a || dots != 0 {
                true => alpha(table, d),
                false => Ok(()),
            },
        )?);
        Ok(out)
    }
}
