//! The report's numbers: runs grouped per (space, method, setting), each metric as mean ± std
//! over the group's finished runs and per seed (written out by [`super::files`]).

use super::grid::Method;
use super::summary::RunResult;
use serde::Serialize;
use std::path::PathBuf;

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
    }
}
