//! Proof that an adapter computes right: every op's forward against a CPU f64 reference,
//! every gradient against central finite differences, and PyTorch's own values for a DARTS-
//! mixed edge and a whole search step (fixtures embedded in the binary). `darts-minus check`
//! runs [`run`] on the adapter a user picks; the test suite runs the same checks (and builds
//! its exhaustive op tests on the same harness, references and tolerances).

mod harness;
pub mod noise;
mod numeric;
mod ops;
pub mod reference;
mod robust_steps;
mod search_steps;
pub mod step_change;
mod tolerance;
pub mod torch;

pub use harness::{op_check, CpuOp, GpuOp, Input};
pub use numeric::{f32s, finite_diff, Rng};
pub use tolerance::{Comparison, Tolerance};

use crate::error::Result;
use crate::gpu::Gpu;
use serde::Serialize;

/// One compared quantity of a check: an output, a gradient, a state tensor.
#[derive(Clone, Debug, Serialize)]
pub struct CheckLine {
    /// The check it belongs to (an op case, a fixture).
    pub check: String,
    /// What was compared (`forward`, `gradient of input 1`, `weights after the step`, …).
    pub what: String,
    /// Largest absolute difference from the reference.
    pub max_err: f64,
    pub tol_rel: f64,
    pub tol_abs: f64,
    pub pass: bool,
    /// Why it failed (the worst element and its values, or the error that stopped it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl CheckLine {
    pub fn compare(check: &str, what: &str, tol: Tolerance, got: &[f32], want: &[f64]) -> Self {
        let c = tol.compare(got, want);
        CheckLine {
            check: check.to_string(),
            what: what.to_string(),
            max_err: c.max_err,
            tol_rel: tol.rel,
            tol_abs: tol.abs,
            pass: c.pass(),
            detail: tol.explain(what, got, want),
        }
    }

    /// A comparison that could not be made.
    pub fn failed(check: &str, what: &str, detail: String) -> Self {
        CheckLine {
            check: check.to_string(),
            what: what.to_string(),
            max_err: f64::NAN,
            tol_rel: 0.0,
            tol_abs: 0.0,
            pass: false,
            detail: Some(detail),
        }
    }

    /// Many comparisons (every tensor of a network, say) as one line: the largest error, the
    /// loosest tolerance and the first failure.
    pub fn merge(check: &str, what: &str, lines: Vec<CheckLine>) -> Self {
        let mut out = CheckLine {
            check: check.to_string(),
            what: format!("{what} ({} tensors)", lines.len()),
            max_err: 0.0,
            tol_rel: 0.0,
            tol_abs: 0.0,
            pass: !lines.is_empty(),
            detail: lines.is_empty().then(|| "nothing compared".to_string()),
        };
        for l in lines {
            out.max_err = if l.max_err.is_nan() {
                f64::NAN
            } else {
                out.max_err.max(l.max_err)
            };
            out.tol_rel = out.tol_rel.max(l.tol_rel);
            out.tol_abs = out.tol_abs.max(l.tol_abs);
            if !l.pass && out.pass {
                out.pass = false;
                out.detail = l.detail.or(Some(l.what));
            }
        }
        out
    }
}

/// One check `darts-minus check` runs: a name and what it compares.
pub struct Check {
    pub name: &'static str,
    /// `op` (CPU f64 reference and finite differences) or `torch` (PyTorch's values).
    pub kind: &'static str,
    pub run: fn(&Gpu) -> Result<Vec<CheckLine>>,
}

/// Every check, in the order they run.
pub fn checks() -> Vec<Check> {
    let mut all = ops::checks();
    all.extend(noise::checks());
    all.extend(torch::checks());
    all
}

/// Runs the checks whose name contains `filter` (all when None) on `gpu`, calling `each` with
/// each check's lines as it finishes. A check stopped by an error (a kernel the device cannot
/// run, say) gives one failed line naming it; the others still run. The launch policy is
/// restored afterwards (checks try both strategies).
pub fn run(gpu: &Gpu, filter: Option<&str>, each: &mut dyn FnMut(&[CheckLine])) -> Vec<CheckLine> {
    let policy = gpu.policy();
    let mut all = Vec::new();
    for c in checks() {
        if filter.is_some_and(|f| !c.name.contains(f)) {
            continue;
        }
        let lines = match (c.run)(gpu) {
            Ok(lines) if lines.is_empty() => {
                vec![CheckLine::failed(c.name, "run", "compared nothing".into())]
            }
            Ok(lines) => lines,
            Err(e) => vec![CheckLine::failed(c.name, "run", e.to_string())],
        };
        gpu.set_policy(policy);
        // A failed launch leaves its error on the device; the next check starts clean.
        let _ = gpu.sync();
        each(&lines);
        all.extend(lines);
    }
    gpu.set_policy(policy);
    all
}
