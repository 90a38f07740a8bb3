//! What a step reports, and the files a run's metrics go to.

use super::Position;
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

/// Reads a step's loss and top-1/top-5 counts back from the GPU (one wait for both). With a
/// non-finite loss nothing counts as correct: the ranks of NaN logits (no logit compares
/// above a NaN) would otherwise say every image is.
pub fn read_stats(loss: &Tensor, ranks: &Tensor) -> Result<StepStats> {
    let mut both = Tensor::read_all(&[loss, ranks])?;
    let ranks = both.pop().unwrap_or_default();
    let loss = both[0][0];
    let counted = |k: f32| match loss.is_finite() {
        true => ranks.iter().filter(|&&r| r < k).count(),
        false => 0,
    };
    Ok(StepStats {
        loss,
        top1: counted(1.0),
        top5: counted(5.0),
        n: ranks.len(),
    })
}

/// Stops a run whose `what` loss (training, validation, test) is not finite: `at` counts the
/// completed epochs (checkpointed) and the steps so far; `hint` says what to change.
pub fn check_loss(what: &str, loss: f64, at: Position, hint: &str) -> Result<()> {
    if loss.is_finite() {
        return Ok(());
    }
    let kept = match at.epoch {
        0 => "No epoch completed, so no checkpoint was written".to_string(),
        k => format!("The checkpoint of epoch {k}, the last completed, is intact"),
    };
    let (step, epoch) = (at.step, at.epoch + 1);
    Err(Error::Invalid(format!(
        "training diverged: the {what} loss is {loss} at step {step} of epoch {epoch}; {hint}. {kept}"
    )))
}

/// Deserializes a metric written as JSON `null` (serde_json writes NaN so) back as NaN, so a
/// run reads every history it wrote.
pub fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Loss, top-1 and top-5 accuracy on one split over an epoch: `<split>_loss`, `<split>_acc`
/// and `<split>_top5` in metrics.jsonl (the record flattens it with the split's prefix).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Scores {
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub acc: f64,
    /// Absent from retraining lines written before it was recorded.
    #[serde(deserialize_with = "nan_if_null", default = "nan")]
    pub top5: f64,
}

fn nan() -> f64 {
    f64::NAN
}

impl Scores {
    /// The mean over steps, weighted by their images (NaN for none).
    pub fn of(stats: &[StepStats]) -> Scores {
        let n: usize = stats.iter().map(|s| s.n).sum();
        if n == 0 {
            return Scores {
                loss: f64::NAN,
                acc: f64::NAN,
                top5: f64::NAN,
            };
        }
        let mean = |f: &dyn Fn(&StepStats) -> f64| stats.iter().map(f).sum::<f64>() / n as f64;
        Scores {
            loss: mean(&|s| s.loss as f64 * s.n as f64),
            acc: mean(&|s| s.top1 as f64),
            top5: mean(&|s| s.top5 as f64),
        }
    }
}

// The prefixes that give each split's scores its field names in metrics.jsonl.
serde_with::with_prefix!(pub prefix_train "train_");
serde_with::with_prefix!(pub prefix_val "val_");
serde_with::with_prefix!(pub prefix_test "test_");

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

/// Writes `text` to `path` through a temporary file and a rename; a failed write (a full
/// disk) leaves no temporary file behind.
pub fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            file_err(path, format!("cannot write: {e}"))
        })
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
        let m = Scores::of(&[s(1.0, 2, 3, 4), s(4.0, 0, 2, 2)]);
        assert_eq!((m.loss, m.acc, m.top5), (2.0, 2.0 / 6.0, 5.0 / 6.0));
        let none = Scores::of(&[]);
        assert!(none.loss.is_nan() && none.acc.is_nan() && none.top5.is_nan());
    }

    #[test]
    fn scores_are_fields_with_the_split_prefix_and_null_reads_as_nan() {
        #[derive(Debug, Serialize, serde::Deserialize)]
        struct Line {
            #[serde(flatten, with = "prefix_val")]
            val: Scores,
        }
        let line = Line {
            val: Scores {
                loss: f64::NAN,
                acc: 0.5,
                top5: 1.0,
            },
        };
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(text, r#"{"val_loss":null,"val_acc":0.5,"val_top5":1.0}"#);
        let back: Line = serde_json::from_str(&text).unwrap();
        assert!(back.val.loss.is_nan() && back.val.acc == 0.5 && back.val.top5 == 1.0);
        // A line from before top-5 was recorded.
        let old: Line = serde_json::from_str(r#"{"val_loss":1.0,"val_acc":0.5}"#).unwrap();
        assert!(old.val.top5.is_nan());
    }

    #[test]
    fn a_nan_metric_reads_back_from_its_json_null() {
        #[derive(serde::Deserialize)]
        struct R {
            #[serde(deserialize_with = "nan_if_null")]
            loss: f64,
        }
        let text = serde_json::to_string(&serde_json::json!({ "loss": f64::NAN })).unwrap();
        assert_eq!(text, r#"{"loss":null}"#);
        assert!(serde_json::from_str::<R>(&text).unwrap().loss.is_nan());
        assert_eq!(
            serde_json::from_str::<R>(r#"{"loss":1.5}"#).unwrap().loss,
            1.5
        );
    }

    #[test]
    fn the_median_is_the_upper_one() {
        assert_eq!(median_time(vec![3.0, 1.0, 2.0, 9.0]), 3.0);
        assert_eq!(median_time(vec![5.0]), 5.0);
        assert!(median_time(Vec::new()).is_nan());
    }
}
