//! The `darts-minus` command line.

mod cli;

use clap::{Parser, Subcommand, ValueEnum};
use darts_minus::gpu::{list_adapters, AdapterChoice, LaunchPolicy, SUBMITTING_THREAD_MAX_WORK};
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
    /// Open the device with the adapter's own limits, or clamped to WebGPU's guaranteed ones
    /// (8 storage buffers per stage, 16 KiB workgroup memory, 128 MiB per binding, 256 MiB
    /// per buffer) or to the downlevel (GLES 3.1-class) ones, to check a run fits stricter
    /// hardware (default: adapter; also DARTS_MINUS_LIMITS).
    #[arg(long, global = true, value_enum)]
    limits: Option<LimitsArg>,
    /// Threads of a CPU adapter (Mesa's lavapipe / llvmpipe; sets LP_NUM_THREADS). 0 runs
    /// every launch on the submitting thread, which skips the driver's ~30 µs thread-pool
    /// hand-off per launch: the fastest choice for tiny networks, slower for larger ones.
    /// auto (the default): 0 where --batch-size (bench: --batch) times --channels is at most
    /// 16, the driver's (one thread per core) otherwise or where LP_NUM_THREADS is set. No
    /// effect on GPUs.
    #[arg(long, global = true, value_name = "N|auto", default_value = "auto", value_parser = parse_threads)]
    cpu_threads: CpuThreads,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Search an architecture with DARTS- (default: the built-in CIFAR-10 mini set).
    #[command(allow_negative_numbers = true)]
    Search(Box<cli::search::SearchArgs>),
    /// Many searches at once: spaces × methods × settings × seeds, here (--jobs N) or as a
    /// Slurm job array; running it again skips finished runs and resumes interrupted ones.
    #[command(allow_negative_numbers = true)]
    Sweep(Box<cli::sweep::SweepArgs>),
    /// Tables (md, csv, json) and figures of finished runs: per method mean ± std, per seed,
    /// the derived cells, NAS-Bench-201 accuracies, the skip weight over epochs.
    Report(cli::report::ReportArgs),
    /// Print the genotype derived from a search checkpoint.
    Genotype(cli::genotype::GenotypeArgs),
    /// Train a genotype from scratch (the evaluation stage) and report its test accuracy.
    #[command(allow_negative_numbers = true)]
    Train(Box<cli::train::TrainArgs>),
    /// Evaluate a trained checkpoint: top-1/top-5, per-class accuracy, confusion matrix.
    Eval(cli::eval::EvalArgs),
    /// Time the search step (median, images/s, peak memory, dispatches) for one or more
    /// configurations.
    Bench(cli::bench::BenchArgs),
    /// List every GPU adapter with its limits, marking the one that would be used.
    Devices,
    /// Check that the adapter computes right: every op against a CPU f64 reference and
    /// finite differences, and the references' values for a mixed edge and two search steps.
    Check(cli::check::CheckArgs),
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LimitsArg {
    Adapter,
    Webgpu,
    Downlevel,
}

#[derive(Clone, Copy, Debug)]
enum CpuThreads {
    Auto,
    Threads(u32),
}

fn parse_threads(s: &str) -> Result<CpuThreads, String> {
    if s == "auto" {
        return Ok(CpuThreads::Auto);
    }
    s.parse()
        .map(CpuThreads::Threads)
        .map_err(|_| format!("expected a thread count or `auto`, got `{s}`"))
}

impl Cli {
    /// The global flags given, for the commands a sweep starts.
    fn global_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(b) = &self.backend {
            args.extend(["--backend".to_string(), b.clone()]);
        }
        if let Some(a) = &self.adapter {
            args.extend(["--adapter".to_string(), a.clone()]);
        }
        if let Some(l) = self.limits {
            let v = l.to_possible_value().map(|v| v.get_name().to_string());
            args.extend(["--limits".to_string(), v.unwrap_or_default()]);
        }
        if let CpuThreads::Threads(n) = self.cpu_threads {
            args.extend(["--cpu-threads".to_string(), n.to_string()]);
        }
        args
    }
}

impl Command {
    /// batch × C of the network this command runs, where the command line gives both.
    fn work(&self) -> Option<usize> {
        match self {
            Command::Search(a) => Some(a.run.batch_size? * a.run.channels?),
            Command::Train(a) => Some(a.run.batch_size? * a.run.channels?),
            Command::Bench(a) => {
                let most = |v: &[usize]| v.iter().copied().max();
                Some(most(&a.batch)? * most(&a.channels)?)
            }
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let threads = match cli.cpu_threads {
        CpuThreads::Threads(n) => Some(n),
        CpuThreads::Auto if std::env::var_os("LP_NUM_THREADS").is_some() => None,
        CpuThreads::Auto => cli
            .command
            .work()
            .filter(|&w| w <= SUBMITTING_THREAD_MAX_WORK)
            .map(|_| 0),
    };
    if let Some(n) = threads {
        // Read by Mesa when the adapter opens, below; nothing else runs yet (one thread).
        std::env::set_var("LP_NUM_THREADS", n.to_string());
    }
    let limits = cli.limits.map(|l| {
        match l {
            LimitsArg::Adapter => "adapter",
            LimitsArg::Webgpu => "webgpu",
            LimitsArg::Downlevel => "downlevel",
        }
        .to_string()
    });
    let choice = AdapterChoice {
        backend: cli.backend.clone(),
        name: cli.adapter.clone(),
        limits,
        pipeline_cache: None,
    }
    .with_env();
    let globals = cli.global_args();
    let result = match cli.command {
        Command::Search(a) => cli::search::run(&a, &choice),
        Command::Sweep(a) => cli::sweep::sweep(&a, globals),
        Command::Report(a) => cli::report::report(&a),
        Command::Genotype(a) => cli::genotype::genotype(&a),
        Command::Train(a) => cli::train::train(&a, &choice),
        Command::Eval(a) => cli::eval::eval(&a, &choice),
        Command::Bench(a) => cli::bench::bench(&a, &choice),
        Command::Devices => devices(&choice),
        Command::Check(a) => cli::check::check(&a, &choice),
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
    if let (Some(name), false) = (&choice.name, list.iter().any(|a| a.chosen)) {
        let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
        return Err(darts_minus::Error::NoAdapter {
            detail: format!(
                " whose name contains '{name}' (available: {})",
                names.join(", ")
            ),
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
    if let Some(a) = list.first() {
        let l = a.limits_choice;
        println!(
            "limits: {} (change with --limits adapter|webgpu|downlevel)",
            l.name()
        );
    }
    if let Some(a) = list.iter().find(|a| a.chosen) {
        if let Some(advice) = a.driver_advice() {
            println!("{advice}");
        }
        let overrides = LaunchPolicy::env_overrides().map_err(darts_minus::Error::Invalid)?;
        print!(
            "{}",
            LaunchPolicy::for_adapter(a).with_overrides(&overrides)
        );
    }
    Ok(())
}
