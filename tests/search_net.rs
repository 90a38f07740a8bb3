//! The search networks have exactly the reference's weights, names and shapes.

mod common;

use common::gpu;
use darts_minus::nn::darts_ops::DartsSpace;
use darts_minus::nn::{count_parameters, Module};
use darts_minus::search::darts_net::{DartsConfig, DartsNetwork};
use darts_minus::search::nb201_net::{Nb201Config, Nb201Network};
use rand::SeedableRng;

fn rng() -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(0)
}

#[test]
fn darts_minus_search_network_has_1_971_578_weights() {
    let g = gpu();
    let net = DartsNetwork::new(&g, &mut rng(), DartsConfig::default()).unwrap();
    assert_eq!(count_parameters(&net), 1_971_578);
}

#[test]
fn plain_darts_search_network_has_1_930_618_weights() {
    let g = gpu();
    let cfg = DartsConfig {
        aux: false,
        ..DartsConfig::default()
    };
    let net = DartsNetwork::new(&g, &mut rng(), cfg).unwrap();
    assert_eq!(count_parameters(&net), 1_930_618);
}

#[test]
fn nb201_search_network_has_1_692_826_weights() {
    let g = gpu();
    let net = Nb201Network::new(&g, &mut rng(), Nb201Config::default()).unwrap();
    assert_eq!(count_parameters(&net), 1_692_826);
}

/// Weights of the DARTS- reference's search network (C=16, 8 cells, CIFAR-10) in each of its
/// spaces, with and without the auxiliary skip: counted by running the reference's own
/// `src/search/model_search.py` with `src/spaces.py` (PyTorch, CPU), `s5` being DARTS'.
const REFERENCE_COUNTS: [(DartsSpace, usize, usize); 5] = [
    (DartsSpace::Darts, 1_971_578, 1_930_618),
    (DartsSpace::S1, 446_106, 405_146),
    (DartsSpace::S2, 706_426, 665_466),
    (DartsSpace::S3, 706_426, 665_466),
    (DartsSpace::S4, 665_466, 624_506),
];

#[test]
fn every_darts_cell_space_has_the_references_weight_count() {
    let g = gpu();
    for (candidates, with_aux, without) in REFERENCE_COUNTS {
        for (aux, want) in [(true, with_aux), (false, without)] {
            let cfg = DartsConfig {
                aux,
                candidates,
                ..DartsConfig::default()
            };
            let net = DartsNetwork::new(&g, &mut rng(), cfg).unwrap();
            let name = candidates.name();
            assert_eq!(count_parameters(&net), want, "{name}, aux {aux}");
            let width = candidates.width();
            assert_eq!(net.alphas_normal.shape(), [14, width], "{name}");
            assert_eq!(net.alphas_reduce.shape(), [14, width], "{name}");
        }
    }
}

#[test]
fn s1_names_each_candidate_by_its_index_in_the_edges_own_list() {
    // As the reference's state_dict (C=4, 5 cells: cell 1 reduces). Normal edge 5 is
    // [max_pool_3x3, skip_connect]: a pooling BN at index 0, nothing at 1. Reduction edge 1
    // is [max_pool_3x3, dil_conv_3x3] at stride 2, with its auxiliary FactorizedReduce.
    let g = gpu();
    let cfg = DartsConfig {
        channels: 4,
        layers: 5,
        candidates: DartsSpace::S1,
        ..DartsConfig::default()
    };
    let net = DartsNetwork::new(&g, &mut rng(), cfg).unwrap();
    let mut names = Vec::new();
    net.visit("", &mut |n, _| names.push(n.to_string()));
    let under = |p: &str| -> Vec<&str> {
        names
            .iter()
            .filter(|n| n.starts_with(p))
            .map(|n| &n[p.len()..])
            .collect()
    };
    let bn = ["running_mean", "running_var", "num_batches_tracked"];
    let want: Vec<String> = bn.iter().map(|s| format!("_ops.0.1.{s}")).collect();
    assert_eq!(under("cells.0._ops.5."), want);
    let mut want: Vec<String> = bn.iter().map(|s| format!("_ops.0.1.{s}")).collect();
    want.extend(["_ops.1.op.1.weight".into(), "_ops.1.op.2.weight".into()]);
    want.extend(bn.iter().map(|s| format!("_ops.1.op.3.{s}")));
    want.extend([
        "auxiliary_op.conv_1.weight".into(),
        "auxiliary_op.conv_2.weight".into(),
    ]);
    want.extend(bn.iter().map(|s| format!("auxiliary_op.bn.{s}")));
    assert_eq!(under("cells.1._ops.1."), want);
}

#[test]
fn s1_with_other_than_four_nodes_is_refused_by_name() {
    let g = gpu();
    let cfg = DartsConfig {
        nodes: 5,
        candidates: DartsSpace::S1,
        ..DartsConfig::default()
    };
    let Err(e) = DartsNetwork::new(&g, &mut rng(), cfg) else {
        panic!("S1 has lists for 14 edges only")
    };
    assert!(e.to_string().contains("--nodes 4"), "{e}");
}

/// Two edges reading one state: with one `SharedPools` the state is pooled once (one launch
/// fewer, for both pooling candidates of both edges), and the outputs and the state's gradient
/// are those of two edges pooling it each on their own.
#[test]
fn edges_reading_one_state_pool_it_once() {
    use darts_minus::autodiff::{Tape, Tensor};
    use darts_minus::nn::darts_ops::DARTS_OPS;
    use darts_minus::nn::mixed::{EdgeWeights, MixedOp, SharedPools};
    use darts_minus::nn::Ctx;
    let g = gpu();
    let mut r = rng();
    let edges: Vec<MixedOp> = (0..2)
        .map(|_| MixedOp::new(&g, &mut r, &DARTS_OPS, 4, 1, true, None).unwrap())
        .collect();
    let data: Vec<f32> = (0..2 * 4 * 8 * 8)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let alphas: Vec<f32> = (0..2 * 8).map(|i| (i % 5) as f32 * 0.1).collect();
    let run = |shared: bool| {
        let x = Tensor::from_slice(&g, &[2, 4, 8, 8], &data)
            .unwrap()
            .with_grad();
        let a = Tensor::from_slice(&g, &[2, 8], &alphas).unwrap();
        let beta = Tensor::from_slice(&g, &[1], &[0.5]).unwrap();
        let mut tape = Tape::new(&g);
        let w = tape.softmax_rows(&a).unwrap();
        g.sync().unwrap();
        let before = g.dispatch_count();
        let mut pools = SharedPools::default();
        let mut outs = Vec::new();
        for (e, edge) in edges.iter().enumerate() {
            if !shared {
                pools = SharedPools::default();
            }
            let ew = EdgeWeights {
                table: &w,
                edge: e,
                beta: Some((&beta, 0)),
            };
            let ctx = Ctx { train: true };
            outs.push(edge.forward(&mut tape, &x, ew, &mut pools, ctx).unwrap());
        }
        g.sync().unwrap();
        let launches = g.dispatch_count() - before;
        let sum = tape.sum(&[&outs[0], &outs[1]]).unwrap();
        let loss = tape.sum_all(&sum).unwrap();
        let grads = tape.backward(&loss).unwrap();
        let gx = grads.get(&x).unwrap().to_vec().unwrap();
        let outs: Vec<Vec<f32>> = outs.iter().map(|t| t.to_vec().unwrap()).collect();
        (launches, outs, gx)
    };
    let (shared_launches, shared_outs, shared_gx) = run(true);
    let (own_launches, own_outs, own_gx) = run(false);
    assert_eq!(
        shared_launches + 1,
        own_launches,
        "one pooling launch fewer"
    );
    assert_eq!(shared_outs, own_outs);
    for (i, (a, b)) in shared_gx.iter().zip(&own_gx).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "grad x[{i}]: {a} vs {b}"
        );
    }
}
