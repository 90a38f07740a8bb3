//! `darts-minus bench --chart`: step time against the batch or the channel count, as an SVG,
//! from this run's results or from `tools/bench_torch.py --json-out` pairs (PyTorch and
//! darts-minus timed back to back per configuration).

use darts_minus::report::{scaling_chart, Rgb, ScalingSeries};
use darts_minus::search::bench::BenchResult;
use darts_minus::search::trainer::Space;
use darts_minus::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One measured configuration: its sizes and each side's median step time.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// "darts L=5" or "nb201 N=5": what stays fixed across the chart.
    pub network: String,
    pub channels: usize,
    pub batch: usize,
    pub ours_ms: Option<f64>,
    /// The adapter darts-minus ran on, short ("llvmpipe").
    pub adapter: Option<String>,
    pub torch_ms: Option<f64>,
    /// "PyTorch 2.15 cpu, 2 threads".
    pub torch_label: Option<String>,
}

/// A line of `tools/bench_torch.py --json-out`.
#[derive(Deserialize)]
struct PairLine {
    space: String,
    channels: usize,
    layers: usize,
    cells_per_stage: usize,
    batch: usize,
    device: String,
    torch_version: String,
    torch_threads: usize,
    torch_ms: f64,
    ours: Option<OursPart>,
}

#[derive(Deserialize)]
struct OursPart {
    step_ms: f64,
    #[serde(default)]
    adapter: Option<String>,
}

/// "llvmpipe (LLVM 15.0.6, 256 bits)" → "llvmpipe".
fn short(adapter: &str) -> String {
    adapter.split(" (").next().unwrap_or(adapter).to_string()
}

/// The points of a pairs file; a line that does not parse is an error naming it.
pub fn read_pairs(path: &Path) -> Result<Vec<Point>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::File {
        path: path.to_path_buf(),
        msg: format!("cannot read: {e}"),
    })?;
    let mut points = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let p: PairLine = serde_json::from_str(line).map_err(|e| Error::File {
            path: path.to_path_buf(),
            msg: format!(
                "line {}: not a line of tools/bench_torch.py --json-out: {e}",
                i + 1
            ),
        })?;
        let depth = if p.space == "nb201" {
            format!("N={}", p.cells_per_stage)
        } else {
            format!("L={}", p.layers)
        };
        points.push(Point {
            network: format!("{} {depth}", p.space),
            channels: p.channels,
            batch: p.batch,
            ours_ms: p.ours.as_ref().map(|o| o.step_ms),
            adapter: p.ours.and_then(|o| o.adapter).map(|a| short(&a)),
            torch_ms: Some(p.torch_ms),
            torch_label: Some(format!(
                "PyTorch {} {}, {} threads",
                p.torch_version.split('+').next().unwrap_or_default(),
                p.device,
                p.torch_threads
            )),
        });
    }
    if points.is_empty() {
        return Err(Error::File {
            path: path.to_path_buf(),
            msg: "no measurements in it".into(),
        });
    }
    Ok(points)
}

/// The points of this run's results.
pub fn from_results(results: &[BenchResult]) -> Vec<Point> {
    results
        .iter()
        .map(|r| {
            let (network, channels) = match r.config.space {
                Space::Darts(c) => (
                    format!("{} L={}", c.candidates.name(), c.layers),
                    c.channels,
                ),
                Space::Nb201(c) => (format!("nb201 N={}", c.cells_per_stage), c.channels),
            };
            Point {
                network,
                channels,
                batch: r.config.batch,
                ours_ms: Some(r.step_ms),
                adapter: Some(short(&r.adapter)),
                torch_ms: None,
                torch_label: None,
            }
        })
        .collect()
}

const OURS: [Rgb; 3] = [(200, 40, 40), (230, 120, 20), (150, 40, 150)];
const TORCH: [Rgb; 3] = [(30, 90, 200), (20, 150, 150), (90, 90, 90)];

/// Draws `points` against the batch (when it varies) or the channels, one pair of lines per
/// value of the other. Returns the table of times and ratios.
pub fn chart(path: &Path, points: &[Point]) -> Result<String> {
    let adapter = points
        .iter()
        .find_map(|p| p.adapter.clone())
        .unwrap_or_else(|| "its adapter".into());
    let distinct = |f: fn(&Point) -> usize| {
        let mut v: Vec<usize> = points.iter().map(f).collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    let by_batch = distinct(|p| p.batch) > 1 || distinct(|p| p.channels) == 1;
    type Size = fn(&Point) -> usize;
    let (x_of, other_of, x_desc, other): (Size, Size, _, _) = if by_batch {
        (|p| p.batch, |p| p.channels, "batch", "C")
    } else {
        (|p| p.channels, |p| p.batch, "initial channels C", "batch")
    };
    let mut groups: BTreeMap<(String, usize), Vec<&Point>> = BTreeMap::new();
    for p in points {
        groups
            .entry((p.network.clone(), other_of(p)))
            .or_default()
            .push(p);
    }
    let mut series = Vec::new();
    let mut table = format!(
        "| network | {other} | {x_desc} | darts-minus ms | PyTorch ms | ratio |\n|---|---:|---:|---:|---:|---:|\n"
    );
    for (i, ((network, value), mut pts)) in groups.into_iter().enumerate() {
        pts.sort_by_key(|p| x_of(p));
        let tag = format!("{network}, {other}={value}");
        let line = |ms: fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
            pts.iter()
                .filter_map(|p| ms(p).map(|v| (x_of(p) as f64, v)))
                .collect()
        };
        let ours = line(|p| p.ours_ms);
        if !ours.is_empty() {
            series.push(ScalingSeries {
                label: format!("darts-minus ({adapter}), {tag}"),
                colour: OURS[i % OURS.len()],
                points: ours,
                dashed: false,
            });
        }
        let torch = line(|p| p.torch_ms);
        if !torch.is_empty() {
            let who = pts
                .iter()
                .find_map(|p| p.torch_label.clone())
                .unwrap_or_else(|| "PyTorch".into());
            series.push(ScalingSeries {
                label: format!("{who}, {tag}"),
                colour: TORCH[i % TORCH.len()],
                points: torch,
                dashed: true,
            });
        }
        for p in &pts {
            let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0}"));
            let ratio = match (p.ours_ms, p.torch_ms) {
                (Some(o), Some(t)) if t > 0.0 => format!("{:.2}", o / t),
                _ => "–".into(),
            };
            table.push_str(&format!(
                "| {network} | {value} | {} | {} | {} | {ratio} |\n",
                x_of(p),
                ms(p.ours_ms),
                ms(p.torch_ms)
            ));
        }
    }
    let title = format!("search step time against {x_desc} (median)");
    scaling_chart(path, &title, x_desc, &series)?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_file_to_chart_and_table() {
        let dir = std::env::temp_dir().join(format!("dm-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pairs = dir.join("pairs.jsonl");
        let line = |b: usize, t: f64, o: f64| {
            format!(
                r#"{{"space":"darts","channels":8,"layers":5,"cells_per_stage":5,"batch":{b},"steps":3,"warmup":1,"device":"cpu","torch_version":"2.15.0+cu128","torch_threads":2,"torch_ms":{t},"torch_times_ms":[{t}],"torch_peak_bytes":null,"ours":{{"step_ms":{o}}}}}"#
            )
        };
        std::fs::write(
            &pairs,
            format!(
                "{}\n{}\n",
                line(32, 2000.0, 5000.0),
                line(16, 1000.0, 3000.0)
            ),
        )
        .unwrap();
        let points = read_pairs(&pairs).unwrap();
        let svg = dir.join("c.svg");
        let table = chart(&svg, &points).unwrap();
        assert!(
            table.contains("| darts L=5 | 8 | 16 | 3000 | 1000 | 3.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| darts L=5 | 8 | 32 | 5000 | 2000 | 2.50 |"),
            "{table}"
        );
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("PyTorch 2.15.0 cpu, 2 threads"), "{text}");

        std::fs::write(&pairs, "{\"space\": 1}\n").unwrap();
        let err = read_pairs(&pairs).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("pairs.jsonl"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
