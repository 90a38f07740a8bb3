//! What a retraining run is configured by (SPEC §8): the architecture, the network and the
//! recipe, with the paper's and the benchmark's presets.

use super::darts_eval::EvalConfig;
use super::Arch;
use crate::error::{Error, Result};
use crate::run::{check_number, Limits, SgdRecipe};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Every setting of a retraining run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub arch: Arch,
    pub network: EvalConfig,
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(flatten)]
    pub sgd: SgdRecipe,
    pub auxiliary_weight: f64,
    pub drop_path: f64,
    /// Cutout side (0 = off).
    pub cutout: usize,
    pub augment: bool,
    pub seed: u64,
    pub max_steps: Option<usize>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The training and test data the run was started on (None: the built-in sets, or the
    /// test split beside `data`); a resumed run reads them again unless told otherwise.
    #[serde(default)]
    pub data: Option<PathBuf>,
    #[serde(default)]
    pub test_data: Option<PathBuf>,
}

impl TrainSettings {
    /// The DARTS paper's CIFAR-10 recipe (SPEC §8) for a DARTS genotype; the benchmark's
    /// 200-epoch recipe (Nesterov SGD 0.1 → 0, weight decay 5e-4, batch 256, no auxiliary
    /// head, drop path or cutout) for a NAS-Bench-201 cell.
    pub fn paper(arch: Arch) -> Self {
        let darts = TrainSettings {
            arch: arch.clone(),
            network: EvalConfig::default(),
            epochs: 600,
            batch_size: 96,
            sgd: SgdRecipe {
                lr: 0.025,
                lr_min: 0.0,
                momentum: 0.9,
                weight_decay: 3e-4,
                nesterov: false,
                grad_clip: 5.0,
            },
            auxiliary_weight: 0.4,
            drop_path: 0.2,
            cutout: 16,
            augment: true,
            seed: 0,
            max_steps: None,
            mean: crate::data::CIFAR10_MEAN,
            std: crate::data::CIFAR10_STD,
            data: None,
            test_data: None,
        };
        match arch {
            Arch::Darts(_) => darts,
            Arch::Nb201(_) => TrainSettings {
                network: EvalConfig {
                    channels: 16,
                    layers: 5,
                    classes: 10,
                    auxiliary: false,
                },
                epochs: 200,
                batch_size: 256,
                sgd: SgdRecipe {
                    lr: 0.1,
                    weight_decay: 5e-4,
                    nesterov: true,
                    ..darts.sgd.clone()
                },
                drop_path: 0.0,
                cutout: 0,
                ..darts
            },
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.limits().validate()?;
        let aw = self.auxiliary_weight;
        check_number("--auxiliary-weight", aw, aw >= 0.0, "≥ 0")?;
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(Error::Invalid(format!(
                "--drop-path must be in [0, 1), got {}",
                self.drop_path
            )));
        }
        self.sgd.validate()
    }

    /// The bounds the run loop keeps to.
    pub fn limits(&self) -> Limits {
        Limits {
            epochs: self.epochs,
            batch_size: self.batch_size,
            max_steps: self.max_steps,
        }
    }
}
