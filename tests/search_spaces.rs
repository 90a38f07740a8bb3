//! RobustDARTS' spaces in real (tiny) searches: S4's noise is reproducible across a resume
//! and under replay, and checkpoints of another space are refused by name, ours and PyTorch
//! exports alike.

mod common;

use common::gpu;
use darts_minus::checkpoint::{self, Entry};
use darts_minus::data::Dataset;
use darts_minus::nn::darts_ops::DartsSpace;
use darts_minus::search::darts_net::DartsConfig;
use darts_minus::search::trainer::{Search, SearchSettings, Space};
use std::path::PathBuf;
use std::sync::Arc;

fn tiny(candidates: DartsSpace, epochs: usize) -> SearchSettings {
    let mut s = SearchSettings::darts_paper();
    s.space = Space::Darts(DartsConfig {
        channels: 4,
        layers: 3,
        candidates,
        ..DartsConfig::default()
    });
    s.epochs = epochs;
    s.batch_size = 16;
    s.beta = darts_minus::search::schedule::BetaSchedule::linear(epochs);
    s
}

/// 32 training and 32 validation images: two steps of 16 per epoch.
fn subset() -> (Arc<Dataset>, (Vec<usize>, Vec<usize>)) {
    let data = Dataset::builtin_train().unwrap();
    (Arc::new(data), ((0..32).collect(), (32..64).collect()))
}

type Outcome = (Vec<(String, Vec<f32>)>, Vec<String>);

/// Every weight, running statistic and α, and the epoch records without timings. (Batch-norm
/// counters are left out: a replayed step does not advance them, as in tests/search_run.rs.)
fn outcome(s: &Search) -> Outcome {
    let mut state: Vec<(String, Vec<f32>)> = checkpoint::module_entries(s.network(), "")
        .unwrap()
        .into_iter()
        .filter_map(|(name, e)| match e {
            Entry::F32 { data, .. } => Some((name, data)),
            Entry::I64 { .. } => None,
        })
        .collect();
    for (name, t) in s.network().alphas() {
        state.push((name.to_string(), t.to_vec().unwrap()));
    }
    let records = s
        .history
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.timing = Default::default();
            serde_json::to_string(&r).unwrap()
        })
        .collect();
    (state, records)
}

/// Names the first tensor or epoch record that differs (the values would flood the output).
#[track_caller]
fn assert_same(a: &Outcome, b: &Outcome, what: &str) {
    assert_eq!(a.0.len(), b.0.len(), "{what}: tensor counts");
    if let Some((x, _)) = a.0.iter().zip(&b.0).find(|(x, y)| x != y) {
        panic!("{what}: {} differs", x.0);
    }
    if let Some(e) = (0..a.1.len().max(b.1.len())).find(|&e| a.1.get(e) != b.1.get(e)) {
        panic!("{what}: epoch record {e} differs");
    }
}

fn tmp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("darts-minus-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn s4_noise_is_the_same_resumed_replayed_or_eager_and_differs_by_seed() {
    let g = gpu();
    let (data, split) = subset();
    let run = |settings: SearchSettings, replay: bool| {
        let mut s = Search::new(&g, settings).unwrap();
        s.replay = replay;
        while !s.finished() {
            s.run_epoch(&data, &split, &mut |_| {}).unwrap();
        }
        s
    };
    let full = outcome(&run(tiny(DartsSpace::S4, 2), true));
    assert!(
        full.1[1].contains("\"noise\""),
        "S4's candidates in the metrics"
    );
    let eager = outcome(&run(tiny(DartsSpace::S4, 2), false));
    assert_same(&eager, &full, "eager against replayed");

    let dir = tmp("s4-resume");
    let ckpt = dir.join("checkpoint.safetensors");
    let mut first = Search::new(&g, tiny(DartsSpace::S4, 2)).unwrap();
    first.run_epoch(&data, &split, &mut |_| {}).unwrap();
    first.save(&ckpt).unwrap();
    drop(first);
    let mut resumed = Search::resume(&g, &ckpt).unwrap();
    resumed.run_epoch(&data, &split, &mut |_| {}).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_same(&outcome(&resumed), &full, "resumed against uninterrupted");

    // Another seed draws other noise (and other weights): the runs part.
    let mut other = tiny(DartsSpace::S4, 2);
    other.seed += 1;
    assert!(
        outcome(&run(other, true)).0 != full.0,
        "another seed, the same run"
    );
}

#[test]
fn a_checkpoint_of_another_space_is_refused_by_name() {
    let g = gpu();
    let dir = tmp("spaces-ckpt");
    // S4's network has a subset of S2's names and the same α shape: only the recorded space
    // (ours) or S2's extra tensors (an export) tell them apart.
    let ours = dir.join("s2.safetensors");
    let s2 = Search::new(&g, tiny(DartsSpace::S2, 1)).unwrap();
    s2.save(&ours).unwrap();
    let mut s4 = Search::new(&g, tiny(DartsSpace::S4, 1)).unwrap();
    let msg = s4.init_from(&ours).unwrap_err().to_string();
    assert!(
        msg.contains("s2.safetensors")
            && msg.contains("RobustDARTS S2 space but this search uses the RobustDARTS S4 space")
            && msg.contains("--space s2"),
        "{msg}"
    );

    let export = dir.join("export.safetensors");
    let mut entries = checkpoint::module_entries(s2.network(), "").unwrap();
    for (name, t) in s2.network().alphas() {
        entries.push((name.to_string(), Entry::tensor(t).unwrap()));
    }
    checkpoint::write_atomic(&export, &entries, None).unwrap();
    let msg = s4.init_from(&export).unwrap_err().to_string();
    assert!(
        msg.contains("export.safetensors")
            && msg.contains("is no candidate's in this RobustDARTS S4 search network"),
        "{msg}"
    );
    // The same export starts an S2 search.
    let mut again = Search::new(&g, tiny(DartsSpace::S2, 1)).unwrap();
    again.init_from(&export).unwrap();

    // S3's second candidate is skip_connect, S2's sep_conv_3x3.
    let mut s3 = Search::new(&g, tiny(DartsSpace::S3, 1)).unwrap();
    let msg = s3.init_from(&export).unwrap_err().to_string();
    assert!(
        msg.contains("is no candidate's in this RobustDARTS S3"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn s1_with_five_nodes_is_refused_before_anything_runs() {
    let mut s = tiny(DartsSpace::S1, 1);
    if let Space::Darts(c) = &mut s.space {
        c.nodes = 5;
    }
    let msg = s.validate().unwrap_err().to_string();
    assert!(
        msg.contains("RobustDARTS S1") && msg.contains("--nodes 4"),
        "{msg}"
    );
}
