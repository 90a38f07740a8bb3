//! Kernel benchmarks at the DARTS search shapes: every op family, forward and backward, at
//! batch 64 with C = 16 / 32 / 64 on 32 / 16 / 8 pixels (the three stages of the network).
//!
//!     cargo bench --bench kernels                 # everything, batch 64
//!     cargo bench --bench kernels -- conv 16      # only cases whose name contains all words
//!     DARTS_BENCH_BATCH=8 DARTS_BENCH_ITERS=5 cargo bench --bench kernels
//!
//! Each case: 2 warm-up runs, then the median of N timed runs, each ending in a full GPU sync
//! (so times include one submission). Reports GFLOP/s for convolutions and linear layers and
//! GB/s (compulsory bytes read + written) for everything.

use darts_minus::autodiff::{BnState, Conv2dCfg, Labels, PoolCfg, SliceCfg, Tape, Tensor};
use darts_minus::gpu::{AdapterChoice, Gpu};
use darts_minus::nn::mixed::MixedSums;
use std::time::Instant;

type Op = Box<dyn Fn(&mut Tape, &Tensor) -> Tensor>;

struct Case {
    name: String,
    input: Vec<usize>,
    op: Op,
    /// (forward FLOPs, backward FLOPs); 0 = report bandwidth only.
    flops: (f64, f64),
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn values(shape: &[usize], seed: u32) -> Vec<f32> {
    let n: usize = shape.iter().product();
    (0..n)
        .map(|i| {
            (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16777216.0
                - 0.5)
                * 0.2
        })
        .collect()
}

fn param(g: &Gpu, shape: &[usize], seed: u32) -> Tensor {
    Tensor::parameter(g, shape, &values(shape, seed)).unwrap()
}

/// A dense (groups = 1) convolution's weight, placed as the layers place it (a uniform window
/// on CPU adapters).
fn conv_weight(g: &Gpu, shape: &[usize], seed: u32) -> Tensor {
    Tensor::weight_parameter(g, shape, &values(shape, seed)).unwrap()
}

fn cases(g: &Gpu, batch: usize) -> Vec<Case> {
    let mut v = Vec::new();
    // C = 4 on 32 pixels: the first stage of the small networks the science runs search.
    for (c, hw) in [(4usize, 32usize), (16, 32), (32, 16), (64, 8)] {
        let n = batch;
        let x = [n, c, hw, hw];
        let px = (n * hw * hw) as f64;
        // Dense 3×3 (stem-like, c → c) and 1×1 pointwise.
        let w3 = conv_weight(g, &[c, c, 3, 3], 1);
        v.push(Case {
            name: format!("conv3x3 C{c} {hw}px"),
            input: x.to_vec(),
            flops: (2.0 * px * (c * c * 9) as f64, 4.0 * px * (c * c * 9) as f64),
            op: Box::new(move |t, x| t.conv2d(x, &w3, None, Conv2dCfg::new(1, 1)).unwrap()),
        });
        let w1 = conv_weight(g, &[c, c, 1, 1], 2);
        v.push(Case {
            name: format!("conv1x1 C{c} {hw}px"),
            input: x.to_vec(),
            flops: (2.0 * px * (c * c) as f64, 4.0 * px * (c * c) as f64),
            op: Box::new(move |t, x| t.conv2d(x, &w1, None, Conv2dCfg::new(1, 0)).unwrap()),
        });
        // NAS-Bench-201's 1×1: with a bias (a dense convolution's kernels, not the GEMM's).
        let wb = conv_weight(g, &[c, c, 1, 1], 5);
        let bias = param(g, &[c], 6);
        v.push(Case {
            name: format!("conv1x1 bias C{c} {hw}px"),
            input: x.to_vec(),
            flops: (2.0 * px * (c * c) as f64, 4.0 * px * (c * c) as f64),
            op: Box::new(move |t, x| t.conv2d(x, &wb, Some(&bias), Conv2dCfg::new(1, 0)).unwrap()),
        });
        for (k, s, d) in [(3, 1, 1), (5, 1, 1), (3, 2, 1), (3, 1, 2), (5, 1, 2)] {
            let pad = d * (k - 1) / 2;
            let wd = param(g, &[c, 1, k, k], 3);
            let out_px = px / (s * s) as f64;
            v.push(Case {
                name: format!("depthwise k{k} s{s} d{d} C{c} {hw}px"),
                input: x.to_vec(),
                flops: (
                    2.0 * out_px * (c * k * k) as f64,
                    4.0 * out_px * (c * k * k) as f64,
                ),
                op: Box::new(move |t, x| {
                    t.conv2d(x, &wd, None, Conv2dCfg::new(s, pad).dilation(d).groups(c))
                        .unwrap()
                }),
            });
        }
        for s in [1, 2] {
            v.push(Case {
                name: format!("max_pool3 s{s} C{c} {hw}px"),
                input: x.to_vec(),
                flops: (0.0, 0.0),
                op: Box::new(move |t, x| t.max_pool2d(x, PoolCfg::new(3, s, 1)).unwrap()),
            });
            v.push(Case {
                name: format!("avg_pool3 s{s} C{c} {hw}px"),
                input: x.to_vec(),
                flops: (0.0, 0.0),
                op: Box::new(move |t, x| t.avg_pool2d(x, PoolCfg::new(3, s, 1)).unwrap()),
            });
        }
        let (rm, rv) = (
            Tensor::zeros(g, &[c]).unwrap(),
            Tensor::full(g, &[c], 1.0).unwrap(),
        );
        v.push(Case {
            name: format!("batch_norm train C{c} {hw}px"),
            input: x.to_vec(),
            flops: (0.0, 0.0),
            op: Box::new(move |t, x| {
                t.batch_norm(
                    x,
                    None,
                    BnState {
                        running_mean: &rm,
                        running_var: &rv,
                        momentum: 0.1,
                        eps: 1e-5,
                    },
                    true,
                )
                .unwrap()
            }),
        });
        v.push(Case {
            name: format!("relu C{c} {hw}px"),
            input: x.to_vec(),
            flops: (0.0, 0.0),
            op: Box::new(|t, x| t.relu(x).unwrap()),
        });
        let wtab = param(g, &[14, 8], 4);
        v.push(Case {
            name: format!("weighted_sum 7 ops C{c} {hw}px"),
            input: x.to_vec(),
            flops: (0.0, 0.0),
            op: Box::new(move |t, x| {
                let ys: Vec<&Tensor> = vec![x; 7];
                t.weighted_sum(&ys, &wtab, &[1, 2, 3, 4, 5, 6, 7]).unwrap()
            }),
        });
        v.push(Case {
            name: format!("concat 4 C{c} {hw}px"),
            input: x.to_vec(),
            flops: (0.0, 0.0),
            op: Box::new(|t, x| t.concat(&[x, x, x, x]).unwrap()),
        });
        v.push(Case {
            name: format!("crop 1: C{c} {hw}px"),
            input: x.to_vec(),
            flops: (0.0, 0.0),
            op: Box::new(|t, x| {
                t.slice2d(
                    x,
                    SliceCfg {
                        offset: 1,
                        stride: 1,
                    },
                )
                .unwrap()
            }),
        });
    }
    let fc = param(g, &[10, 256], 5);
    let fb = param(g, &[10], 6);
    v.push(Case {
        name: "global_pool+linear 256→10".into(),
        input: vec![batch, 256, 8, 8],
        flops: (2.0 * (batch * 2560) as f64, 4.0 * (batch * 2560) as f64),
        op: Box::new(move |t, x| {
            let p = t.global_avg_pool(x).unwrap();
            t.linear(&p, &fc, Some(&fb)).unwrap()
        }),
    });
    let labels = Labels::new(g, &(0..batch as u32).map(|i| i % 10).collect::<Vec<_>>()).unwrap();
    v.push(Case {
        name: "cross_entropy 10 classes".into(),
        input: vec![batch, 10],
        flops: (0.0, 0.0),
        op: Box::new(move |t, x| t.cross_entropy(x, &labels).unwrap()),
    });
    v
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let batch: usize = std::env::var("DARTS_BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let iters: usize = std::env::var("DARTS_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let g = Gpu::new(&AdapterChoice::default()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    let a = g.adapter();
    println!(
        "adapter: {} ({} / {}), batch {batch}, median of {iters} runs after 2 warm-up runs\n",
        a.name, a.backend, a.device_type
    );
    println!("| kernel | fwd ms | fwd GFLOP/s | fwd GB/s | bwd ms | bwd GFLOP/s | bwd GB/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for case in cases(&g, batch) {
        if !args.iter().all(|w| case.name.contains(w.as_str())) {
            continue;
        }
        let n_in: usize = case.input.iter().product();
        let data: Vec<f32> = (0..n_in)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let x = Tensor::from_slice(&g, &case.input, &data)
            .unwrap()
            .with_grad();
        let mut fwd = Vec::new();
        let mut bwd = Vec::new();
        let mut out_len = 0;
        for i in 0..iters + 2 {
            let mut tape = Tape::new(&g);
            g.sync().unwrap();
            let t0 = Instant::now();
            let y = (case.op)(&mut tape, &x);
            g.sync().unwrap();
            let tf = t0.elapsed().as_secs_f64();
            out_len = y.numel();
            let seed = Tensor::full(&g, y.shape(), 1.0).unwrap();
            g.sync().unwrap();
            let t1 = Instant::now();
            let grads = tape.backward_with(&y, seed).unwrap();
            g.sync().unwrap();
            let tb = t1.elapsed().as_secs_f64();
            drop(grads);
            if i >= 2 {
                fwd.push(tf);
                bwd.push(tb);
            }
        }
        let (tf, tb) = (median(fwd), median(bwd));
        let bytes_f = 4.0 * (n_in + out_len) as f64;
        let bytes_b = 4.0 * (2 * n_in + out_len) as f64;
        let gf = |flops: f64, t: f64| {
            if flops > 0.0 {
                format!("{:.1}", flops / t / 1e9)
            } else {
                "-".into()
            }
        };
        println!(
            "| {} | {:.3} | {} | {:.2} | {:.3} | {} | {:.2} |",
            case.name,
            tf * 1e3,
            gf(case.flops.0, tf),
            bytes_f / tf / 1e9,
            tb * 1e3,
            gf(case.flops.1, tb),
            bytes_b / tb / 1e9
        );
    }
}
