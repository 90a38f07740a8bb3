//! The Slurm executor: one job array, one task per run still to do, each task running
//! `darts-minus sweep --task <i>` on its own run (see [`super::task`]).

use super::manifest::Manifest;
use crate::error::{Error, Result};
use std::path::Path;
use std::process::Command;

/// What the job array asks of Slurm; unset options are left to the cluster's defaults.
#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    pub job_name: Option<String>,
    pub partition: Option<String>,
    /// Wall time per task, in any form `sbatch --time` takes (e.g. `2:00:00`).
    pub time: Option<String>,
    /// e.g. `gpu:1`.
    pub gres: Option<String>,
    pub cpus_per_task: Option<u32>,
    /// At most this many tasks at once (the array's `%N`).
    pub max_running: Option<u32>,
    /// Further `sbatch` options, one `#SBATCH` line each (e.g. `--account=nas`, `--mem=16G`).
    pub extra: Vec<String>,
}

pub const SCRIPT: &str = "sweep.sbatch";

/// `0-3,5,7-8`: Slurm's compact form of the task ids.
pub fn array_spec(ids: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            ids[i].to_string()
        } else {
            format!("{}-{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// `s` quoted for bash.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The batch script for the runs `ids` of the sweep in `sweep` (an absolute path, as the
/// tasks may start in another directory), run with the binary `exe`.
pub fn script(
    exe: &Path,
    sweep: &Path,
    manifest: &Manifest,
    ids: &[usize],
    o: &SlurmOptions,
) -> String {
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# Written by `darts-minus sweep --executor slurm`: one array task per run of {}\n\
         # still to do ({} of {}); task i runs (or resumes) run i of sweep.json.\n",
        sweep.join(super::manifest::MANIFEST).display(),
        ids.len(),
        manifest.runs.len()
    ));
    let mut sbatch = |line: String| s.push_str(&format!("#SBATCH {line}\n"));
    sbatch(format!(
        "--job-name={}",
        o.job_name.as_deref().unwrap_or("darts-minus-sweep")
    ));
    let limit = o.max_running.map_or(String::new(), |n| format!("%{n}"));
    sbatch(format!("--array={}{limit}", array_spec(ids)));
    sbatch(format!(
        "--output={}",
        sweep.join("logs").join("slurm-%A_%a.out").display()
    ));
    if let Some(p) = &o.partition {
        sbatch(format!("--partition={p}"));
    }
    if let Some(t) = &o.time {
        sbatch(format!("--time={t}"));
    }
    if let Some(g) = &o.gres {
        sbatch(format!("--gres={g}"));
    }
    if let Some(c) = o.cpus_per_task {
        sbatch(format!("--cpus-per-task={c}"));
    }
    for e in &o.extra {
        sbatch(e.clone());
    }
    s.push_str(&format!(
        "exec {} sweep --task \"$SLURM_ARRAY_TASK_ID\" --out {}\n",
        sh_quote(&exe.display().to_string()),
        sh_quote(&sweep.display().to_string())
    ));
    s
}

/// Submits `script` with `sbatch`; returns the job id. With `wait`, returns when every task
/// has ended (the tasks' own status files then say how each went).
pub fn submit(script: &Path, wait: bool) -> Result<String> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if wait {
        cmd.arg("--wait");
    }
    let out = cmd.arg(script).output().map_err(|e| {
        Error::Invalid(format!(
            "could not run sbatch ({e}): is this a Slurm login node? `--dry-run` writes {} without submitting it",
            script.display()
        ))
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.split(';').next().unwrap_or(l).trim().to_string());
    match id {
        // With --wait, sbatch's own exit code is the highest of the tasks': their status
        // files say which failed, so a non-zero code here is not an error of the submission.
        Some(id) if out.status.success() || wait => Ok(id),
        _ => Err(Error::Invalid(format!(
            "sbatch refused {}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_written_as_ranges() {
        assert_eq!(array_spec(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(array_spec(&[4]), "4");
        assert_eq!(array_spec(&[]), "");
    }

    #[test]
    fn quotes_survive_the_shell() {
        assert_eq!(sh_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
