//! `darts-minus genotype`: the architecture a search checkpoint (or a PyTorch export with α)
//! holds.

use super::args::SpaceArg;
use super::checkpoint_path;
use clap::Args;
use darts_minus::checkpoint;
use darts_minus::nn::darts_ops::DartsSpace;
use darts_minus::search::darts_net::DartsConfig;
use darts_minus::search::nb201_net::Nb201Config;
use darts_minus::search::trainer::{derive_from_alphas, softmax_rows, SearchSettings, Space};
use darts_minus::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of `darts-minus genotype`.
#[derive(Args, Debug)]
pub struct GenotypeArgs {
    /// A search checkpoint (or its output directory), or a PyTorch export with α.
    pub checkpoint: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The space of a PyTorch export (our checkpoints name their own) [default: from α's
    /// width].
    #[arg(long, value_enum)]
    pub space: Option<SpaceArg>,
}

/// The space of an export without settings: `--space`, or what α's width allows.
fn export_space(
    a: &GenotypeArgs,
    tensors: &BTreeMap<String, checkpoint::Named>,
    path: &Path,
) -> Result<Space> {
    let err = |msg: String| Error::File {
        path: path.to_path_buf(),
        msg,
    };
    if let Some(arg) = a.space {
        return Ok(match arg.darts_cell() {
            Some(candidates) => Space::Darts(DartsConfig {
                candidates,
                ..DartsConfig::default()
            }),
            None => Space::Nb201(Nb201Config::default()),
        });
    }
    if tensors.contains_key("arch_parameters") {
        return Ok(Space::Nb201(Nb201Config::default()));
    }
    let Some(t) = tensors.get("alphas_normal") else {
        return Err(err(
            "holds no architecture parameters (alphas_normal/alphas_reduce or arch_parameters)"
                .into(),
        ));
    };
    let width = t.shape.last().copied().unwrap_or(0);
    let fits: Vec<DartsSpace> = DartsSpace::ALL
        .into_iter()
        .filter(|s| s.width() == width)
        .collect();
    match fits[..] {
        [candidates] => Ok(Space::Darts(DartsConfig {
            candidates,
            ..DartsConfig::default()
        })),
        [] => Err(err(format!(
            "alphas_normal has {width} columns, which no DARTS-cell space has (DARTS 8, RobustDARTS S1, S2, S4 2, S3 3)"
        ))),
        _ => {
            let names: Vec<&str> = fits.iter().map(|s| s.name()).collect();
            Err(err(format!(
                "alphas_normal has {width} columns, as the spaces {} have: pass --space to say which",
                names.join(", ")
            )))
        }
    }
}

pub fn genotype(a: &GenotypeArgs) -> Result<()> {
    let path = checkpoint_path(&a.checkpoint);
    let (tensors, meta) = checkpoint::read_with_metadata(&path)?;
    let space = match meta.get("settings") {
        Some(s) => {
            let space = serde_json::from_str::<SearchSettings>(s)
                .map_err(|e| Error::File {
                    path: path.clone(),
                    msg: format!("unreadable settings: {e}"),
                })?
                .space;
            let given = a
                .space
                .map(|_| export_space(a, &tensors, &path))
                .transpose()?;
            if let Some(given) = given.filter(|g| g.name() != space.name()) {
                return Err(Error::File {
                    path,
                    msg: format!(
                        "the checkpoint is from a search in the {} space, not {} (--space is for PyTorch exports, whose space is not recorded)",
                        space.label(),
                        given.label()
                    ),
                });
            }
            space
        }
        None => export_space(a, &tensors, &path)?,
    };
    let names: &[&str] = match space {
        Space::Darts(_) => &["alphas_normal", "alphas_reduce"],
        Space::Nb201(_) => &["arch_parameters"],
    };
    let mut alphas = BTreeMap::new();
    for &n in names {
        let t = tensors.get(n).ok_or_else(|| Error::File {
            path: path.clone(),
            msg: format!("missing '{n}'"),
        })?;
        let cols = *t.shape.last().unwrap_or(&1);
        let vals: Vec<f32> = t.data.iter().map(|&v| v as f32).collect();
        alphas.insert(n.to_string(), softmax_rows(&vals, cols));
    }
    let derived = derive_from_alphas(&space, &alphas)?;
    if a.json {
        let j = serde_json::json!({"space": space.name(), "genotype": derived, "text": derived.text(), "nb201": derived.nb201_entry()});
        println!(
            "{}",
            serde_json::to_string_pretty(&j).map_err(|e| Error::Invalid(e.to_string()))?
        );
    } else {
        println!("{}", derived.text());
        if let Some(nb) = derived.nb201_entry() {
            println!(
                "NAS-Bench-201 #{}: CIFAR-10 valid {:.2}% / test {:.2}% · CIFAR-100 valid {:.2}% / test {:.2}% · ImageNet16-120 valid {:.2}% / test {:.2}%",
                nb.index, nb.cifar10_valid, nb.cifar10_test, nb.cifar100_valid, nb.cifar100_test, nb.imagenet16_valid, nb.imagenet16_test
            );
        }
    }
    Ok(())
}
