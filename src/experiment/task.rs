//! One run of a sweep, started or continued as a child `darts-minus search` process: the same
//! path for the local executor and for each task of a Slurm array.

use super::grid::RunSpec;
use super::manifest::{Attempt, Manifest, RunPaths, RunState, Status};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What a run needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Finished: nothing to do.
    Skip,
    /// Another process is running it now.
    Busy,
    /// Continue from its checkpoint.
    Resume,
    /// Start it (again) from scratch: no checkpoint to continue from.
    Start,
}

impl Action {
    pub fn of(state: &RunState, paths: &RunPaths) -> Action {
        match state {
            RunState::Finished(_) => Action::Skip,
            RunState::Running => Action::Busy,
            RunState::Interrupted { .. } => Action::Resume,
            RunState::Pending => Action::Start,
            // A failed run that left a checkpoint continues from it (a corrupt one then stops
            // again with the reader's error, and the file stays for the user to look at:
            // finished epochs are never thrown away).
            RunState::Failed { .. } if paths.checkpoint().exists() => Action::Resume,
            RunState::Failed { .. } => Action::Start,
        }
    }
}

/// How one attempt at a run ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub name: String,
    pub action: Action,
    pub state: Attempt,
    pub exit_code: Option<i32>,
    pub seconds: f64,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This machine's name (for status files: which node ran a task).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The `search` arguments of `run` for `action`.
pub fn search_args(
    manifest: &Manifest,
    run: &RunSpec,
    paths: &RunPaths,
    action: Action,
) -> Vec<String> {
    let mut args = manifest.global_args.clone();
    args.push("search".into());
    let dir = paths.dir.display().to_string();
    if action == Action::Resume {
        args.extend(["--resume".into(), dir]);
    } else {
        args.extend(run.args.iter().cloned());
        // The directory belongs to the sweep: a run restarted from scratch replaces what a
        // crash before its first checkpoint left there.
        args.extend(["--out".into(), dir, "--overwrite".into()]);
    }
    args
}

/// Runs (or continues) `run` of the sweep in `sweep` with the binary `exe`, its output appended
/// to the run's log, its status file kept up to date. `slurm` names the array task.
pub fn run_task(
    exe: &Path,
    sweep: &Path,
    manifest: &Manifest,
    run: &RunSpec,
    slurm: Option<String>,
) -> Result<Outcome> {
    let paths = RunPaths::new(sweep, &run.name);
    let action = Action::of(&RunState::of(&paths), &paths);
    let outcome = |state, exit_code, seconds| Outcome {
        name: run.name.clone(),
        action,
        state,
        exit_code,
        seconds,
    };
    match action {
        Action::Skip => return Ok(outcome(Attempt::Finished, Some(0), 0.0)),
        Action::Busy => {
            return Err(Error::Invalid(format!(
            "run {} is being written by another darts-minus process (its directory {} is locked)",
            run.name,
            paths.dir.display()
        )))
        }
        Action::Resume | Action::Start => {}
    }
    let log_err = |e: std::io::Error| Error::File {
        path: paths.log.clone(),
        msg: format!("cannot write the run's log: {e}"),
    };
    if let Some(parent) = paths.log.parent() {
        std::fs::create_dir_all(parent).map_err(log_err)?;
    }
    let mut log = File::options()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(log_err)?;
    let previous = Status::read(&paths.status).map_or(0, |s| s.attempts);
    let mut status = Status {
        state: Attempt::Running,
        exit_code: None,
        attempts: previous + 1,
        started: now(),
        ended: None,
        host: hostname(),
        slurm,
    };
    status.write(&paths.status)?;
    let args = search_args(manifest, run, &paths, action);
    writeln!(
        log,
        "==== attempt {} on {} at {} (unix s){}: {} {}",
        status.attempts,
        status.host,
        status.started,
        status
            .slurm
            .as_ref()
            .map_or(String::new(), |s| format!(", Slurm task {s}")),
        exe.display(),
        args.join(" ")
    )
    .map_err(log_err)?;
    let started = Instant::now();
    let child_out = log.try_clone().map_err(log_err)?;
    let exit = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(child_out)
        .stderr(log.try_clone().map_err(log_err)?)
        .status();
    let (state, code) = match exit {
        Ok(s) if s.success() => (Attempt::Finished, s.code()),
        Ok(s) => (Attempt::Failed, s.code()),
        Err(e) => {
            writeln!(log, "error: could not start {}: {e}", exe.display()).map_err(log_err)?;
            (Attempt::Failed, None)
        }
    };
    status.state = state;
    status.exit_code = code;
    status.ended = Some(now());
    status.write(&paths.status)?;
    Ok(outcome(state, code, started.elapsed().as_secs_f64()))
}
