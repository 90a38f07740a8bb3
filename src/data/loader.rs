//! Batches built on CPU threads ahead of the GPU, deterministic whatever the thread timing:
//! each batch's augmentation draws from its own RNG derived from (seed, batch index).

use super::augment::{Augment, Lut};
use super::dataset::Dataset;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Batches ready or being built ahead of the consumer, over all workers.
const PREFETCH: usize = 4;
/// Worker threads per stream at most; one batch of 64 CIFAR images takes well under a
/// millisecond, so a few threads keep far ahead of a GPU step.
const MAX_WORKERS: usize = 4;

/// One batch: images normalised to f32, `B × C × H × W`, with their labels and the dataset
/// indices they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Normalised (and augmented) pixels, `len × 3 × height × width`.
    pub x: Vec<f32>,
    /// Labels, one per image.
    pub y: Vec<u32>,
    /// Dataset index of each image.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether the batch holds no images.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// The RNG for batch `batch_index` of a stream seeded with `seed`.
pub fn batch_rng(seed: u64, batch_index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (batch_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A well-mixed seed for a sub-stream (`tag`: epoch, queue, ...) of `seed` (SplitMix64).
/// Derive each stream's seed with this rather than `seed ^ epoch` or `seed + epoch`, which
/// [`batch_rng`]'s xor with a multiple of the batch index could make collide across epochs.
pub fn sub_seed(seed: u64, tag: u64) -> u64 {
    let mut z = seed.wrapping_add(tag.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Builds one batch from the images at `indices`, drawing augmentation from `rng`
/// image by image in order.
///
/// # Panics
/// If an index is `>= data.len` or the dataset is not 3-channel (see [`Dataset::check`]).
pub fn make_batch(
    data: &Dataset,
    indices: &[usize],
    augment: &Augment,
    rng: &mut impl Rng,
) -> Batch {
    build(data, indices, augment, &augment.lut(), rng)
}

fn build(
    data: &Dataset,
    indices: &[usize],
    augment: &Augment,
    lut: &Lut,
    rng: &mut impl Rng,
) -> Batch {
    let n = data.image_len();
    let mut x = vec![0f32; indices.len() * n];
    for (&i, out) in indices.iter().zip(x.chunks_exact_mut(n)) {
        augment.apply_lut(lut, data.image(i), data.height, data.width, out, rng);
    }
    Batch {
        x,
        y: indices.iter().map(|&i| data.labels[i]).collect(),
        indices: indices.to_vec(),
    }
}

/// The batches of one pass over `order` (dataset indices, in the order to visit them), of
/// `batch` images each except possibly a smaller last one, built on background threads.
/// Batch `k` is augmented with [`batch_rng`]`(seed, k)`, so the stream depends only on the
/// arguments. Use a different seed per epoch and per queue (see [`sub_seed`]).
pub fn epoch_batches(
    data: Arc<Dataset>,
    order: Vec<usize>,
    batch: usize,
    augment: Augment,
    seed: u64,
) -> Result<BatchStream> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS);
    stream(data, order, batch, augment, seed, workers)
}

fn stream(
    data: Arc<Dataset>,
    order: Vec<usize>,
    batch: usize,
    augment: Augment,
    seed: u64,
    workers: usize,
) -> Result<BatchStream> {
    if batch == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    data.check()?;
    if let Some(&bad) = order.iter().find(|&&i| i >= data.len) {
        return Err(Error::Invalid(format!(
            "batch order holds index {bad} but the dataset has {} images",
            data.len
        )));
    }
    let total = order.len().div_ceil(batch);
    let workers = workers.clamp(1, total.max(1));
    let mut s = BatchStream {
        receivers: Vec::with_capacity(workers),
        handles: Vec::with_capacity(workers),
        next: 0,
        total,
    };
    let order = Arc::new(order);
    let lut: Arc<Lut> = Arc::from(augment.lut());
    let augment = Arc::new(augment);
    for w in 0..workers {
        // Worker w builds batches w, w + workers, ...; the consumer takes them round-robin,
        // so they arrive in order with no reordering buffer.
        let (tx, rx) = sync_channel((PREFETCH / workers).max(1));
        let (data, order, augment, lut) =
            (data.clone(), order.clone(), augment.clone(), lut.clone());
        let handle = std::thread::Builder::new()
            .name(format!("batch-loader-{w}"))
            .spawn(move || {
                let mut k = w;
                while k < total {
                    let idx = &order[k * batch..((k + 1) * batch).min(order.len())];
                    let b = build(&data, idx, &augment, &lut, &mut batch_rng(seed, k));
                    if tx.send(b).is_err() {
                        return; // the stream was dropped
                    }
                    k += workers;
                }
            })
            .map_err(|e| Error::Invalid(format!("cannot start a batch loader thread: {e}")))?;
        s.receivers.push(rx);
        s.handles.push(Some(handle));
    }
    Ok(s)
}

/// Iterator over the batches of [`epoch_batches`], in order. Dropping it early stops the
/// workers.
#[derive(Debug)]
pub struct BatchStream {
    receivers: Vec<Receiver<Batch>>,
    handles: Vec<Option<JoinHandle<()>>>,
    next: usize,
    total: usize,
}

impl Iterator for BatchStream {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.total {
            return None;
        }
        let w = self.next % self.receivers.len();
        match self.receivers[w].recv() {
            Ok(b) => {
                self.next += 1;
                Some(b)
            }
            Err(_) => {
                // A worker only hangs up early by panicking: surface that panic here.
                self.next = self.total;
                if let Some(Err(p)) = self.handles[w].take().map(JoinHandle::join) {
                    std::panic::resume_unwind(p);
                }
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for BatchStream {}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Hang up first so workers blocked on a full channel return, then join them.
        self.receivers.clear();
        for h in self.handles.iter_mut().filter_map(Option::take) {
            let _ = h.join();
        }
    }
}

/// The search split of a training set of `n` images: the first `n/2` indices (train queue)
/// and the rest (val queue).
pub fn search_split(n: usize) -> (Vec<usize>, Vec<usize>) {
    let half = n / 2;
    ((0..half).collect(), (half..n).collect())
}

/// `indices` in a random order (Fisher–Yates driven by ChaCha8 seeded with `seed`).
pub fn shuffled(indices: &[usize], seed: u64) -> Vec<usize> {
    let mut v = indices.to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
    v
}

/// `n` of `indices` drawn uniformly with replacement (ChaCha8 seeded with `seed`), as
/// NAS-Bench-201's `SearchDataset` pairs every training image with a validation image.
pub fn drawn(indices: &[usize], n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match indices.is_empty() {
        true => Vec::new(),
        false => (0..n)
            .map(|_| indices[rng.random_range(0..indices.len())])
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_is_uniform_with_replacement_and_seeded() {
        let idx: Vec<usize> = (100..110).collect();
        let d = drawn(&idx, 10_000, 3);
        assert_eq!(d.len(), 10_000);
        assert_eq!(d, drawn(&idx, 10_000, 3));
        assert_ne!(d, drawn(&idx, 10_000, 4));
        for v in &idx {
            let k = d.iter().filter(|&x| x == v).count();
            assert!((850..1150).contains(&k), "{v} drawn {k} times");
        }
        // With replacement: a draw as long as the set repeats some and misses some.
        let short = drawn(&idx, 10, 3);
        let mut uniq = short.clone();
        uniq.sort();
        uniq.dedup();
        assert!(uniq.len() < 10, "{short:?}");
        assert!(drawn(&[], 5, 1).is_empty());
    }
    use crate::data::CIFAR10_MEAN;
    use crate::data::CIFAR10_STD;

    fn data(n: usize) -> Arc<Dataset> {
        Arc::new(Dataset {
            images: (0..n * 3 * 8 * 8).map(|v| (v * 7 % 251) as u8).collect(),
            labels: (0..n).map(|i| (i % 3) as u32).collect(),
            len: n,
            channels: 3,
            height: 8,
            width: 8,
            classes: vec!["a".into(), "b".into(), "c".into()],
        })
    }

    /// Cutout smaller than the 8×8 test images, so batches keep content.
    fn aug() -> Augment {
        Augment::cifar_search().with_cutout(4)
    }

    fn collect(workers: usize, seed: u64) -> Vec<Batch> {
        let order = shuffled(&(0..37).collect::<Vec<_>>(), 5);
        stream(data(37), order, 8, aug(), seed, workers)
            .unwrap()
            .collect()
    }

    #[test]
    fn batches_cover_order_with_partial_last() {
        let d = data(10);
        let order = vec![9, 0, 8, 1, 7, 2, 6, 3, 5, 4];
        let aug = Augment::none(CIFAR10_MEAN, CIFAR10_STD);
        let s = epoch_batches(d.clone(), order.clone(), 4, aug.clone(), 0).unwrap();
        assert_eq!(s.len(), 3);
        let bs: Vec<Batch> = s.collect();
        assert_eq!(bs.iter().map(Batch::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert_eq!(bs.concat_indices(), order);
        let b = &bs[2];
        assert_eq!(b.y, vec![5 % 3, 4 % 3]);
        assert_eq!(b.x.len(), 2 * 3 * 64);
        // Without augmentation a batch is the normalised images.
        let lut = aug.lut();
        for (k, &i) in b.indices.iter().enumerate() {
            for (j, &v) in d.image(i).iter().enumerate() {
                assert_eq!(b.x[k * 192 + j], lut[j / 64][v as usize]);
            }
        }
    }

    trait Concat {
        fn concat_indices(&self) -> Vec<usize>;
    }

    impl Concat for Vec<Batch> {
        fn concat_indices(&self) -> Vec<usize> {
            self.iter().flat_map(|b| b.indices.clone()).collect()
        }
    }

    #[test]
    fn deterministic_across_runs_and_worker_counts() {
        let a = collect(1, 42);
        assert_eq!(a.len(), 5);
        assert_eq!(a[4].len(), 5);
        // assert! rather than assert_eq!: a failure would print every pixel.
        assert!(a == collect(3, 42));
        assert!(a == collect(4, 42));
        let b = collect(2, 43);
        assert_eq!(a.concat_indices(), b.concat_indices());
        assert!(a.iter().zip(&b).all(|(x, y)| x.x != y.x));
        // Each batch is reproducible on its own (a resumed run rebuilds batch k directly).
        let d = data(37);
        let k = 3;
        let again = make_batch(&d, &a[k].indices, &aug(), &mut batch_rng(42, k));
        assert!(again == a[k]);
    }

    #[test]
    fn early_drop_and_empty_order() {
        let mut s =
            epoch_batches(data(100), (0..100).collect(), 1, Augment::cifar_search(), 1).unwrap();
        assert!(s.next().is_some());
        drop(s); // must not hang with workers blocked on full channels
        let mut s = epoch_batches(data(3), vec![], 4, Augment::cifar_search(), 1).unwrap();
        assert_eq!(s.len(), 0);
        assert!(s.next().is_none());
    }

    #[test]
    fn bad_arguments_are_errors() {
        let aug = Augment::cifar_search();
        assert!(epoch_batches(data(3), vec![0], 0, aug.clone(), 0).is_err());
        let e = epoch_batches(data(3), vec![0, 3], 2, aug.clone(), 0).unwrap_err();
        assert!(e.to_string().contains("index 3"));
        let mut d = (*data(3)).clone();
        d.channels = 1;
        assert!(epoch_batches(Arc::new(d), vec![0], 1, aug, 0).is_err());
    }

    #[test]
    fn split_and_shuffle() {
        assert_eq!(search_split(5), (vec![0, 1], vec![2, 3, 4]));
        let (a, b) = search_split(50_000);
        assert_eq!((a.len(), b.len(), b[0]), (25_000, 25_000, 25_000));
        let idx: Vec<usize> = (100..200).collect();
        let s = shuffled(&idx, 9);
        assert_eq!(s, shuffled(&idx, 9));
        assert_ne!(s, shuffled(&idx, 10));
        assert_ne!(s, idx);
        let mut sorted = s.clone();
        sorted.sort();
        assert_eq!(sorted, idx);
        assert!(shuffled(&[], 1).is_empty());
    }

    #[test]
    fn sub_seeds_differ() {
        let seeds: std::collections::BTreeSet<u64> =
            (0..100).map(|e| sub_seed(sub_seed(0, e), 1)).collect();
        assert_eq!(seeds.len(), 100);
        assert_ne!(sub_seed(1, 0), sub_seed(0, 1));
    }
}
