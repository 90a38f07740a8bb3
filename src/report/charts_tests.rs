//! Tests of the α and curve charts (a file of their own to keep charts.rs short).

use super::super::test_util::{assert_file_error, out_dir, svg_texts, unwritable};
use super::*;

use crate::nn::darts_ops::DARTS_OPS;

/// Softmax-like weights drifting apart over `epochs`.
fn history(epochs: usize, edges: usize, ops: usize) -> Vec<Vec<Vec<f32>>> {
    (0..epochs)
        .map(|e| {
            (0..edges)
                .map(|j| {
                    let raw: Vec<f32> = (0..ops)
                        .map(|k| ((k * 7 + j * 3) % 5) as f32 * e as f32 * 0.02)
                        .collect();
                    let z: f32 = raw.iter().map(|v| v.exp()).sum();
                    raw.iter().map(|v| v.exp() / z).collect()
                })
                .collect()
        })
        .collect()
}

fn epochs(n: usize) -> Vec<EpochPoint> {
    (0..n)
        .map(|e| EpochPoint {
            epoch: e,
            train_loss: 2.3 / (1.0 + e as f64 * 0.1),
            val_loss: 2.4 / (1.0 + e as f64 * 0.08),
            train_acc: 0.1 + 0.8 * e as f64 / n as f64,
            val_acc: 0.1 + 0.7 * e as f64 / n as f64,
            beta: Some(1.0 - e as f64 / n as f64),
        })
        .collect()
}

#[test]
fn darts_panels_follow_upstream_edge_order() {
    let p = darts_edge_panels(4);
    assert_eq!(p.len(), 14);
    assert_eq!(p[3].title, "edge 3 (node 1 ← input 1)");
    assert_eq!((p[13].row, p[13].col), (3, 4));
    let n = nb201_edge_panels();
    assert_eq!(n.len(), 6);
    assert_eq!(n[2].title, "edge 2 (node 2 ← node 1)");
    assert_eq!(n[3].title, "edge 3 (node 3 ← node 0)");
}

#[test]
fn alpha_chart_darts_50_epochs() {
    let dir = out_dir("alpha_darts");
    let path = dir.join("alpha.svg");
    let h = history(50, 14, 8);
    alpha_chart(
        &path,
        "normal cell α",
        &[&DARTS_OPS],
        &darts_edge_panels(4),
        &h,
    )
    .unwrap();
    let text = svg_texts(&path);
    for op in DARTS_OPS {
        assert_eq!(text.matches(op).count(), 1, "legend names {op} once");
    }
    assert!(text.contains("edge 3 (node 1 ← input 1)"));
    assert!(text.contains("edge 13 (node 3 ← input 4)"));
    assert!(text.contains("normal cell α"));
}

#[test]
fn alpha_chart_nb201_one_epoch() {
    let dir = out_dir("alpha_nb201");
    let path = dir.join("alpha.svg");
    let ops = crate::nn::darts_ops::NB201_OPS;
    alpha_chart(
        &path,
        "NB201 α",
        &[&ops],
        &nb201_edge_panels(),
        &history(1, 6, 5),
    )
    .unwrap();
    let text = svg_texts(&path);
    assert!(text.contains("edge 5 (node 3 ← node 2)"));
    assert!(text.contains("nor_conv_3x3"));
    // A single epoch is drawn as dots, not as invisible one-point lines.
    assert!(std::fs::read_to_string(&path).unwrap().contains("<circle"));
}

#[test]
fn alpha_chart_per_edge_candidates() {
    let dir = out_dir("alpha_s1");
    let path = dir.join("alpha.svg");
    let lists = crate::nn::darts_ops::DartsSpace::S1
        .cell_ops(false, 14)
        .unwrap();
    let h = history(3, 14, 2);
    alpha_chart(&path, "S1", &lists, &darts_edge_panels(4), &h).unwrap();
    let text = svg_texts(&path);
    for op in [
        "skip_connect",
        "dil_conv_3x3",
        "dil_conv_5x5",
        "sep_conv_3x3",
    ] {
        assert_eq!(text.matches(op).count(), 1, "legend names {op} once");
    }
    assert!(text.contains("max_pool_3x3") && !text.contains("avg_pool_3x3"));
    assert!(!text.contains("op 1"), "every column is named");
    // max_pool_3x3 is drawn in its own colour: in the legend and on edges 5 and 10.
    let svg = std::fs::read_to_string(&path).unwrap().to_ascii_uppercase();
    assert!(svg.matches("#1F77B4").count() >= 3, "max_pool's colour");
}

#[test]
fn alpha_chart_survives_bad_data() {
    let dir = out_dir("alpha_bad");
    let path = dir.join("alpha.svg");
    let mut h = history(5, 3, 4);
    h[1][0][2] = f32::NAN;
    h[2][1] = vec![f32::INFINITY];
    h[3].clear();
    // Fewer names than ops, and too few panels: both fall back.
    alpha_chart(&path, "", &[&["a"]], &darts_edge_panels(1)[..1], &h).unwrap();
    let text = svg_texts(&path);
    assert!(text.contains("op 3") && text.contains("edge 2"));
    let all_nan = vec![vec![vec![f32::NAN; 2]; 2]; 3];
    alpha_chart(&path, "nan", &[&["a", "b"]], &[], &all_nan).unwrap();
    assert!(alpha_chart(&path, "empty", &[&["a"]], &[], &[]).is_err());
    assert!(alpha_chart(&path, "no edges", &[&["a"]], &[], &[vec![]]).is_err());
}

#[test]
fn curves_chart_one_and_fifty_epochs() {
    let dir = out_dir("curves");
    for n in [1, 50] {
        let path = dir.join(format!("curves{n}.svg"));
        curves_chart(&path, &epochs(n)).unwrap();
        let text = svg_texts(&path);
        for label in [
            "loss",
            "accuracy",
            "train",
            "val",
            "epoch",
            "accuracy (%)",
            "β",
        ] {
            assert!(text.contains(label), "{label} missing for {n} epochs");
        }
    }
}

#[test]
fn curves_chart_handles_nan_and_no_beta() {
    let dir = out_dir("curves_nan");
    let path = dir.join("curves.svg");
    let mut e = epochs(10);
    e[3].val_loss = f64::NAN;
    e[4].train_acc = f64::INFINITY;
    e.iter_mut().for_each(|p| p.beta = None);
    curves_chart(&path, &e).unwrap();
    assert!(!svg_texts(&path).contains("β"));
    for p in e.iter_mut() {
        p.train_loss = f64::NAN;
        p.val_loss = f64::NAN;
        p.epoch = usize::MAX;
    }
    curves_chart(&path, &e).unwrap();
    assert!(curves_chart(&path, &[]).is_err());
}

#[test]
fn extreme_values_never_panic() {
    let dir = out_dir("charts_extreme");
    let path = dir.join("x.svg");
    let extremes = [
        f64::MAX,
        f64::MIN,
        1e300,
        -1e-300,
        f64::MIN_POSITIVE,
        0.0,
        1e9,
        f64::NEG_INFINITY,
    ];
    for (i, &v) in extremes.iter().enumerate() {
        let e: Vec<EpochPoint> = [0, 1, usize::MAX, 7]
            .iter()
            .map(|&epoch| EpochPoint {
                epoch: epoch.wrapping_mul(i),
                train_loss: v,
                val_loss: -v,
                train_acc: v,
                val_acc: 0.5,
                beta: Some(v),
            })
            .collect();
        curves_chart(&path, &e).unwrap();
        let h = vec![vec![vec![v as f32, 0.5, -(v as f32)]; 2]; 3];
        alpha_chart(&path, "x", &[&["a", "b", "c"]], &[], &h).unwrap();
    }
}

#[test]
fn unwritable_paths_are_named() {
    let dir = out_dir("charts_unwritable");
    let bad = unwritable(&dir);
    assert_file_error(curves_chart(&bad, &epochs(3)), &bad);
    let h = history(2, 6, 5);
    assert_file_error(alpha_chart(&bad, "t", &[], &[], &h), &bad);
}
