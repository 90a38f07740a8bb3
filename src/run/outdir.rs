//! A run's output directory, claimed for the run's lifetime: created where missing, refused
//! when it already holds another run (unless the run continues it, or the user asked to
//! overwrite), and locked, so a second process writing to it stops at once instead of two
//! runs silently overwriting each other's checkpoints.

use crate::error::{Error, Result};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// The lock file inside a claimed directory.
pub const LOCK_FILE: &str = ".darts-minus.lock";

/// How a run may use its output directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// A new run: the directory must be missing or empty, unless `overwrite`.
    New { overwrite: bool },
    /// A run continuing from the checkpoint in this directory.
    Resume,
}

/// A claimed output directory; the lock is released when this is dropped (or the process
/// ends, however it ends).
pub struct OutDir {
    pub path: PathBuf,
    _lock: File,
}

fn file_err(path: &Path, msg: String) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg,
    }
}

impl OutDir {
    pub fn claim(path: &Path, claim: Claim) -> Result<OutDir> {
        std::fs::create_dir_all(path)
            .map_err(|e| file_err(path, format!("cannot create the output directory: {e}")))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                file_err(
                    &lock_path,
                    format!("cannot create the run's lock file: {e}"),
                )
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(file_err(
                    path,
                    "another darts-minus run is writing to this directory (it holds the lock file \
                     .darts-minus.lock): wait for it to finish, or choose another --out"
                        .into(),
                ))
            }
            Err(TryLockError::Error(e)) => {
                return Err(file_err(
                    &lock_path,
                    format!("cannot lock the run directory: {e}"),
                ))
            }
        }
        if claim == (Claim::New { overwrite: false }) {
            let mut others: Vec<String> = std::fs::read_dir(path)
                .map_err(|e| file_err(path, format!("cannot list the output directory: {e}")))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != LOCK_FILE)
                .collect();
            if !others.is_empty() {
                others.sort();
                others.truncate(4);
                return Err(file_err(
                    path,
                    format!(
                        "the output directory is not empty ({}, …): continue that run with \
                         --resume {}, choose another --out, or pass --overwrite to replace it",
                        others.join(", "),
                        path.display()
                    ),
                ));
            }
        }
        Ok(OutDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

/// Whether a live run holds `dir` now (a sweep must not start a second search on it).
pub fn is_locked(dir: &Path) -> bool {
    let Ok(f) = File::options().write(true).open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(f.try_lock(), Err(TryLockError::WouldBlock))
}

#[cfg(test)]
mod tests {
    use super::{is_locked, Claim, OutDir};

    #[test]
    fn a_directory_is_claimed_once_and_never_overwritten_silently() {
        let dir = std::env::temp_dir().join(format!("dm-outdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let new = Claim::New { overwrite: false };
        let first = OutDir::claim(&dir, new).unwrap();
        // A second run on the same directory while the first holds it.
        let e = OutDir::claim(&dir, Claim::Resume)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("another darts-minus run"), "{e}");
        assert!(is_locked(&dir));
        std::fs::write(dir.join("checkpoint.safetensors"), b"x").unwrap();
        drop(first);
        assert!(!is_locked(&dir));
        let e = OutDir::claim(&dir, new).err().unwrap().to_string();
        assert!(e.contains("not empty") && e.contains("--overwrite"), "{e}");
        OutDir::claim(&dir, Claim::New { overwrite: true }).unwrap();
        OutDir::claim(&dir, Claim::Resume).unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }
}
