//! The report's numbers: runs grouped per (space, method, setting), each metric as mean ± std
//! over the group's finished runs and per seed; written as report.md, report.csv, report.json
//! and two figures.

use super::grid::Method;
use super::summary::RunResult;
use crate::error::{Error, Result};
use crate::report::{band_chart, band_of, Band, Rgb};
use crate::run::metrics::write_text_atomic;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A number the report aggregates.
pub struct Metric {
    pub key: &'static str,
    pub label: &'static str,
    pub get: fn(&RunResult) -> Option<f64>,
    /// Only NAS-Bench-201 runs have it.
    pub nb201: bool,
}

const fn metric(
    key: &'static str,
    label: &'static str,
    get: fn(&RunResult) -> Option<f64>,
    nb201: bool,
) -> Metric {
    Metric {
        key,
        label,
        get,
        nb201,
    }
}

pub const METRICS: [Metric; 11] = [
    metric(
        "best_val_acc",
        "best val acc %",
        |r| r.best_val_acc.map(|a| 100.0 * a),
        false,
    ),
    metric(
        "final_val_acc",
        "final val acc %",
        |r| r.final_val_acc.map(|a| 100.0 * a),
        false,
    ),
    metric(
        "skip",
        "skip",
        |r| r.cell.as_ref().map(|c| c.skip as f64),
        false,
    ),
    metric(
        "none",
        "none",
        |r| r.cell.as_ref().map(|c| c.none as f64),
        false,
    ),
    metric(
        "parameter_free",
        "param-free",
        |r| r.cell.as_ref().map(|c| c.parameter_free as f64),
        false,
    ),
    metric(
        "cifar10_valid",
        "C10 valid",
        |r| r.nb201.as_ref().map(|n| n.cifar10_valid),
        true,
    ),
    metric(
        "cifar10_test",
        "C10 test",
        |r| r.nb201.as_ref().map(|n| n.cifar10_test),
        true,
    ),
    metric(
        "cifar100_valid",
        "C100 valid",
        |r| r.nb201.as_ref().map(|n| n.cifar100_valid),
        true,
    ),
    metric(
        "cifar100_test",
        "C100 test",
        |r| r.nb201.as_ref().map(|n| n.cifar100_test),
        true,
    ),
    metric(
        "imagenet16_valid",
        "IN16 valid",
        |r| r.nb201.as_ref().map(|n| n.imagenet16_valid),
        true,
    ),
    metric(
        "imagenet16_test",
        "IN16 test",
        |r| r.nb201.as_ref().map(|n| n.imagenet16_test),
        true,
    ),
];

/// Mean ± sample standard deviation (n − 1; 0 for one run) and the values per seed.
#[derive(Clone, Debug, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
    pub per_seed: Vec<(u64, f64)>,
}

impl Stat {
    pub fn of(per_seed: Vec<(u64, f64)>) -> Option<Stat> {
        let n = per_seed.len();
        if n == 0 {
            return None;
        }
        let mean = per_seed.iter().map(|v| v.1).sum::<f64>() / n as f64;
        let var = if n > 1 {
            per_seed.iter().map(|v| (v.1 - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stat {
            mean,
            std: var.sqrt(),
            n,
            per_seed,
        })
    }
}

/// A run of a group that is not in its numbers, and why.
#[derive(Clone, Debug, Serialize)]
pub struct NotCounted {
    pub name: String,
    pub state: String,
    pub why: Option<String>,
    pub log: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub space: String,
    pub method: Method,
    pub setting: String,
    pub runs: usize,
    pub finished: usize,
    pub not_counted: Vec<NotCounted>,
    /// Per metric key: the statistic over finished runs (absent where none has the value).
    pub stats: Vec<(String, Option<Stat>)>,
}

impl Group {
    pub fn label(&self) -> String {
        let mut l = format!("{} {}", self.space, self.method.name());
        if self.setting != "default" {
            l.push_str(&format!(" ({})", self.setting));
        }
        l
    }

    pub fn stat(&self, key: &str) -> Option<&Stat> {
        self.stats
            .iter()
            .find(|s| s.0 == key)
            .and_then(|s| s.1.as_ref())
    }
}

/// The groups of `runs`, in the order they first appear.
pub fn groups(runs: &[RunResult]) -> Vec<Group> {
    let mut keys: Vec<(String, Method, String)> = Vec::new();
    for r in runs {
        let k = (r.space.clone(), r.method, r.setting.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(space, method, setting)| {
            let members: Vec<&RunResult> = runs
                .iter()
                .filter(|r| r.space == space && r.method == method && r.setting == setting)
                .collect();
            let done: Vec<&&RunResult> = members.iter().filter(|r| r.finished()).collect();
            let stats = METRICS
                .iter()
                .map(|m| {
                    let values = done
                        .iter()
                        .filter_map(|r| (m.get)(r).filter(|v| v.is_finite()).map(|v| (r.seed, v)))
                        .collect();
                    (m.key.to_string(), Stat::of(values))
                })
                .collect();
            Group {
                runs: members.len(),
                finished: done.len(),
                not_counted: members
                    .iter()
                    .filter(|r| !r.finished())
                    .map(|r| NotCounted {
                        name: r.name.clone(),
                        state: r.state.clone(),
                        why: r.why.clone(),
                        log: r.log.clone(),
                    })
                    .collect(),
                space,
                method,
                setting,
                stats,
            }
        })
        .collect()
}

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
    runs: &[RunResult],
    groups: &[Group],
    figures: &[PathBuf],
) -> String {
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

/// Writes report.md, report.csv, report.json and the figures into `out`.
pub fn write(out: &Path, sources: &[PathBuf], runs: &[RunResult]) -> Result<Written> {
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
            "skip_connect's softmax(α), mean over the cell's edges (DARTS space: normal cell)",
            "softmax(α) skip_connect",
            Some(0.0..1.0),
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
            Some(0.0..100.0),
            &nb,
        )?;
        figures.push(path);
    }
    let md = out.join("report.md");
    write_text_atomic(&md, &markdown(sources, runs, &groups, &figures))?;
    let csv_path = out.join("report.csv");
    write_text_atomic(&csv_path, &csv(runs))?;
    let json_path = out.join("report.json");
    let json = serde_json::json!({ "sources": sources, "groups": groups, "runs": runs });
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
    fn std_is_the_sample_one_and_one_run_has_none() {
        let s = Stat::of(vec![(0, 1.0), (1, 2.0), (2, 3.0)]).unwrap();
        assert!((s.mean - 2.0).abs() < 1e-12 && (s.std - 1.0).abs() < 1e-12);
        let s = Stat::of(vec![(4, 5.0)]).unwrap();
        assert_eq!((s.mean, s.std, s.n), (5.0, 0.0, 1));
        assert!(Stat::of(vec![]).is_none());
        assert_eq!(
            fmt_stat(Stat::of(vec![(0, 1.0), (1, 2.0)]).as_ref(), 2),
            "1.50 ± 0.71"
        );
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
