//! How `darts-minus sweep` runs what it has to: here, with one combined progress display (a
//! bar over the runs, a line per run under way showing its latest epoch), or as a Slurm job
//! array, waiting for it on request; and the one line that says how a run went.

use super::sweep::exe;
use darts_minus::experiment::local::{run_local, Event};
use darts_minus::experiment::manifest::{last_error, Attempt};
use darts_minus::experiment::slurm;
use darts_minus::experiment::task::{Action, Outcome};
use darts_minus::experiment::{Manifest, RunPaths, RunState};
use darts_minus::{Error, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

fn took(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else {
        format!("{:.1} min", secs / 60.0)
    }
}

pub fn outcome_line(o: &Outcome, paths: &RunPaths) -> String {
    match (o.state, o.action) {
        (_, Action::Skip) => format!("= {} already finished", o.name),
        (Attempt::Failed, _) => format!(
            "✗ {} failed ({}) after {}: {} · log {}",
            o.name,
            o.exit_code.map_or("killed".into(), |c| format!("exit {c}")),
            took(o.seconds),
            last_error(&paths.log),
            paths.log.display()
        ),
        _ => format!(
            "✓ {} {} in {}",
            o.name,
            if o.action == Action::Resume {
                "resumed and finished"
            } else {
                "finished"
            },
            took(o.seconds)
        ),
    }
}

/// The last line a run printed (its latest epoch), for the progress display.
fn last_line(log: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    // Polled twice a second per live run: read the log's tail, not the whole log.
    let tail = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(log)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(4096)))?;
        let mut b = Vec::new();
        f.read_to_end(&mut b)?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    };
    tail()
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_default()
}

pub fn local(dir: &Path, m: &Manifest, todo: &[usize], jobs: usize) -> Result<()> {
    // Parallel runs on a CPU adapter share the cores instead of each spawning one driver
    // thread per core (read by Mesa's lavapipe/llvmpipe only; GPUs ignore it).
    let told = m.global_args.iter().any(|a| a == "--cpu-threads");
    if jobs > 1 && !told && std::env::var_os("LP_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // One thread here, before any run starts.
        std::env::set_var("LP_NUM_THREADS", (cores / jobs).max(1).to_string());
    }
    let tty = std::io::stderr().is_terminal();
    let mp = MultiProgress::new();
    let total = mp.add(ProgressBar::new(todo.len() as u64));
    total.set_style(
        ProgressStyle::with_template("runs [{bar:30}] {pos}/{len} · {msg} · {elapsed}")
            .map_err(|e| Error::Invalid(e.to_string()))?
            .progress_chars("=> "),
    );
    let spinner = ProgressStyle::with_template("  {spinner} {prefix}: {wide_msg}")
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut lines: HashMap<String, ProgressBar> = HashMap::new();
    let mut failed: Vec<String> = Vec::new();
    let say = |mp: &MultiProgress, s: String| {
        if tty {
            let _ = mp.println(s);
        } else {
            println!("{s}");
        }
    };
    let results = run_local(&exe()?, dir, m, todo, jobs, &mut |e| match e {
        Event::Started(name) => {
            let bar = mp.insert_before(&total, ProgressBar::new_spinner());
            bar.set_style(spinner.clone());
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            lines.insert(name.to_string(), bar);
            if !tty {
                println!("started {name}");
            }
        }
        Event::Ended(o) => {
            if let Some(bar) = lines.remove(&o.name) {
                bar.finish_and_clear();
                mp.remove(&bar);
            }
            if o.state == Attempt::Failed {
                failed.push(o.name.clone());
            }
            total.inc(1);
            total.set_message(format!("{} failed", failed.len()));
            say(&mp, outcome_line(o, &RunPaths::new(dir, &o.name)));
        }
        Event::NotRun(name, err) => {
            if let Some(bar) = lines.remove(name) {
                bar.finish_and_clear();
                mp.remove(&bar);
            }
            failed.push(name.to_string());
            total.inc(1);
            say(&mp, format!("✗ {name} not run: {err}"));
        }
        Event::Tick => {
            for (name, bar) in &lines {
                bar.set_message(last_line(&RunPaths::new(dir, name).log));
            }
        }
    });
    total.finish_and_clear();
    let failed_n = results
        .iter()
        .filter(|r| !matches!(r, Ok(o) if o.state != Attempt::Failed))
        .count();
    println!(
        "{} of {} runs finished{}. Tables and figures: darts-minus report {}",
        results.len() - failed_n,
        results.len(),
        if failed_n > 0 {
            format!(
                ", {failed_n} failed (logs in {})",
                dir.join("logs").display()
            )
        } else {
            String::new()
        },
        dir.display()
    );
    if failed_n > 0 {
        return Err(Error::Invalid(format!(
            "{failed_n} of {} runs failed: {}; running the sweep again retries them",
            results.len(),
            failed.join(", ")
        )));
    }
    Ok(())
}

pub fn submit(dir: &Path, m: &Manifest, todo: &[usize], script: &Path, wait: bool) -> Result<()> {
    let id = slurm::submit(script, wait)?;
    println!(
        "submitted job array {id}: {} tasks ({})",
        todo.len(),
        script.display()
    );
    if !wait {
        println!(
            "follow it with `squeue -j {id}`; logs in {}; when it is done: darts-minus report {}",
            dir.join("logs").display(),
            dir.display()
        );
        return Ok(());
    }
    let mut failed = Vec::new();
    for &i in todo {
        let r = &m.runs[i];
        let paths = RunPaths::new(dir, &r.name);
        let state = RunState::of(&paths);
        let line = match &state {
            RunState::Finished(_) => format!("✓ {} finished", r.name),
            RunState::Failed { exit_code, why } => format!(
                "✗ {} failed ({}): {why} · log {}",
                r.name,
                exit_code.map_or("killed".into(), |c| format!("exit {c}")),
                paths.log.display()
            ),
            other => format!(
                "✗ {} {} (the task did not finish it; see {})",
                r.name,
                other.label(),
                dir.join("logs").display()
            ),
        };
        if !matches!(state, RunState::Finished(_)) {
            failed.push(r.name.clone());
        }
        println!("{line}");
    }
    println!("Tables and figures: darts-minus report {}", dir.display());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{} of {} tasks did not finish their run: {}; submitting the sweep again retries them",
            failed.len(),
            todo.len(),
            failed.join(", ")
        )))
    }
}
