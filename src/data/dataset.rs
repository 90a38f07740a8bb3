//! The in-memory dataset and `Dataset::open`, which recognises what a path holds.

use super::cifar;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Which part of a dataset [`Dataset::open`] loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training images (CIFAR `data_batch_*.bin` / `train.bin`, or `train/`).
    Train,
    /// The held-out images (CIFAR `test_batch.bin` / `test.bin`, or `test/` / `val/`).
    Test,
}

/// Labelled images held as bytes, in CIFAR layout: per image `channels` planes of
/// `height × width`, row-major (R plane, then G, then B).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `len × channels × height × width` bytes.
    pub images: Vec<u8>,
    /// One label per image, each `< classes.len()`.
    pub labels: Vec<u32>,
    /// Number of images.
    pub len: usize,
    /// Always 3 (RGB) for the loaders here.
    pub channels: usize,
    /// Image height in pixels (32 for CIFAR).
    pub height: usize,
    /// Image width in pixels (32 for CIFAR).
    pub width: usize,
    /// Class names; label `i` is `classes[i]`.
    pub classes: Vec<String>,
}

pub(super) fn file_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

impl Dataset {
    /// Bytes per image (`channels × height × width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The bytes of image `i` (planar, see [`Dataset`]).
    ///
    /// # Panics
    /// If `i >= self.len`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The label of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len`.
    pub fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// A new dataset of the images at `idx`, in that order (repeats allowed), same classes.
    ///
    /// # Panics
    /// If an index is `>= self.len`.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let n = self.image_len();
        let mut images = Vec::with_capacity(idx.len() * n);
        for &i in idx {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            images,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            len: idx.len(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes.clone(),
        }
    }

    /// Images per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Checks the invariants the loaders rely on (the fields are public, so a hand-built or
    /// edited dataset may break them): 3 channels, non-empty image size, buffer lengths that
    /// match `len`, labels in range.
    pub fn check(&self) -> Result<()> {
        if self.channels != 3 {
            return Err(Error::Invalid(format!(
                "dataset has {} channels; only RGB (3 channels) is supported",
                self.channels
            )));
        }
        if self.height == 0 || self.width == 0 {
            return Err(Error::Invalid(format!(
                "dataset images are {}x{} pixels",
                self.width, self.height
            )));
        }
        if self.labels.len() != self.len {
            return Err(Error::Invalid(format!(
                "dataset has {} labels for {} images",
                self.labels.len(),
                self.len
            )));
        }
        let want = self.len.checked_mul(self.image_len());
        if want != Some(self.images.len()) {
            return Err(Error::Invalid(format!(
                "dataset holds {} image bytes but {} images of {}x{}x{} need {}",
                self.images.len(),
                self.len,
                self.channels,
                self.height,
                self.width,
                want.map_or("more than fits in memory".to_string(), |w| w.to_string())
            )));
        }
        if let Some((i, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= self.classes.len())
        {
            return Err(Error::Invalid(format!(
                "image {i} has label {l} but the dataset has {} classes",
                self.classes.len()
            )));
        }
        Ok(())
    }

    /// Per-channel mean and (population) standard deviation of the pixel values scaled to
    /// [0, 1]: the normalisation constants for a dataset other than CIFAR-10.
    pub fn channel_mean_std(&self) -> Result<([f32; 3], [f32; 3])> {
        self.check()?;
        if self.len == 0 {
            return Err(Error::Invalid(
                "cannot compute channel statistics of an empty dataset".into(),
            ));
        }
        let plane = self.height * self.width;
        let mut hist = [[0u64; 256]; 3];
        for img in self.images.chunks_exact(self.image_len()) {
            for (c, h) in hist.iter_mut().enumerate() {
                for &v in &img[c * plane..(c + 1) * plane] {
                    h[v as usize] += 1;
                }
            }
        }
        let mut mean = [0f32; 3];
        let mut std = [0f32; 3];
        for c in 0..3 {
            let n = (self.len * plane) as f64;
            let (mut s, mut s2) = (0f64, 0f64);
            for (v, &k) in hist[c].iter().enumerate() {
                let x = v as f64 / 255.0;
                s += x * k as f64;
                s2 += x * x * k as f64;
            }
            let m = s / n;
            mean[c] = m as f32;
            std[c] = (s2 / n - m * m).max(0.0).sqrt() as f32;
            if std[c] < 1e-6 {
                return Err(Error::Invalid(format!(
                    "the {} images have no variation in channel {c} (every pixel {:.3}), so they \
                     cannot be normalised by their own statistics: pass --normalize cifar10 (or \
                     cifar100) to use fixed ones",
                    self.len, m
                )));
            }
        }
        Ok((mean, std))
    }

    /// Loads the `split` of the dataset at `path`, recognising:
    ///
    /// - a file: CIFAR binary records (CIFAR-100 when the file is named `train.bin` /
    ///   `test.bin` or sits next to `fine_label_names.txt`, CIFAR-10 when named
    ///   `data_batch_*.bin` / `test_batch.bin`, else by which record length fits). `split` is
    ///   ignored: the file is the data.
    /// - a CIFAR-10 binary directory (`data_batch_*.bin` for train, `test_batch.bin` for test,
    ///   class names from `batches.meta.txt`), or its parent holding `cifar-10-batches-bin/`;
    /// - a CIFAR-100 binary directory (`train.bin`, `test.bin`, fine labels, names from
    ///   `fine_label_names.txt`), or its parent holding `cifar-100-binary/`;
    /// - an image folder with `train/` and `test/` (or `val/`) subfolders, each laid out as
    ///   `<class>/*.png|jpg|jpeg`;
    /// - an image folder `<class>/*.png|jpg|jpeg` (used whatever the split).
    pub fn open(path: &Path, split: Split) -> Result<Dataset> {
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                file_err(path, "dataset not found (no such file or directory)")
            } else {
                file_err(path, format!("cannot open dataset: {e}"))
            }
        })?;
        if !meta.is_dir() {
            return cifar::open_file(path);
        }

        let entries = list_dir(path)?;
        let has_file = |name: &str| entries.iter().any(|(n, d)| !d && n == name);
        let has_dir = |name: &str| entries.iter().any(|(n, d)| *d && n == name);

        if entries
            .iter()
            .any(|(n, d)| !d && (cifar::is_cifar10_train_batch(n) || n == "test_batch.bin"))
        {
            return cifar::open_cifar10_dir(path, split);
        }
        if has_file("train.bin") || has_file("test.bin") {
            return cifar::open_cifar100_dir(path, split);
        }
        if has_file("data_batch_1")
            || has_file("batches.meta")
            || (has_file("meta") && (has_file("train") || has_file("test")))
        {
            return Err(file_err(
                path,
                "this is the Python (pickle) version of CIFAR; download the binary version \
                 (cifar-10-binary.tar.gz or cifar-100-binary.tar.gz) and point at its folder",
            ));
        }
        for sub in ["cifar-10-batches-bin", "cifar-100-binary"] {
            if has_dir(sub) {
                return Dataset::open(&path.join(sub), split);
            }
        }

        let train_dir = has_dir("train").then(|| path.join("train"));
        let test_dir = if has_dir("test") {
            Some(path.join("test"))
        } else if has_dir("val") {
            Some(path.join("val"))
        } else {
            None
        };
        if train_dir.is_some() || test_dir.is_some() {
            let (want, name) = match split {
                Split::Train => (train_dir, "train/"),
                Split::Test => (test_dir, "test/ (or val/)"),
            };
            return match want {
                Some(dir) => Dataset::image_folder(&dir),
                None => Err(file_err(
                    path,
                    format!("has split subfolders but no {name} folder"),
                )),
            };
        }
        if entries.iter().any(|(n, d)| *d && !n.starts_with('.')) {
            return Dataset::image_folder(path);
        }
        Err(file_err(
            path,
            "not a dataset: expected a CIFAR-10 binary folder (data_batch_1..5.bin, \
             test_batch.bin), a CIFAR-100 binary folder (train.bin, test.bin), a CIFAR .bin \
             file, or an image folder (<class>/*.png|jpg|jpeg)",
        ))
    }
}

/// The entries of a directory as (name, is_dir), following symlinks.
pub(super) fn list_dir(dir: &Path) -> Result<Vec<(String, bool)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| file_err(dir, format!("cannot read: {e}")))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| file_err(dir, format!("cannot read: {e}")))?;
        let p: PathBuf = entry.path();
        out.push((entry.file_name().to_string_lossy().into_owned(), p.is_dir()));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset {
            images: (0..4 * 12).map(|v| v as u8).collect(),
            labels: vec![0, 1, 1, 0],
            len: 4,
            channels: 3,
            height: 2,
            width: 2,
            classes: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn image_subset_and_counts() {
        let d = tiny();
        assert_eq!(d.image_len(), 12);
        assert_eq!(
            d.image(2),
            &(24..36).map(|v| v as u8).collect::<Vec<_>>()[..]
        );
        let s = d.subset(&[3, 1, 3]);
        assert_eq!(s.len, 3);
        assert_eq!(s.labels, vec![0, 1, 0]);
        assert_eq!(s.image(0), d.image(3));
        assert_eq!(s.image(1), d.image(1));
        assert_eq!(s.image(2), d.image(3));
        assert_eq!(d.class_counts(), vec![2, 2]);
        assert!(s.check().is_ok());
    }

    #[test]
    fn check_catches_broken_invariants() {
        let mut d = tiny();
        d.labels[2] = 7;
        assert!(d.check().unwrap_err().to_string().contains("label 7"));
        let mut d = tiny();
        d.images.pop();
        assert!(d.check().is_err());
        let mut d = tiny();
        d.channels = 1;
        assert!(d.check().is_err());
    }

    #[test]
    fn mean_std_of_planes_and_constant_ones_refused() {
        let mut d = tiny();
        for img in d.images.chunks_exact_mut(12) {
            img[..4].copy_from_slice(&[0, 0, 255, 255]);
            img[4..8].copy_from_slice(&[255, 255, 255, 0]);
            img[8..].copy_from_slice(&[0, 255, 0, 255]);
        }
        let (m, s) = d.channel_mean_std().unwrap();
        assert_eq!(m, [0.5, 0.75, 0.5]);
        assert_eq!(s[0], 0.5);
        // A constant channel cannot be normalised by its own statistics: name the fix.
        for img in d.images.chunks_exact_mut(12) {
            img[4..8].fill(255);
        }
        let e = d.channel_mean_std().unwrap_err().to_string();
        assert!(
            e.contains("channel 1") && e.contains("--normalize cifar10"),
            "{e}"
        );
    }

    #[test]
    fn open_missing_and_empty() {
        let t = super::super::testutil::TempDir::new("open");
        let missing = t.path().join("nope");
        let e = Dataset::open(&missing, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("not found"), "{e}");
        let e = Dataset::open(t.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&t.path().display().to_string()) && e.contains("not a dataset"));
    }
}
