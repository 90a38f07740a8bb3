//! Two search steps against the references: the same initial weights and α (loaded by the
//! reference's state_dict names, as `--init-from` does), the same batches, then what each
//! step changed in every weight, α and batch-norm statistic, and Adam's moments of α, for
//! DARTS- (the project's PyTorch model) and NAS-Bench-201 (the benchmark's own xautodl
//! network and step). The checks are the library's, the ones `darts-minus check` runs on a
//! user's adapter; here they must also fail when any one tensor's gradient is 10% off.

mod common;

use common::{assert_passes, gpu};
use darts_minus::check::step_change::{Kind, Tracked};
use darts_minus::check::torch::{self, Nb201Fixture, StepRun};
use darts_minus::nn::darts_ops::DartsSpace;
use darts_minus::search::trainer::Space;

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |a, b| a.max(b.abs()))
}

/// `t` with the part of its change that `part` says came from the gradient 10% larger.
fn tenth_off(t: &Tracked, part: &[f64]) -> Tracked {
    let mut off = t.clone();
    for (a, p) in off.after.iter_mut().zip(part) {
        *a += 0.1 * p;
    }
    off
}

/// Every tensor's comparison fails once its gradient is 10% off: a weight's step-1 change
/// (SGD's momentum buffer is then gradient + weight decay), a statistic's change (the batch
/// statistic's distance from the running one), α's gradient in Adam's first moment at either
/// step. The only exempt weights are those whose gradient is zero to rounding, convolution
/// biases feeding a batch norm without affine (the norm removes them): nothing to get wrong.
fn a_tenth_off_fails(run: &StepRun) {
    let s = &run.settings;
    let lr = s.sgd.lr_at(0, s.epochs);
    let lr_eff = lr
        * if s.sgd.nesterov {
            1.0 + s.sgd.momentum
        } else {
            1.0
        };
    let decayed = lr_eff * s.sgd.weight_decay;
    let (b1, wd_a) = (s.arch_betas.0, s.arch_weight_decay);
    let (mut caught, mut exempt) = (0, 0);
    let mut first_moments: Vec<Vec<f64>> = Vec::new();
    for (k, (_, _, tracked)) in run.steps.iter().enumerate() {
        let alpha = |name: &str| {
            tracked
                .iter()
                .find(|t| t.kind == Kind::Alpha && name.ends_with(&format!(" {}", t.name)))
                .map(|t| t.before.clone())
                .expect("every moment has its α")
        };
        let mut moments = Vec::new();
        for t in tracked {
            let change: Vec<f64> = t.after.iter().zip(&t.before).map(|(a, b)| a - b).collect();
            let part: Vec<f64> = match t.kind {
                Kind::Weight if k == 0 => {
                    let part: Vec<f64> = change
                        .iter()
                        .zip(&t.before)
                        .map(|(d, w)| d + decayed * w)
                        .collect();
                    let want: Vec<f64> = t
                        .want
                        .iter()
                        .zip(&t.before)
                        .map(|(d, w)| d + decayed * w)
                        .collect();
                    if max_abs(&want) < 1e-6 * max_abs(&t.want) {
                        assert!(t.name.ends_with("op.1.bias"), "{} has no gradient", t.name);
                        exempt += 1;
                        continue;
                    }
                    part
                }
                Kind::Statistic if k == 0 => change,
                Kind::Moment if t.name.starts_with("exp_avg of") => {
                    // m_k = β1·m_(k−1) + (1 − β1)·(g + wd·α): the gradient's share.
                    let prev = first_moments.get(moments.len()).cloned();
                    let prev = prev.unwrap_or_else(|| vec![0.0; t.after.len()]);
                    let a = alpha(&t.name);
                    moments.push(t.after.clone());
                    (0..t.after.len())
                        .map(|i| t.after[i] - b1 * prev[i] - (1.0 - b1) * wd_a * a[i])
                        .collect()
                }
                _ => continue,
            };
            let line = tenth_off(t, &part).compare(&run.check, torch::CHANGE);
            assert!(
                !line.pass,
                "{} at step {}: a 10% error in its gradient passes ({line:?})",
                t.name,
                k + 1
            );
            caught += 1;
        }
        first_moments = moments;
    }
    assert!(caught > 50, "{caught} tensors compared");
    eprintln!(
        "{}: 10% off caught in {caught} tensors ({exempt} without a gradient)",
        run.check
    );
}

#[test]
fn two_darts_minus_steps_match_pytorch() {
    // With the launch strategy of CPU adapters (fused mixed-edge tails, one-pass reductions)
    // and of GPUs (batch-norm reductions split over workgroups, statistics written by the
    // producing 1×1 kernels), whatever this adapter is.
    let g = gpu();
    for strategy in torch::STRATEGIES {
        let run = torch::darts_steps(&g, strategy).unwrap();
        let lines = run.lines();
        assert_eq!(lines.len(), 5 * torch::STEPS, "{lines:?}");
        assert_passes(&lines);
        a_tenth_off_fails(&run);
    }
}

#[test]
fn one_step_in_robustdarts_s1_and_s4_matches_pytorch() {
    // S1: every edge its own pair of candidates. S4: noise on every edge, fed PyTorch's draws.
    let g = gpu();
    for space in [DartsSpace::S1, DartsSpace::S4] {
        for strategy in torch::STRATEGIES {
            let lines = torch::search_step_space(&g, space, strategy).unwrap();
            assert!(lines.len() >= 3, "{lines:?}");
            assert_passes(&lines);
        }
    }
}

#[test]
fn two_nb201_steps_match_the_benchmarks_code() {
    let g = gpu();
    for strategy in torch::STRATEGIES {
        let run = torch::nb201_steps(&g, strategy, Nb201Fixture::Darts).unwrap();
        let lines = run.lines();
        assert_eq!(lines.len(), 5 * torch::STEPS, "{lines:?}");
        assert_passes(&lines);
        a_tenth_off_fails(&run);
    }
}

#[test]
fn two_darts_minus_nb201_steps_match_the_reference_script() {
    // xautodl's network with β·x on every edge (tools/nb201_reference_search.py), β = 0.7.
    let g = gpu();
    for strategy in torch::STRATEGIES {
        let run = torch::nb201_steps(&g, strategy, Nb201Fixture::DartsMinus).unwrap();
        let lines = run.lines();
        assert_eq!(lines.len(), 5 * torch::STEPS, "{lines:?}");
        assert_passes(&lines);
        a_tenth_off_fails(&run);
    }
}

#[test]
fn the_darts_minus_nb201_comparison_sees_beta() {
    // β 10% off, or no auxiliary skip at all, must fail the first step already.
    for (beta, aux) in [
        (0.9 * torch::NB201_MINUS_BETA, true),
        (torch::NB201_MINUS_BETA, false),
    ] {
        let mut settings = Nb201Fixture::DartsMinus.settings();
        settings.beta.beta0 = beta;
        if let Space::Nb201(c) = &mut settings.space {
            c.aux = aux;
        }
        let run = torch::nb201_steps_with(
            &gpu(),
            torch::STRATEGIES[0],
            Nb201Fixture::DartsMinus,
            settings,
        )
        .unwrap();
        let lines = run.lines();
        assert!(
            lines
                .iter()
                .any(|l| !l.pass && l.what.starts_with("step 1")),
            "β {beta}, aux {aux}: {lines:?}"
        );
    }
}

#[test]
fn the_nb201_comparison_sees_alpha_in_the_clipping_norm() {
    // xautodl clips network.parameters(), α included; step 2 clips (norm 7.51 > 5), and α's
    // gradient moves that norm by 0.3%. Leaving α out must fail step 2's weights.
    let mut settings = Nb201Fixture::Darts.settings();
    settings.clip_alpha = false;
    let run = torch::nb201_steps_with(&gpu(), torch::STRATEGIES[0], Nb201Fixture::Darts, settings)
        .unwrap();
    let failed: Vec<String> = run
        .lines()
        .into_iter()
        .filter(|l| !l.pass)
        .map(|l| l.what)
        .collect();
    assert!(
        failed
            .iter()
            .any(|w| w.starts_with("step 2: change of every weight")),
        "{failed:?}"
    );
    assert!(failed.iter().all(|w| w.starts_with("step 2")), "{failed:?}");
}
