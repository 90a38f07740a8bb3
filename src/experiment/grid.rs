//! The grid of a sweep: spaces × methods × settings × seeds, each point one search run with
//! its own name and command line.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How α is searched: DARTS- (auxiliary skip on every edge, decayed by β) or plain DARTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Method {
    #[serde(rename = "darts-minus")]
    DartsMinus,
    #[serde(rename = "darts")]
    Darts,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::DartsMinus => "darts-minus",
            Method::Darts => "darts",
        }
    }

    pub fn parse(s: &str) -> Result<Method> {
        match s {
            "darts-minus" => Ok(Method::DartsMinus),
            "darts" => Ok(Method::Darts),
            _ => Err(Error::Invalid(format!(
                "unknown method '{s}': use darts-minus (auxiliary skip) or darts (plain DARTS)"
            ))),
        }
    }

    /// The method of a run whose settings have (`aux`) or lack the auxiliary skip.
    pub fn of_aux(aux: bool) -> Method {
        if aux {
            Method::DartsMinus
        } else {
            Method::Darts
        }
    }
}

/// A `--set KEY=V1,V2,…` list: one search flag and the values the sweep tries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetList {
    pub key: String,
    pub values: Vec<String>,
}

/// Search flags the sweep sets itself for every run; given in `--set` or after `--` they
/// would fight it.
pub const SWEEP_OWNED: [&str; 6] = ["space", "seed", "no-aux", "out", "resume", "overwrite"];

impl SetList {
    /// Parses `KEY=V1,V2,…` (KEY with or without its leading `--`).
    pub fn parse(s: &str) -> Result<SetList> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "--set '{s}': {why}; write a search flag and its values, e.g. --set beta-schedule=linear,cosine"
            ))
        };
        let (key, values) = s.split_once('=').ok_or_else(|| bad("no '='"))?;
        let key = key.trim().trim_start_matches("--").to_string();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad(
                "the flag name is empty or has characters a flag cannot have",
            ));
        }
        if SWEEP_OWNED.contains(&key.as_str()) {
            return Err(bad(&format!(
                "--{key} is set by the sweep itself (use --space, --methods, --seeds)"
            )));
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(bad("an empty value"));
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(bad(&format!("'{v}' is listed twice")));
            }
        }
        Ok(SetList { key, values })
    }
}

/// Everything that spans a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub spaces: Vec<String>,
    pub methods: Vec<Method>,
    pub seeds: Vec<u64>,
    pub sets: Vec<SetList>,
    /// Search flags every run gets (what followed `--`).
    pub common: Vec<String>,
}

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Unique within the sweep; the name of its directories and files.
    pub name: String,
    pub space: String,
    pub method: Method,
    pub seed: u64,
    /// The `--set` values of this run, in the order the lists were given.
    pub setting: Vec<(String, String)>,
    /// `darts-minus search` arguments, without `--out`.
    pub args: Vec<String>,
}

impl RunSpec {
    /// `key=value, …`, or `default` for a run with no `--set` values: the setting's label in
    /// reports.
    pub fn setting_label(&self) -> String {
        setting_label(&self.setting)
    }
}

pub fn setting_label(setting: &[(String, String)]) -> String {
    if setting.is_empty() {
        return "default".into();
    }
    let parts: Vec<String> = setting.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(" ")
}

/// The flags of `value` for `key`: a switch takes `on` (given) or `off` (left out).
fn flag_args(key: &str, value: &str) -> Vec<String> {
    match value {
        "on" => vec![format!("--{key}")],
        "off" => vec![],
        v => vec![format!("--{key}"), v.to_string()],
    }
}

/// A name part from a value: characters a file name could trip on become `_`.
fn name_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Grid {
    /// The `darts-minus sweep` command that makes this grid in `out` (without executor
    /// options), for reports to say how their runs were made.
    pub fn command(&self, out: Option<&std::path::Path>) -> String {
        let join = |v: Vec<String>| v.join(",");
        let mut c = format!(
            "darts-minus sweep --space {} --methods {} --seeds {}",
            self.spaces.join(","),
            join(self.methods.iter().map(|m| m.name().to_string()).collect()),
            join(self.seeds.iter().map(u64::to_string).collect())
        );
        for s in &self.sets {
            c.push_str(&format!(" --set {}={}", s.key, s.values.join(",")));
        }
        // Before `--`: what follows it goes to every search.
        if let Some(out) = out {
            c.push_str(&format!(" --out {}", out.display()));
        }
        if !self.common.is_empty() {
            c.push_str(&format!(" -- {}", self.common.join(" ")));
        }
        c
    }

    /// Checks the lists, then expands them: spaces, seeds, methods, settings (seeds vary
    /// slowest, so a sweep run here part-way has every method and setting of its first seeds
    /// to compare, pair by pair).
    pub fn runs(&self) -> Result<Vec<RunSpec>> {
        let empty = |what: &str| Error::Invalid(format!("the sweep has no {what}"));
        if self.spaces.is_empty() {
            return Err(empty("--space"));
        }
        if self.methods.is_empty() {
            return Err(empty("--methods"));
        }
        if self.seeds.is_empty() {
            return Err(empty("--seeds"));
        }
        for arg in &self.common {
            let flag = arg.trim_start_matches("--");
            let flag = flag.split('=').next().unwrap_or_default();
            if arg.starts_with("--") && SWEEP_OWNED.contains(&flag) {
                return Err(Error::Invalid(format!(
                    "{arg} after -- is set by the sweep itself: use sweep's --space, --methods, --seeds and --out"
                )));
            }
        }
        for (i, s) in self.sets.iter().enumerate() {
            if self.sets[..i].iter().any(|o| o.key == s.key) {
                return Err(Error::Invalid(format!(
                    "--set {} is given twice: list all its values in one --set",
                    s.key
                )));
            }
            let given = format!("--{}", s.key);
            if self
                .common
                .iter()
                .any(|a| *a == given || a.starts_with(&format!("{given}=")))
            {
                return Err(Error::Invalid(format!(
                    "{given} is both in --set and after --: keep one"
                )));
            }
        }
        let mut settings: Vec<Vec<(String, String)>> = vec![vec![]];
        for s in &self.sets {
            settings = settings
                .into_iter()
                .flat_map(|prefix| {
                    s.values.iter().map(move |v| {
                        let mut p = prefix.clone();
                        p.push((s.key.clone(), v.clone()));
                        p
                    })
                })
                .collect();
        }
        let mut runs = Vec::new();
        for space in &self.spaces {
            for &seed in &self.seeds {
                for &method in &self.methods {
                    for setting in &settings {
                        let mut name = format!("{}-{}", name_part(space), method.name());
                        for (k, v) in setting {
                            name.push_str(&format!("-{}_{}", name_part(k), name_part(v)));
                        }
                        name.push_str(&format!("-seed{seed}"));
                        let mut args = vec!["--space".to_string(), space.clone()];
                        if method == Method::Darts {
                            args.push("--no-aux".into());
                        }
                        args.extend(["--seed".to_string(), seed.to_string()]);
                        for (k, v) in setting {
                            args.extend(flag_args(k, v));
                        }
                        args.extend(self.common.iter().cloned());
                        runs.push(RunSpec {
                            name,
                            space: space.clone(),
                            method,
                            seed,
                            setting: setting.clone(),
                            args,
                        });
                    }
                }
            }
        }
        for (i, r) in runs.iter().enumerate() {
            if runs[..i].iter().any(|o| o.name == r.name) {
                return Err(Error::Invalid(format!(
                    "two runs of the sweep would share the name '{}': make the --set values differ in letters or digits",
                    r.name
                )));
            }
        }
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid {
            spaces: vec!["nb201".into()],
            methods: vec![Method::DartsMinus, Method::Darts],
            seeds: vec![0, 1],
            sets: vec![SetList::parse("beta-schedule=linear,cosine").unwrap()],
            common: vec!["--epochs".into(), "2".into()],
        }
    }

    #[test]
    fn the_grid_is_the_product_with_seeds_slowest() {
        let runs = grid().runs().unwrap();
        assert_eq!(runs.len(), 8);
        assert_eq!(runs[0].name, "nb201-darts-minus-beta-schedule_linear-seed0");
        assert_eq!(runs[1].name, "nb201-darts-minus-beta-schedule_cosine-seed0");
        assert_eq!(runs[2].method, Method::Darts);
        assert_eq!(runs[4].name, "nb201-darts-minus-beta-schedule_linear-seed1");
        assert_eq!(
            runs[6].args,
            [
                "--space",
                "nb201",
                "--no-aux",
                "--seed",
                "1",
                "--beta-schedule",
                "linear",
                "--epochs",
                "2"
            ]
        );
        assert_eq!(runs[6].setting_label(), "beta-schedule=linear");
        assert_eq!(
            grid().command(Some(std::path::Path::new("runs/b"))),
            "darts-minus sweep --space nb201 --methods darts-minus,darts --seeds 0,1 \
             --set beta-schedule=linear,cosine --out runs/b -- --epochs 2"
        );
    }

    #[test]
    fn switches_take_on_and_off() {
        let mut g = grid();
        g.sets = vec![SetList::parse("--no-shuffle=on,off").unwrap()];
        let runs = g.runs().unwrap();
        assert!(runs[0].args.contains(&"--no-shuffle".to_string()));
        assert!(!runs[1].args.iter().any(|a| a.contains("shuffle")));
    }

    #[test]
    fn bad_grids_are_refused_with_the_reason() {
        for (set, why) in [
            ("epochs", "no '='"),
            ("seed=1,2", "set by the sweep"),
            ("lr=0.1,,0.2", "empty value"),
            ("lr=0.1,0.1", "listed twice"),
            ("l r=1", "characters"),
        ] {
            let e = SetList::parse(set).unwrap_err().to_string();
            assert!(e.contains(why), "{set}: {e}");
        }
        let mut g = grid();
        g.common = vec!["--seed".into(), "3".into()];
        assert!(g
            .runs()
            .unwrap_err()
            .to_string()
            .contains("set by the sweep"));
        let mut g = grid();
        g.common = vec!["--beta-schedule=cosine".into()];
        assert!(g.runs().unwrap_err().to_string().contains("both in --set"));
        let mut g = grid();
        g.seeds.clear();
        assert!(g.runs().unwrap_err().to_string().contains("--seeds"));
        let mut g = grid();
        g.sets = vec![SetList::parse("data=a/b,a_b").unwrap()];
        assert!(g.runs().unwrap_err().to_string().contains("share the name"));
    }
}
