//! Every parser that reads a user's file or string, given anything: it returns a value or a
//! clear error, never a panic. Random inputs and random edits of valid ones (proptest).

use darts_minus::checkpoint;
use darts_minus::data::{Dataset, Split};
use darts_minus::search::genotype::{named, Genotype};
use darts_minus::search::nb201::Nb201Arch;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid text with bytes replaced, inserted or cut at random places.
fn edited(base: String) -> impl Strategy<Value = String> {
    let n = base.len();
    prop::collection::vec((0..=n, 0..4usize, any::<char>()), 1..6).prop_map(move |edits| {
        let mut s: Vec<char> = base.chars().collect();
        for (at, kind, c) in edits {
            let at = at.min(s.len());
            match kind {
                0 if at < s.len() => s[at] = c,
                1 => s.insert(at, c),
                2 => s.truncate(at),
                _ if at < s.len() => {
                    s.remove(at);
                }
                _ => {}
            }
        }
        s.into_iter().collect()
    })
}

/// A fresh temporary directory per case.
fn scratch(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "dm-prop-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn the_error_names_something(e: &darts_minus::Error) {
    assert!(!e.to_string().trim().is_empty());
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn genotype_strings_parse_or_fail_clearly(s in ".{0,200}") {
        if let Err(e) = Genotype::parse(&s) {
            the_error_names_something(&e);
        }
    }

    #[test]
    fn edited_genotypes_parse_or_fail_clearly(s in edited(named("DARTS_V2").unwrap().to_python())) {
        match Genotype::parse(&s) {
            Ok(g) => g.validate().unwrap(),
            Err(e) => the_error_names_something(&e),
        }
    }

    #[test]
    fn nb201_arch_strings_parse_or_fail_clearly(
        s in prop_oneof![
            ".{0,120}",
            edited("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|".to_string()),
        ]
    ) {
        if let Err(e) = Nb201Arch::parse(&s) {
            the_error_names_something(&e);
        }
    }

    #[test]
    fn checkpoints_of_any_bytes_read_or_fail_clearly(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Err(e) = checkpoint::read_bytes(&bytes, Path::new("x.safetensors")) {
            the_error_names_something(&e);
        }
    }
}

/// A small valid safetensors file (two tensors and metadata), for editing.
fn valid_checkpoint() -> Vec<u8> {
    let dir = scratch("ckpt");
    let path = dir.join("c.safetensors");
    let entries = vec![
        (
            "w".to_string(),
            checkpoint::Entry::F32 {
                shape: vec![2, 3],
                data: vec![0.5; 6],
            },
        ),
        ("n".to_string(), checkpoint::Entry::scalar(7)),
    ];
    checkpoint::write_atomic(&path, &entries, None).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    bytes
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn edited_checkpoints_read_or_fail_clearly(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid_checkpoint();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Err(e) = checkpoint::read_bytes(&bytes, Path::new("c.safetensors")) {
            the_error_names_something(&e);
        }
    }

    #[test]
    fn cifar_files_of_any_length_read_or_fail_clearly(
        len in 0..8000usize,
        fill in any::<u8>(),
        name in prop::sample::select(vec!["data_batch_1.bin", "test_batch.bin", "train.bin", "x.bin"]),
    ) {
        let dir = scratch("cifar");
        let path = dir.join(name);
        std::fs::write(&path, vec![fill; len]).unwrap();
        let opened = Dataset::open(&path, Split::Train);
        let dir_opened = Dataset::open(&dir, Split::Train);
        std::fs::remove_dir_all(&dir).ok();
        for r in [opened, dir_opened] {
            if let Err(e) = r {
                the_error_names_something(&e);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn image_folders_of_any_files_read_or_fail_clearly(
        files in prop::collection::vec(
            (prop::sample::select(vec!["a", "b"]), prop::sample::select(vec!["png", "jpg", "txt"]), prop::collection::vec(any::<u8>(), 0..200)),
            1..6,
        ),
    ) {
        let dir = scratch("images");
        for (k, (class, ext, bytes)) in files.iter().enumerate() {
            std::fs::create_dir_all(dir.join(class)).unwrap();
            std::fs::write(dir.join(class).join(format!("{k}.{ext}")), bytes).unwrap();
        }
        let r = Dataset::open(&dir, Split::Train);
        std::fs::remove_dir_all(&dir).ok();
        if let Err(e) = r {
            the_error_names_something(&e);
        }
    }
}
