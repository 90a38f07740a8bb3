//! The `darts-minus` command line.

mod cli;

use clap::{Parser, Subcommand};
use darts_minus::gpu::{list_adapters, AdapterChoice};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "darts-minus",
    version,
    about = "DARTS- architecture search on any GPU (WebGPU)"
)]
struct Cli {
    /// Restrict to one backend: vulkan, metal, dx12 or gl (default: best available; also WGPU_BACKEND).
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Pick the adapter whose name contains this text (also WGPU_ADAPTER_NAME).
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Threads of a CPU adapter (Mesa's lavapipe / llvmpipe; sets LP_NUM_THREADS). 0 runs
    /// every launch on the submitting thread, which skips the driver's ~30 µs thread-pool
    /// hand-off per launch: the fastest choice for small networks, slower for large ones.
    /// Default: the driver's (one thread per core). No effect on GPUs.
    #[arg(long, global = true, value_name = "N")]
    cpu_threads: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Search an architecture with DARTS- (default: the built-in CIFAR-10 mini set).
    Search(Box<cli::search::SearchArgs>),
    /// Print the genotype derived from a search checkpoint.
    Genotype(cli::search::GenotypeArgs),
    /// Train a genotype from scratch (the evaluation stage) and report its test accuracy.
    Train(Box<cli::train::TrainArgs>),
    /// Evaluate a trained checkpoint: top-1/top-5, per-class accuracy, confusion matrix.
    Eval(cli::train::EvalArgs),
    /// Time the search step (median, images/s, peak memory, dispatches) for one or more
    /// configurations.
    Bench(cli::bench::BenchArgs),
    /// List every GPU adapter with its limits, marking the one that would be used.
    Devices,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    if let Some(n) = cli.cpu_threads {
        // Read by Mesa when the adapter opens, below; nothing else runs yet (one thread).
        std::env::set_var("LP_NUM_THREADS", n.to_string());
    }
    let choice = AdapterChoice {
        backend: cli.backend.clone(),
        name: cli.adapter.clone(),
    }
    .with_env();
    let result = match cli.command {
        Command::Search(a) => cli::search::run(&a, &choice),
        Command::Genotype(a) => cli::search::genotype(&a),
        Command::Train(a) => cli::train::train(&a, &choice),
        Command::Eval(a) => cli::train::eval(&a, &choice),
        Command::Bench(a) => cli::bench::bench(&a, &choice),
        Command::Devices => devices(&choice),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn devices(choice: &AdapterChoice) -> darts_minus::Result<()> {
    let list = list_adapters(choice)?;
    if list.is_empty() {
        return Err(darts_minus::Error::NoAdapter {
            detail: String::new(),
        });
    }
    for a in &list {
        println!(
            "{} {} [{} / {}]\n    driver: {}\n    max storage binding: {} MiB, max buffer: {} MiB, workgroups per dimension: {}, storage buffers per stage: {}",
            if a.chosen { "*" } else { " " },
            a.name,
            a.backend,
            a.device_type,
            if a.driver.is_empty() { "-" } else { &a.driver },
            a.max_storage_binding >> 20,
            a.max_buffer >> 20,
            a.max_workgroups_per_dim,
            a.max_storage_buffers_per_stage,
        );
    }
    println!("(* = the adapter darts-minus would use; change with --backend / --adapter)");
    Ok(())
}
