//! The local executor: the sweep's runs on this machine, `jobs` at a time, each a child
//! process (see [`super::task`]), reported to the caller as they start and end.

use super::manifest::Manifest;
use super::task::{run_task, Outcome};
use crate::error::Error;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// What the executor tells its caller.
pub enum Event<'a> {
    Started(&'a str),
    Ended(&'a Outcome),
    /// The run could not be attempted at all (its log or status could not be written, or
    /// another process holds it).
    NotRun(&'a str, &'a Error),
    /// Every half second while runs are under way, for progress displays.
    Tick,
}

enum Msg {
    Started(usize),
    Ended(Outcome),
    NotRun(usize, Error),
}

/// Runs the runs `ids` of `manifest`, `jobs` at a time; returns every attempt's outcome in
/// the order they ended. A failing run does not stop the others.
pub fn run_local(
    exe: &Path,
    sweep: &Path,
    manifest: &Manifest,
    ids: &[usize],
    jobs: usize,
    observe: &mut dyn FnMut(Event),
) -> Vec<std::result::Result<Outcome, (String, Error)>> {
    let queue = Mutex::new(ids.iter().copied().collect::<VecDeque<usize>>());
    let (tx, rx) = mpsc::channel();
    let mut results = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(ids.len().max(1)) {
            let tx = tx.clone();
            let queue = &queue;
            scope.spawn(move || loop {
                let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                let Some(i) = next else { break };
                let run = &manifest.runs[i];
                let _ = tx.send(Msg::Started(i));
                let msg = match run_task(exe, sweep, manifest, run, None) {
                    Ok(o) => Msg::Ended(o),
                    Err(e) => Msg::NotRun(i, e),
                };
                let _ = tx.send(msg);
            });
        }
        drop(tx);
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(Msg::Started(i)) => observe(Event::Started(&manifest.runs[i].name)),
                Ok(Msg::Ended(o)) => {
                    observe(Event::Ended(&o));
                    results.push(Ok(o));
                }
                Ok(Msg::NotRun(i, e)) => {
                    let name = &manifest.runs[i].name;
                    observe(Event::NotRun(name, &e));
                    results.push(Err((name.clone(), e)));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => observe(Event::Tick),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    results
}
