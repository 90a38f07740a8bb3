//! One search step against PyTorch: the same initial weights and α (loaded by the reference's
//! state_dict names through `--init-from`), the same batches, then one α step (Adam) and one
//! w step (SGD, momentum, weight decay, clipping). Every weight, α and batch-norm statistic
//! must match the reference's (tools/make_fixtures.py, `search_step`).

mod common;

use common::{gpu, strategy_of, Tolerance};
use darts_minus::checkpoint::{module_entries, read, Entry};
use darts_minus::data::Batch;
use darts_minus::search::darts_net::DartsConfig;
use darts_minus::search::trainer::{Search, SearchSettings, Space};
use std::path::Path;

#[test]
fn one_darts_minus_step_matches_pytorch() {
    // With the launch strategy of CPU adapters (fused mixed-edge tails, one-pass reductions)
    // and of GPUs (batch-norm reductions split over workgroups, statistics written by the
    // producing 1×1 kernels), whatever this adapter is.
    for costly in [true, false] {
        step_case(costly);
    }
}

fn step_case(costly: bool) {
    let g = gpu();
    g.set_strategy(Some(strategy_of(costly)));
    g.set_channel_split(if costly { Some(1) } else { Some(4) });
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let fx = read(&dir.join("search_step_after.safetensors")).unwrap();
    let mut settings = SearchSettings::darts_paper();
    settings.space = Space::Darts(DartsConfig {
        channels: 4,
        layers: 5,
        classes: 10,
        nodes: 4,
        aux: true,
    });
    let mut search = Search::new(&g, settings).unwrap();
    search
        .init_from(&dir.join("search_step_init.safetensors"))
        .unwrap();
    search.set_image_size(16, 16);
    let (lr, beta) = search.set_epoch(0).unwrap();
    assert_eq!((lr, beta), (0.025, 1.0));
    let batch = |x: &str, y: &str| Batch {
        x: fx[x].data.iter().map(|&v| v as f32).collect(),
        y: fx[y].data.iter().map(|&v| v as u32).collect(),
        indices: Vec::new(),
    };
    let stats = search
        .step(&batch("x_train", "y_train"), &batch("x_val", "y_val"))
        .unwrap();
    let want_loss = fx["loss_weights"].data[0];
    assert!(
        (stats.loss as f64 - want_loss).abs() < 1e-4 * want_loss.abs(),
        "w-step loss {} vs {want_loss}",
        stats.loss
    );

    // Weights move by lr·(momentum buffer): compare the results with an absolute part scaled to
    // each tensor, since f32 gradients through 5 cells agree with float64 to about 1e-4.
    let tol = Tolerance {
        rel: 1e-4,
        abs: 1e-5,
    };
    let mut checked = 0;
    for (name, entry) in module_entries(search.network(), "").unwrap() {
        let want = &fx[&format!("after.{name}")];
        match entry {
            Entry::F32 { data, .. } => tol
                .scaled(&want.data)
                .assert_close(&name, &data, &want.data),
            Entry::I64 { data, .. } => assert_eq!(data[0] as f64, want.data[0], "{name}"),
        }
        checked += 1;
    }
    for (name, t) in search.network().alphas() {
        let want = &fx[&format!("after.{name}")];
        tol.assert_close(name, &t.to_vec().unwrap(), &want.data);
        checked += 1;
    }
    assert!(checked > 2000, "only {checked} tensors compared");
}
