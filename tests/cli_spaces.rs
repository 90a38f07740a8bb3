//! RobustDARTS' spaces from the command line: a tiny search in each of S1–S4 with all its
//! outputs, an S4 search resumed after its first epoch ending where an uninterrupted one
//! does, and the errors a user meets (an unknown space, a checkpoint of another space, a
//! genotype with an op its edge does not have); a genotype with `noise` retrains.

mod common;

use common::cli::{bin, fails_with, tmp};
use darts_minus::data::{search_split, Dataset, Split};
use darts_minus::search::outputs::RunDir;
use darts_minus::search::trainer::{Search, SearchSettings};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// A CIFAR-10 binary folder of 32 random images: 16 train the weights, 16 the α (two steps
/// of 8 each per epoch).
fn tiny_cifar(tag: &str) -> PathBuf {
    common::cli::tiny_cifar(tag, 32)
}

#[track_caller]
fn ok(run: Output) -> String {
    let out = String::from_utf8_lossy(&run.stdout).to_string();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{out}\n{err}");
    out
}

/// `search --space <space>` on `data`, C=2, 3 cells, batch 8, into `out`.
fn search(space: &str, data: &Path, out: &Path, epochs: &str) -> Command {
    let mut c = bin();
    c.args([
        "search",
        "--space",
        space,
        "--channels",
        "2",
        "--layers",
        "3",
    ])
    .args(["--batch-size", "8", "--epochs", epochs, "--data"])
    .arg(data)
    .arg("--out")
    .arg(out);
    c
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The metrics lines without their wall-clock timings.
fn untimed_metrics(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for k in [
                "epoch_seconds",
                "steps_seconds",
                "step_time_ms",
                "images_per_sec",
            ] {
                v[k] = serde_json::Value::Null;
            }
            v
        })
        .collect()
}

#[test]
fn every_robustdarts_space_searches_and_writes_its_outputs() {
    let data = tiny_cifar("data");
    // (space, candidates its edges may name, one its genotype never names)
    let cases = [
        ("s1", "dil_conv_5x5", "sep_conv_5x5"),
        ("s2", "sep_conv_3x3", "dil_conv_3x3"),
        ("s3", "skip_connect", "'none'"),
        ("s4", "noise", "skip_connect"),
    ];
    for (space, has, never) in cases {
        let out = tmp(space);
        let stdout = ok(search(space, &data, &out, "1").output().unwrap());
        assert!(stdout.contains(&format!("{space} space")), "{stdout}");
        for f in [
            "checkpoint.safetensors",
            "metrics.jsonl",
            "genotype.txt",
            "alphas_normal.svg",
            "alphas_reduce.svg",
            "cell_normal.svg",
            "cell_reduce.svg",
            "curves.svg",
        ] {
            assert!(out.join(f).is_file(), "{space}: no {f}");
        }
        let g = json(&out.join("genotype.json"));
        assert_eq!(g["space"], space);
        let lists = g["edge_ops"]["alphas_normal"].as_array().unwrap();
        assert_eq!(lists.len(), 14);
        let named = |l: &serde_json::Value| l.as_array().unwrap().iter().any(|op| op == has);
        assert!(lists.iter().any(named), "{space}: {lists:?}");
        let text = std::fs::read_to_string(out.join("genotype.txt")).unwrap();
        assert!(!text.contains(never), "{space}: {text}");
        assert!(std::fs::read_to_string(out.join("alphas_normal.svg"))
            .unwrap()
            .contains(has));
        // The genotype command reads the checkpoint in its own space.
        let again = ok(bin().arg("genotype").arg(&out).output().unwrap());
        assert_eq!(again.trim(), text.trim(), "{space}");
        std::fs::remove_dir_all(&out).ok();
    }
    std::fs::remove_dir_all(&data).ok();
}

#[test]
fn an_s4_search_resumed_after_its_first_epoch_ends_as_an_uninterrupted_one() {
    let data = tiny_cifar("resume-data");
    let full = tmp("s4-full");
    ok(search("s4", &data, &full, "2").output().unwrap());

    // The first epoch of the same run, written as the command writes it: the checkpoint a
    // run stopped after epoch 1 leaves.
    let (_, meta) =
        darts_minus::checkpoint::read_with_metadata(&full.join("checkpoint.safetensors")).unwrap();
    let settings: SearchSettings = serde_json::from_str(&meta["settings"]).unwrap();
    let gpu = darts_minus::gpu::Gpu::new(&Default::default()).unwrap();
    let set = Arc::new(Dataset::open(&data, Split::Train).unwrap());
    let split = search_split(set.len);
    let mut first = Search::new(&gpu, settings).unwrap();
    first.run_epoch(&set, &split, &mut |_| {}).unwrap();
    let part = tmp("s4-part");
    let claim = darts_minus::run::outdir::Claim::New { overwrite: false };
    RunDir::claim(&part, claim)
        .unwrap()
        .write_epoch(&first)
        .unwrap();
    drop(first);

    let stdout = ok(bin()
        .args(["search", "--resume"])
        .arg(&part)
        .output()
        .unwrap());
    assert!(stdout.contains("resuming after epoch 1"), "{stdout}");
    assert_eq!(untimed_metrics(&part), untimed_metrics(&full));
    let text = |d: &Path| std::fs::read_to_string(d.join("genotype.txt")).unwrap();
    assert_eq!(text(&part), text(&full));
    for d in [&data, &full, &part] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn robustdarts_mistakes_are_refused_by_name() {
    let data = tiny_cifar("mistakes-data");
    fails_with(
        bin().args(["search", "--space", "s5"]),
        &["invalid value 's5'", "s1", "s4"],
    );
    fails_with(
        bin()
            .args(["search", "--space", "s1", "--nodes", "5", "--out"])
            .arg(tmp("nodes")),
        &["RobustDARTS S1", "--nodes 4"],
    );
    // An S2 checkpoint starting an S4 search (S4's weights are a subset of S2's).
    let s2 = tmp("s2-run");
    ok(search("s2", &data, &s2, "1").output().unwrap());
    let s4 = tmp("s4-from-s2");
    fails_with(
        search("s4", &data, &s4, "1").arg("--init-from").arg(&s2),
        &["RobustDARTS S2 space", "RobustDARTS S4 space", "--space s2"],
    );
    fails_with(
        bin().args(["genotype", "--space", "s4"]).arg(&s2),
        &["RobustDARTS S2 space, not RobustDARTS S4"],
    );
    // Retraining a genotype with noise, as the reference does (pure N(0, 1) on that edge):
    // it trains and evaluates, and the same seed draws the same noise again.
    let noisy = "Genotype(normal=[('noise', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('sep_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 2), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('sep_conv_3x3', 1)], reduce_concat=[2, 3, 4, 5])";
    let retrain = |out: &Path| {
        let mut c = bin();
        c.args([
            "train",
            "--genotype",
            noisy,
            "--channels",
            "2",
            "--layers",
            "3",
        ])
        .args(["--epochs", "1", "--batch-size", "8", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(out);
        ok(c.output().unwrap())
    };
    let (a, b) = (tmp("noisy-a"), tmp("noisy-b"));
    retrain(&a);
    retrain(&b);
    let metrics = untimed_metrics(&a);
    assert!(metrics[0]["train_loss"]
        .as_f64()
        .is_some_and(f64::is_finite));
    assert_eq!(metrics, untimed_metrics(&b));
    let eval = ok(bin().arg("eval").arg(&a).output().unwrap());
    assert!(eval.contains("top-1"), "{eval}");
    // A search's genotype.json edited to an op its edge does not have.
    let gj = s2.join("genotype.json");
    let mut edited = json(&gj);
    edited["genotype"]["darts"]["normal"][0][0] = "dil_conv_5x5".into();
    std::fs::write(&gj, edited.to_string()).unwrap();
    fails_with(
        bin()
            .args(["train", "--genotype"])
            .arg(&s2)
            .arg("--out")
            .arg(tmp("edited")),
        &[
            "'dil_conv_5x5'",
            "RobustDARTS S2",
            "skip_connect, sep_conv_3x3 only",
        ],
    );
    // The refused S4 search leaves its (empty) output directory behind.
    for d in [&data, &s2, &s4, &a, &b] {
        std::fs::remove_dir_all(d).ok();
    }
}
