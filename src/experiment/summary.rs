//! `darts-minus report`: the runs of sweeps (or single search directories) gathered per
//! (space, method, setting), each metric as mean ± std over the finished runs and per seed,
//! with the runs that did not finish counted and named.

use super::grid::{setting_label, Method};
use super::manifest::{Manifest, RunPaths, RunState, MANIFEST};
use crate::error::{Error, Result};
use crate::nn::darts_ops::{DARTS_OPS, NB201_OPS};
use crate::run::outdir;
use crate::search::derived::Derived;
use crate::search::epoch::EpochRecord;
use crate::search::nb201::Nb201Entry;
use crate::search::SearchRecord;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};

/// Operations without weights: a cell made of them is the collapse DARTS- prevents.
pub const PARAMETER_FREE: [&str; 5] = [
    "none",
    "skip_connect",
    "max_pool_3x3",
    "avg_pool_3x3",
    "noise",
];

/// The derived cell in numbers (the normal cell in the DARTS space).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellCounts {
    pub edges: usize,
    pub skip: usize,
    pub none: usize,
    pub parameter_free: usize,
}

impl CellCounts {
    fn of<'a>(ops: impl Iterator<Item = &'a str>) -> CellCounts {
        let ops: Vec<&str> = ops.collect();
        let count = |f: &dyn Fn(&str) -> bool| ops.iter().filter(|o| f(o)).count();
        CellCounts {
            edges: ops.len(),
            skip: count(&|o| o == "skip_connect"),
            none: count(&|o| o == "none"),
            parameter_free: count(&|o| PARAMETER_FREE.contains(&o)),
        }
    }
}

/// One run as the report sees it (and as report.json keeps it, to be read back).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
    /// Its search directory.
    pub dir: PathBuf,
    pub space: String,
    pub method: Method,
    pub setting: String,
    pub seed: u64,
    /// finished, interrupted, failed, running or pending.
    pub state: String,
    /// Why a run failed, with its log.
    pub why: Option<String>,
    pub log: Option<PathBuf>,
    pub epochs_done: usize,
    pub epochs: Option<usize>,
    pub best_val_acc: Option<f64>,
    pub final_val_acc: Option<f64>,
    pub genotype: Option<String>,
    pub cell: Option<CellCounts>,
    /// The benchmark's accuracies of the final derived cell (NAS-Bench-201 runs).
    pub nb201: Option<Nb201Entry>,
    /// Per epoch: softmax(α) of skip_connect averaged over the edges that have it (the
    /// normal cell in the DARTS space).
    #[serde(deserialize_with = "nan_for_null")]
    pub skip_weight: Vec<f64>,
    /// Per epoch: the benchmark's CIFAR-10 test accuracy of the cell derived then.
    #[serde(deserialize_with = "nan_for_null")]
    pub nb201_test: Vec<f64>,
    /// The earlier report.json this run was read back from (its state is as of then), or
    /// none for a run read from its directory now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_in: Option<PathBuf>,
}

/// serde_json writes a series' NaN (an epoch without the value) as null; read it back so.
fn nan_for_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<f64>, D::Error> {
    let v: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

impl RunResult {
    pub fn finished(&self) -> bool {
        self.state == "finished"
    }
}

/// The candidates of row `edge` of α table `table` in epoch record `e`: its recorded
/// `edge_ops`, or for records written before those existed the space's one list (DARTS and
/// NAS-Bench-201, the only spaces then), if the row has its width.
fn row_ops<'a>(e: &'a EpochRecord, table: &str, edge: usize, cols: usize) -> Option<Vec<&'a str>> {
    if let Some(ops) = e.edge_ops.get(table).and_then(|t| t.get(edge)) {
        return Some(ops.iter().map(String::as_str).collect());
    }
    [&DARTS_OPS[..], &NB201_OPS[..]]
        .into_iter()
        .find(|ops| ops.len() == cols)
        .map(|ops| ops.to_vec())
}

/// The α table whose skip weight tells collapse: the normal cell's, or the only one.
fn collapse_table(r: &SearchRecord) -> Option<&str> {
    let first = r.history.first()?;
    if first.alphas.contains_key("alphas_normal") {
        return Some("alphas_normal");
    }
    first.alphas.keys().next().map(String::as_str)
}

fn skip_weights(r: &SearchRecord) -> Vec<f64> {
    let Some(table) = collapse_table(r) else {
        return vec![];
    };
    r.history
        .iter()
        .map(|e| {
            let mut sum = 0.0;
            let mut n = 0;
            for (edge, row) in e.alphas.get(table).into_iter().flatten().enumerate() {
                let col = row_ops(e, table, edge, row.len())
                    .and_then(|ops| ops.iter().position(|&o| o == "skip_connect"));
                if let Some(c) = col {
                    sum += row[c] as f64;
                    n += 1;
                }
            }
            if n == 0 {
                f64::NAN
            } else {
                sum / n as f64
            }
        })
        .collect()
}

fn from_record(mut res: RunResult, r: &SearchRecord) -> RunResult {
    res.epochs_done = r.history.len();
    res.epochs = Some(r.settings.epochs);
    res.best_val_acc = r.history.iter().map(|e| e.val.acc).reduce(f64::max);
    if let Some(last) = r.history.last() {
        res.final_val_acc = Some(last.val.acc);
        res.genotype = Some(last.genotype_text.clone());
        res.cell = Some(match &last.genotype {
            Derived::Darts(g) => CellCounts::of(g.normal.iter().map(|(o, _)| o.as_str())),
            Derived::Nb201(a) => CellCounts::of(a.op_names().into_iter()),
        });
        res.nb201 = last.nb201.clone();
    }
    res.skip_weight = skip_weights(r);
    res.nb201_test = r
        .history
        .iter()
        .map(|e| e.nb201.as_ref().map_or(f64::NAN, |n| n.cifar10_test))
        .collect();
    res
}

fn blank(
    name: String,
    dir: PathBuf,
    space: String,
    method: Method,
    setting: String,
    seed: u64,
) -> RunResult {
    RunResult {
        name,
        dir,
        space,
        method,
        setting,
        seed,
        state: String::new(),
        why: None,
        log: None,
        epochs_done: 0,
        epochs: None,
        best_val_acc: None,
        final_val_acc: None,
        genotype: None,
        cell: None,
        nb201: None,
        skip_weight: vec![],
        nb201_test: vec![],
        archived_in: None,
    }
}

/// Every run of the sweep in `dir`, in its manifest's order.
fn sweep_runs(dir: &Path, m: &Manifest) -> Vec<RunResult> {
    m.runs
        .iter()
        .map(|spec| {
            let paths = RunPaths::new(dir, &spec.name);
            let state = RunState::of(&paths);
            let mut res = blank(
                spec.name.clone(),
                paths.dir.clone(),
                spec.space.clone(),
                spec.method,
                spec.setting_label(),
                spec.seed,
            );
            res.log = paths.log.exists().then(|| paths.log.clone());
            res.state = state.label().into();
            match state {
                RunState::Finished(r) => res = from_record(res, &r),
                RunState::Failed { exit_code, why } => {
                    let code = exit_code.map_or("killed".into(), |c| format!("exit {c}"));
                    res.why = Some(format!("{code}: {why}"));
                }
                RunState::Interrupted { epochs_done } => res.epochs_done = epochs_done,
                RunState::Pending | RunState::Running => {}
            }
            res
        })
        .collect()
}

/// A single search directory.
fn search_run(dir: &Path) -> Result<RunResult> {
    let r = SearchRecord::read(&dir.join("checkpoint.safetensors"))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let res = blank(
        name,
        dir.to_path_buf(),
        r.settings.space.name().into(),
        Method::of_aux(r.settings.space.aux()),
        setting_label(&[]),
        r.settings.seed,
    );
    let mut res = from_record(res, &r);
    res.state = if r.finished() {
        "finished"
    } else if outdir::is_locked(dir) {
        "running"
    } else {
        "interrupted"
    }
    .into();
    Ok(res)
}

/// How a sweep was made: its directory and the command that makes (or continues) it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MadeBy {
    pub source: PathBuf,
    pub command: String,
}

/// What a report is made of: its runs, and the sweep commands behind them.
#[derive(Debug, Default)]
pub struct Gathered {
    pub runs: Vec<RunResult>,
    pub made_by: Vec<MadeBy>,
    /// Earlier reports read back whose commands were not recorded (written before report.json
    /// kept them).
    pub archives_without_commands: Vec<PathBuf>,
}

/// An earlier report's report.json, as far as a new report needs it.
#[derive(Deserialize)]
struct Archive {
    runs: Vec<RunResult>,
    #[serde(default)]
    made_by: Option<Vec<MadeBy>>,
}

fn read_archive(path: &Path) -> Result<Archive> {
    let bad = |msg: String| Error::File {
        path: path.to_path_buf(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut a: Archive = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "not a darts-minus report.json ({e}): give the report.json a `darts-minus report` wrote, or run directories"
        ))
    })?;
    for r in &mut a.runs {
        r.archived_in = Some(path.to_path_buf());
    }
    Ok(a)
}

impl Gathered {
    /// Adds a run; one already here with the same directory is the same run seen twice: a run
    /// read from its directory now wins over one read back from a report, and a later report
    /// over an earlier one.
    fn add(&mut self, run: RunResult) {
        match self.runs.iter_mut().find(|r| r.dir == run.dir) {
            Some(have) if have.archived_in.is_none() && run.archived_in.is_some() => {}
            Some(have) => *have = run,
            None => self.runs.push(run),
        }
    }

    fn add_made_by(&mut self, m: MadeBy) {
        match self.made_by.iter_mut().find(|h| h.source == m.source) {
            Some(have) => *have = m,
            None => self.made_by.push(m),
        }
    }
}

/// The runs in `sources`: each a sweep directory, a search directory, a directory holding
/// either (one level down), or the report.json of an earlier report (its runs as recorded
/// then, for runs whose directories are gone; a run also found in a directory given here is
/// read from there).
pub fn collect(sources: &[PathBuf]) -> Result<Gathered> {
    let mut got = Gathered::default();
    // Archives first, so that runs read now replace them whatever the order given.
    for src in sources.iter().filter(|s| s.is_file()) {
        let a = read_archive(src)?;
        match a.made_by {
            Some(m) => m.into_iter().for_each(|m| got.add_made_by(m)),
            None => got.archives_without_commands.push(src.clone()),
        }
        a.runs.into_iter().for_each(|r| got.add(r));
    }
    for dir in sources.iter().filter(|s| !s.is_file()) {
        if !dir.is_dir() {
            return Err(Error::File {
                path: dir.clone(),
                msg: "not a directory: give sweep directories (with sweep.json), search run directories, or an earlier report's report.json".into(),
            });
        }
        let mut runs = Vec::new();
        let found = gather(dir, true, &mut runs)?;
        if !found {
            return Err(Error::File {
                path: dir.clone(),
                msg: "holds no sweep (sweep.json) and no search run (checkpoint.safetensors), nor do its subdirectories".into(),
            });
        }
        if let Some(m) = Manifest::read(dir)? {
            got.add_made_by(MadeBy {
                source: dir.clone(),
                command: m.grid.command(Some(dir)),
            });
        }
        runs.into_iter().for_each(|r| got.add(r));
    }
    Ok(got)
}

fn gather(dir: &Path, descend: bool, runs: &mut Vec<RunResult>) -> Result<bool> {
    if let Some(m) = Manifest::read(dir)? {
        runs.extend(sweep_runs(dir, &m));
        return Ok(true);
    }
    if dir.join(MANIFEST).exists() {
        return Ok(false);
    }
    if dir.join("checkpoint.safetensors").exists() {
        match search_run(dir) {
            Ok(r) => runs.push(r),
            Err(e) => {
                let mut r = blank(
                    dir.display().to_string(),
                    dir.to_path_buf(),
                    "?".into(),
                    Method::DartsMinus,
                    setting_label(&[]),
                    0,
                );
                r.state = "failed".into();
                r.why = Some(format!("unreadable checkpoint: {e}"));
                runs.push(r);
            }
        }
        return Ok(true);
    }
    if !descend {
        return Ok(false);
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::File {
            path: dir.to_path_buf(),
            msg: format!("cannot list: {e}"),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    let mut found = false;
    for d in subdirs {
        found |= gather(&d, false, runs)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &str, state: &str, archived: Option<&str>) -> RunResult {
        let mut r = blank(
            "r".into(),
            dir.into(),
            "nb201".into(),
            Method::Darts,
            "default".into(),
            0,
        );
        r.state = state.into();
        r.archived_in = archived.map(PathBuf::from);
        r
    }

    #[test]
    fn a_run_read_now_replaces_its_archived_self_in_either_order() {
        let mut g = Gathered::default();
        g.add(run("a", "running", Some("old.json")));
        g.add(run("b", "finished", Some("old.json")));
        g.add(run("a", "finished", None));
        g.add(run("a", "running", Some("older.json")));
        assert_eq!(g.runs.len(), 2);
        assert_eq!(
            (g.runs[0].state.as_str(), g.runs[0].archived_in.is_none()),
            ("finished", true)
        );
        // Of two archives, the later given wins.
        g.add(run("b", "failed", Some("newer.json")));
        assert_eq!(g.runs[1].state, "failed");
    }

    #[test]
    fn a_run_survives_report_json_and_back_with_its_missing_epochs() {
        let mut r = run("a", "finished", None);
        r.skip_weight = vec![0.2, f64::NAN, 0.25];
        r.nb201 = None;
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains("null") && !text.contains("archived_in"),
            "{text}"
        );
        let back: RunResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back.skip_weight[0], 0.2);
        assert!(back.skip_weight[1].is_nan());
        assert_eq!(back.method, Method::Darts);
        assert_eq!(back.state, "finished");
    }
}
