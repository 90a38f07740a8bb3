//! safetensors interchange: read a file into named tensors, load them into a module by the
//! reference PyTorch names, and write files atomically (a crash mid-write leaves the previous
//! file intact).

use crate::error::{Error, Result};
use crate::nn::{Module, Slot};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A tensor read from a file, converted to f64 (exact for f32, f64 and small integers).
#[derive(Clone, Debug)]
pub struct Named {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

fn file_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Reads every tensor of a safetensors file (f32, f64, i64, i32).
pub fn read(path: &Path) -> Result<BTreeMap<String, Named>> {
    Ok(read_with_metadata(path)?.0)
}

/// Reads every tensor and the file's string metadata.
pub fn read_with_metadata(
    path: &Path,
) -> Result<(BTreeMap<String, Named>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    read_bytes(&bytes, path)
}

/// [`read_with_metadata`] of a file's contents already in memory (`path` names it in errors).
pub fn read_bytes(
    bytes: &[u8],
    path: &Path,
) -> Result<(BTreeMap<String, Named>, HashMap<String, String>)> {
    let invalid = |e: safetensors::SafeTensorError| {
        file_err(path, format!("not a valid safetensors file: {e}"))
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(invalid)?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(invalid)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::I32 => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            other => {
                return Err(file_err(
                    path,
                    format!("tensor '{name}' has unsupported dtype {other:?}; use float32"),
                ))
            }
        };
        out.insert(
            name,
            Named {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((out, metadata))
}

/// Loads `module`'s state from `tensors` (names prefixed by `prefix`). Every slot must be
/// present with the right shape; names in the file that the module lacks are ignored.
pub fn load_module(
    module: &dyn Module,
    prefix: &str,
    tensors: &BTreeMap<String, Named>,
    source: &Path,
) -> Result<()> {
    let mut err = None;
    module.visit(prefix, &mut |name, slot| {
        if err.is_some() {
            return;
        }
        let Some(t) = tensors.get(name) else {
            err = Some(file_err(source, format!("missing tensor '{name}': the checkpoint is from another search space or network configuration")));
            return;
        };
        let res = match slot {
            Slot::Param(dst) | Slot::Buffer(dst) => {
                if t.shape != dst.shape() {
                    Err(file_err(source, format!("tensor '{name}' has shape {:?} but the network needs {:?}: the checkpoint is from another configuration", t.shape, dst.shape())))
                } else {
                    dst.write(&t.data.iter().map(|&v| v as f32).collect::<Vec<_>>())
                }
            }
            Slot::Counter(c) => {
                c.set(t.data.first().copied().unwrap_or(0.0) as i64);
                Ok(())
            }
        };
        if let Err(e) = res {
            err = Some(e);
        }
    });
    err.map_or(Ok(()), Err)
}

/// A tensor to write: f32 data, or an i64 scalar counter.
pub enum Entry {
    F32 { shape: Vec<usize>, data: Vec<f32> },
    I64 { shape: Vec<usize>, data: Vec<i64> },
}

impl Entry {
    /// A tensor's shape and contents, read back from the GPU.
    pub fn tensor(t: &crate::autodiff::Tensor) -> Result<Entry> {
        Ok(Entry::F32 {
            shape: t.shape().to_vec(),
            data: t.to_vec()?,
        })
    }

    /// An integer scalar (epoch, step, seed, counters).
    pub fn scalar(v: u64) -> Entry {
        Entry::I64 {
            shape: vec![],
            data: vec![v as i64],
        }
    }
}

/// A run checkpoint's string metadata: its format, settings and history as JSON.
pub fn run_metadata(
    format: &str,
    settings: &impl serde::Serialize,
    history: &impl serde::Serialize,
) -> Result<HashMap<String, String>> {
    let json = |v: serde_json::Result<String>| v.map_err(|e| Error::Invalid(e.to_string()));
    Ok(HashMap::from([
        ("format".to_string(), format.to_string()),
        (
            "settings".to_string(),
            json(serde_json::to_string(settings))?,
        ),
        ("history".to_string(), json(serde_json::to_string(history))?),
    ]))
}

/// Every slot of `module` as entries, read back from the GPU.
pub fn module_entries(module: &dyn Module, prefix: &str) -> Result<Vec<(String, Entry)>> {
    let mut slots = Vec::new();
    module.visit(prefix, &mut |name, slot| {
        let e = match slot {
            Slot::Param(t) | Slot::Buffer(t) => Ok((t.shape().to_vec(), t.clone())),
            Slot::Counter(c) => Err(c.get()),
        };
        slots.push((name.to_string(), e));
    });
    slots
        .into_iter()
        .map(|(name, e)| {
            Ok((
                name,
                match e {
                    Ok((shape, t)) => Entry::F32 {
                        shape,
                        data: t.to_vec()?,
                    },
                    Err(count) => Entry::I64 {
                        shape: vec![],
                        data: vec![count],
                    },
                },
            ))
        })
        .collect()
}

/// Writes `entries` as safetensors: to a temporary file beside `path`, synced, then renamed
/// over it, so readers only ever see a complete file.
pub fn write_atomic(
    path: &Path,
    entries: &[(String, Entry)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = entries
        .iter()
        .map(|(n, e)| match e {
            Entry::F32 { shape, data } => (
                n.clone(),
                Dtype::F32,
                shape.clone(),
                bytemuck::cast_slice(data).to_vec(),
            ),
            Entry::I64 { shape, data } => (
                n.clone(),
                Dtype::I64,
                shape.clone(),
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(n, d, s, b)| {
            Ok((
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b)
                    .map_err(|e| Error::Invalid(format!("tensor '{n}': {e}")))?,
            ))
        })
        .collect::<Result<_>>()?;
    let blob = safetensors::tensor::serialize(views, metadata)
        .map_err(|e| file_err(path, e.to_string()))?;
    let tmp = path.with_extension("safetensors.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&blob)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        // A full disk must not leave a partial file behind.
        let _ = std::fs::remove_file(&tmp);
        file_err(path, format!("cannot write checkpoint: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::{write_atomic, Entry};

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        // The destination is a directory: the rename fails, as a full disk's write would.
        let dir = std::env::temp_dir().join(format!("dm-ckpt-tmp-{}", std::process::id()));
        let path = dir.join("checkpoint.safetensors");
        std::fs::create_dir_all(&path).unwrap();
        let entries = vec![("n".to_string(), Entry::scalar(1))];
        let e = write_atomic(&path, &entries, None).unwrap_err().to_string();
        assert!(e.contains("cannot write checkpoint"), "{e}");
        assert!(!path.with_extension("safetensors.tmp").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
