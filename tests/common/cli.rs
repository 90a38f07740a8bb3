//! Running the `darts-minus` binary as a user does: the command, its failures, scratch
//! directories and a tiny dataset.

use std::path::PathBuf;
use std::process::Command;

/// The `darts-minus` binary of this build.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_darts-minus"))
}

/// Runs `cmd`, which must fail with every one of `wants` in its error output.
#[track_caller]
pub fn fails_with(cmd: &mut Command, wants: &[&str]) {
    let run = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    let named = wants.iter().all(|w| err.contains(w));
    assert!(!run.status.success() && named, "{err}");
}

/// Runs `cmd`, which must succeed (else its output and errors are shown); its output.
#[track_caller]
pub fn succeeds(cmd: &mut Command) -> String {
    let run = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

pub fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("darts-minus-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A CIFAR-10 binary directory of `n` random 32×32 images (data_batch_1.bin, test_batch.bin).
pub fn tiny_cifar(tag: &str, n: usize) -> PathBuf {
    let dir = tmp(tag);
    std::fs::create_dir_all(&dir).unwrap();
    let mut x: u32 = 12345;
    let mut records = Vec::new();
    for i in 0..n {
        records.push((i % 10) as u8);
        for _ in 0..3072 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            records.push((x >> 24) as u8);
        }
    }
    std::fs::write(dir.join("data_batch_1.bin"), &records).unwrap();
    std::fs::write(dir.join("test_batch.bin"), &records).unwrap();
    dir
}
