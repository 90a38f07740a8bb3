//! `darts-minus eval`: a trained checkpoint's top-1/top-5, per-class accuracy and confusion
//! matrix on test data.

use super::checkpoint_path;
use super::progress::resume_dir;
use clap::Args;
use darts_minus::data::{epoch_batches, Augment, Dataset, Split};
use darts_minus::gpu::{AdapterChoice, Gpu};
use darts_minus::report;
use darts_minus::run::metrics::write_text_atomic;
use darts_minus::train::trainer::Retrain;
use darts_minus::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `darts-minus eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A train checkpoint (or its output directory).
    pub checkpoint: PathBuf,
    /// Test data (default: the built-in CIFAR-10 test set).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to write confusion.svg and eval.json (default: beside the checkpoint).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn eval(a: &EvalArgs, choice: &AdapterChoice) -> Result<()> {
    let ckpt = checkpoint_path(&a.checkpoint);
    let test = match &a.data {
        Some(p) => Dataset::open(p, Split::Test)?,
        None => Dataset::builtin_test()?,
    };
    let gpu = Gpu::new(choice)?;
    let mut run = Retrain::resume(&gpu, &ckpt)?;
    if test.num_classes() != run.settings.network.classes {
        return Err(Error::Invalid(format!(
            "the test data has {} classes but the network {}",
            test.num_classes(),
            run.settings.network.classes
        )));
    }
    run.set_image_size(test.height, test.width)?;
    let aug = Augment::none(run.settings.mean, run.settings.std);
    let classes = test.num_classes();
    let names = test.classes.clone();
    let test = Arc::new(test);
    let ev = run.evaluate(
        epoch_batches(
            test.clone(),
            (0..test.len).collect(),
            run.settings.batch_size,
            aug,
            0,
        )?,
        classes,
    )?;
    println!(
        "{} test images: top-1 {:.2}% · top-5 {:.2}% · loss {:.4}",
        ev.n,
        100.0 * ev.top1,
        100.0 * ev.top5,
        ev.loss
    );
    let mut per_class = Vec::new();
    for (c, row) in ev.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        let acc = if total > 0 {
            row[c] as f64 / total as f64
        } else {
            f64::NAN
        };
        println!(
            "  {:<12} {:6.2}%  ({} images)",
            names.get(c).map(String::as_str).unwrap_or("?"),
            100.0 * acc,
            total
        );
        per_class
            .push(serde_json::json!({"class": names.get(c), "accuracy": acc, "images": total}));
    }
    let dir = resume_dir(a.out.as_ref(), &ckpt);
    std::fs::create_dir_all(&dir).map_err(|e| Error::File {
        path: dir.clone(),
        msg: e.to_string(),
    })?;
    report::confusion_svg(&dir.join("confusion.svg"), &names, &ev.confusion)?;
    let j = serde_json::json!({"top1": ev.top1, "top5": ev.top5, "loss": ev.loss, "images": ev.n, "per_class": per_class, "confusion": ev.confusion});
    write_text_atomic(
        &dir.join("eval.json"),
        &serde_json::to_string_pretty(&j).map_err(|e| Error::Invalid(e.to_string()))?,
    )?;
    println!("confusion matrix: {}", dir.join("confusion.svg").display());
    Ok(())
}
