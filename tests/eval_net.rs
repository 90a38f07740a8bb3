//! The evaluation network built from a genotype (SPEC §8) against PyTorch: exact parameter
//! counts of the paper-sized networks, and one training step (main + 0.4·auxiliary loss, SGD
//! with momentum, weight decay, clipping) of a small one.

mod common;

use common::{gpu, Tolerance};
use darts_minus::autodiff::{Labels, Tape, Tensor};
use darts_minus::checkpoint::{load_module, module_entries, read, Entry};
use darts_minus::nn::{count_parameters, parameters, Ctx};
use darts_minus::optim::{clip_grad_norm, Sgd};
use darts_minus::search::genotype::named;
use darts_minus::search::nb201::Nb201Arch;
use darts_minus::train::darts_eval::{DartsEvalNetwork, EvalConfig, EvalCtx};
use darts_minus::train::nb201_eval::Nb201EvalNetwork;
use darts_minus::train::EvalNet;
use rand::SeedableRng;
use std::path::Path;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn paper_networks_have_the_reference_parameter_counts() {
    let g = gpu();
    let counts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("eval_counts.json")).unwrap(),
    )
    .unwrap();
    for name in ["DARTS_V2", "DARTS_MINUS"] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let net = DartsEvalNetwork::new(&g, &mut rng, &named(name).unwrap(), EvalConfig::default())
            .unwrap();
        let without = net.count_without_aux();
        assert_eq!(
            without as u64,
            counts[name]["without_aux"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            (count_parameters(&net) - without) as u64,
            counts[name]["aux_head"].as_u64().unwrap(),
            "{name} auxiliary head"
        );
        // Multiply-adds of one 32×32 image in eval mode, as PyTorch forward hooks count them.
        let x = Tensor::zeros(&g, &[1, 3, 32, 32]).unwrap();
        let mut tape = Tape::inference(&g);
        net.forward(
            &mut tape,
            &x,
            EvalCtx {
                ctx: Ctx { train: false },
                drop: None,
            },
        )
        .unwrap();
        assert_eq!(
            tape.macs(),
            counts[name]["multiply_adds"].as_u64().unwrap(),
            "{name} multiply-adds"
        );
    }
    // The published figure for DARTS (second order) at C = 36, 20 cells.
    assert_eq!(counts["DARTS_V2"]["without_aux"].as_u64(), Some(3_349_342));
}

#[test]
fn nb201_training_network_has_the_reference_weights_and_names() {
    let g = gpu();
    let counts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("eval_counts.json")).unwrap(),
    )
    .unwrap();
    let best = Nb201Arch::parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|").unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let net = Nb201EvalNetwork::new(&g, &mut rng, &best, 16, 5, 10).unwrap();
    assert_eq!(
        net.count_without_aux() as u64,
        counts["NB201_BEST"]["without_aux"].as_u64().unwrap()
    );
    let mut names: Vec<String> = module_entries(&net, "")
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let want: Vec<String> = counts["NB201_BEST"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, want);
    // It trains: a forward and backward on a small batch.
    let x = Tensor::zeros(&g, &[2, 3, 32, 32]).unwrap();
    let mut tape = Tape::new(&g);
    let (logits, aux) = net
        .forward(
            &mut tape,
            &x,
            EvalCtx {
                ctx: Ctx { train: true },
                drop: None,
            },
        )
        .unwrap();
    assert!(aux.is_none());
    assert_eq!(logits.shape(), &[2, 10]);
}

#[test]
fn one_training_step_matches_pytorch() {
    let g = gpu();
    let path = fixtures().join("eval_step.safetensors");
    let fx = read(&path).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let cfg = EvalConfig {
        channels: 4,
        layers: 5,
        classes: 10,
        auxiliary: true,
    };
    let net = DartsEvalNetwork::new(&g, &mut rng, &named("DARTS_MINUS").unwrap(), cfg).unwrap();
    load_module(&net, "init", &fx, &path).unwrap();
    let x = Tensor::from_slice(
        &g,
        &[4, 3, 32, 32],
        &fx["x"].data.iter().map(|&v| v as f32).collect::<Vec<_>>(),
    )
    .unwrap();
    let y = Labels::new(
        &g,
        &fx["y"].data.iter().map(|&v| v as u32).collect::<Vec<_>>(),
    )
    .unwrap();
    let mut tape = Tape::new(&g);
    let (logits, aux) = net
        .forward(
            &mut tape,
            &x,
            EvalCtx {
                ctx: Ctx { train: true },
                drop: None,
            },
        )
        .unwrap();
    let aux = aux.expect("training with an auxiliary head");
    let fwd = Tolerance {
        rel: 1e-4,
        abs: 1e-5,
    };
    fwd.scaled(&fx["logits"].data).assert_close(
        "logits",
        &logits.to_vec().unwrap(),
        &fx["logits"].data,
    );
    fwd.scaled(&fx["logits_aux"].data).assert_close(
        "auxiliary logits",
        &aux.to_vec().unwrap(),
        &fx["logits_aux"].data,
    );
    let main = tape.cross_entropy(&logits, &y).unwrap();
    let side = tape.cross_entropy(&aux, &y).unwrap();
    let side = tape.scale(&side, 0.4).unwrap();
    let loss = tape.sum(&[&main, &side]).unwrap();
    fwd.assert_close("loss", &loss.to_vec().unwrap(), &fx["loss"].data);
    let grads = tape.backward(&loss).unwrap();
    let params: Vec<Tensor> = parameters(&net, "").into_iter().map(|(_, t)| t).collect();
    let gs: Vec<&Tensor> = params
        .iter()
        .map(|p| grads.get(p).expect("every weight gets a gradient"))
        .collect();
    clip_grad_norm(&gs, 5.0).unwrap();
    Sgd::new(&g, &params, 0.025, 0.9, 3e-4)
        .unwrap()
        .step(&params, &gs)
        .unwrap();
    for (name, e) in module_entries(&net, "").unwrap() {
        let want = &fx[&format!("after.{name}")];
        match e {
            Entry::F32 { data, .. } => fwd
                .scaled(&want.data)
                .assert_close(&name, &data, &want.data),
            Entry::I64 { data, .. } => assert_eq!(data[0] as f64, want.data[0], "{name}"),
        }
    }
}
