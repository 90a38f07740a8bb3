//! Whole searches on the built-in mini set with tiny networks: the loss falls, a resumed run
//! equals an uninterrupted one, NAS-Bench-201 cells are looked up, bad inputs are refused.

mod common;

use common::{gpu, strategy_of};
use darts_minus::checkpoint::module_entries;
use darts_minus::data::Dataset;
use darts_minus::search::darts_net::DartsConfig;
use darts_minus::search::nb201_net::Nb201Config;
use darts_minus::search::trainer::{
    Derived, EpochRecord, Search, SearchSettings, Space, ValPairing,
};
use std::sync::Arc;

fn tiny_darts(epochs: usize) -> SearchSettings {
    let mut s = SearchSettings::darts_paper();
    s.space = Space::Darts(DartsConfig {
        channels: 4,
        layers: 3,
        classes: 10,
        nodes: 4,
        aux: true,
        ..DartsConfig::default()
    });
    s.epochs = epochs;
    s.batch_size = 32;
    s.beta = darts_minus::search::schedule::BetaSchedule::linear(epochs);
    s
}

/// The first `n` images for training and the next `n` for validation.
fn subset(n: usize) -> (Arc<Dataset>, (Vec<usize>, Vec<usize>)) {
    let data = Dataset::builtin_train().unwrap();
    (Arc::new(data), ((0..n).collect(), (n..2 * n).collect()))
}

fn state(search: &Search) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<(String, Vec<f32>)> = module_entries(search.network(), "")
        .unwrap()
        .into_iter()
        .map(|(n, e)| match e {
            darts_minus::checkpoint::Entry::F32 { data, .. } => (n, data),
            // Batch-norm counters too: a replayed step must advance them as a recorded one.
            darts_minus::checkpoint::Entry::I64 { data, .. } => {
                (n, data.iter().map(|&c| c as f32).collect())
            }
        })
        .collect();
    for (n, t) in search.network().alphas() {
        v.push((n.to_string(), t.to_vec().unwrap()));
    }
    v
}

/// The epoch records without their wall-clock timings.
fn untimed(s: &Search) -> Vec<EpochRecord> {
    s.history
        .iter()
        .map(|r| EpochRecord {
            timing: Default::default(),
            ..r.clone()
        })
        .collect()
}

#[test]
fn training_loss_falls_on_the_mini_set() {
    let g = gpu();
    let mut s = tiny_darts(6);
    s.augment = false;
    s.sgd.lr = 0.05;
    let (data, split) = subset(64);
    let mut search = Search::new(&g, s).unwrap();
    let mut losses = Vec::new();
    while !search.finished() {
        let r = search.run_epoch(&data, &split, &mut |_| {}).unwrap();
        assert!(r.val.loss.is_finite() && r.train.loss.is_finite());
        losses.push(r.train.loss);
    }
    assert_eq!(losses.len(), 6);
    assert!(
        losses[5] < 0.8 * losses[0],
        "training loss did not fall: {losses:?}"
    );
    // Every epoch derives a genotype with two inputs per node.
    let Derived::Darts(g) = &search.history[5].genotype else {
        panic!("DARTS genotype expected")
    };
    assert_eq!(g.normal.len(), 8);
    assert!(
        search.history[5].beta < search.history[0].beta,
        "β must decay"
    );
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    // Both spaces: NAS-Bench-201's step also carries α's last gradient (for its clipping norm).
    let g = gpu();
    let (data, split) = subset(48);
    for settings in [tiny_darts(2), tiny_nb201(2)] {
        let mut full = Search::new(&g, settings.clone()).unwrap();
        while !full.finished() {
            full.run_epoch(&data, &split, &mut |_| {}).unwrap();
        }

        let dir = std::env::temp_dir().join(format!("darts-minus-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ckpt = dir.join("checkpoint.safetensors");
        let mut first = Search::new(&g, settings).unwrap();
        first.run_epoch(&data, &split, &mut |_| {}).unwrap();
        first.save(&ckpt).unwrap();
        drop(first);
        let mut resumed = Search::resume(&g, &ckpt).unwrap();
        assert_eq!((resumed.epoch, resumed.history.len()), (1, 1));
        resumed.run_epoch(&data, &split, &mut |_| {}).unwrap();
        std::fs::remove_dir_all(&dir).ok();

        assert_eq!(resumed.step, full.step);
        // Everything but wall-clock timings is identical.
        assert_eq!(untimed(&resumed), untimed(&full));
        for ((name, a), (_, b)) in state(&full).iter().zip(state(&resumed).iter()) {
            assert_eq!(a, b, "{name} differs after resuming");
        }
    }
}

fn tiny_nb201(epochs: usize) -> SearchSettings {
    let mut s = SearchSettings::nb201_benchmark();
    s.space = Space::Nb201(Nb201Config {
        channels: 4,
        cells_per_stage: 1,
        classes: 10,
        aux: true,
    });
    s.epochs = epochs;
    s.batch_size = 32;
    s
}

#[test]
fn nb201_alpha_steps_draw_validation_images_as_the_benchmark_does() {
    // The benchmark's preset pairs each training image with a random validation image; the
    // DARTS- queue is one flag away, and the two runs see different α-step batches.
    let g = gpu();
    let (data, split) = subset(48);
    let random = tiny_nb201(1);
    assert_eq!(random.val_pairing, ValPairing::Random);
    assert_eq!(SearchSettings::darts_paper().val_pairing, ValPairing::Queue);
    let queue = SearchSettings {
        val_pairing: ValPairing::Queue,
        ..random.clone()
    };
    let mut alphas = Vec::new();
    for settings in [random.clone(), random, queue] {
        let mut s = Search::new(&g, settings).unwrap();
        s.run_epoch(&data, &split, &mut |_| {}).unwrap();
        alphas.push(s.network().alphas()[0].1.to_vec().unwrap());
    }
    assert_eq!(alphas[0], alphas[1], "the draws are seeded");
    assert_ne!(alphas[0], alphas[2]);
}

#[test]
fn replayed_steps_equal_eager_steps() {
    let g = gpu();
    // 80 images in batches of 32: two full steps (recorded, then replayed) and a smaller
    // last one (a second shape: recorded once, replayed in later epochs) per epoch, in both
    // spaces and step orders; the
    // DARTS space also with the GPU launch strategy (split batch norms, statistics from the
    // producing kernels, four-parameter SGD), whatever this adapter is.
    let cases = [
        (tiny_darts(2), None),
        (tiny_nb201(2), None),
        (tiny_darts(1), Some(false)),
    ];
    for (settings, costly) in cases {
        g.set_strategy(costly.map(strategy_of));
        let (data, split) = subset(80);
        let run = |replay: bool| {
            let mut search = Search::new(&g, settings.clone()).unwrap();
            search.replay = replay;
            while !search.finished() {
                search.run_epoch(&data, &split, &mut |_| {}).unwrap();
            }
            search
        };
        let eager = run(false);
        let replayed = run(true);
        assert_eq!(eager.recorded_dispatches(), 0);
        assert!(replayed.recorded_dispatches() > 100);
        // One program per batch shape, not one per shape per epoch; the same for the
        // validation forward (its values are in the records compared below).
        assert_eq!(replayed.programs_recorded(), 2);
        assert_eq!(replayed.eval_programs_recorded(), 2);
        assert_eq!(eager.eval_programs_recorded(), 0);
        assert_eq!(untimed(&replayed), untimed(&eager));
        for r in &replayed.history {
            let t = r.timing;
            assert!(
                t.steps_seconds > 0.0 && t.steps_seconds <= t.epoch_seconds,
                "{t:?}"
            );
        }
        for ((name, a), (_, b)) in state(&eager).iter().zip(state(&replayed).iter()) {
            assert_eq!(a, b, "{name} differs between replayed and eager steps");
        }
    }
}

#[test]
fn a_replayed_step_reuses_its_program_and_memory() {
    let g = gpu();
    let (data, _) = subset(64);
    let batch = |from: usize| {
        let idx: Vec<usize> = (from..from + 16).collect();
        darts_minus::data::epoch_batches(
            data.clone(),
            idx,
            16,
            darts_minus::data::Augment::none(
                darts_minus::data::CIFAR10_MEAN,
                darts_minus::data::CIFAR10_STD,
            ),
            0,
        )
        .unwrap()
        .next()
        .unwrap()
    };
    let (t1, v1, t2, v2) = (batch(0), batch(16), batch(32), batch(48));
    let mut search = Search::new(&g, tiny_darts(1)).unwrap();
    search.set_epoch(0).unwrap();
    search.step(&t1, &v1).unwrap();
    let program = search.recorded_dispatches();
    let reserved = g.memory().reserved;
    let before = g.dispatch_count();
    search.step(&t2, &v2).unwrap();
    // The second step is the recorded program, not a rebuilt graph: the same dispatches,
    // and no new buffers.
    assert_eq!(g.dispatch_count() - before, program as u64);
    assert_eq!(g.memory().reserved, reserved);
}

#[test]
fn nb201_search_looks_up_the_benchmark() {
    let g = gpu();
    let mut s = SearchSettings::nb201_benchmark();
    s.space = Space::Nb201(Nb201Config {
        channels: 4,
        cells_per_stage: 1,
        classes: 10,
        aux: true,
    });
    s.epochs = 1;
    s.batch_size = 16;
    s.max_steps = Some(2);
    let (data, split) = subset(32);
    let mut search = Search::new(&g, s).unwrap();
    let r = search.run_epoch(&data, &split, &mut |_| {}).unwrap();
    assert_eq!(r.steps, 2);
    assert!(search.finished());
    let Derived::Nb201(arch) = &r.genotype else {
        panic!("NB201 arch expected")
    };
    assert_eq!(r.genotype_text, arch.arch_string());
    let entry = r.nb201.as_ref().expect("every NB201 cell is in the table");
    assert!(entry.cifar10_test > 0.0 && entry.cifar10_test <= 100.0);
}

#[test]
fn checkpoint_from_another_space_is_refused() {
    let g = gpu();
    let dir = std::env::temp_dir().join(format!("darts-minus-space-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("nb201.safetensors");
    let mut s = SearchSettings::nb201_benchmark();
    s.space = Space::Nb201(Nb201Config {
        channels: 4,
        cells_per_stage: 1,
        classes: 10,
        aux: true,
    });
    Search::new(&g, s).unwrap().save(&ckpt).unwrap();
    let mut darts = Search::new(&g, tiny_darts(1)).unwrap();
    let msg = darts.init_from(&ckpt).unwrap_err().to_string();
    assert!(
        msg.contains("nb201.safetensors")
            && msg.contains("from a search in the NAS-Bench-201 space")
            && msg.contains("--space nb201"),
        "{msg}"
    );

    let bad = dir.join("garbage.safetensors");
    std::fs::write(&bad, b"not a checkpoint").unwrap();
    let msg = Search::resume(&g, &bad).err().unwrap().to_string();
    assert!(
        msg.contains("garbage.safetensors") && msg.contains("not a valid safetensors"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn invalid_settings_are_refused() {
    let g = gpu();
    let mut s = tiny_darts(1);
    s.batch_size = 1;
    assert!(Search::new(&g, s)
        .err()
        .unwrap()
        .to_string()
        .contains("batch-size"));
    let mut s = tiny_darts(1);
    s.space = Space::Darts(DartsConfig {
        layers: 2,
        ..DartsConfig::default()
    });
    assert!(Search::new(&g, s)
        .err()
        .unwrap()
        .to_string()
        .contains("3 cells"));
}

#[test]
fn a_diverged_validation_stops_the_run_and_never_counts_as_correct() {
    // One step with an absurd learning rate: its own loss (before the update) is finite, the
    // validation after it is not. It used to report "val acc 100 %" (NaN logits rank first)
    // and complete the epoch.
    let g = gpu();
    let mut s = tiny_darts(2);
    s.sgd.lr = 1e30;
    s.sgd.grad_clip = 1e30;
    s.max_steps = Some(1);
    s.batch_size = 8;
    let (data, split) = subset(32);
    let mut search = Search::new(&g, s).unwrap();
    let err = search
        .run_epoch(&data, &split, &mut |_| {})
        .expect_err("a NaN validation loss must stop the run");
    let msg = err.to_string();
    assert!(
        msg.contains("diverged")
            && msg.contains("validation loss")
            && msg.contains("No epoch completed"),
        "{msg}"
    );
    assert!(
        search.history.is_empty(),
        "the diverged epoch must not be recorded"
    );
}

#[test]
fn diverging_loss_stops_with_a_clear_error() {
    let g = gpu();
    let mut s = tiny_darts(1);
    s.sgd.lr = 1e30;
    s.sgd.grad_clip = 1e30;
    s.max_steps = Some(4);
    s.batch_size = 8;
    let (data, split) = subset(32);
    let mut search = Search::new(&g, s).unwrap();
    let err = search
        .run_epoch(&data, &split, &mut |_| {})
        .expect_err("a NaN loss must stop the run");
    let msg = err.to_string();
    assert!(msg.contains("diverged") && msg.contains("--lr"), "{msg}");
}
