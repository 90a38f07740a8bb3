//! `darts-minus report`: tables and figures of finished runs.

use clap::Args;
use darts_minus::experiment::summary::collect;
use darts_minus::experiment::{files, tables};
use darts_minus::Result;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Sweep directories (with sweep.json), search run directories, directories holding them,
    /// or earlier reports' report.json (runs whose directories are gone; a run also found in a
    /// directory given is read from there).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where report.md, report.csv, report.json and the figures go (default: the directory
    /// given, when one is; else ./report).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn report(a: &ReportArgs) -> Result<()> {
    let got = collect(&a.dirs)?;
    let out = a.out.clone().unwrap_or_else(|| match a.dirs.as_slice() {
        [one] if !one.is_file() => one.clone(),
        _ => PathBuf::from("report"),
    });
    let written = files::write(&out, &a.dirs, &got)?;
    let groups = tables::groups(&got.runs);
    for g in &groups {
        let spread = |s: &tables::Stat| {
            if s.n > 1 {
                format!("{:.2} ± {:.2}", s.mean, s.std)
            } else {
                format!("{:.2}", s.mean)
            }
        };
        let acc = g.stat("final_val_acc").map_or("–".into(), spread);
        let mut line = format!(
            "{:<40} {}/{} finished · final val acc {acc}%",
            g.label(),
            g.finished,
            g.runs
        );
        if let Some(s) = g.stat("skip") {
            line.push_str(&format!(" · skip in cell {:.1}", s.mean));
        }
        if let Some(s) = g.stat("cifar10_test") {
            line.push_str(&format!(" · NB201 C10 test {}", spread(s)));
        }
        println!("{line}");
        for n in &g.not_counted {
            println!(
                "    not counted: {} ({}{})",
                n.name,
                n.state,
                n.why.as_ref().map_or(String::new(), |w| format!(": {w}"))
            );
        }
    }
    for n in &written.notes {
        println!("note: {n}");
    }
    let files: Vec<String> = written
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    println!("wrote {}", files.join(", "));
    Ok(())
}
