//! Retraining on the built-in mini set: accuracy rises above chance, a resumed run equals an
//! uninterrupted one, and genotypes resolve from names, strings and search outputs.

mod common;

use common::gpu;
use darts_minus::data::Dataset;
use darts_minus::search::genotype::named;
use darts_minus::train::darts_eval::EvalConfig;
use darts_minus::train::trainer::{Retrain, TrainSettings};
use darts_minus::train::Arch;
use std::sync::Arc;

fn tiny(epochs: usize) -> TrainSettings {
    let mut s = TrainSettings::paper(Arch::Darts(named("DARTS_V2").unwrap()));
    s.network = EvalConfig {
        channels: 4,
        layers: 5,
        classes: 10,
        auxiliary: true,
    };
    s.epochs = epochs;
    s.batch_size = 32;
    s
}

fn data(n_train: usize, n_test: usize) -> (Arc<Dataset>, Arc<Dataset>) {
    let tr = Dataset::builtin_train().unwrap();
    let te = Dataset::builtin_test().unwrap();
    (
        Arc::new(tr.subset(&(0..n_train).collect::<Vec<_>>())),
        Arc::new(te.subset(&(0..n_test).collect::<Vec<_>>())),
    )
}

#[test]
fn short_training_beats_chance() {
    let g = gpu();
    let mut s = tiny(4);
    s.sgd.lr = 0.05;
    s.cutout = 0;
    s.drop_path = 0.0;
    let (train, test) = data(512, 400);
    let mut run = Retrain::new(&g, s).unwrap();
    while !run.finished() {
        run.run_epoch(&train, &test, &mut |_| {}).unwrap();
    }
    let first = &run.history[0];
    let last = run.history.last().unwrap();
    assert!(last.train.loss < first.train.loss, "{:?}", run.history);
    assert!(
        last.test.acc > 0.15,
        "test accuracy {} is not above chance (0.10)",
        last.test.acc
    );
}

#[test]
fn replayed_test_passes_equal_eager_ones() {
    let g = gpu();
    // 80 test images in batches of 32: two shapes (32 and 16), each recorded once and
    // replayed in the later batches and passes.
    let (train, test) = data(64, 80);
    let mut run = Retrain::new(&g, tiny(1)).unwrap();
    run.run_epoch(&train, &test, &mut |_| {}).unwrap();
    let aug = darts_minus::data::Augment::none(run.settings.mean, run.settings.std);
    let batches = || {
        darts_minus::data::epoch_batches(test.clone(), (0..test.len).collect(), 32, aug.clone(), 0)
            .unwrap()
    };
    let classes = test.num_classes();
    let replayed = run.evaluate(batches(), classes).unwrap();
    let again = run.evaluate(batches(), classes).unwrap();
    assert_eq!(run.eval_programs_recorded(), 2);
    run.replay = false;
    let eager = run.evaluate(batches(), classes).unwrap();
    assert_eq!(run.eval_programs_recorded(), 2);
    assert_eq!(replayed, eager);
    assert_eq!(again, eager);
    assert_eq!(eager.n, 80);
    assert_eq!(eager.confusion.iter().flatten().sum::<u64>(), 80);
}

#[test]
fn resumed_training_equals_uninterrupted() {
    let g = gpu();
    let (train, test) = data(64, 32);
    let mut full = Retrain::new(&g, tiny(2)).unwrap();
    while !full.finished() {
        full.run_epoch(&train, &test, &mut |_| {}).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("darts-minus-train-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("checkpoint.safetensors");
    let mut first = Retrain::new(&g, tiny(2)).unwrap();
    first.run_epoch(&train, &test, &mut |_| {}).unwrap();
    first.save(&ckpt).unwrap();
    let mut resumed = Retrain::resume(&g, &ckpt).unwrap();
    resumed.run_epoch(&train, &test, &mut |_| {}).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let a: Vec<_> = full
        .history
        .iter()
        .map(|r| (r.train.loss, r.test.loss, r.test.acc))
        .collect();
    let b: Vec<_> = resumed
        .history
        .iter()
        .map(|r| (r.train.loss, r.test.loss, r.test.acc))
        .collect();
    assert_eq!(a, b);
}

#[test]
fn a_diverged_test_pass_stops_the_run() {
    // One step with an absurd learning rate: finite training loss, NaN test loss. It used to
    // report "test accuracy 100 %" (NaN logits scored as right) and complete the epoch.
    let g = gpu();
    let mut s = tiny(2);
    s.sgd.lr = 1e30;
    s.sgd.grad_clip = 1e30;
    s.max_steps = Some(1);
    s.batch_size = 8;
    s.network.layers = 3;
    let (train, test) = data(16, 16);
    let mut run = Retrain::new(&g, s).unwrap();
    let err = run
        .run_epoch(&train, &test, &mut |_| {})
        .expect_err("a NaN test loss must stop the run");
    let msg = err.to_string();
    assert!(
        msg.contains("diverged") && msg.contains("test loss") && msg.contains("No epoch completed"),
        "{msg}"
    );
    assert!(run.history.is_empty());
}
