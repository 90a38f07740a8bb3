//! Augmentation and normalisation as the reference DARTS pipeline does it (SPEC §5):
//! `RandomCrop(32, padding=4)` on the raw image (zero padding), `RandomHorizontalFlip()`,
//! `ToTensor()` (÷255), `Normalize(mean, std)`, then optionally `Cutout(length)`.

use rand::Rng;

/// CIFAR-10 per-channel mean of the training set (values in [0, 1]).
pub const CIFAR10_MEAN: [f32; 3] = [0.49139968, 0.48215827, 0.44653124];
/// CIFAR-10 per-channel standard deviation of the training set.
pub const CIFAR10_STD: [f32; 3] = [0.24703233, 0.24348505, 0.26158768];

/// What to do to each image on its way into a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Augment {
    /// Zero padding on each side before a random crop back to the original size; 0 = no crop.
    pub crop_padding: usize,
    /// Mirror left-right with probability 0.5.
    pub flip: bool,
    /// Side of a square set to 0.0 after normalisation, centred at a uniformly random pixel
    /// and clipped at the border (DARTS `Cutout`; as there, an odd side `L` gives `L - 1`).
    pub cutout: Option<usize>,
    /// Per-channel mean subtracted from pixel/255.
    pub mean: [f32; 3],
    /// Per-channel divisor after the mean.
    pub std: [f32; 3],
}

/// Random choices for one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Params {
    /// Crop origin in the padded image, each in `0..=2·padding`.
    dy: usize,
    dx: usize,
    flip: bool,
    /// Cutout centre (row, column).
    cut: Option<(usize, usize)>,
}

/// Per-channel table from byte to normalised value: exactly `(v/255 - mean)/std` in f32.
pub(super) type Lut = [[f32; 256]; 3];

impl Augment {
    /// The search-stage pipeline: pad 4 + random crop, flip, CIFAR-10 normalisation.
    pub fn cifar_search() -> Self {
        Augment {
            crop_padding: 4,
            flip: true,
            cutout: None,
            mean: CIFAR10_MEAN,
            std: CIFAR10_STD,
        }
    }

    /// The retrain-stage pipeline: the search pipeline plus Cutout 16 (the DARTS default).
    pub fn cifar_retrain() -> Self {
        Augment::cifar_search().with_cutout(16)
    }

    /// Normalisation only (evaluation).
    pub fn none(mean: [f32; 3], std: [f32; 3]) -> Self {
        Augment {
            crop_padding: 0,
            flip: false,
            cutout: None,
            mean,
            std,
        }
    }

    /// The same pipeline with Cutout of side `length` (0 disables it).
    pub fn with_cutout(mut self, length: usize) -> Self {
        self.cutout = (length > 0).then_some(length);
        self
    }

    /// Whether this pipeline draws random numbers (else it is a pure normalisation).
    pub fn is_random(&self) -> bool {
        self.crop_padding > 0 || self.flip || self.cutout.is_some_and(|l| l > 0)
    }

    /// Augments and normalises one planar RGB image of `height × width` into `out`
    /// (same layout, same size). Draws, in order: crop row, crop column, flip, cutout row,
    /// cutout column — each only when enabled.
    ///
    /// # Panics
    /// If `img` or `out` is not `3 × height × width` long.
    pub fn apply(
        &self,
        img: &[u8],
        height: usize,
        width: usize,
        out: &mut [f32],
        rng: &mut impl Rng,
    ) {
        let lut = self.lut();
        self.apply_lut(&lut, img, height, width, out, rng);
    }

    pub(super) fn lut(&self) -> Box<Lut> {
        let mut lut = Box::new([[0f32; 256]; 3]);
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, x) in table.iter_mut().enumerate() {
                // Same operations and order as ToTensor + Normalize, so values match torch.
                *x = (v as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        lut
    }

    pub(super) fn apply_lut(
        &self,
        lut: &Lut,
        img: &[u8],
        height: usize,
        width: usize,
        out: &mut [f32],
        rng: &mut impl Rng,
    ) {
        let p = self.sample(height, width, rng);
        self.render(lut, img, height, width, p, out);
    }

    fn sample(&self, height: usize, width: usize, rng: &mut impl Rng) -> Params {
        let pad = self.crop_padding;
        let (dy, dx) = if pad > 0 {
            (rng.random_range(0..=2 * pad), rng.random_range(0..=2 * pad))
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.random_bool(0.5);
        let cut = match self.cutout {
            Some(l) if l > 0 && height > 0 && width > 0 => {
                Some((rng.random_range(0..height), rng.random_range(0..width)))
            }
            _ => None,
        };
        Params { dy, dx, flip, cut }
    }

    fn render(&self, lut: &Lut, img: &[u8], h: usize, w: usize, p: Params, out: &mut [f32]) {
        let plane = h * w;
        assert_eq!(img.len(), 3 * plane, "image is not 3×{h}×{w}");
        assert_eq!(out.len(), 3 * plane, "output is not 3×{h}×{w}");
        let pad = self.crop_padding;
        for c in 0..3 {
            let src = &img[c * plane..(c + 1) * plane];
            let dst = &mut out[c * plane..(c + 1) * plane];
            let table = &lut[c];
            for (y, row_out) in dst.chunks_exact_mut(w).enumerate() {
                // Output (y, x) reads padded (y + dy, x' + dx) = source (y + dy - pad, ...),
                // where x' is x mirrored when flipping (the flip acts on the crop).
                let sy = (y + p.dy).wrapping_sub(pad);
                if sy >= h {
                    row_out.fill(table[0]);
                    continue;
                }
                let row = &src[sy * w..(sy + 1) * w];
                for (x, o) in row_out.iter_mut().enumerate() {
                    let xc = if p.flip { w - 1 - x } else { x };
                    let sx = (xc + p.dx).wrapping_sub(pad);
                    *o = table[if sx < w { row[sx] as usize } else { 0 }];
                }
            }
        }
        if let (Some(len), Some((cy, cx))) = (self.cutout, p.cut) {
            // DARTS: y1 = clip(y - L//2, 0, h), y2 = clip(y + L//2, 0, h).
            let half = len / 2;
            let (y1, y2) = (cy.saturating_sub(half), (cy + half).min(h));
            let (x1, x2) = (cx.saturating_sub(half), (cx + half).min(w));
            for c in 0..3 {
                for y in y1..y2 {
                    let row = c * plane + y * w;
                    out[row + x1..row + x2].fill(0.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const H: usize = 32;
    const W: usize = 32;

    /// Distinct, non-zero bytes: R = 1 + row, G = 1 + column, B = 200.
    fn test_image() -> Vec<u8> {
        let mut img = vec![0u8; 3 * H * W];
        for y in 0..H {
            for x in 0..W {
                img[y * W + x] = 1 + y as u8;
                img[H * W + y * W + x] = 1 + x as u8;
                img[2 * H * W + y * W + x] = 200;
            }
        }
        img
    }

    fn render(a: &Augment, p: Params) -> Vec<f32> {
        let mut out = vec![f32::NAN; 3 * H * W];
        a.render(&a.lut(), &test_image(), H, W, p, &mut out);
        out
    }

    fn norm(c: usize, v: u8) -> f32 {
        (v as f32 / 255.0 - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
    }

    const ID: Params = Params {
        dy: 4,
        dx: 4,
        flip: false,
        cut: None,
    };

    #[test]
    fn normalisation_exact() {
        let a = Augment::none(CIFAR10_MEAN, CIFAR10_STD);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let img = test_image();
        let mut out = vec![0f32; 3 * H * W];
        a.apply(&img, H, W, &mut out, &mut rng);
        for (i, (&v, &o)) in img.iter().zip(&out).enumerate() {
            assert_eq!(o, norm(i / (H * W), v));
        }
        let lut = a.lut();
        assert_eq!(lut[0][0], (0.0 - 0.49139968f32) / 0.24703233);
        assert_eq!(lut[2][255], (1.0 - 0.44653124f32) / 0.26158768);
        assert!(!a.is_random());
    }

    #[test]
    fn centred_crop_is_identity_and_shift_pads_with_zero() {
        let a = Augment::cifar_search();
        let img = test_image();
        let out = render(&a, ID);
        for (i, (&v, &o)) in img.iter().zip(&out).enumerate() {
            assert_eq!(o, norm(i / (H * W), v));
        }
        // Origin (0, 0) of the padded image: content moves 4 down and 4 right.
        let out = render(&a, Params { dy: 0, dx: 0, ..ID });
        assert_eq!(out.len(), 3 * H * W);
        for c in 0..3 {
            for y in 0..H {
                for x in 0..W {
                    let want = if y < 4 || x < 4 {
                        norm(c, 0)
                    } else {
                        norm(c, img[c * H * W + (y - 4) * W + (x - 4)])
                    };
                    assert_eq!(out[c * H * W + y * W + x], want, "c{c} y{y} x{x}");
                }
            }
        }
        // Origin (8, 8): content moves 4 up and 4 left, zeros at the bottom/right.
        let out = render(&a, Params { dy: 8, dx: 8, ..ID });
        assert_eq!(out[0], norm(0, img[4 * W + 4]));
        assert_eq!(out[(H - 1) * W + W - 1], norm(0, 0));
        assert_eq!(out[(H - 5) * W + W - 5], norm(0, img[(H - 1) * W + W - 1]));
    }

    #[test]
    fn flip_mirrors_the_crop() {
        let a = Augment::cifar_search();
        let img = test_image();
        let out = render(&a, Params { flip: true, ..ID });
        for c in 0..3 {
            for y in 0..H {
                for x in 0..W {
                    let want = norm(c, img[c * H * W + y * W + (W - 1 - x)]);
                    assert_eq!(out[c * H * W + y * W + x], want);
                }
            }
        }
        // Crop then flip: with origin dx = 0 the zero columns end up on the right.
        let out = render(
            &a,
            Params {
                dx: 0,
                flip: true,
                ..ID
            },
        );
        assert_eq!(out[W - 1], norm(0, 0));
        assert_eq!(out[W - 5], norm(0, img[0]));
        assert_eq!(out[W + W - 5], norm(0, img[W]));
    }

    #[test]
    fn cutout_zeroes_a_clipped_square() {
        let a = Augment::cifar_retrain();
        assert_eq!(a.cutout, Some(16));
        let zeros = |out: &[f32]| out.iter().filter(|&&v| v == 0.0).count();
        let out = render(
            &a,
            Params {
                cut: Some((16, 10)),
                ..ID
            },
        );
        assert_eq!(zeros(&out), 3 * 16 * 16);
        for c in 0..3 {
            for y in 0..H {
                for x in 0..W {
                    let inside = (8..24).contains(&y) && (2..18).contains(&x);
                    assert_eq!(out[c * H * W + y * W + x] == 0.0, inside);
                }
            }
        }
        // At a corner only the part inside the image is cut: rows 0..8, columns 23..32.
        let out = render(
            &a,
            Params {
                cut: Some((0, 31)),
                ..ID
            },
        );
        assert_eq!(zeros(&out), 3 * 8 * 9);
        assert_eq!(out[31], 0.0);
        let out = render(
            &a.clone().with_cutout(5),
            Params {
                cut: Some((9, 9)),
                ..ID
            },
        );
        assert_eq!(zeros(&out), 3 * 4 * 4);
    }

    #[test]
    fn sampling_covers_the_range() {
        let a = Augment::cifar_retrain();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut dys, mut flips) = (std::collections::BTreeSet::new(), 0);
        for _ in 0..2000 {
            let p = a.sample(H, W, &mut rng);
            assert!(p.dy <= 8 && p.dx <= 8);
            let (cy, cx) = p.cut.unwrap();
            assert!(cy < H && cx < W);
            dys.insert(p.dy);
            flips += p.flip as usize;
        }
        assert_eq!(dys.len(), 9);
        assert!((800..1200).contains(&flips), "{flips}");
        let none = Augment::none(CIFAR10_MEAN, CIFAR10_STD);
        assert_eq!(none.sample(H, W, &mut rng), Params { dy: 0, dx: 0, ..ID });
    }

    #[test]
    fn other_image_sizes() {
        let a = Augment::cifar_search();
        let img: Vec<u8> = (0..3 * 5 * 7).map(|v| v as u8).collect();
        let mut out = vec![0f32; 3 * 5 * 7];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            a.apply(&img, 5, 7, &mut out, &mut rng);
            assert!(out.iter().all(|v| v.is_finite()));
        }
    }
}
