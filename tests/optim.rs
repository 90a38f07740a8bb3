//! Optimisers and clipping against CPU f64 implementations of PyTorch's update rules.

mod common;

use common::{f32s, gpu, strategy_of, Rng, Tolerance};
use darts_minus::autodiff::Tensor;
use darts_minus::optim::{clip_coefficient, clip_grad_norm, Adam, Sgd};

const TOL: Tolerance = Tolerance {
    rel: 1e-5,
    abs: 1e-6,
};

#[test]
fn sgd_momentum_weight_decay_three_steps() {
    let g = gpu();
    let mut rng = Rng::new(1);
    let (mut w, mut buf) = (rng.vec(300), vec![0.0; 300]);
    let p = Tensor::parameter(&g, &[3, 100], &f32s(&w)).unwrap();
    let mut sgd = Sgd::new(&g, std::slice::from_ref(&p), 0.05, 0.9, 3e-4).unwrap();
    for (step, lr) in [0.05, 0.04, 0.01].into_iter().enumerate() {
        let grad = rng.vec(300);
        let gt = Tensor::from_slice(&g, &[3, 100], &f32s(&grad)).unwrap();
        sgd.lr = lr;
        sgd.step(std::slice::from_ref(&p), &[&gt]).unwrap();
        for i in 0..300 {
            let d = grad[i] + 3e-4 * w[i];
            buf[i] = if step == 0 { d } else { 0.9 * buf[i] + d };
            w[i] -= lr as f64 * buf[i];
        }
        TOL.assert_close(&format!("sgd step {step}"), &p.to_vec().unwrap(), &w);
    }
}

#[test]
fn sgd_nesterov_two_steps() {
    let g = gpu();
    let mut rng = Rng::new(5);
    let (mut w, mut buf) = (rng.vec(50), vec![0.0; 50]);
    let p = Tensor::parameter(&g, &[50], &f32s(&w)).unwrap();
    let mut sgd = Sgd::new(&g, std::slice::from_ref(&p), 0.1, 0.9, 5e-4).unwrap();
    sgd.nesterov = true;
    for step in 0..2 {
        let grad = rng.vec(50);
        let gt = Tensor::from_slice(&g, &[50], &f32s(&grad)).unwrap();
        sgd.step(std::slice::from_ref(&p), &[&gt]).unwrap();
        for i in 0..50 {
            let d = grad[i] + 5e-4 * w[i];
            buf[i] = if step == 0 { d } else { 0.9 * buf[i] + d };
            w[i] -= 0.1 * (d + 0.9 * buf[i]);
        }
        TOL.assert_close(&format!("nesterov step {step}"), &p.to_vec().unwrap(), &w);
    }
}

#[test]
fn adam_l2_decay_three_steps() {
    let g = gpu();
    let mut rng = Rng::new(2);
    let mut w: Vec<f64> = rng.vec(112).iter().map(|v| v * 1e-3).collect();
    let (mut m, mut v) = (vec![0.0; 112], vec![0.0; 112]);
    let p = Tensor::parameter(&g, &[14, 8], &f32s(&w)).unwrap();
    let (b1, b2, eps, wd, lr) = (0.5, 0.999, 1e-8, 1e-3, 3e-4);
    let mut adam = Adam::new(
        &g,
        std::slice::from_ref(&p),
        lr as f32,
        (b1 as f32, b2 as f32),
        eps as f32,
        wd as f32,
    )
    .unwrap();
    for t in 1..=3 {
        let grad: Vec<f64> = rng.vec(112).iter().map(|x| x * 0.1).collect();
        let gt = Tensor::from_slice(&g, &[14, 8], &f32s(&grad)).unwrap();
        adam.step(std::slice::from_ref(&p), &[&gt]).unwrap();
        for i in 0..112 {
            let d = grad[i] + wd * w[i];
            m[i] = b1 * m[i] + (1.0 - b1) * d;
            v[i] = b2 * v[i] + (1.0 - b2) * d * d;
            let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            w[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + eps);
        }
        Tolerance {
            rel: 1e-5,
            abs: 1e-8,
        }
        .assert_close(&format!("adam step {t}"), &p.to_vec().unwrap(), &w);
    }
    assert_eq!(adam.t, 3);
}

fn clip_case(scale: f64, max_norm: f64) {
    let g = gpu();
    let mut rng = Rng::new(3);
    let parts: Vec<Vec<f64>> = [37usize, 1000, 5]
        .iter()
        .map(|&n| rng.vec(n).iter().map(|x| x * scale).collect())
        .collect();
    let ts: Vec<Tensor> = parts
        .iter()
        .map(|p| Tensor::from_slice(&g, &[p.len()], &f32s(p)).unwrap())
        .collect();
    let refs: Vec<&Tensor> = ts.iter().collect();
    let table = clip_grad_norm(&refs, max_norm as f32)
        .unwrap()
        .to_vec()
        .unwrap();
    let norm = parts.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
    let coef = (max_norm / (norm + 1e-6)).min(1.0);
    TOL.assert_close("norm² and coef", &table, &[norm * norm, coef]);
    for (t, p) in ts.iter().zip(&parts) {
        TOL.assert_close(
            "clipped",
            &t.to_vec().unwrap(),
            &p.iter().map(|x| x * coef).collect::<Vec<_>>(),
        );
    }
}

#[test]
fn clip_scales_when_norm_exceeds_max() {
    clip_case(1.0, 5.0);
}

#[test]
fn clip_leaves_small_gradients_alone() {
    clip_case(0.01, 5.0);
}

#[test]
fn sgd_with_clipping_folded_in_equals_clip_then_sgd() {
    // Six gradients (two launches of the four-at-a-time norm), one spanning several chunks.
    let g = gpu();
    let mut rng = Rng::new(4);
    let sizes = [37usize, 5000, 5, 300, 1, 2049];
    let grads: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.vec(n)).collect();
    let weights: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.vec(n)).collect();
    let run = |folded: bool| -> (Vec<f32>, Vec<Vec<f32>>) {
        let ps: Vec<Tensor> = weights
            .iter()
            .map(|w| Tensor::parameter(&g, &[w.len()], &f32s(w)).unwrap())
            .collect();
        let gs: Vec<Tensor> = grads
            .iter()
            .map(|v| Tensor::from_slice(&g, &[v.len()], &f32s(v)).unwrap())
            .collect();
        let refs: Vec<&Tensor> = gs.iter().collect();
        let sgd = Sgd::new(&g, &ps, 0.1, 0.9, 3e-4).unwrap();
        sgd.prepare().unwrap();
        let table = if folded {
            let (table, coef) = clip_coefficient(&refs, 5.0).unwrap();
            sgd.encode_clipped(&ps, &refs, &coef).unwrap();
            table
        } else {
            let table = clip_grad_norm(&refs, 5.0).unwrap();
            sgd.encode(&ps, &refs).unwrap();
            table
        };
        (
            table.to_vec().unwrap(),
            ps.iter().map(|p| p.to_vec().unwrap()).collect(),
        )
    };
    let (t1, w1) = run(true);
    let (t0, w0) = run(false);
    let norm2: f64 = grads.iter().flatten().map(|x| x * x).sum();
    let coef = (5.0 / (norm2.sqrt() + 1e-6)).min(1.0);
    assert!(coef < 0.5, "the case must clip");
    TOL.assert_close("norm² and coef", &t1, &[norm2, coef]);
    assert_eq!(t0, t1);
    for (k, (a, b)) in w1.iter().zip(&w0).enumerate() {
        TOL.assert_close(
            &format!("weights {k}"),
            a,
            &b.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        );
        // And the update itself, in f64: w − lr·(coef·g + wd·w) (first step: buf = d).
        let expect: Vec<f64> = weights[k]
            .iter()
            .zip(&grads[k])
            .map(|(w, g)| {
                let (w, g) = (*w as f32 as f64, *g as f32 as f64);
                w - 0.1 * (coef * g + 3e-4 * w)
            })
            .collect();
        TOL.assert_close(&format!("update {k}"), a, &expect);
    }
}

#[test]
fn sgd_leaves_parameters_without_a_gradient_untouched() {
    // As PyTorch does for a weight off the path to the output: no decay, no momentum step.
    let g = gpu();
    let p0 = Tensor::parameter(&g, &[3], &[1.0, -2.0, 0.5]).unwrap();
    let p1 = Tensor::parameter(&g, &[2], &[4.0, 5.0]).unwrap();
    let grad = Tensor::from_slice(&g, &[3], &[30.0, 0.0, -40.0]).unwrap();
    let params = [p0.clone(), p1.clone()];
    let sgd = Sgd::new(&g, &params, 0.1, 0.9, 0.01).unwrap();
    sgd.prepare().unwrap();
    let (_, coef) = clip_coefficient(&[&grad], 5.0).unwrap();
    sgd.encode_some_scaled(&params, &[Some(&grad), None], Some(&coef))
        .unwrap();
    // ‖g‖ = 50, so g is scaled by 5 / (50 + 1e-6) before the update.
    let c = 5.0 / (50.0 + 1e-6);
    let expect: Vec<f64> = [(1.0, 30.0), (-2.0, 0.0), (0.5, -40.0)]
        .iter()
        .map(|&(w, gr)| w - 0.1 * (c * gr + 0.01 * w))
        .collect();
    TOL.assert_close("updated", &p0.to_vec().unwrap(), &expect);
    assert_eq!(p1.to_vec().unwrap(), vec![4.0, 5.0]);
    assert_eq!(sgd.state()[1].to_vec().unwrap(), vec![0.0, 0.0]);
}

#[test]
fn sgd_clip_and_update_gathered_or_per_parameter() {
    // `encode_clipped_norm` gathers into flat buffers where launches are costly and updates
    // per parameter elsewhere: both against PyTorch's rules in f64 over three steps, a
    // different parameter without a gradient in each (untouched: no decay, no momentum).
    // Six parameters, five with a gradient per step: where the adapter binds 14 storage
    // buffers, four are updated by one launch and the fifth on its own.
    let sizes = [37usize, 5000, 5, 300, 1, 64];
    for costly in [false, true] {
        let g = gpu();
        g.set_strategy(Some(strategy_of(costly)));
        let mut rng = Rng::new(6);
        let mut w: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.vec(n)).collect();
        let mut buf: Vec<Vec<f64>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
        let mut started = [false; 6];
        let ps: Vec<Tensor> = w
            .iter()
            .map(|v| Tensor::parameter(&g, &[v.len()], &f32s(v)).unwrap())
            .collect();
        let mut sgd = Sgd::new(&g, &ps, 0.1, 0.9, 3e-4).unwrap();
        // The gathered length shrinks step by step (5,370, 5,107, 407 values, none a multiple
        // of 4), so the flat buffers' last quad holds an earlier step's values past it.
        for (step, (absent, lr)) in [(0usize, 0.1f32), (3, 0.05), (1, 0.02)]
            .into_iter()
            .enumerate()
        {
            let grads: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.vec(n)).collect();
            let gs: Vec<Tensor> = grads
                .iter()
                .map(|v| Tensor::from_slice(&g, &[v.len()], &f32s(v)).unwrap())
                .collect();
            let some: Vec<Option<&Tensor>> = gs
                .iter()
                .enumerate()
                .map(|(k, t)| (k != absent).then_some(t))
                .collect();
            sgd.lr = lr;
            sgd.prepare().unwrap();
            let table = sgd.encode_clipped_norm(&ps, &some, 5.0).unwrap();
            let norm2: f64 = (0..sizes.len())
                .filter(|&k| k != absent)
                .flat_map(|k| grads[k].iter().map(|&x| (x as f32 as f64).powi(2)))
                .sum();
            let coef = (5.0 / (norm2.sqrt() + 1e-6)).min(1.0);
            assert!(coef < 1.0, "the case must clip");
            let what = format!("costly launches={costly} step {step}");
            TOL.assert_close(
                &format!("{what}: norm² and coef"),
                &table.to_vec().unwrap(),
                &[norm2, coef],
            );
            for k in (0..sizes.len()).filter(|&k| k != absent) {
                for i in 0..sizes[k] {
                    let d = coef * grads[k][i] as f32 as f64 + 3e-4 * w[k][i];
                    buf[k][i] = if started[k] { 0.9 * buf[k][i] + d } else { d };
                    w[k][i] -= lr as f64 * buf[k][i];
                }
                started[k] = true;
            }
            for k in 0..sizes.len() {
                TOL.assert_close(
                    &format!("{what}: weights {k}"),
                    &ps[k].to_vec().unwrap(),
                    &w[k],
                );
                TOL.assert_close(
                    &format!("{what}: momentum {k}"),
                    &sgd.state()[k].to_vec().unwrap(),
                    &buf[k],
                );
            }
        }
    }
}
