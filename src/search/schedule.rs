//! Per-epoch schedules: the DARTS- β decay of the auxiliary skip and the cosine learning rate.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Shape of the β decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaDecay {
    Linear,
    Cosine,
    SlowCosine,
    Constant,
}

impl std::str::FromStr for BetaDecay {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(BetaDecay::Linear),
            "cosine" => Ok(BetaDecay::Cosine),
            "slow_cosine" => Ok(BetaDecay::SlowCosine),
            "constant" => Ok(BetaDecay::Constant),
            _ => Err(Error::Invalid(format!(
                "unknown β schedule '{s}': use linear, cosine, slow_cosine or constant"
            ))),
        }
    }
}

/// β of the auxiliary skip, set once at the start of each epoch (SPEC §4). Before `t_start`
/// β = β0; after `t_stop` it keeps its value at `t_stop`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BetaSchedule {
    pub decay: BetaDecay,
    pub beta0: f64,
    pub t_start: usize,
    pub t_stop: usize,
    pub t_max: usize,
}

impl BetaSchedule {
    /// The default for a run of `epochs`: linear from 1 towards 0, T_start = 0, T_stop = T_max = epochs.
    pub fn linear(epochs: usize) -> Self {
        BetaSchedule {
            decay: BetaDecay::Linear,
            beta0: 1.0,
            t_start: 0,
            t_stop: epochs,
            t_max: epochs,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.t_max <= self.t_start {
            return Err(Error::Invalid(format!(
                "β schedule needs T_max > T_start (got T_max = {}, T_start = {})",
                self.t_max, self.t_start
            )));
        }
        Ok(())
    }

    /// β at the start of epoch `e` (0-based).
    pub fn at(&self, e: usize) -> f64 {
        if e < self.t_start || self.t_stop < self.t_start {
            return self.beta0;
        }
        // Past T_stop the value freezes at T_stop (the reference keeps its last value).
        let e = e.min(self.t_stop) as f64;
        let span = (self.t_max - self.t_start) as f64;
        match self.decay {
            BetaDecay::Linear => self.beta0 * (self.t_max as f64 - e) / span,
            BetaDecay::Cosine => self.beta0 * (1.0 + (PI * e / span).cos()) / 2.0,
            BetaDecay::SlowCosine => self.beta0 * ((PI / 2.0) * e / span).cos(),
            BetaDecay::Constant => self.beta0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn linear_beta_for_50_epochs() {
        let s = BetaSchedule::linear(50);
        close(s.at(0), 1.0);
        close(s.at(1), 0.98);
        close(s.at(2), 0.96);
        close(s.at(49), 0.02);
        close(s.at(50), 0.0);
        close(s.at(60), 0.0);
    }

    #[test]
    fn cosine_and_slow_cosine_beta() {
        let mut s = BetaSchedule::linear(50);
        s.decay = BetaDecay::Cosine;
        close(s.at(0), 1.0);
        close(s.at(25), 0.5);
        close(s.at(50), 0.0);
        s.decay = BetaDecay::SlowCosine;
        close(s.at(25), (PI / 4.0).cos());
        s.decay = BetaDecay::Constant;
        close(s.at(30), 1.0);
    }

    #[test]
    fn beta_before_start_and_after_stop() {
        let s = BetaSchedule {
            decay: BetaDecay::Linear,
            beta0: 0.5,
            t_start: 10,
            t_stop: 20,
            t_max: 50,
        };
        close(s.at(3), 0.5);
        close(s.at(10), 0.5 * 40.0 / 40.0);
        close(s.at(20), 0.5 * 30.0 / 40.0);
        close(s.at(35), 0.5 * 30.0 / 40.0);
    }

    #[test]
    fn cosine_learning_rate() {
        let paper = crate::search::settings::SearchSettings::darts_paper().sgd;
        close(paper.lr_at(0, 50), 0.025);
        close(paper.lr_at(25, 50), 0.013);
        close(paper.lr_at(50, 50), 0.001);
    }

    #[test]
    fn parse_and_validate() {
        assert_eq!(
            "slow_cosine".parse::<BetaDecay>().unwrap(),
            BetaDecay::SlowCosine
        );
        assert!("exp"
            .parse::<BetaDecay>()
            .unwrap_err()
            .to_string()
            .contains("linear, cosine"));
        let s = BetaSchedule {
            decay: BetaDecay::Linear,
            beta0: 1.0,
            t_start: 5,
            t_stop: 5,
            t_max: 5,
        };
        assert!(s.validate().is_err());
    }
}
