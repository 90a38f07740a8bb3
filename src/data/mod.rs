//! Training data: CIFAR-10/100 binary files, image folders and the shipped CIFAR-10 mini sets
//! ([`Dataset`]); the search/retrain augmentation and normalisation ([`Augment`], SPEC §5);
//! and batches prepared on CPU threads while the GPU works ([`epoch_batches`]).
//!
//! Randomness is always explicit and seeded, so a run (and a resumed run) sees the same
//! batches whatever the thread timing.

mod augment;
mod cifar;
mod dataset;
mod folder;
mod loader;

pub use augment::{Augment, CIFAR10_MEAN, CIFAR10_STD};
pub use cifar::CIFAR10_CLASSES;
pub use dataset::{Dataset, Split};
pub use loader::{
    batch_rng, drawn, epoch_batches, make_batch, search_split, shuffled, sub_seed, Batch,
    BatchStream,
};

#[cfg(test)]
pub(crate) mod testutil {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("darts-minus-data-{}-{tag}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
