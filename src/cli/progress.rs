//! The console side of a run: the progress bar an epoch drives, output directories, and the
//! training data a run reads.

use darts_minus::data::{Dataset, Split};
use darts_minus::run::outdir::Claim;
use darts_minus::run::{Progress, StepStats};
use darts_minus::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// A progress bar over the steps of an epoch; `template` is indicatif's, around `{msg}`.
pub fn epoch_bar(template: &str) -> Result<ProgressBar> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(template)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .progress_chars("=> "),
    );
    Ok(bar)
}

/// Moves `bar` along the run loop's events: a fresh bar per epoch, one tick per step.
/// `step_msg` and `start_msg` say what the bar's message shows.
pub fn follow<'a>(
    bar: &'a ProgressBar,
    epochs: usize,
    start_msg: impl Fn(f64, Option<f64>) -> Option<String> + 'a,
    step_msg: impl Fn(&StepStats, f64) -> String + 'a,
    validating_msg: Option<&'static str>,
) -> impl FnMut(Progress) + 'a {
    move |p| match p {
        Progress::EpochStart {
            epoch,
            steps,
            lr,
            beta,
        } => {
            bar.reset();
            bar.set_length(steps as u64);
            bar.set_prefix(format!("epoch {}/{epochs}", epoch + 1));
            if let Some(m) = start_msg(lr, beta) {
                bar.set_message(m);
            }
        }
        Progress::Step { stats, seconds, .. } => {
            bar.inc(1);
            bar.set_message(step_msg(stats, seconds));
        }
        Progress::Validating { .. } => {
            if let Some(m) = validating_msg {
                bar.set_message(m.to_string());
            }
        }
    }
}

/// `runs/<name>-<seconds since 1970>`: a new run's default output directory.
pub fn timestamped(name: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{name}-{secs}"))
}

/// A resumed run writes to `--out`, or beside its checkpoint.
pub fn resume_dir(out: Option<&PathBuf>, ckpt: &Path) -> PathBuf {
    out.cloned()
        .unwrap_or_else(|| ckpt.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// How a resumed run claims `dir`: beside its checkpoint it continues the run
/// ([`Claim::Resume`]); elsewhere the directory is a new one (empty, unless `overwrite`).
pub fn resume_claim(dir: &Path, ckpt: &Path, overwrite: bool) -> Claim {
    let home = ckpt.parent().unwrap_or(Path::new(""));
    let same = match (dir.canonicalize(), home.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => dir == home,
    };
    if same {
        Claim::Resume
    } else {
        Claim::New { overwrite }
    }
}

/// The data a resumed run reads: `--data` where given (saying so when it differs from the
/// run's own), else the data the run was started on (`recorded`; None: the built-in set).
pub fn resumed_data(
    given: Option<&PathBuf>,
    recorded: Option<&PathBuf>,
    what: &str,
) -> Option<PathBuf> {
    match (given, recorded) {
        (Some(g), r) => {
            let same = r.is_some_and(|r| absolute(g) == *r);
            if !same {
                let was = r.map_or("the built-in set".to_string(), |r| r.display().to_string());
                println!(
                    "note: resuming on {what} {} instead of the run's {was}",
                    g.display()
                );
            }
            Some(g.clone())
        }
        (None, r) => r.cloned(),
    }
}

/// `p` as an absolute path (so a run resumed from another directory finds its data again).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The flags of `given` that are set: on `--resume` they would change what the checkpoint
/// fixes, so they are refused rather than silently ignored.
pub fn refuse_on_resume(given: &[(&str, bool)]) -> Result<()> {
    let set: Vec<&str> = given.iter().filter(|g| g.1).map(|g| g.0).collect();
    if set.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{} cannot be given with --resume: a resumed run continues with the settings it was          started with (in its checkpoint). Drop {}, or start a new run",
        set.join(", "),
        if set.len() == 1 { "it" } else { "them" }
    )))
}

/// The training images of `--data`, or the built-in mini set (then `true`).
pub fn training_data(data: Option<&PathBuf>) -> Result<(Dataset, bool)> {
    match data {
        None => Ok((Dataset::builtin_train()?, true)),
        Some(p) => Ok((Dataset::open(p, Split::Train)?, false)),
    }
}
