//! `darts-minus sweep`: many searches (spaces × methods × settings × seeds) run here or as a
//! Slurm job array; re-running it continues the sweep.

use super::executors;
use super::progress::timestamped;
use clap::{Args, Parser, ValueEnum};
use darts_minus::experiment::manifest::Attempt;
use darts_minus::experiment::slurm::{self, SlurmOptions};
use darts_minus::experiment::task::{self, search_args, Action};
use darts_minus::experiment::{Grid, Manifest, Method, RunPaths, RunState, SetList};
use darts_minus::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Executor {
    /// Here, --jobs runs at a time.
    Local,
    /// A Slurm job array (sweep.sbatch), one task per run.
    Slurm,
}

/// Options of `darts-minus sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Sweep directory: sweep.json, runs/<run>/, logs/, status/ (default: runs/sweep-<time>).
    /// Running the sweep again on it skips finished runs and resumes interrupted ones.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Search spaces, comma-separated [default: darts].
    #[arg(long, value_delimiter = ',')]
    pub space: Vec<String>,
    /// darts-minus (auxiliary skip) and/or darts (plain DARTS, the collapse baseline),
    /// comma-separated [default: darts-minus].
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Seeds, comma-separated [default: 0].
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Also sweep a search flag over values: KEY=V1,V2 (repeatable; e.g. beta-schedule=linear,cosine;
    /// a switch takes on/off, e.g. no-shuffle=on,off).
    #[arg(long = "set", value_name = "KEY=V1,V2")]
    pub sets: Vec<String>,
    /// Where the runs run.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: Executor,
    /// Runs at once (local executor). On a CPU adapter each run's driver then gets
    /// cores / jobs threads (unless --cpu-threads or LP_NUM_THREADS says otherwise).
    /// Default: the last invocation's on this --out, else 1.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write sweep.json (and for Slurm sweep.sbatch) and list what would run, without running
    /// or submitting anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// Run task N of the sweep in --out (what sweep.sbatch's array tasks call).
    #[arg(long, hide = true, requires = "out")]
    pub task: Option<usize>,
    /// Search flags every run gets, after `--` (e.g. `-- --epochs 10 --data cifar-10-batches-bin`).
    #[arg(last = true, value_name = "SEARCH FLAGS")]
    pub common: Vec<String>,
}

/// Options of the Slurm executor.
#[derive(Args, Debug)]
pub struct SlurmArgs {
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Wall time per task (sbatch --time, e.g. 4:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// Generic resources per task (e.g. gpu:1).
    #[arg(long)]
    pub gres: Option<String>,
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// At most this many tasks at once (the array's %N).
    #[arg(long)]
    pub max_running: Option<u32>,
    /// Any other sbatch option, written as an #SBATCH line (repeatable; e.g. --sbatch=--mem=16G).
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
    /// Wait until every task has ended (sbatch --wait), then say how each went.
    #[arg(long)]
    pub wait: bool,
}

impl SlurmArgs {
    fn options(&self) -> SlurmOptions {
        SlurmOptions {
            job_name: None,
            partition: self.partition.clone(),
            time: self.time.clone(),
            gres: self.gres.clone(),
            cpus_per_task: self.cpus_per_task,
            max_running: self.max_running,
            extra: self.sbatch.clone(),
        }
    }
}

/// `darts-minus search`'s flags alone, to check every run's command line before anything runs.
#[derive(Parser)]
#[command(no_binary_name = true, allow_negative_numbers = true)]
struct SearchOnly {
    #[command(flatten)]
    _args: super::search::SearchArgs,
}

fn grid(a: &SweepArgs) -> Result<Grid> {
    let methods = if a.methods.is_empty() {
        vec![Method::DartsMinus]
    } else {
        a.methods
            .iter()
            .map(|m| Method::parse(m))
            .collect::<Result<_>>()?
    };
    Ok(Grid {
        spaces: if a.space.is_empty() {
            vec!["darts".into()]
        } else {
            a.space.clone()
        },
        methods,
        seeds: if a.seeds.is_empty() {
            vec![0]
        } else {
            a.seeds.clone()
        },
        sets: a
            .sets
            .iter()
            .map(|s| SetList::parse(s))
            .collect::<Result<_>>()?,
        common: a.common.clone(),
    })
}

fn grid_given(a: &SweepArgs) -> bool {
    !(a.space.is_empty()
        && a.methods.is_empty()
        && a.seeds.is_empty()
        && a.sets.is_empty()
        && a.common.is_empty())
}

/// Every run's search flags, parsed as `search` would parse them.
fn check_runs(m: &Manifest) -> Result<()> {
    for r in &m.runs {
        if let Err(e) = SearchOnly::try_parse_from(&r.args) {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or_default();
            return Err(Error::Invalid(format!(
                "run {}: `darts-minus search {}` would not start: {}",
                r.name,
                r.args.join(" "),
                first.trim_start_matches("error: ")
            )));
        }
    }
    Ok(())
}

/// The manifest of the sweep in `dir`: the one there (which a given grid must match) or a
/// new one.
fn manifest(a: &SweepArgs, dir: &Path, globals: Vec<String>) -> Result<Manifest> {
    let existing = Manifest::read(dir)?;
    let mut m = match existing {
        Some(old) if !grid_given(a) => old,
        Some(old) => {
            let new = Manifest::new(grid(a)?, globals.clone())?;
            if new.runs != old.runs {
                let names = |m: &Manifest| m.runs.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
                let (o, n) = (names(&old), names(&new));
                let differ = n
                    .iter()
                    .find(|x| !o.contains(x))
                    .or_else(|| o.iter().find(|x| !n.contains(x)))
                    .map_or("the same names with other flags".to_string(), |x| format!("e.g. {x}"));
                return Err(Error::File {
                    path: dir.to_path_buf(),
                    msg: format!(
                        "holds another sweep ({} runs; this one has {}, {differ}): run `darts-minus sweep --out {}` with no grid flags to continue it, or choose another --out",
                        old.runs.len(),
                        new.runs.len(),
                        dir.display()
                    ),
                });
            }
            Manifest {
                jobs: old.jobs,
                ..new
            }
        }
        None if !grid_given(a) && a.out.is_some() && dir.exists() => {
            return Err(Error::File {
                path: dir.to_path_buf(),
                msg: "has no sweep.json: give the grid (--space, --methods, --seeds, --set, -- search flags) to start a sweep there".into(),
            })
        }
        None => Manifest::new(grid(a)?, globals.clone())?,
    };
    // The adapter flags of this invocation apply to the runs it starts.
    m.global_args = globals;
    check_runs(&m)?;
    Ok(m)
}

pub(super) fn exe() -> Result<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::Invalid(format!("cannot find the darts-minus binary itself: {e}")))
}

pub fn sweep(a: &SweepArgs, globals: Vec<String>) -> Result<()> {
    if let Some(i) = a.task {
        return run_one(a, i);
    }
    if a.jobs == Some(0) {
        return Err(Error::Invalid("--jobs must be at least 1".into()));
    }
    let dir = a.out.clone().unwrap_or_else(|| timestamped("sweep"));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let mut m = manifest(a, &dir, globals)?;
    let jobs = a.jobs.or(m.jobs).unwrap_or(1);
    if a.executor == Executor::Local {
        m.jobs = Some(jobs);
    }
    m.write(&dir)?;
    let plan: Vec<(usize, Action, RunState)> = m
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let paths = RunPaths::new(&dir, &r.name);
            let state = RunState::of(&paths);
            (i, Action::of(&state, &paths), state)
        })
        .collect();
    let n = |act: Action| plan.iter().filter(|p| p.1 == act).count();
    println!(
        "darts-minus sweep · {} runs in {} · {} finished, {} to resume, {} to start{}{}",
        m.runs.len(),
        dir.display(),
        n(Action::Skip),
        n(Action::Resume),
        n(Action::Start),
        match n(Action::Busy) {
            0 => String::new(),
            b => format!(", {b} running in another process (left alone)"),
        },
        match a.executor {
            Executor::Local => format!(" · {jobs} at a time"),
            Executor::Slurm => String::new(),
        }
    );
    let todo: Vec<usize> = plan
        .iter()
        .filter(|p| matches!(p.1, Action::Resume | Action::Start))
        .map(|p| p.0)
        .collect();
    let script = dir.join(slurm::SCRIPT);
    if a.executor == Executor::Slurm && !todo.is_empty() {
        // Slurm opens each task's --output there before the task starts.
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::File {
            path: logs.clone(),
            msg: format!("cannot create: {e}"),
        })?;
        let text = slurm::script(&exe()?, &dir, &m, &todo, &a.slurm.options());
        darts_minus::run::metrics::write_text_atomic(&script, &text)?;
    }
    if a.dry_run {
        for (i, act, state) in &plan {
            let r = &m.runs[*i];
            let paths = RunPaths::new(&dir, &r.name);
            let what = match act {
                Action::Skip => "finished".to_string(),
                Action::Busy => "running elsewhere".to_string(),
                Action::Resume | Action::Start => {
                    format!(
                        "{}: darts-minus {}",
                        state.label(),
                        search_args(&m, r, &paths, *act).join(" ")
                    )
                }
            };
            println!("  [{i}] {} · {what}", r.name);
        }
        if a.executor == Executor::Slurm && !todo.is_empty() {
            println!(
                "wrote {} (submit it with: sbatch {})",
                script.display(),
                script.display()
            );
        }
        return Ok(());
    }
    if todo.is_empty() {
        println!(
            "nothing to run. Tables and figures: darts-minus report {}",
            dir.display()
        );
        return Ok(());
    }
    match a.executor {
        Executor::Local => executors::local(&dir, &m, &todo, jobs),
        Executor::Slurm => executors::submit(&dir, &m, &todo, &script, a.slurm.wait),
    }
}

/// One array task: run `i` of the sweep in --out.
fn run_one(a: &SweepArgs, i: usize) -> Result<()> {
    let dir = a.out.clone().expect("clap requires --out with --task");
    let m = Manifest::read(&dir)?.ok_or_else(|| Error::File {
        path: dir.clone(),
        msg: "has no sweep.json: --task runs one run of an existing sweep".into(),
    })?;
    let run = m.runs.get(i).ok_or_else(|| {
        Error::Invalid(format!(
            "the sweep has {} runs (0..{}), not run {i}",
            m.runs.len(),
            m.runs.len()
        ))
    })?;
    let slurm = match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(j), Ok(t)) => Some(format!("{j}_{t}")),
        _ => std::env::var("SLURM_JOB_ID").ok(),
    };
    let o = task::run_task(&exe()?, &dir, &m, run, slurm)?;
    println!(
        "{}",
        executors::outcome_line(&o, &RunPaths::new(&dir, &run.name))
    );
    match o.state {
        Attempt::Failed => Err(Error::Invalid(format!("run {} failed", run.name))),
        _ => Ok(()),
    }
}
