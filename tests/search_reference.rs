//! One search step against PyTorch: the same initial weights and α (loaded by the reference's
//! state_dict names, as `--init-from` does), the same batches, then one α step (Adam) and one
//! w step (SGD, momentum, weight decay, clipping). Every weight, α and batch-norm statistic
//! must match the reference's (tools/make_fixtures.py, `search_step`). The check is the
//! library's, the one `darts-minus check` runs on a user's adapter.

mod common;

use common::{assert_passes, gpu};
use darts_minus::check::torch;
use darts_minus::nn::darts_ops::DartsSpace;

#[test]
fn one_darts_minus_step_matches_pytorch() {
    // With the launch strategy of CPU adapters (fused mixed-edge tails, one-pass reductions)
    // and of GPUs (batch-norm reductions split over workgroups, statistics written by the
    // producing 1×1 kernels), whatever this adapter is.
    let g = gpu();
    for strategy in torch::STRATEGIES {
        let lines = torch::search_step(&g, strategy).unwrap();
        assert!(lines.len() >= 3, "{lines:?}");
        assert_passes(&lines);
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
