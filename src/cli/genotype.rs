//! `darts-minus genotype`: the architecture a search checkpoint (or a PyTorch export with α)
//! holds.

use super::checkpoint_path;
use clap::Args;
use darts_minus::checkpoint;
use darts_minus::search::darts_net::DartsConfig;
use darts_minus::search::nb201_net::Nb201Config;
use darts_minus::search::trainer::{derive_from_alphas, softmax_rows, SearchSettings, Space};
use darts_minus::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Options of `darts-minus genotype`.
#[derive(Args, Debug)]
pub struct GenotypeArgs {
    /// A search checkpoint (or its output directory), or a PyTorch export with α.
    pub checkpoint: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn genotype(a: &GenotypeArgs) -> Result<()> {
    let path = checkpoint_path(&a.checkpoint);
    let (tensors, meta) = checkpoint::read_with_metadata(&path)?;
    let space = match meta.get("settings") {
        Some(s) => {
            serde_json::from_str::<SearchSettings>(s)
                .map_err(|e| Error::File {
                    path: path.clone(),
                    msg: format!("unreadable settings: {e}"),
                })?
                .space
        }
        None if tensors.contains_key("alphas_normal") => Space::Darts(DartsConfig::default()),
        None if tensors.contains_key("arch_parameters") => Space::Nb201(Nb201Config::default()),
        None => return Err(Error::File {
            path,
            msg:
                "holds no architecture parameters (alphas_normal/alphas_reduce or arch_parameters)"
                    .into(),
        }),
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
