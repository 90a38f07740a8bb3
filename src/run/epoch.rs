//! The epoch loop: a run says how an epoch starts, how one step runs and how the epoch ends;
//! the loop cuts the epoch to the step budget, times each step (batch loading excluded, as
//! the step time in metrics means the GPU work of a step), and reports progress.

use super::metrics::{median_time, nan_if_null, StepStats};
use crate::error::Result;
use std::time::Instant;

/// Progress events for a front end.
pub enum Progress<'a> {
    EpochStart {
        epoch: usize,
        steps: usize,
        lr: f64,
        /// β of the auxiliary skip (searches only).
        beta: Option<f64>,
    },
    Step {
        step: usize,
        steps: usize,
        stats: &'a StepStats,
        seconds: f64,
    },
    Validating {
        batches: usize,
    },
}

/// The settings that bound a run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub epochs: usize,
    pub batch_size: usize,
    /// Stop after this many steps in total.
    pub max_steps: Option<usize>,
}

impl Limits {
    pub fn validate(&self) -> crate::error::Result<()> {
        let bad = |m: String| Err(crate::error::Error::Invalid(m));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return bad(format!(
                "--batch-size must be at least 2 (batch norm needs two samples), got {}",
                self.batch_size
            ));
        }
        if self.max_steps == Some(0) {
            return bad("--max-steps must be at least 1 (0 would do nothing)".into());
        }
        Ok(())
    }
}

/// How far a run has come: epochs and steps completed.
#[derive(Clone, Copy, Debug)]
pub struct Position {
    pub epoch: usize,
    pub step: usize,
}

impl Position {
    pub fn new(epoch: usize, step: usize) -> Self {
        Position { epoch, step }
    }
}

/// What a run tells the loop when an epoch starts.
pub struct EpochPlan<E> {
    /// The run's per-epoch state: schedule values, batch queues, random streams.
    pub state: E,
    /// Steps of a whole epoch (batches of the training data).
    pub steps: usize,
    pub lr: f64,
    pub beta: Option<f64>,
}

/// How long an epoch's steps took: the same numbers in the metrics of every kind of run
/// (flattened into its epoch record, so each is a top-level JSON field).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    /// Median wall time of one step, milliseconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub step_time_ms: f64,
    /// Training images per second of step (images of a step / median step time).
    #[serde(deserialize_with = "nan_if_null")]
    pub images_per_sec: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub epoch_seconds: f64,
    /// Wall time of the epoch's steps together; the rest of `epoch_seconds` is loading
    /// batches, validating or testing, and the epoch's outputs (NaN in records written
    /// before it was kept).
    #[serde(default = "not_kept", deserialize_with = "nan_if_null")]
    pub steps_seconds: f64,
}

fn not_kept() -> f64 {
    f64::NAN
}

/// The steps of an epoch as the loop ran them.
pub struct EpochSteps {
    pub epoch: usize,
    /// Steps of a whole epoch; more than `stats.len()` when the step budget cut it short.
    pub steps_total: usize,
    pub stats: Vec<StepStats>,
    /// Median step time, seconds.
    pub median_seconds: f64,
    /// All steps together, seconds.
    pub total_seconds: f64,
    pub started: Instant,
}

impl EpochSteps {
    pub fn step_time_ms(&self) -> f64 {
        self.median_seconds * 1e3
    }

    /// Images per second of a step: the images a step really saw (the whole data set where
    /// it is smaller than a batch), over the median step time.
    pub fn images_per_sec(&self) -> f64 {
        let steps = self.stats.len().max(1) as f64;
        let images = self.stats.iter().map(|s| s.n).sum::<usize>() as f64 / steps;
        images / self.median_seconds
    }

    /// Wall time since the epoch started.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The epoch's [`Timing`], taken now.
    pub fn timing(&self) -> Timing {
        Timing {
            step_time_ms: self.step_time_ms(),
            images_per_sec: self.images_per_sec(),
            epoch_seconds: self.seconds(),
            steps_seconds: self.total_seconds,
        }
    }
}

/// A run the loop drives.
pub trait Trainer {
    /// What one step consumes (a batch; a search: a training and a validation batch).
    type Input;
    /// The run's per-epoch state.
    type Epoch;
    /// One epoch's line of `metrics.jsonl`.
    type Record: Clone;

    /// The run's bounds (epochs, step budget) and how far it has come.
    fn bounds(&self) -> (Limits, Position);
    /// Sets the epoch's schedule and prepares its batches.
    fn start_epoch(&mut self, epoch: usize) -> Result<EpochPlan<Self::Epoch>>;
    /// The next step's input (loaded outside the timed step); `None` when the data is spent.
    fn next_input(&mut self, epoch: &mut Self::Epoch) -> Result<Option<Self::Input>>;
    /// One training step; counts it and stops on a diverged loss.
    fn step(&mut self, epoch: &mut Self::Epoch, input: Self::Input) -> Result<StepStats>;
    /// Validates or tests, and returns the epoch's record.
    fn finish_epoch(
        &mut self,
        epoch: Self::Epoch,
        steps: EpochSteps,
        observe: &mut dyn FnMut(Progress),
    ) -> Result<Self::Record>;
    /// Stores a completed epoch's record and counts the epoch.
    fn completed(&mut self, record: Self::Record);
}

/// Whether the run has finished: all epochs, or the step budget spent.
pub fn finished(limits: Limits, at: Position) -> bool {
    at.epoch >= limits.epochs || limits.max_steps.is_some_and(|m| at.step >= m)
}

/// Runs the next epoch of `run`.
pub fn run_epoch<T: Trainer>(run: &mut T, observe: &mut dyn FnMut(Progress)) -> Result<T::Record> {
    let started = Instant::now();
    let (limits, at) = run.bounds();
    let plan = run.start_epoch(at.epoch)?;
    let steps = match limits.max_steps {
        Some(m) => plan.steps.min(m.saturating_sub(at.step)),
        None => plan.steps,
    };
    observe(Progress::EpochStart {
        epoch: at.epoch,
        steps,
        lr: plan.lr,
        beta: plan.beta,
    });
    let mut state = plan.state;
    let mut stats = Vec::with_capacity(steps);
    let mut times = Vec::with_capacity(steps);
    for k in 0..steps {
        let Some(input) = run.next_input(&mut state)? else {
            break;
        };
        let t0 = Instant::now();
        let s = run.step(&mut state, input)?;
        let dt = t0.elapsed().as_secs_f64();
        times.push(dt);
        stats.push(s);
        observe(Progress::Step {
            step: k + 1,
            steps,
            stats: &s,
            seconds: dt,
        });
    }
    let done = EpochSteps {
        epoch: at.epoch,
        steps_total: plan.steps,
        stats,
        total_seconds: times.iter().sum(),
        median_seconds: median_time(times),
        started,
    };
    let record = run.finish_epoch(state, done, observe)?;
    run.completed(record.clone());
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_from_before_steps_seconds_read_it_as_nan() {
        let old = r#"{"step_time_ms":2.5,"images_per_sec":4.0,"epoch_seconds":9.0}"#;
        let t: Timing = serde_json::from_str(old).unwrap();
        assert_eq!((t.step_time_ms, t.epoch_seconds), (2.5, 9.0));
        assert!(t.steps_seconds.is_nan());
        let new =
            r#"{"step_time_ms":2.5,"images_per_sec":4.0,"epoch_seconds":9.0,"steps_seconds":7.5}"#;
        let t: Timing = serde_json::from_str(new).unwrap();
        assert_eq!(t.steps_seconds, 7.5);
    }

    /// A run of `batches` steps per epoch whose step `k` (over the whole run) has loss `k`.
    struct Fake {
        limits: Limits,
        at: Position,
        batches: usize,
        history: Vec<(usize, usize)>,
    }

    impl Trainer for Fake {
        type Input = usize;
        type Epoch = usize;
        type Record = (usize, usize);

        fn bounds(&self) -> (Limits, Position) {
            (self.limits, self.at)
        }
        fn start_epoch(&mut self, _: usize) -> Result<EpochPlan<usize>> {
            Ok(EpochPlan {
                state: self.batches,
                steps: self.batches,
                lr: 0.1,
                beta: None,
            })
        }
        fn next_input(&mut self, left: &mut usize) -> Result<Option<usize>> {
            Ok(left.checked_sub(1).map(|l| {
                *left = l;
                self.at.step
            }))
        }
        fn step(&mut self, _: &mut usize, k: usize) -> Result<StepStats> {
            self.at.step += 1;
            Ok(StepStats {
                loss: k as f32,
                top1: 1,
                top5: 2,
                n: 4,
            })
        }
        fn finish_epoch(
            &mut self,
            _: usize,
            steps: EpochSteps,
            observe: &mut dyn FnMut(Progress),
        ) -> Result<(usize, usize)> {
            observe(Progress::Validating { batches: 1 });
            Ok((steps.epoch, steps.stats.len()))
        }
        fn completed(&mut self, record: (usize, usize)) {
            self.at.epoch += 1;
            self.history.push(record);
        }
    }

    #[test]
    fn the_step_budget_cuts_the_last_epoch_short() {
        let mut run = Fake {
            limits: Limits {
                epochs: 5,
                batch_size: 4,
                max_steps: Some(7),
            },
            at: Position { epoch: 0, step: 0 },
            batches: 3,
            history: Vec::new(),
        };
        let mut events = Vec::new();
        while !finished(run.limits, run.at) {
            run_epoch(&mut run, &mut |p| {
                events.push(match p {
                    Progress::EpochStart { steps, .. } => format!("start {steps}"),
                    Progress::Step { step, stats, .. } => format!("{step}:{}", stats.loss),
                    Progress::Validating { .. } => "val".into(),
                })
            })
            .unwrap();
        }
        assert_eq!(run.history, vec![(0, 3), (1, 3), (2, 1)]);
        assert_eq!(run.at.step, 7);
        assert_eq!(
            events.join(" "),
            "start 3 1:0 2:1 3:2 val start 3 1:3 2:4 3:5 val start 1 1:6 val"
        );
    }

    #[test]
    fn without_a_budget_every_epoch_runs() {
        let limits = Limits {
            epochs: 2,
            batch_size: 4,
            max_steps: None,
        };
        assert!(!finished(limits, Position { epoch: 1, step: 99 }));
        assert!(finished(limits, Position { epoch: 2, step: 0 }));
    }
}
