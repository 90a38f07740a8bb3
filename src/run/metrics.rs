//! What a step reports, and the files a run's metrics go to.

use crate::autodiff::Tensor;
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::Path;

/// What a training step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    pub top1: usize,
    pub top5: usize,
    pub n: usize,
}

/// Reads a step's loss and top-1/top-5 counts back from the GPU (one wait for both).
pub fn read_stats(loss: &Tensor, ranks: &Tensor) -> Result<StepStats> {
    let mut both = Tensor::read_all(&[loss, ranks])?;
    let ranks = both.pop().unwrap_or_default();
    Ok(StepStats {
        loss: both[0][0],
        top1: ranks.iter().filter(|&&r| r < 1.0).count(),
        top5: ranks.iter().filter(|&&r| r < 5.0).count(),
        n: ranks.len(),
    })
}

/// Mean loss, top-1 and top-5 accuracy over steps, weighted by their images (NaN for none).
pub fn mean_stats(stats: &[StepStats]) -> (f64, f64, f64) {
    let n: usize = stats.iter().map(|s| s.n).sum();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let loss = stats
        .iter()
        .map(|s| s.loss as f64 * s.n as f64)
        .sum::<f64>()
        / n as f64;
    let t1 = stats.iter().map(|s| s.top1).sum::<usize>() as f64 / n as f64;
    let t5 = stats.iter().map(|s| s.top5).sum::<usize>() as f64 / n as f64;
    (loss, t1, t5)
}

/// The upper median of step times (NaN for none): the figure metrics report, robust to the
/// first step of a shape, which records its program.
pub fn median_time(mut times: Vec<f64>) -> f64 {
    times.sort_by(|a, b| a.total_cmp(b));
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Writes `text` to `path` through a temporary file and a rename.
pub fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| file_err(path, format!("cannot write: {e}")))
}

/// `metrics.jsonl`: one JSON line per epoch record, rewritten whole (atomically) each epoch.
pub fn write_jsonl<R: Serialize>(path: &Path, records: &[R]) -> Result<()> {
    let mut lines = String::new();
    for r in records {
        lines.push_str(&serde_json::to_string(r).map_err(|e| Error::Invalid(e.to_string()))?);
        lines.push('\n');
    }
    write_text_atomic(path, &lines)
}

/// Creates a run's output directory (and its parents).
pub fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| file_err(path, format!("cannot create the output directory: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_are_weighted_by_images() {
        let s = |loss, top1, top5, n| StepStats {
            loss,
            top1,
            top5,
            n,
        };
        let (loss, t1, t5) = mean_stats(&[s(1.0, 2, 3, 4), s(4.0, 0, 2, 2)]);
        assert_eq!((loss, t1, t5), (2.0, 2.0 / 6.0, 5.0 / 6.0));
        assert!(mean_stats(&[]).0.is_nan());
    }

    #[test]
    fn the_median_is_the_upper_one() {
        assert_eq!(median_time(vec![3.0, 1.0, 2.0, 9.0]), 3.0);
        assert_eq!(median_time(vec![5.0]), 5.0);
        assert!(median_time(Vec::new()).is_nan());
    }
}
