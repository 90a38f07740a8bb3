//! `darts-minus check`: proof that the chosen adapter computes right, before a long search
//! on it. Every op against the CPU f64 reference and finite differences, and the references'
//! values for a mixed edge and two whole search steps (DARTS- and NAS-Bench-201); one line per
//! comparison, a summary, and a non-zero exit status if anything fails.

use clap::Args;
use darts_minus::check::{self, CheckLine};
use darts_minus::gpu::{AdapterChoice, Gpu};
use darts_minus::{Error, Result};
use std::time::Instant;

/// Options of `darts-minus check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Only the checks whose name contains this text (e.g. "convolutions", "torch"; `--list` names them).
    #[arg(long)]
    pub only: Option<String>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// List the checks and exit.
    #[arg(long)]
    pub list: bool,
}

fn line_text(l: &CheckLine) -> String {
    let verdict = if l.pass { "pass" } else { "FAIL" };
    let mut s = format!(
        "{verdict}  max err {:>9.2e}  tol rel {:.0e} abs {:.1e}  {} — {}",
        l.max_err, l.tol_rel, l.tol_abs, l.check, l.what
    );
    if let (false, Some(d)) = (l.pass, &l.detail) {
        s.push_str(&format!("\n      {d}"));
    }
    s
}

pub fn check(a: &CheckArgs, choice: &AdapterChoice) -> Result<()> {
    if a.list {
        for c in check::checks() {
            println!("{:<6} {}", c.kind, c.name);
        }
        return Ok(());
    }
    let gpu = Gpu::new(choice)?;
    let ad = gpu.adapter();
    let limits = ad.limits_choice.name();
    if !a.json {
        println!(
            "checking {} ({}, {}; limits: {limits})",
            ad.name, ad.backend, ad.device_type
        );
    }
    let started = Instant::now();
    let lines = check::run(&gpu, a.only.as_deref(), &mut |lines| {
        if !a.json {
            for l in lines {
                println!("{}", line_text(l));
            }
        }
    });
    let failed: Vec<&CheckLine> = lines.iter().filter(|l| !l.pass).collect();
    let secs = started.elapsed().as_secs_f64();
    if a.json {
        let doc = serde_json::json!({
            "adapter": ad.name,
            "backend": ad.backend,
            "device_type": ad.device_type,
            "limits": limits,
            "seconds": secs,
            "passed": lines.len() - failed.len(),
            "failed": failed.len(),
            "lines": lines,
        });
        println!("{doc}");
    } else {
        println!(
            "{} comparisons in {secs:.1} s: {} passed, {} failed",
            lines.len(),
            lines.len() - failed.len(),
            failed.len()
        );
    }
    if lines.is_empty() {
        return Err(Error::Invalid(format!(
            "no check matches --only {:?}; `darts-minus check --list` names them",
            a.only.as_deref().unwrap_or("")
        )));
    }
    if let Some(first) = failed.first() {
        return Err(Error::Invalid(format!(
            "{} of {} comparisons failed on {} (first: {} — {}): this adapter's results \
             cannot be trusted for a search; try another backend or driver (--backend, \
             --adapter)",
            failed.len(),
            lines.len(),
            ad.name,
            first.check,
            first.what
        )));
    }
    Ok(())
}
