//! The report's files: report.md (per group and per run tables, runs not counted, figures),
//! report.csv (one row per run), report.json (groups and runs), and the two band figures.

use super::grid::Method;
use super::summary::{Gathered, RunResult};
use super::tables::{groups, Group, Metric, Stat, METRICS};
use crate::error::{Error, Result};
use crate::report::{band_chart, band_of, Band, Rgb, YRange};
use crate::run::metrics::write_text_atomic;
use std::path::{Path, PathBuf};

fn fmt_stat(s: Option<&Stat>, digits: usize) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{:.digits$} ± {:.digits$}", s.mean, s.std),
        Some(s) => format!("{:.digits$}", s.mean),
        None => "–".into(),
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// Two decimals for accuracies, one for counts of ops.
fn digits(key: &str) -> usize {
    if matches!(key, "skip" | "none" | "parameter_free") {
        1
    } else {
        2
    }
}

/// The metrics worth a column: the NAS-Bench-201 ones only where a run has them.
fn shown(runs: &[RunResult]) -> Vec<&'static Metric> {
    let any_nb201 = runs.iter().any(|r| r.nb201.is_some());
    METRICS.iter().filter(|m| !m.nb201 || any_nb201).collect()
}

/// The written files, for the caller to list.
pub struct Written {
    pub files: Vec<PathBuf>,
    pub notes: Vec<String>,
}

pub fn markdown(
    sources: &[PathBuf],
    got: &Gathered,
    groups: &[Group],
    figures: &[PathBuf],
) -> String {
    let runs = &got.runs;
    let metrics = shown(runs);
    let count = |s: &str| runs.iter().filter(|r| r.state == s).count();
    let mut md = String::from("# darts-minus report\n\n");
    let srcs: Vec<String> = sources
        .iter()
        .map(|s| format!("`{}`", s.display()))
        .collect();
    md.push_str(&format!(
        "Sources: {}. {} runs: {} finished, {} interrupted, {} failed, {} running, {} not started.\n\n",
        srcs.join(", "),
        runs.len(),
        count("finished"),
        count("interrupted"),
        count("failed"),
        count("running"),
        count("pending")
    ));
    if !got.made_by.is_empty() || !got.archives_without_commands.is_empty() {
        md.push_str("Made by:\n\n");
        for m in &got.made_by {
            md.push_str(&format!("- `{}`: `{}`\n", m.source.display(), m.command));
        }
        for a in &got.archives_without_commands {
            md.push_str(&format!(
                "- `{}`: an earlier report, read back (its runs as recorded then; its commands are in the report.md beside it)\n",
                a.display()
            ));
        }
        md.push('\n');
    }
    md.push_str("## Per method (mean ± std over finished runs)\n\n");
    md.push_str("Cell columns count the derived cell's operations (the normal cell in the DARTS space); C10/C100/IN16 are NAS-Bench-201's accuracies (CIFAR-10, CIFAR-100, ImageNet16-120, 200-epoch training) of the final derived cell.\n\n");
    let mut head = vec!["space", "method", "setting", "finished"];
    head.extend(metrics.iter().map(|m| m.label));
    md.push_str(&format!("| {} |\n", head.join(" | ")));
    md.push_str(&format!("|{}\n", " --- |".repeat(head.len())));
    for g in groups {
        let mut row = vec![
            g.space.clone(),
            g.method.name().to_string(),
            g.setting.clone(),
            format!("{}/{}", g.finished, g.runs),
        ];
        row.extend(
            metrics
                .iter()
                .map(|m| fmt_stat(g.stat(m.key), digits(m.key))),
        );
        md.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    md.push_str("\n## Per run\n\n");
    let mut head = vec!["run", "seed", "state", "epochs"];
    head.extend(metrics.iter().map(|m| m.label));
    head.push("genotype");
    md.push_str(&format!("| {} |\n", head.join(" | ")));
    md.push_str(&format!("|{}\n", " --- |".repeat(head.len())));
    for r in runs {
        let mut row = vec![
            r.name.clone(),
            r.seed.to_string(),
            r.state.clone(),
            match r.epochs {
                Some(e) => format!("{}/{e}", r.epochs_done),
                None => r.epochs_done.to_string(),
            },
        ];
        row.extend(metrics.iter().map(|m| fmt_opt((m.get)(r), digits(m.key))));
        row.push(
            r.genotype
                .as_ref()
                .map_or("–".into(), |g| format!("`{}`", g.replace('|', "\\|"))),
        );
        md.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    let missing: Vec<&RunResult> = runs.iter().filter(|r| !r.finished()).collect();
    if !missing.is_empty() {
        md.push_str("\n## Not counted\n\n");
        for r in missing {
            md.push_str(&format!("- **{}**: {}", r.name, r.state));
            if let Some(a) = &r.archived_in {
                md.push_str(&format!(" when `{}` was written", a.display()));
            }
            if let Some(w) = &r.why {
                md.push_str(&format!(" ({w})"));
            }
            if let Some(l) = &r.log {
                md.push_str(&format!("; log `{}`", l.display()));
            }
            md.push('\n');
        }
    }
    if !figures.is_empty() {
        md.push_str("\n## Figures\n\nLines: mean over a group's finished runs; bands: their minimum to maximum.\n\n");
        for f in figures {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            md.push_str(&format!("![{name}]({name})\n\n"));
        }
    }
    md
}

/// A CSV field, quoted where it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv(runs: &[RunResult]) -> String {
    let mut head = vec![
        "run",
        "space",
        "method",
        "setting",
        "seed",
        "state",
        "epochs_done",
        "epochs",
    ];
    head.extend(METRICS.iter().map(|m| m.key));
    head.extend(["genotype", "why", "dir"]);
    let mut out = head.join(",");
    out.push('\n');
    for r in runs {
        let mut row = vec![
            r.name.clone(),
            r.space.clone(),
            r.method.name().into(),
            r.setting.clone(),
            r.seed.to_string(),
            r.state.clone(),
            r.epochs_done.to_string(),
            r.epochs.map_or(String::new(), |e| e.to_string()),
        ];
        row.extend(METRICS.iter().map(|m| {
            (m.get)(r)
                .filter(|v| v.is_finite())
                .map_or(String::new(), |v| format!("{v}"))
        }));
        row.push(r.genotype.clone().unwrap_or_default());
        row.push(r.why.clone().unwrap_or_default());
        row.push(r.dir.display().to_string());
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Colours by method (DARTS- green, DARTS red, as the ops' colours for aux and skip), other
/// groups of the same method in darker or lighter shades.
fn group_colour(g: &Group, nth_of_method: usize) -> Rgb {
    let shades: [Rgb; 3] = match g.method {
        Method::DartsMinus => [(44, 160, 44), (23, 100, 23), (120, 200, 90)],
        Method::Darts => [(214, 39, 40), (140, 20, 20), (240, 120, 100)],
    };
    let base = shades[nth_of_method % 3];
    if nth_of_method < 3 {
        base
    } else {
        crate::report::op_colour("", nth_of_method)
    }
}

fn bands(
    runs: &[RunResult],
    groups: &[Group],
    series: fn(&RunResult) -> &Vec<f64>,
    only_nb201: bool,
) -> Vec<Band> {
    let mut per_method = std::collections::BTreeMap::new();
    groups
        .iter()
        .filter(|g| !only_nb201 || g.space == "nb201")
        .filter_map(|g| {
            let s: Vec<Vec<f64>> = runs
                .iter()
                .filter(|r| {
                    r.finished()
                        && r.space == g.space
                        && r.method == g.method
                        && r.setting == g.setting
                })
                .map(|r| series(r).clone())
                .collect();
            let points = band_of(&s);
            let nth = per_method.entry(g.method).or_insert(0usize);
            let colour = group_colour(g, *nth);
            *nth += 1;
            (!points.is_empty()).then(|| Band {
                label: format!("{} (n={})", g.label(), g.finished),
                colour,
                points,
            })
        })
        .collect()
}

/// The skip-weight figure's title: which cell its mean runs over, by the runs' spaces (the
/// DARTS spaces average the normal cell's edges, NAS-Bench-201 its one cell's).
fn skip_title<'a>(spaces: impl IntoIterator<Item = &'a str>) -> String {
    let (mut nb201, mut darts) = (false, false);
    for s in spaces {
        if s == "nb201" {
            nb201 = true;
        } else {
            darts = true;
        }
    }
    let cells = match (nb201, darts) {
        (true, false) => "NAS-Bench-201 cell",
        (true, true) => "NAS-Bench-201 cell; DARTS spaces: normal cell",
        _ => "normal cell",
    };
    format!("skip_connect's softmax(α), mean over the cell's edges ({cells})")
}

/// Writes report.md, report.csv, report.json and the figures into `out`.
pub fn write(out: &Path, sources: &[PathBuf], got: &Gathered) -> Result<Written> {
    let runs = &got.runs;
    std::fs::create_dir_all(out).map_err(|e| Error::File {
        path: out.to_path_buf(),
        msg: format!("cannot create the report directory: {e}"),
    })?;
    let groups = groups(runs);
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let skip = bands(runs, &groups, |r| &r.skip_weight, false);
    if skip.is_empty() {
        notes.push("no finished run has α history: no skip-weight figure".to_string());
    } else {
        let path = out.join("skip_weight.svg");
        band_chart(
            &path,
            &skip_title(runs.iter().map(|r| r.space.as_str())),
            "softmax(α) skip_connect",
            // Zoomed: the effect is a few hundredths around 1/K (0.2 on NAS-Bench-201).
            YRange::Tight,
            &skip,
        )?;
        figures.push(path);
    }
    let nb = bands(runs, &groups, |r| &r.nb201_test, true);
    if nb.is_empty() {
        notes.push("no finished NAS-Bench-201 run: no benchmark-accuracy figure".to_string());
    } else {
        let path = out.join("nb201_test_acc.svg");
        band_chart(
            &path,
            "NAS-Bench-201 CIFAR-10 test accuracy of the derived cell",
            "test accuracy %",
            YRange::Fixed(0.0..100.0),
            &nb,
        )?;
        figures.push(path);
    }
    let md = out.join("report.md");
    write_text_atomic(&md, &markdown(sources, got, &groups, &figures))?;
    let csv_path = out.join("report.csv");
    write_text_atomic(&csv_path, &csv(runs))?;
    let json_path = out.join("report.json");
    let json = serde_json::json!({
        "sources": sources,
        "made_by": got.made_by,
        "groups": groups,
        "runs": runs,
    });
    write_text_atomic(
        &json_path,
        &serde_json::to_string_pretty(&json).map_err(|e| Error::Invalid(e.to_string()))?,
    )?;
    let mut files = vec![md, csv_path, json_path];
    files.extend(figures);
    Ok(Written { files, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_shows_its_spread_only_over_several_runs() {
        assert_eq!(
            fmt_stat(Stat::of(vec![(0, 1.0), (1, 2.0)]).as_ref(), 2),
            "1.50 ± 0.71"
        );
        assert_eq!(fmt_stat(Stat::of(vec![(3, 2.5)]).as_ref(), 2), "2.50");
        assert_eq!(fmt_stat(None, 1), "–");
    }

    #[test]
    fn the_skip_figure_names_the_cell_its_mean_runs_over() {
        assert!(skip_title(["nb201", "nb201"]).ends_with("(NAS-Bench-201 cell)"));
        assert!(skip_title(["darts", "s2"]).ends_with("(normal cell)"));
        assert!(skip_title(["nb201", "darts"]).contains("NAS-Bench-201 cell; DARTS spaces"));
    }

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(
            csv_field("Genotype(normal=[('a', 0)], x)"),
            "\"Genotype(normal=[('a', 0)], x)\""
        );
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
