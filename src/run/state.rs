//! Run checkpoints: what search and retraining both keep (momentum buffers, progress
//! counters, settings and history as metadata) and reading it back to continue exactly.

use crate::autodiff::Tensor;
use crate::checkpoint::{self, Entry, Named};
use crate::error::{Error, Result};
use crate::optim::Sgd;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub fn file_err(path: &Path, msg: &str) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// SGD's momentum buffers under the reference optimiser's names.
pub fn momentum_entries(weights: &[(String, Tensor)], sgd: &Sgd) -> Result<Vec<(String, Entry)>> {
    weights
        .iter()
        .zip(sgd.state())
        .map(|((name, _), buf)| {
            Ok((
                format!("optimizer.momentum_buffer.{name}"),
                Entry::tensor(buf)?,
            ))
        })
        .collect()
}

/// Writes a run checkpoint atomically: `entries`, then `format`, settings and history as
/// metadata.
pub fn save(
    path: &Path,
    entries: &[(String, Entry)],
    format: &str,
    settings: &impl Serialize,
    history: &impl Serialize,
) -> Result<()> {
    // A diverged run must not replace the last good checkpoint with infinite weights.
    for (name, e) in entries {
        if let Entry::F32 { data, .. } = e {
            if let Some(v) = data.iter().find(|v| !v.is_finite()) {
                return Err(file_err(
                    path,
                    &format!("not written: tensor '{name}' holds {v} (the run diverged); the previous checkpoint is kept"),
                ));
            }
        }
    }
    let meta = checkpoint::run_metadata(format, settings, history)?;
    checkpoint::write_atomic(path, entries, Some(meta))
}

/// A run checkpoint read back.
pub struct Saved {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, Named>,
    meta: HashMap<String, String>,
}

impl Saved {
    pub fn read(path: &Path) -> Result<Saved> {
        let (tensors, meta) = checkpoint::read_with_metadata(path)?;
        Ok(Saved {
            path: path.to_path_buf(),
            tensors,
            meta,
        })
    }

    fn err(&self, msg: &str) -> Error {
        file_err(&self.path, msg)
    }

    /// Checks the file is a checkpoint of `format`; one of the other run's kind names the
    /// command that reads it.
    pub fn expect_format(&self, format: &str) -> Result<()> {
        let Some(found) = self.meta.get("format") else {
            return Ok(()); // older files, and exports: the settings check decides
        };
        if found == format {
            return Ok(());
        }
        let reader = match found.split_whitespace().nth(1) {
            Some("search") => "`darts-minus search --resume` (or `darts-minus genotype`)",
            Some("train") => "`darts-minus train --resume` or `darts-minus eval`",
            _ => "another tool or version",
        };
        Err(self.err(&format!(
            "this is a {found} (wanted a {format}): {reader} reads it"
        )))
    }

    /// The run's settings; `missing` says what the file is when it has none.
    pub fn settings<S: DeserializeOwned>(&self, missing: &str) -> Result<S> {
        let s = self.meta.get("settings").ok_or_else(|| self.err(missing))?;
        serde_json::from_str(s).map_err(|e| self.err(&format!("unreadable settings: {e}")))
    }

    /// The epoch records so far (none in a file without history).
    pub fn history<R: DeserializeOwned>(&self) -> Result<Vec<R>> {
        match self.meta.get("history") {
            Some(h) => {
                serde_json::from_str(h).map_err(|e| self.err(&format!("unreadable history: {e}")))
            }
            None => Ok(Vec::new()),
        }
    }

    /// An integer scalar (epoch, step, counters).
    pub fn int(&self, key: &str) -> Result<u64> {
        self.tensors
            .get(key)
            .and_then(|t| t.data.first())
            .map(|&v| v as u64)
            .ok_or_else(|| self.err(&format!("missing '{key}'")))
    }

    /// Writes the tensor `name` into `dst`.
    pub fn write_into(&self, dst: &Tensor, name: &str) -> Result<()> {
        write_named(dst, &self.tensors, name, &self.path)
    }

    /// Restores SGD's momentum buffers.
    pub fn load_momentum(&self, weights: &[(String, Tensor)], sgd: &Sgd) -> Result<()> {
        for ((name, _), buf) in weights.iter().zip(sgd.state()) {
            self.write_into(buf, &format!("optimizer.momentum_buffer.{name}"))?;
        }
        Ok(())
    }
}

/// Writes the tensor `name` of `tensors` (read from `path`) into `dst`.
pub fn write_named(
    dst: &Tensor,
    tensors: &BTreeMap<String, Named>,
    name: &str,
    path: &Path,
) -> Result<()> {
    let t = tensors
        .get(name)
        .ok_or_else(|| file_err(path, &format!("missing '{name}'")))?;
    if t.data.len() != dst.numel() {
        return Err(file_err(path, &format!("'{name}' has shape {:?} but {:?} is needed: the checkpoint is from another search space or configuration", t.shape, dst.shape())));
    }
    dst.write(&t.data.iter().map(|&v| v as f32).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::{save, Saved};
    use crate::checkpoint::Entry;

    #[test]
    fn history_reads_back_bit_for_bit() {
        // A resumed run's records must equal the uninterrupted run's. serde_json's default
        // float parser is off by one ulp for some values (2.3156964778900146, an f32 loss
        // widened to f64, read back as 2.315696477890014): hence its `float_roundtrip`.
        let dir = std::env::temp_dir().join(format!("dm-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("search.safetensors");
        let mut history: Vec<f64> = vec![2.3156964778900146, 0.1 + 0.2, 1e-310, -7.0 / 3.0];
        let mut x = 0x4002_0000_0000_0000u64;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            history.push(f64::from_bits(0x3ff0_0000_0000_0000 | (x >> 12)) * 3.0);
        }
        let w = vec![("w".to_string(), Entry::scalar(1))];
        save(&path, &w, "test", &1, &history).unwrap();
        let back: Vec<f64> = Saved::read(&path).unwrap().history().unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(back.len(), history.len());
        for (a, b) in history.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a:?} read back as {b:?}");
        }
    }

    #[test]
    fn a_checkpoint_with_non_finite_weights_is_not_written() {
        let dir = std::env::temp_dir().join(format!("dm-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("search.safetensors");
        let entry = |v: f32| {
            vec![(
                "w".to_string(),
                Entry::F32 {
                    shape: vec![2],
                    data: vec![1.0, v],
                },
            )]
        };
        save(&path, &entry(2.0), "test", &1, &[0.5]).unwrap();
        let before = std::fs::read(&path).unwrap();
        let e = save(&path, &entry(f32::INFINITY), "test", &1, &[0.5]).unwrap_err();
        assert!(e.to_string().contains("'w' holds inf"), "{e}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the previous checkpoint is kept"
        );
        assert!(!path.with_extension("safetensors.tmp").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
