//! Search checkpoints: weights and batch-norm statistics under the PyTorch reference's
//! names, α, both optimisers' state and the progress, so that a resumed search continues
//! exactly; and starting a new search from another checkpoint's weights.

use super::settings::{SearchSettings, Space};
use super::trainer::{EpochRecord, Search};
use crate::checkpoint::{self, Entry, Named};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::run::state::{self as run_state, file_err, momentum_entries, write_named, Saved};
use crate::run::{self, Position};
use std::collections::BTreeMap;
use std::path::Path;

const FORMAT: &str = "darts-minus search checkpoint v1";
const NO_SETTINGS: &str = "not a darts-minus search checkpoint (no settings); use --init-from to start a new search from its weights";

/// What a search checkpoint says of its run, read without a GPU: enough for a sweep to decide
/// whether a run is finished and for a report to summarise it.
#[derive(Debug)]
pub struct SearchRecord {
    pub settings: SearchSettings,
    pub history: Vec<EpochRecord>,
    pub epoch: usize,
    pub step: usize,
}

impl SearchRecord {
    pub fn read(path: &Path) -> Result<SearchRecord> {
        let saved = Saved::read(path)?;
        saved.expect_format(FORMAT)?;
        Ok(SearchRecord {
            settings: saved.settings(NO_SETTINGS)?,
            history: saved.history()?,
            epoch: saved.int("search.epoch")? as usize,
            step: saved.int("search.step")? as usize,
        })
    }

    /// Whether the run has done all its epochs (or steps).
    pub fn finished(&self) -> bool {
        run::finished(self.settings.limits(), Position::new(self.epoch, self.step))
    }
}

impl Search {
    /// Writes a checkpoint: weights and BN statistics under the reference names, α, both
    /// optimisers' state, progress and settings (atomic).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut entries = checkpoint::module_entries(self.net.as_ref(), "")?;
        for (name, t) in self.net.alphas() {
            entries.push((name.to_string(), Entry::tensor(t)?));
        }
        entries.extend(momentum_entries(&self.weights, &self.sgd)?);
        let (m, v) = self.adam.state();
        for (((name, _), m), v) in self.net.alphas().iter().zip(m).zip(v) {
            entries.push((format!("arch_optimizer.exp_avg.{name}"), Entry::tensor(m)?));
            entries.push((
                format!("arch_optimizer.exp_avg_sq.{name}"),
                Entry::tensor(v)?,
            ));
        }
        entries.push(("arch_optimizer.step".into(), Entry::scalar(self.adam.t)));
        for ((name, _), g) in self.net.alphas().iter().zip(&self.arch_grads) {
            entries.push((format!("search.alpha_grad.{name}"), Entry::tensor(g)?));
        }
        entries.push(("search.epoch".into(), Entry::scalar(self.epoch as u64)));
        entries.push(("search.step".into(), Entry::scalar(self.step as u64)));
        entries.push(("search.seed".into(), Entry::scalar(self.settings.seed)));
        run_state::save(path, &entries, FORMAT, &self.settings, &self.history)
    }

    /// Continues a search from a checkpoint written by [`Search::save`].
    pub fn resume(gpu: &Gpu, path: &Path) -> Result<Search> {
        let saved = Saved::read(path)?;
        saved.expect_format(FORMAT)?;
        let settings: SearchSettings = saved.settings(NO_SETTINGS)?;
        let mut search = Search::new(gpu, settings)?;
        search.load_weights(&saved.tensors, path, true)?;
        saved.load_momentum(&search.weights, &search.sgd)?;
        let (m, v) = search.adam.state();
        for (((name, _), m), v) in search.net.alphas().iter().zip(m).zip(v) {
            saved.write_into(m, &format!("arch_optimizer.exp_avg.{name}"))?;
            saved.write_into(v, &format!("arch_optimizer.exp_avg_sq.{name}"))?;
        }
        search.adam.t = saved.int("arch_optimizer.step")?;
        for ((name, _), g) in search.net.alphas().iter().zip(&search.arch_grads) {
            saved.write_into(g, &format!("search.alpha_grad.{name}"))?;
        }
        search.epoch = saved.int("search.epoch")? as usize;
        search.step = saved.int("search.step")? as usize;
        search.history = saved.history()?;
        Ok(search)
    }

    /// Loads weights, BN statistics and (when present, or required) α from `tensors`.
    pub fn load_weights(
        &mut self,
        tensors: &BTreeMap<String, Named>,
        path: &Path,
        require_alphas: bool,
    ) -> Result<()> {
        let (darts, nb201) = (
            tensors.contains_key("alphas_normal"),
            tensors.contains_key("arch_parameters"),
        );
        let other = match self.settings.space {
            Space::Darts(_) if nb201 && !darts => Some("NAS-Bench-201"),
            Space::Nb201(_) if darts && !nb201 => Some("DARTS"),
            _ => None,
        };
        if let Some(other) = other {
            return Err(file_err(
                path,
                &format!("the checkpoint is from another search space ({other}) but this search uses the {} space; pass --space to match it", self.settings.space.label()),
            ));
        }
        self.refuse_foreign_candidates(tensors, path)?;
        checkpoint::load_module(self.net.as_ref(), "", tensors, path)?;
        for (name, t) in self.net.alphas() {
            match tensors.get(name) {
                Some(_) => write_named(t, tensors, name, path)?,
                None if require_alphas => return Err(file_err(path, &format!("missing '{name}'"))),
                None => log::warn!(
                    "{}: no '{name}'; α keeps its fresh initialisation",
                    path.display()
                ),
            }
        }
        Ok(())
    }

    /// A candidate's weights or statistics that this network lacks (`cells.i._ops.e._ops.k…`)
    /// mean another space: RobustDARTS' spaces share names (S4's network has a subset of
    /// S2's), so a missing name alone would not tell.
    fn refuse_foreign_candidates(
        &self,
        tensors: &BTreeMap<String, Named>,
        path: &Path,
    ) -> Result<()> {
        let mut own = std::collections::BTreeSet::new();
        self.net.visit("", &mut |name, _| {
            own.insert(name.to_string());
        });
        let candidate = |n: &str| n.starts_with("cells.") && n.matches("._ops.").count() == 2;
        match tensors.keys().find(|n| candidate(n) && !own.contains(n.as_str())) {
            Some(n) => Err(file_err(
                path,
                &format!("tensor '{n}' is no candidate's in this {} search network: the checkpoint is from another search space or configuration; pass --space to match it", self.settings.space.label()),
            )),
            None => Ok(()),
        }
    }

    /// Starts from the weights and α of a checkpoint (ours, or exported from the PyTorch
    /// reference with its state_dict names).
    pub fn init_from(&mut self, path: &Path) -> Result<()> {
        let (tensors, meta) = checkpoint::read_with_metadata(path)?;
        // Our own checkpoints name their space.
        let theirs = meta
            .get("settings")
            .and_then(|s| serde_json::from_str::<SearchSettings>(s).ok());
        if let Some(theirs) = theirs.filter(|t| t.space.name() != self.settings.space.name()) {
            return Err(file_err(
                path,
                &format!(
                    "the checkpoint is from a search in the {} space but this search uses the {} space; pass --space {} to match it",
                    theirs.space.label(),
                    self.settings.space.label(),
                    theirs.space.name()
                ),
            ));
        }
        self.load_weights(&tensors, path, false)
    }

    /// [`Search::init_from`] with the tensors already read (`source` names them in errors).
    pub fn init_from_tensors(
        &mut self,
        tensors: &BTreeMap<String, Named>,
        source: &Path,
    ) -> Result<()> {
        self.load_weights(tensors, source, false)
    }
}
