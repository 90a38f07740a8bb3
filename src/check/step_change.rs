//! Comparing what a training step changed, not where it left the weights. Weights after a
//! step are mostly their value before it: a tolerance relative to the weight hides an error of
//! 10% in its gradient, and α after Adam's first step moves by lr·sign(g) whatever |g| is. So
//! every tensor's change (after − before) is compared with the reference's change, with a
//! tolerance relative to that change, and α's gradients through Adam's moments.

use super::CheckLine;

/// Per tensor: max|Δ − Δref| ≤ rel·max|Δref| + ulps·2⁻²⁴·max|after|. The second term is the
/// rounding of the f32 values after the step (half an ulp each) and the f32 noise of gradients
/// that are zero but for it (a bias ahead of a train-mode batch norm), below which no change
/// can be known; it matters only where a step barely moves a tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChangeTolerance {
    pub rel: f64,
    pub ulps: f64,
}

/// What a tracked tensor is: its line and how the comparison reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Weight,
    /// Batch-norm running statistics.
    Statistic,
    /// Batch-norm `num_batches_tracked`: compared exactly.
    Counter,
    Alpha,
    /// Adam's moments of α after the step (before: zero, so the "change" is the value).
    Moment,
}

/// One tensor around one step: ours before and after, and the reference's change.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub name: String,
    pub kind: Kind,
    pub before: Vec<f64>,
    pub after: Vec<f64>,
    pub want: Vec<f64>,
}

fn max_abs(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(0.0, |a, b| a.max(b.abs()))
}

impl Tracked {
    /// This tensor's line: the largest difference of the changes relative to the reference's
    /// largest change, against `rel` plus the rounding floor relative to that change.
    pub fn compare(&self, check: &str, tol: ChangeTolerance) -> CheckLine {
        let what = self.name.as_str();
        let n = self.want.len();
        if self.before.len() != n || self.after.len() != n {
            return CheckLine::failed(
                check,
                what,
                format!(
                    "{what}: {} values but the reference has {n}",
                    self.after.len()
                ),
            );
        }
        let ours: Vec<f64> = self
            .after
            .iter()
            .zip(&self.before)
            .map(|(a, b)| a - b)
            .collect();
        let (rel, floor) = match self.kind {
            Kind::Counter => (0.0, 0.0),
            _ => (
                tol.rel,
                tol.ulps * f64::powi(2.0, -24) * max_abs(self.after.iter().copied()),
            ),
        };
        let scale = max_abs(self.want.iter().copied());
        // The worst element; NaN wins so that it fails.
        let (mut worst, mut err) = (0, 0.0f64);
        for (i, (o, w)) in ours.iter().zip(&self.want).enumerate() {
            let e = (o - w).abs();
            if e > err || e.is_nan() {
                (worst, err) = (i, e);
                if e.is_nan() {
                    break;
                }
            }
        }
        let bound = rel * scale + floor;
        let pass = err <= bound;
        // Relative to the reference's largest change, where there is one.
        let unit = if scale > 0.0 { scale } else { 1.0 };
        CheckLine {
            check: check.to_string(),
            what: what.to_string(),
            max_err: err / unit,
            tol_rel: rel,
            tol_abs: floor / unit,
            pass,
            detail: (!pass).then(|| {
                format!(
                    "{what}: the step changed element {worst} by {:e} but the reference by {:e}; \
                     the largest difference is {err:e} where {bound:e} is allowed ({rel} of the \
                     reference's largest change {scale:e}, plus {floor:e} of f32 rounding)",
                    ours[worst], self.want[worst]
                )
            }),
        }
    }
}

/// The lines of one step: every tracked tensor, merged by kind, errors relative to each
/// tensor's largest change.
pub fn step_lines(
    check: &str,
    step: usize,
    tracked: &[Tracked],
    tol: ChangeTolerance,
) -> Vec<CheckLine> {
    let groups = [
        (&[Kind::Weight][..], "change of every weight"),
        (
            &[Kind::Statistic, Kind::Counter][..],
            "change of every batch-norm statistic",
        ),
        (&[Kind::Alpha][..], "change of α"),
        (&[Kind::Moment][..], "α's Adam moments (its gradients)"),
    ];
    groups
        .iter()
        .map(|(kinds, what)| {
            let lines = tracked
                .iter()
                .filter(|t| kinds.contains(&t.kind))
                .map(|t| t.compare(check, tol))
                .collect();
            CheckLine::merge(check, &format!("step {step}: {what}"), lines)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{ChangeTolerance, Kind, Tracked};

    const TOL: ChangeTolerance = ChangeTolerance {
        rel: 1e-3,
        ulps: 2.0,
    };

    fn weight(after: &[f64], want: &[f64]) -> Tracked {
        Tracked {
            name: "w".into(),
            kind: Kind::Weight,
            before: vec![1.0; want.len()],
            after: after.to_vec(),
            want: want.to_vec(),
        }
    }

    #[test]
    fn tolerance_is_relative_to_the_change_not_the_weight() {
        // The weight is 1, its change 1e-3: a 1e-4 difference is 10% of the change.
        assert!(
            weight(&[1.001, 1.0005], &[1e-3, 5e-4])
                .compare("c", TOL)
                .pass
        );
        let off = weight(&[1.0011, 1.0005], &[1e-3, 5e-4]).compare("c", TOL);
        assert!(!off.pass && (off.max_err - 0.1).abs() < 1e-6, "{off:?}");
        assert!(off.detail.unwrap().contains("element 0"));
        // Below the rounding of the weights after the step nothing is claimed.
        let floor = 2.0 * f64::powi(2.0, -24);
        assert!(weight(&[1.0 + floor / 2.0], &[0.0]).compare("c", TOL).pass);
        assert!(!weight(&[1.0 + 4.0 * floor], &[0.0]).compare("c", TOL).pass);
    }

    #[test]
    fn counters_are_exact_and_bad_values_fail() {
        let counter = |after: f64| Tracked {
            name: "n".into(),
            kind: Kind::Counter,
            before: vec![3.0],
            after: vec![after],
            want: vec![2.0],
        };
        assert!(counter(5.0).compare("c", TOL).pass);
        assert!(!counter(4.0).compare("c", TOL).pass);
        assert!(!weight(&[f64::NAN], &[1e-3]).compare("c", TOL).pass);
        assert!(!weight(&[1.0], &[1e-3, 0.0]).compare("c", TOL).pass);
    }
}
