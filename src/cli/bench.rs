//! `darts-minus bench`: times the search step for one configuration or a grid of them.

use super::args::SpaceArgs;
use darts_minus::gpu::{AdapterChoice, Gpu, LimitsChoice, Strategy as Preset};
use darts_minus::search::bench::{
    bench_search_step, darts_space, nb201_space, BenchConfig, BenchResult,
};
use darts_minus::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Batch size; a comma-separated list runs each (e.g. 16,32,64,128,256).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub batch: Vec<usize>,
    /// Initial channels C; a comma-separated list runs each.
    #[arg(long, value_delimiter = ',', default_value = "16")]
    pub channels: Vec<usize>,
    /// Cells of the DARTS network.
    #[arg(long, default_value_t = 8)]
    pub layers: usize,
    /// Cells per stage of the NAS-Bench-201 network.
    #[arg(long, default_value_t = 5)]
    pub cells_per_stage: usize,
    /// Timed steps per configuration (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps before timing (the first records the step).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Build every step eagerly instead of replaying the recorded step.
    #[arg(long)]
    pub eager: bool,
    /// Keep intermediates for backward instead of recomputing them (more memory, less work).
    #[arg(long)]
    pub no_recompute: bool,
    /// Workgroups per channel in batch-norm reductions (default: 1 where launches are
    /// costly, enough to fill a GPU otherwise); for comparing the two strategies on one adapter.
    #[arg(long)]
    pub channel_split: Option<usize>,
    /// Launch strategy: `gpu` (kernels rather than copy commands, batch-norm reductions split
    /// over workgroups with their statistics written by the producing 1×1 kernels), `cpu`
    /// (copies, one-pass reductions, fused mixed-edge tails), or `auto`: the adapter's (cpu on
    /// CPU adapters). `gpu` on a CPU adapter shows the GPU path's dispatches and memory.
    #[arg(long, value_enum, default_value = "auto")]
    pub strategy: Strategy,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also print the results as one line of JSON at the end.
    #[arg(long)]
    pub json: bool,
    /// After timing, profile one eager step: launches and time of every kernel, each launch
    /// synced and timed alone (slow; for finding the hot kernels).
    #[arg(long)]
    pub profile: bool,
    /// Draw the step time against the batch (or C, when only C varies) into this SVG, log–log.
    #[arg(long, value_name = "OUT.svg")]
    pub chart: Option<PathBuf>,
    /// With --chart: draw these pairs instead of running anything, PyTorch's times beside
    /// ours (the JSON lines of `tools/bench_torch.py --json-out`, each configuration timed on
    /// both sides back to back).
    #[arg(long, requires = "chart", value_name = "FILE")]
    pub pairs: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    Auto,
    Cpu,
    Gpu,
}

pub fn bench(a: &BenchArgs, choice: &AdapterChoice) -> Result<()> {
    if let (Some(out), Some(pairs)) = (&a.chart, &a.pairs) {
        let points = super::bench_chart::read_pairs(pairs)?;
        print!("{}", super::bench_chart::chart(out, &points)?);
        println!("wrote {}", out.display());
        return Ok(());
    }
    if a.batch.iter().chain(&a.channels).any(|&v| v == 0) {
        return Err(Error::Invalid(
            "--batch and --channels must be positive".into(),
        ));
    }
    let mut configs = Vec::new();
    for &c in &a.channels {
        for &b in &a.batch {
            configs.push(BenchConfig {
                space: match a.space.space().darts_cell() {
                    Some(cells) => darts_space(c, a.layers, cells),
                    None => nb201_space(c, a.cells_per_stage),
                },
                batch: b,
                steps: a.steps,
                warmup: a.warmup,
                replay: !a.eager,
                recompute: !a.no_recompute,
                seed: a.seed,
                profile: a.profile,
            });
        }
    }
    let mut results: Vec<BenchResult> = Vec::new();
    let mut failures = Vec::new();
    let mut adapter = String::new();
    for cfg in &configs {
        // A fresh device per configuration, so each one's memory is its own.
        let gpu = Gpu::new(choice)?;
        gpu.set_strategy(match a.strategy {
            Strategy::Auto => None,
            Strategy::Cpu => Some(Preset::Cpu),
            Strategy::Gpu => Some(Preset::Gpu),
        });
        gpu.set_channel_split(a.channel_split);
        if adapter.is_empty() {
            let info = gpu.adapter();
            adapter = match info.mesa() {
                Some((major, minor)) => {
                    format!("{} ({}, Mesa {major}.{minor})", info.name, info.backend)
                }
                None => format!("{} ({})", info.name, info.backend),
            };
            // Mesa's software drivers read their thread count from the environment.
            if gpu.adapter().device_type == "Cpu" {
                if let Ok(n) = std::env::var("LP_NUM_THREADS") {
                    adapter = format!("{adapter}, LP_NUM_THREADS={n}");
                }
            }
            let policy = gpu.policy();
            adapter = format!("{adapter}, {} launch strategy", policy.strategy.name());
            let limits = gpu.adapter().limits_choice;
            if limits != LimitsChoice::Adapter {
                adapter = format!("{adapter}, limits: {}", limits.name());
            }
            eprintln!("adapter: {adapter}");
            if let Some(advice) = gpu.adapter().driver_advice() {
                eprintln!("{advice}");
            }
            eprint!("{policy}");
            match gpu.pipeline_cache() {
                Some((path, read)) => eprintln!(
                    "pipeline cache: {} ({read} bytes read; DARTS_MINUS_PIPELINE_CACHE=off to compile everything)",
                    path.display()
                ),
                None => eprintln!("pipeline cache: none (the adapter has none, or it is off)"),
            }
        }
        eprintln!(
            "{}: {} warm-up + {} timed steps ({}, {})…",
            cfg.label(),
            cfg.warmup.max(1),
            cfg.steps,
            if cfg.replay { "replayed" } else { "eager" },
            if cfg.recompute {
                "recomputing"
            } else {
                "keeping intermediates"
            }
        );
        match bench_search_step(&gpu, cfg) {
            Ok(r) => {
                // Each result as it comes, so a run cut short (a time limit) keeps the ones before.
                eprintln!(
                    "{}: step {:.1} ms (min {:.1}, max {:.1}; encoding {:.1}), first step {:.0} ms, peak {:.0} MiB",
                    r.label,
                    r.step_ms,
                    r.step_ms_min,
                    r.step_ms_max,
                    r.encode_ms,
                    r.first_step_ms,
                    r.peak_bytes as f64 / (1u64 << 20) as f64
                );
                results.push(r)
            }
            // One configuration too large for this adapter must not hide the others.
            Err(e) => {
                eprintln!("{}: {e}", cfg.label());
                failures.push((cfg.label(), e.to_string()));
            }
        }
    }
    println!("search step (α step + w step), median over timed steps; adapter: {adapter}");
    println!(
        "| configuration | step ms | encoding ms | images/s | first step ms | compiling ms (pipelines) | peak MiB | reserved MiB | dispatches/step | submissions/step |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    for r in &results {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} ({}) | {:.0} | {:.0} | {:.0} | {:.1} |",
            r.label,
            r.step_ms,
            r.encode_ms,
            r.images_per_sec,
            r.first_step_ms,
            r.pipeline_build_ms,
            r.pipelines_built,
            mib(r.peak_bytes),
            mib(r.reserved_bytes),
            r.dispatches_per_step,
            r.submissions_per_step
        );
    }
    for (label, e) in &failures {
        println!("| {label} | failed: {e} | | | | | | | | |");
    }
    for r in results.iter().filter(|r| !r.kernels.is_empty()) {
        let total: f64 = r.kernels.iter().map(|k| k.ms).sum();
        println!();
        println!(
            "{}: one eager step, each launch timed alone, {} ({total:.1} ms in all)",
            r.label,
            if r.kernels_gpu_time {
                "GPU time from timestamp queries"
            } else {
                "wall time of the launch submitted and waited for"
            }
        );
        println!("| kernel | launches | ms | share |");
        println!("|---|---:|---:|---:|");
        for k in &r.kernels {
            let share = 100.0 * k.ms / total.max(f64::MIN_POSITIVE);
            println!(
                "| {} | {} | {:.1} | {share:.1} % |",
                k.kernel, k.launches, k.ms
            );
        }
    }
    if a.json {
        let doc =
            serde_json::json!({ "adapter": adapter, "results": results, "failures": failures });
        println!("{doc}");
    }
    if results.is_empty() {
        return Err(Error::Invalid(
            "every configuration failed (see above)".into(),
        ));
    }
    if let Some(out) = &a.chart {
        super::bench_chart::chart(out, &super::bench_chart::from_results(&results))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
