//! CPU f64 reference implementations, written from the definitions in SPEC.md (PyTorch
//! semantics), deliberately naive so they are easy to check by eye.

/// 4-D shape helper.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape4(pub usize, pub usize, pub usize, pub usize);

impl Shape4 {
    pub fn numel(&self) -> usize {
        self.0 * self.1 * self.2 * self.3
    }
    pub fn at(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        ((n * self.1 + c) * self.2 + y) * self.3 + x
    }
}

/// The tensor of shape `ys` whose element (n, c, i, j) is `f(n, c, i, j)`, in NCHW order.
fn per_output(ys: Shape4, f: impl Fn(usize, usize, usize, usize) -> f64) -> Vec<f64> {
    let Shape4(_, c, h, w) = ys;
    let at = |q: usize| f(q / (c * h * w), q / (h * w) % c, q / w % h, q % w);
    (0..ys.numel()).map(at).collect()
}

pub fn out_size(h: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    (h + 2 * p - d * (k - 1) - 1) / s + 1
}

#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f64],
    xs: Shape4,
    w: &[f64],
    ws: Shape4,
    b: Option<&[f64]>,
    s: usize,
    p: usize,
    d: usize,
    groups: usize,
) -> (Vec<f64>, Shape4) {
    let (cout, cinpg, kh, kw) = (ws.0, ws.1, ws.2, ws.3);
    let ho = out_size(xs.2, kh, s, p, d);
    let wo = out_size(xs.3, kw, s, p, d);
    let ys = Shape4(xs.0, cout, ho, wo);
    let mut y = vec![0.0; ys.numel()];
    let coutpg = cout / groups;
    for n in 0..xs.0 {
        for co in 0..cout {
            let g = co / coutpg;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = b.map_or(0.0, |b| b[co]);
                    for ci in 0..cinpg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * s + ky * d) as isize - p as isize;
                                let ix = (ox * s + kx * d) as isize - p as isize;
                                if iy < 0 || ix < 0 || iy >= xs.2 as isize || ix >= xs.3 as isize {
                                    continue;
                                }
                                acc += x[xs.at(n, g * cinpg + ci, iy as usize, ix as usize)]
                                    * w[ws.at(co, ci, ky, kx)];
                            }
                        }
                    }
                    y[ys.at(n, co, oy, ox)] = acc;
                }
            }
        }
    }
    (y, ys)
}

/// Max (is_max) or average (count_include_pad = False) pooling.
pub fn pool2d(
    x: &[f64],
    xs: Shape4,
    k: usize,
    s: usize,
    p: usize,
    is_max: bool,
) -> (Vec<f64>, Shape4) {
    let ho = out_size(xs.2, k, s, p, 1);
    let wo = out_size(xs.3, k, s, p, 1);
    let ys = Shape4(xs.0, xs.1, ho, wo);
    let y = per_output(ys, |n, c, oy, ox| {
        let mut best = f64::NEG_INFINITY;
        let (mut sum, mut cnt) = (0.0, 0.0);
        for ky in 0..k {
            for kx in 0..k {
                let iy = (oy * s + ky) as isize - p as isize;
                let ix = (ox * s + kx) as isize - p as isize;
                if iy < 0 || ix < 0 || iy >= xs.2 as isize || ix >= xs.3 as isize {
                    continue;
                }
                let v = x[xs.at(n, c, iy as usize, ix as usize)];
                best = best.max(v);
                sum += v;
                cnt += 1.0;
            }
        }
        if is_max {
            best
        } else {
            sum / cnt
        }
    });
    (y, ys)
}

pub fn global_avg(x: &[f64], xs: Shape4) -> Vec<f64> {
    let hw = xs.2 * xs.3;
    (0..xs.0 * xs.1)
        .map(|q| x[q * hw..(q + 1) * hw].iter().sum::<f64>() / hw as f64)
        .collect()
}

/// Batch norm over (n, h, w) per channel. Returns (y, batch mean, unbiased batch var).
pub fn batch_norm_train(
    x: &[f64],
    xs: Shape4,
    affine: Option<(&[f64], &[f64])>,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n, c, hw) = (xs.0, xs.1, xs.2 * xs.3);
    let m = (n * hw) as f64;
    let mut y = vec![0.0; x.len()];
    let (mut means, mut uvars) = (vec![0.0; c], vec![0.0; c]);
    for ch in 0..c {
        let idx = |t: usize| ((t / hw) * c + ch) * hw + t % hw;
        let mean = (0..n * hw).map(|t| x[idx(t)]).sum::<f64>() / m;
        let var = (0..n * hw).map(|t| (x[idx(t)] - mean).powi(2)).sum::<f64>() / m;
        for t in 0..n * hw {
            let mut v = (x[idx(t)] - mean) / (var + eps).sqrt();
            if let Some((g, b)) = affine {
                v = v * g[ch] + b[ch];
            }
            y[idx(t)] = v;
        }
        means[ch] = mean;
        uvars[ch] = var * m / (m - 1.0);
    }
    (y, means, uvars)
}

pub fn batch_norm_eval(
    x: &[f64],
    xs: Shape4,
    affine: Option<(&[f64], &[f64])>,
    rm: &[f64],
    rv: &[f64],
    eps: f64,
) -> Vec<f64> {
    let (c, hw) = (xs.1, xs.2 * xs.3);
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / hw) % c;
            let mut y = (v - rm[ch]) / (rv[ch] + eps).sqrt();
            if let Some((g, b)) = affine {
                y = y * g[ch] + b[ch];
            }
            y
        })
        .collect()
}

pub fn concat(parts: &[(&[f64], Shape4)]) -> (Vec<f64>, Shape4) {
    let s0 = parts[0].1;
    let ctot: usize = parts.iter().map(|p| p.1 .1).sum();
    let ys = Shape4(s0.0, ctot, s0.2, s0.3);
    let hw = s0.2 * s0.3;
    let mut y = Vec::with_capacity(ys.numel());
    for n in 0..s0.0 {
        for (x, xs) in parts {
            y.extend_from_slice(&x[n * xs.1 * hw..(n + 1) * xs.1 * hw]);
        }
    }
    (y, ys)
}

/// y[.., i, j] = x[.., off + i·s, off + j·s].
pub fn slice2d(x: &[f64], xs: Shape4, off: usize, s: usize) -> (Vec<f64>, Shape4) {
    let ho = (xs.2 - off).div_ceil(s);
    let wo = (xs.3 - off).div_ceil(s);
    let ys = Shape4(xs.0, xs.1, ho, wo);
    let y = per_output(ys, |n, c, i, j| x[xs.at(n, c, off + i * s, off + j * s)]);
    (y, ys)
}

pub fn softmax_rows(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
            r.iter().map(move |v| (v - m).exp() / s).collect::<Vec<_>>()
        })
        .collect()
}

pub fn cross_entropy(logits: &[f64], cols: usize, labels: &[u32]) -> f64 {
    let rows = labels.len();
    logits
        .chunks(cols)
        .zip(labels)
        .map(|(r, &l)| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + r.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - r[l as usize]
        })
        .sum::<f64>()
        / rows as f64
}

/// x (n, in) · wᵀ (in, out) + b.
pub fn linear(
    x: &[f64],
    n: usize,
    fin: usize,
    w: &[f64],
    fout: usize,
    b: Option<&[f64]>,
) -> Vec<f64> {
    let mut y = vec![0.0; n * fout];
    for i in 0..n {
        for j in 0..fout {
            y[i * fout + j] = b.map_or(0.0, |b| b[j])
                + (0..fin)
                    .map(|k| x[i * fin + k] * w[j * fin + k])
                    .sum::<f64>();
        }
    }
    y
}
