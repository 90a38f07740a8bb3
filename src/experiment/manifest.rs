//! A sweep's directory: `sweep.json` (what runs), and per run its search directory, its log
//! and its status.
//!
//! | path | content |
//! |---|---|
//! | `sweep.json` | the manifest: the grid, every run's name and search arguments |
//! | `runs/<name>/` | the run's search output (checkpoint, metrics, genotype, charts) |
//! | `logs/<name>.log` | everything the run printed, every attempt appended |
//! | `status/<name>.json` | the last attempt: state, exit code, times, host, Slurm ids |
//! | `sweep.sbatch`, `logs/slurm-<job>_<task>.out` | the Slurm job array and its own output |

use super::grid::{Grid, RunSpec};
use crate::error::{Error, Result};
use crate::run::metrics::write_text_atomic;
use crate::run::outdir;
use crate::search::SearchRecord;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "sweep.json";
const FORMAT: &str = "darts-minus sweep v1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub grid: Grid,
    /// Global flags (`--backend`, `--limits`, …) every run's command gets.
    pub global_args: Vec<String>,
    /// Runs at once of the last local invocation: what a re-run without `--jobs` takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<usize>,
    pub runs: Vec<RunSpec>,
}

fn file_err(path: &Path, msg: String) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg,
    }
}

fn to_json(v: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| Error::Invalid(e.to_string()))
}

impl Manifest {
    pub fn new(grid: Grid, global_args: Vec<String>) -> Result<Manifest> {
        Ok(Manifest {
            format: FORMAT.into(),
            runs: grid.runs()?,
            grid,
            global_args,
            jobs: None,
        })
    }

    /// The manifest of the sweep in `dir`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(file_err(&path, format!("cannot read: {e}"))),
        };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            file_err(
                &path,
                format!(
                    "not a darts-minus sweep manifest ({e}); was the file edited or cut short?"
                ),
            )
        })?;
        if m.format != FORMAT {
            return Err(file_err(
                &path,
                format!(
                    "a '{}' manifest; this darts-minus reads '{FORMAT}'",
                    m.format
                ),
            ));
        }
        Ok(Some(m))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| file_err(dir, format!("cannot create the sweep directory: {e}")))?;
        write_text_atomic(&dir.join(MANIFEST), &to_json(self)?)
    }

    /// The run called `name`.
    pub fn run(&self, name: &str) -> Option<&RunSpec> {
        self.runs.iter().find(|r| r.name == name)
    }
}

/// Where one run of the sweep in `dir` keeps its files.
pub struct RunPaths {
    pub dir: PathBuf,
    pub log: PathBuf,
    pub status: PathBuf,
}

impl RunPaths {
    pub fn new(sweep: &Path, name: &str) -> RunPaths {
        RunPaths {
            dir: sweep.join("runs").join(name),
            log: sweep.join("logs").join(format!("{name}.log")),
            status: sweep.join("status").join(format!("{name}.json")),
        }
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }
}

/// How a run's last attempt ended (or that it is under way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attempt {
    Running,
    Finished,
    Failed,
}

/// `status/<name>.json`: the run's last attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub state: Attempt,
    /// The search's exit code (None while running, or when it was killed by a signal).
    pub exit_code: Option<i32>,
    pub attempts: u32,
    /// Seconds since 1970 at the start and end of the last attempt.
    pub started: u64,
    pub ended: Option<u64>,
    pub host: String,
    /// `<array job>_<task>` under Slurm.
    pub slurm: Option<String>,
}

impl Status {
    pub fn read(path: &Path) -> Option<Status> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| file_err(parent, format!("cannot create: {e}")))?;
        }
        write_text_atomic(path, &to_json(self)?)
    }
}

/// Where a run stands, from its checkpoint, its lock and its status file.
#[derive(Debug)]
pub enum RunState {
    /// No checkpoint yet and no failed attempt: never started, or stopped before its first epoch.
    Pending,
    /// A search process holds the run's directory now.
    Running,
    /// Stopped part-way (killed, machine lost) with a checkpoint to resume from.
    Interrupted { epochs_done: usize },
    /// All epochs done.
    Finished(Box<SearchRecord>),
    /// The last attempt exited with an error (or left a checkpoint that cannot be read).
    Failed { exit_code: Option<i32>, why: String },
}

impl RunState {
    pub fn of(paths: &RunPaths) -> RunState {
        if outdir::is_locked(&paths.dir) {
            return RunState::Running;
        }
        let status = Status::read(&paths.status);
        let failed = status.as_ref().filter(|s| s.state == Attempt::Failed);
        let ckpt = paths.checkpoint();
        if !ckpt.exists() {
            return match failed {
                Some(s) => RunState::Failed {
                    exit_code: s.exit_code,
                    why: last_error(&paths.log),
                },
                None => RunState::Pending,
            };
        }
        match SearchRecord::read(&ckpt) {
            Ok(r) if r.finished() => RunState::Finished(Box::new(r)),
            Ok(r) => match failed {
                Some(s) => RunState::Failed {
                    exit_code: s.exit_code,
                    why: last_error(&paths.log),
                },
                None => RunState::Interrupted {
                    epochs_done: r.epoch,
                },
            },
            Err(e) => RunState::Failed {
                exit_code: failed.and_then(|s| s.exit_code),
                why: format!("unreadable checkpoint: {e}"),
            },
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Interrupted { .. } => "interrupted",
            RunState::Finished(_) => "finished",
            RunState::Failed { .. } => "failed",
        }
    }
}

/// The last line of a run's log that says `error`, or its last line: why it failed.
pub fn last_error(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return format!("no log at {}", log.display());
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|l| l.contains("error") || l.contains("panicked"))
        .or(lines.last())
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| "the log is empty".into())
}
