//! Explicit tolerances: |actual − expected| ≤ abs + rel·|expected|, per element.

/// An explicit tolerance: |actual − expected| ≤ abs + rel·|expected|, per element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rel: f64,
    pub abs: f64,
}

/// How `actual` compares with `expected` under a tolerance.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Largest |actual − expected| (NaN where a value is NaN).
    pub max_err: f64,
    /// The element that exceeds the tolerance most, if any (NaN counts as exceeding).
    pub worst: Option<usize>,
    /// Lengths differ: nothing else is meaningful.
    pub length_mismatch: bool,
}

impl Comparison {
    pub fn pass(&self) -> bool {
        !self.length_mismatch && self.worst.is_none()
    }
}

impl Tolerance {
    /// f32 forward results against an f64 reference.
    pub const FORWARD: Tolerance = Tolerance {
        rel: 1e-4,
        abs: 1e-5,
    };
    /// f32 gradients (longer reductions) against f64 finite differences or torch's float64.
    pub const GRADIENT: Tolerance = Tolerance {
        rel: 1e-3,
        abs: 1e-4,
    };

    /// Same relative part, absolute part scaled by the largest magnitude in `expected`, for
    /// results that cancel to near zero (batch-norm gradients, say).
    pub fn scaled(self, expected: &[f64]) -> Tolerance {
        let m = expected
            .iter()
            .fold(0.0f64, |a, &b| a.max(b.abs()))
            .max(1.0);
        Tolerance {
            rel: self.rel,
            abs: self.abs * m,
        }
    }

    pub fn compare(&self, actual: &[f32], expected: &[f64]) -> Comparison {
        if actual.len() != expected.len() {
            return Comparison {
                max_err: f64::NAN,
                worst: None,
                length_mismatch: true,
            };
        }
        let mut max_err = 0.0f64;
        let mut worst = (None, 0.0f64);
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            let err = (a as f64 - e).abs();
            max_err = if err.is_nan() {
                f64::NAN
            } else {
                max_err.max(err)
            };
            let excess = err - (self.abs + self.rel * e.abs());
            // NaN counts as a failure.
            let bad = excess > 0.0 || excess.is_nan();
            let excess = if excess.is_nan() {
                f64::INFINITY
            } else {
                excess
            };
            if bad && (worst.0.is_none() || excess > worst.1) {
                worst = (Some(i), excess);
            }
        }
        Comparison {
            max_err,
            worst: worst.0,
            length_mismatch: false,
        }
    }

    /// Why `actual` fails against `expected`, or None when it passes.
    pub fn explain(&self, what: &str, actual: &[f32], expected: &[f64]) -> Option<String> {
        let c = self.compare(actual, expected);
        if c.length_mismatch {
            return Some(format!(
                "{what}: {} values but the reference has {}",
                actual.len(),
                expected.len()
            ));
        }
        let i = c.worst?;
        Some(format!(
            "{what}: element {i} is {} but the reference is {} (tolerance rel {} abs {}); first values {:?} vs {:?}",
            actual[i],
            expected[i],
            self.rel,
            self.abs,
            &actual[..actual.len().min(6)],
            &expected[..expected.len().min(6)]
        ))
    }

    /// Panics (for tests) with [`Tolerance::explain`]'s message where `actual` fails.
    #[track_caller]
    pub fn assert_close(&self, what: &str, actual: &[f32], expected: &[f64]) {
        if let Some(msg) = self.explain(what, actual, expected) {
            panic!("{msg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tolerance;

    #[test]
    fn compares_within_and_beyond_the_tolerance() {
        let t = Tolerance::FORWARD;
        assert!(t.compare(&[1.0, 2.0], &[1.0, 2.0]).pass());
        let c = t.compare(&[1.0, 2.1], &[1.0, 2.0]);
        assert!(!c.pass() && c.worst == Some(1) && (c.max_err - 0.1).abs() < 1e-6);
        assert!(!t.compare(&[f32::NAN], &[0.0]).pass());
        assert!(!t.compare(&[1.0], &[1.0, 2.0]).pass());
        let msg = t.explain("y", &[1.0, 2.1], &[1.0, 2.0]).unwrap();
        assert!(msg.contains("element 1"), "{msg}");
    }
}
