//! What a search leaves in its output directory, rewritten after every epoch:
//!
//! | file | content |
//! |---|---|
//! | `checkpoint.safetensors` | weights (reference names), α, optimiser state, progress |
//! | `metrics.jsonl` | one JSON line per epoch: losses, accuracies, lr, β, softmax(α), step time, genotype |
//! | `genotype.json`, `genotype.txt` | the latest derived architecture (JSON; Python `Genotype(...)` or arch string) |
//! | `alphas_*.svg` | softmax(α) of every edge over the epochs |
//! | `curves.svg` | loss and accuracy curves |
//! | `cell_normal.svg`, `cell_reduce.svg` / `cell.svg` | drawings of the derived cells |

use super::trainer::{Derived, EpochRecord, Search};
use crate::error::{Error, Result};
use crate::report::{self, EpochPoint};
use crate::run::metrics::write_jsonl;
use crate::run::outdir::{Claim, OutDir};
use std::path::{Path, PathBuf};

pub use crate::run::metrics::write_text_atomic;

/// The output directory of one search, claimed (and locked) while the search runs.
pub struct RunDir {
    pub path: PathBuf,
    _claim: OutDir,
}

impl RunDir {
    /// Claims `path` (see [`OutDir::claim`]).
    pub fn claim(path: &Path, claim: Claim) -> Result<RunDir> {
        Ok(RunDir {
            path: path.to_path_buf(),
            _claim: OutDir::claim(path, claim)?,
        })
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.path.join("checkpoint.safetensors")
    }

    /// Checkpoint first (so a crash never leaves metrics ahead of it), then the rest.
    pub fn write_epoch(&self, search: &Search) -> Result<()> {
        search.save(&self.checkpoint())?;
        self.write_reports(search)
    }

    /// metrics, genotype files and charts from the search's history.
    pub fn write_reports(&self, search: &Search) -> Result<()> {
        let history = &search.history;
        write_jsonl(&self.path.join("metrics.jsonl"), history)?;
        let Some(last) = history.last() else {
            return Ok(());
        };
        let json = serde_json::json!({
            "epoch": last.epoch,
            "space": search.settings.space.name(),
            "edge_ops": search.edge_op_names()?,
            "genotype": last.genotype,
            "text": last.genotype_text,
            "nb201": last.nb201,
        });
        write_text_atomic(
            &self.path.join("genotype.json"),
            &serde_json::to_string_pretty(&json).map_err(|e| Error::Invalid(e.to_string()))?,
        )?;
        write_text_atomic(
            &self.path.join("genotype.txt"),
            &format!("{}\n", last.genotype_text),
        )?;
        self.charts(search, history)
    }

    fn charts(&self, search: &Search, history: &[EpochRecord]) -> Result<()> {
        let edge_ops = search.edge_ops()?;
        let names: Vec<String> = history[0].alphas.keys().cloned().collect();
        for name in &names {
            let ops: &[&[&str]] = edge_ops
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&[], |(_, l)| &l[..]);
            let series: Vec<Vec<Vec<f32>>> = history
                .iter()
                .filter_map(|r| r.alphas.get(name).cloned())
                .collect();
            let panels = match &history[0].genotype {
                Derived::Darts(g) => report::darts_edge_panels(g.nodes()),
                Derived::Nb201(_) => report::nb201_edge_panels(),
            };
            let title = format!("softmax(α): {name}");
            report::alpha_chart(
                &self.path.join(format!("{name}.svg")),
                &title,
                ops,
                &panels,
                &series,
            )?;
        }
        let points: Vec<EpochPoint> = history
            .iter()
            .map(|r| EpochPoint {
                epoch: r.epoch,
                train_loss: r.train.loss,
                val_loss: r.val.loss,
                train_acc: r.train.acc,
                val_acc: r.val.acc,
                beta: search.settings.space.aux().then_some(r.beta),
            })
            .collect();
        report::curves_chart(&self.path.join("curves.svg"), &points)?;
        let last = history.last().expect("non-empty history");
        match &last.genotype {
            Derived::Darts(g) => {
                let t = |kind: &str| format!("{kind} cell after epoch {}", last.epoch + 1);
                report::darts_cell_svg(
                    &self.path.join("cell_normal.svg"),
                    &t("normal"),
                    &g.normal,
                    &g.normal_concat,
                )?;
                report::darts_cell_svg(
                    &self.path.join("cell_reduce.svg"),
                    &t("reduction"),
                    &g.reduce,
                    &g.reduce_concat,
                )?;
            }
            Derived::Nb201(a) => {
                report::nb201_cell_svg(
                    &self.path.join("cell.svg"),
                    &format!("cell after epoch {}", last.epoch + 1),
                    &a.op_names(),
                )?;
            }
        }
        Ok(())
    }
}
