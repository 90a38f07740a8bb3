//! Many runs as a user makes them: `darts-minus sweep` here and as a Slurm job array, re-run to
//! continue, and `darts-minus report` over the result.

mod common;

use common::cli::{bin, fails_with, tiny_cifar, tmp};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Search flags of a run that takes seconds: 16 training images, batch 8, two epochs.
fn tiny(data: &Path, epochs: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "--channels",
        "2",
        "--cells-per-stage",
        "1",
        "--batch-size",
        "8",
    ]
    .map(String::from)
    .to_vec();
    a.extend(["--epochs".into(), epochs.into(), "--data".into()]);
    a.push(data.display().to_string());
    a
}

/// 2 methods × 2 seeds on NAS-Bench-201.
fn sweep(out: &Path, data: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args([
        "sweep",
        "--space",
        "nb201",
        "--methods",
        "darts-minus,darts",
    ])
    .args(["--seeds", "0,1", "--out"])
    .arg(out)
    .args(extra)
    .arg("--")
    .args(tiny(data, "2"));
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(path: &Path) -> Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&t).unwrap()
}

/// The last epoch record of a run's metrics.jsonl.
fn last_epoch(run: &Path) -> Value {
    let t = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    serde_json::from_str(t.lines().last().unwrap()).unwrap()
}

fn group<'a>(report: &'a Value, method: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["method"] == method)
        .unwrap_or_else(|| panic!("no {method} group in {report}"))
}

fn stat(g: &Value, key: &str) -> Value {
    let s = g["stats"].as_array().unwrap();
    s.iter().find(|s| s[0] == key).unwrap()[1].clone()
}

/// Checks the report of the sweep in `dir`, where the run `failed` (if any) did not finish: the
/// numbers are those of the runs' own metrics, and the failed run is named.
fn check_report(dir: &Path, failed: Option<&str>) {
    let run = bin().arg("report").arg(dir).output().unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let report = json(&dir.join("report.json"));
    assert_eq!(report["runs"].as_array().unwrap().len(), 4);
    for method in ["darts-minus", "darts"] {
        let g = group(&report, method);
        let runs: Vec<PathBuf> = (0..2)
            .map(|s| dir.join("runs").join(format!("nb201-{method}-seed{s}")))
            .filter(|r| !failed.is_some_and(|f| r.ends_with(f)))
            .collect();
        assert_eq!(g["finished"], runs.len(), "{g}");
        // The group's mean is the mean of its runs' final benchmark accuracies.
        let accs: Vec<f64> = runs
            .iter()
            .map(|r| last_epoch(r)["nb201"]["cifar10_test"].as_f64().unwrap())
            .collect();
        let s = stat(g, "cifar10_test");
        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
        assert!(
            (s["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{s} vs {accs:?}"
        );
        assert_eq!(s["n"], runs.len());
        let val = stat(g, "final_val_acc")["per_seed"].clone();
        assert_eq!(val.as_array().unwrap().len(), runs.len(), "{val}");
        match failed {
            Some(f) if f.starts_with(&format!("nb201-{method}-seed")) => {
                let nc = &g["not_counted"][0];
                assert_eq!(nc["name"], f, "{g}");
                assert_eq!(nc["state"], "failed", "{g}");
                assert!(
                    nc["why"]
                        .as_str()
                        .unwrap()
                        .contains("unreadable checkpoint"),
                    "{nc}"
                );
            }
            _ => assert_eq!(g["not_counted"].as_array().unwrap().len(), 0, "{g}"),
        }
    }
    let csv = std::fs::read_to_string(dir.join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("| nb201 | darts-minus | default |"), "{md}");
    // How the runs were made, so the table can be reproduced (--out before the `--` that
    // starts the searches' flags).
    let made = format!(
        "darts-minus sweep --space nb201 --methods darts-minus,darts --seeds 0,1 --out {} -- --channels 2",
        dir.display()
    );
    assert!(md.contains(&made), "{md}");
    if let Some(f) = failed {
        assert!(md.contains(&format!("**{f}**: failed")), "{md}");
    }
    // The figures are well-formed SVG with one band (two epochs) per method.
    for fig in ["skip_weight.svg", "nb201_test_acc.svg"] {
        let svg = std::fs::read_to_string(dir.join(fig)).unwrap();
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{fig}: {e}"));
        assert_eq!(svg.matches("<polygon").count(), 2, "{fig}");
    }
    let skip = std::fs::read_to_string(dir.join("skip_weight.svg")).unwrap();
    assert!(
        skip.contains("(NAS-Bench-201 cell)"),
        "the skip figure names its cell"
    );
    check_report_read_back(dir, &report, &made);
}

/// `darts-minus report SOURCES --out OUT`, which must succeed.
fn report_into(sources: &[&Path], out: &Path) {
    let run = bin()
        .arg("report")
        .args(sources)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
}

/// An earlier report.json stands in for runs whose directories are gone: read back alone it
/// gives the same tables and figures; beside the sweep directory each run is counted once.
fn check_report_read_back(dir: &Path, report: &Value, made: &str) {
    let archive = dir.with_extension("report.json");
    std::fs::copy(dir.join("report.json"), &archive).unwrap();
    let again = dir.with_extension("again");
    report_into(&[&archive], &again);
    let back = json(&again.join("report.json"));
    assert_eq!(back["groups"], report["groups"]);
    assert_eq!(back["made_by"], report["made_by"]);
    let md = std::fs::read_to_string(again.join("report.md")).unwrap();
    assert!(md.contains(made), "{md}");
    for fig in ["skip_weight.svg", "nb201_test_acc.svg"] {
        assert_eq!(
            std::fs::read_to_string(again.join(fig)).unwrap(),
            std::fs::read_to_string(dir.join(fig)).unwrap(),
            "{fig}"
        );
    }
    report_into(&[dir, &archive], &again);
    let both = json(&again.join("report.json"));
    assert_eq!(both["runs"].as_array().unwrap().len(), 4);
    assert!(
        both["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("archived_in").is_none()),
        "runs found in the directory are read from there"
    );
    std::fs::write(&archive, b"{\"runs\": 3}").unwrap();
    fails_with(
        bin().arg("report").arg(&archive),
        &["not a darts-minus report.json"],
    );
    std::fs::remove_file(&archive).ok();
    std::fs::remove_dir_all(&again).ok();
}

/// Breaks one run's checkpoint, as a disk error or a killed copy would.
fn corrupt(dir: &Path, run: &str) {
    let ckpt = dir.join("runs").join(run).join("checkpoint.safetensors");
    std::fs::create_dir_all(ckpt.parent().unwrap()).unwrap();
    std::fs::write(&ckpt, b"not a checkpoint").unwrap();
}

#[test]
fn a_local_sweep_runs_each_run_once_continues_and_reports_failures() {
    let data = tiny_cifar("sweep-data", 32);
    let dir = tmp("sweep-local");
    let run = sweep(&dir, &data, &["--jobs", "2"]).output().unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains("4 of 4 runs finished"),
        "{}",
        text(&run)
    );
    let m = json(&dir.join("sweep.json"));
    assert_eq!(m["runs"].as_array().unwrap().len(), 4);
    for r in m["runs"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let status = json(&dir.join("status").join(format!("{name}.json")));
        assert_eq!(status["state"], "finished", "{name}");
        assert!(dir.join("logs").join(format!("{name}.log")).is_file());
        // Plain DARTS runs have no auxiliary skip; DARTS- runs do.
        let aux = !r["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--no-aux");
        assert_eq!(aux, name.contains("darts-minus"), "{r}");
    }
    check_report(&dir, None);

    // Again: nothing runs. With another grid: refused, naming the way on.
    let again = bin().args(["sweep", "--out"]).arg(&dir).output().unwrap();
    assert!(
        text(&again).contains("4 finished, 0 to resume, 0 to start"),
        "{}",
        text(&again)
    );
    fails_with(
        &mut sweep(&dir, &data, &["--seeds", "5"]),
        &["holds another sweep", "no grid flags"],
    );

    // A run whose checkpoint is broken fails; the others are untouched and the sweep says
    // which failed and where its log is.
    let bad = "nb201-darts-seed1";
    corrupt(&dir, bad);
    let run = bin().args(["sweep", "--out"]).arg(&dir).output().unwrap();
    let out = text(&run);
    assert!(!run.status.success(), "{out}");
    assert!(
        out.contains("1 to resume") && out.contains(&format!("✗ {bad} failed")),
        "{out}"
    );
    // A re-run without --jobs takes the first invocation's.
    assert!(out.contains("· 2 at a time"), "{out}");
    assert!(out.contains(&format!("logs/{bad}.log")), "{out}");
    check_report(&dir, Some(bad));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
}

#[cfg(unix)]
#[test]
fn an_interrupted_sweep_resumes_its_run_from_the_checkpoint() {
    use std::os::unix::process::CommandExt;
    let data = tiny_cifar("sweep-kill-data", 32);
    let dir = tmp("sweep-kill");
    let start = || {
        let mut c = bin();
        c.args(["sweep", "--space", "nb201", "--out"])
            .arg(&dir)
            .arg("--")
            .args(tiny(&data, "30"));
        c
    };
    // Killed (with its search) as soon as the first epoch's checkpoint is written; an epoch
    // of 2 steps is short, so the run has 30.
    let mut child = start()
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = dir.join("runs").join("nb201-darts-minus-seed0");
    let ckpt = run.join("checkpoint.safetensors");
    let t0 = std::time::Instant::now();
    while !ckpt.exists() {
        assert!(
            t0.elapsed().as_secs() < 600,
            "no checkpoint after 10 minutes"
        );
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the sweep ended before it could be interrupted: {s}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pgid = format!("-{}", child.id());
    let killed = Command::new("kill")
        .args(["-s", "KILL", "--", &pgid])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    // The search (a grandchild) is gone once its lock on the run directory is released.
    let lock = std::fs::File::open(run.join(".darts-minus.lock")).unwrap();
    while lock.try_lock().is_err() {
        assert!(
            t0.elapsed().as_secs() < 600,
            "the killed search holds its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(lock);
    let done = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    assert!(
        done.lines().count() < 30,
        "the run finished before the kill"
    );

    let again = start().output().unwrap();
    let out = text(&again);
    assert!(again.status.success(), "{out}");
    assert!(out.contains("1 to resume"), "{out}");
    let log =
        std::fs::read_to_string(dir.join("logs").join("nb201-darts-minus-seed0.log")).unwrap();
    assert!(log.contains("resuming after epoch"), "{log}");
    let epochs: Vec<u64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, (0..30).collect::<Vec<u64>>());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_sweep_that_cannot_run_is_refused_before_anything_runs() {
    let dir = tmp("sweep-bad");
    for (args, wants) in [
        (
            vec!["--set", "seed=1,2"],
            vec!["--seed is set by the sweep"],
        ),
        (vec!["--methods", "enas"], vec!["unknown method 'enas'"]),
        (vec!["--space", "nope"], vec!["nope", "would not start"]),
        (
            vec!["--", "--epochs", "many"],
            vec!["--epochs", "would not start"],
        ),
        (vec!["--", "--seed", "3"], vec!["set by the sweep"]),
        (vec!["--jobs", "0"], vec!["--jobs"]),
    ] {
        fails_with(bin().args(["sweep", "--out"]).arg(&dir).args(&args), &wants);
        assert!(
            !dir.join("sweep.json").exists(),
            "{args:?} wrote a manifest"
        );
    }
    fails_with(bin().args(["report"]).arg(&dir), &["not a directory"]);
    std::fs::create_dir_all(&dir).unwrap();
    fails_with(bin().args(["report"]).arg(&dir), &["no sweep (sweep.json)"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether this machine submits to Slurm: skipped where there is no `sbatch` (CI sets up a
/// one-node cluster with tools/slurm_local.sh first).
fn slurm() -> bool {
    let has = Command::new("sbatch")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("skipped: no sbatch on PATH (tools/slurm_local.sh sets up a one-node cluster)");
        return false;
    }
    let sinfo = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .unwrap();
    let states = String::from_utf8_lossy(&sinfo.stdout);
    assert!(
        sinfo.status.success() && states.lines().any(|s| ["idle", "mix", "alloc"].contains(&s.trim())),
        "sbatch is installed but no node takes jobs (sinfo: {states}{}): start the cluster with tools/slurm_local.sh",
        String::from_utf8_lossy(&sinfo.stderr)
    );
    true
}

#[test]
fn a_slurm_job_array_runs_the_sweep_and_its_failing_task_is_reported() {
    if !slurm() {
        return;
    }
    let data = tiny_cifar("sweep-slurm-data", 32);
    let dir = tmp("sweep-slurm");
    // Written, not submitted; then one run is sabotaged and the array submitted.
    let dry = sweep(&dir, &data, &["--executor", "slurm", "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", text(&dry));
    let script = std::fs::read_to_string(dir.join("sweep.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-3\n"), "{script}");
    let bad = "nb201-darts-minus-seed1";
    corrupt(&dir, bad);
    let run = bin()
        .args([
            "sweep",
            "--executor",
            "slurm",
            "--wait",
            "--max-running",
            "2",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let out = text(&run);
    assert!(
        !run.status.success(),
        "a failed task must fail the sweep: {out}"
    );
    assert!(
        out.contains("submitted job array") && out.contains(&format!("✗ {bad} failed")),
        "{out}"
    );
    assert!(out.contains("1 of 4 tasks did not finish"), "{out}");
    let script = std::fs::read_to_string(dir.join("sweep.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-3%2\n"), "{script}");
    // Every task ran under Slurm (its array id in the status) and wrote its own output.
    for r in [
        "nb201-darts-minus-seed0",
        bad,
        "nb201-darts-seed0",
        "nb201-darts-seed1",
    ] {
        let s = json(&dir.join("status").join(format!("{r}.json")));
        assert!(
            s["slurm"].as_str().is_some_and(|id| id.contains('_')),
            "{r}: {s}"
        );
    }
    let outs = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("slurm-")
        })
        .count();
    assert_eq!(outs, 4);
    check_report(&dir, Some(bad));
    // Submitted again, only the failed run is a task.
    let dry = bin()
        .args(["sweep", "--executor", "slurm", "--dry-run", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let script = std::fs::read_to_string(dir.join("sweep.sbatch")).unwrap();
    // Runs are ordered seed by seed: nb201-darts-minus-seed1 is run 2.
    assert!(
        script.contains("#SBATCH --array=2\n"),
        "{}{script}",
        text(&dry)
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
}
