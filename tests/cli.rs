//! The command line as a user runs it.

mod common;

use common::cli::{bin, fails_with, succeeds, tiny_cifar, tmp};
use std::process::Command;

#[test]
fn search_writes_every_output_and_genotype_reads_it_back() {
    let out = tmp("search");
    let stdout = succeeds(
        bin()
            .args([
                "search",
                "--channels",
                "2",
                "--layers",
                "3",
                "--batch-size",
                "8",
                "--epochs",
                "2",
                "--max-steps",
                "2",
                "--out",
            ])
            .arg(&out),
    );
    assert!(stdout.contains("Genotype(normal=[("), "{stdout}");
    assert!(stdout.contains("α steps on a reshuffled queue"), "{stdout}");
    for f in [
        "checkpoint.safetensors",
        "metrics.jsonl",
        "genotype.json",
        "genotype.txt",
        "curves.svg",
        "alphas_normal.svg",
        "alphas_reduce.svg",
        "cell_normal.svg",
        "cell_reduce.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    for key in [
        "train_loss",
        "val_loss",
        "train_acc",
        "val_acc",
        "lr",
        "beta",
        "alphas",
        "step_time_ms",
        "images_per_sec",
        "genotype_text",
    ] {
        assert!(line.get(key).is_some(), "metrics lack {key}");
    }
    let text = std::fs::read_to_string(out.join("genotype.txt")).unwrap();
    let g = bin().arg("genotype").arg(&out).output().unwrap();
    assert!(g.status.success());
    assert_eq!(String::from_utf8_lossy(&g.stdout).trim(), text.trim());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn missing_data_is_a_clear_error() {
    let run = bin()
        .args(["search", "--data", "/no/such/cifar"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("/no/such/cifar"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn genotype_of_a_non_checkpoint_is_a_clear_error() {
    let dir = tmp("geno");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("x.safetensors");
    std::fs::write(&f, b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ").unwrap();
    let run = bin().arg("genotype").arg(&f).output().unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("x.safetensors") && !err.contains("panicked"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn devices_lists_the_adapter_in_use() {
    let out = succeeds(bin().arg("devices"));
    assert!(out.lines().any(|l| l.starts_with('*')), "{out}");
    assert!(out.contains("max storage binding"), "{out}");
}

/// `DARTS_MINUS_POLICY` sets launch-policy thresholds (shown by `devices`, used by every
/// command that opens the device); a name that is not one, or a value that is not a positive
/// integer, stops with an error naming it.
#[test]
fn policy_overrides_show_in_the_policy_or_stop_with_a_clear_error() {
    let out = succeeds(
        bin()
            .arg("devices")
            .env("DARTS_MINUS_POLICY", "weight_grad_threads=12345"),
    );
    assert!(
        out.lines()
            .any(|l| l.contains("weight-grad threads") && l.ends_with(" 12345")),
        "{out}"
    );
    fails_with(
        bin()
            .args(["bench", "--channels", "2", "--layers", "3", "--batch", "2"])
            .env("DARTS_MINUS_POLICY", "weight_grad_thread=4"),
        &[
            "DARTS_MINUS_POLICY",
            "'weight_grad_thread'",
            "weight_grad_threads",
        ],
    );
    fails_with(
        bin()
            .arg("devices")
            .env("DARTS_MINUS_POLICY", "min_threads=-1"),
        &["DARTS_MINUS_POLICY", "positive integer"],
    );
}

#[test]
fn limits_clamp_the_device_or_stop_with_a_clear_error() {
    let out = succeeds(bin().args(["devices", "--limits", "webgpu"]));
    assert!(out.contains("limits: webgpu"), "{out}");
    let per_stage: Vec<u32> = out
        .lines()
        .filter_map(|l| l.split("storage buffers per stage: ").nth(1))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert!(
        !per_stage.is_empty() && per_stage.iter().all(|&n| n <= 8),
        "{out}"
    );
    // Under the downlevel limits (4 storage buffers) a search stops at its first wider
    // kernel, naming it, without a panic.
    let out_dir = tmp("downlevel");
    let run = bin()
        .args([
            "search",
            "--limits",
            "downlevel",
            "--max-steps",
            "1",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains("storage buffers per shader stage")
            && err.contains("limits: downlevel")
            && err.contains(".wgsl:")
            && !err.contains("panicked"),
        "{err}"
    );
    std::fs::remove_dir_all(&out_dir).ok();
    fails_with(
        bin().arg("devices").env("DARTS_MINUS_LIMITS", "strict"),
        &["'strict'"],
    );
}

#[test]
fn check_proves_this_adapter_against_the_references() {
    let stdout = succeeds(bin().args(["check", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let lines = doc["lines"].as_array().unwrap();
    assert_eq!(doc["failed"].as_u64(), Some(0));
    assert!(lines.len() > 150, "{} lines", lines.len());
    let checks: Vec<&str> = lines.iter().map(|l| l["check"].as_str().unwrap()).collect();
    for part in [
        "conv2d",
        "depthwise",
        "dw_pw",
        "batch norm",
        "pool",
        "normalised sum",
        "noise",
    ] {
        assert!(checks.iter().any(|c| c.contains(part)), "no {part} check");
    }
    for fixture in [
        "torch: DARTS- search steps",
        "torch: NAS-Bench-201 search steps",
        "torch: DARTS- NAS-Bench-201 search steps",
        "torch: DARTS- search step, RobustDARTS S4",
    ] {
        assert!(
            checks.iter().any(|c| c.starts_with(fixture)),
            "no {fixture}"
        );
    }
    assert!(lines
        .iter()
        .all(|l| l["pass"] == true && l["max_err"].as_f64().is_some()));
    fails_with(
        bin().args(["check", "--only", "no-such-check"]),
        &["--list"],
    );
}

#[test]
fn a_resumed_search_keeps_its_data_and_no_run_overwrites_another() {
    let data = tiny_cifar("resume-data", 32);
    let out = tmp("resume-run");
    let search = |extra: &[&str]| {
        bin()
            .args([
                "search",
                "--channels",
                "2",
                "--layers",
                "3",
                "--epochs",
                "1",
                "--no-shuffle",
            ])
            .args(["--batch-size", "8", "--data"])
            .arg(&data)
            .args(extra)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let run = search(&[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // One line names the faster software driver exactly where the adapter is an older Mesa's.
    let advice = common::gpu().adapter().driver_advice();
    let err = String::from_utf8_lossy(&run.stderr);
    let noted = err.contains("Mesa 25's lavapipe runs darts-minus");
    assert_eq!(noted, advice.is_some(), "{advice:?}: {err}");
    // A second new run into the same --out is refused, naming the ways on.
    let run = search(&[]);
    let err = String::from_utf8_lossy(&run.stderr);
    let refused = err.contains("not empty") && err.contains("--resume");
    assert!(!run.status.success() && refused, "{err}");
    // Settings cannot change on resume.
    fails_with(
        bin()
            .args(["search", "--resume"])
            .arg(&out)
            .args(["--channels", "4", "--lr", "0.1"]),
        &["--channels, --lr cannot be given with --resume"],
    );
    // Resuming the finished run into a new directory, without --data: the run's own data,
    // and its outputs are written there.
    let moved = tmp("resume-moved");
    let stdout = succeeds(
        bin()
            .args(["search", "--resume"])
            .arg(&out)
            .arg("--out")
            .arg(&moved),
    );
    assert!(
        stdout.contains("resume-data") && stdout.contains("already finished"),
        "{stdout}"
    );
    assert!(!stdout.contains("built-in"), "{stdout}");
    // The resumed run keeps --no-shuffle, and says so.
    assert!(
        stdout.contains("α steps on a queue in index order"),
        "{stdout}"
    );
    for f in ["checkpoint.safetensors", "metrics.jsonl", "genotype.txt"] {
        assert!(moved.join(f).is_file(), "{f} missing in the new --out");
    }
    // A search checkpoint given to the other command says what it is and who reads it.
    fails_with(
        bin().args(["train", "--resume"]).arg(&out),
        &["search checkpoint", "search --resume"],
    );
    // Without its data the resumed run stops, naming the data it was started on.
    std::fs::remove_dir_all(&data).unwrap();
    fails_with(
        bin().args(["search", "--resume"]).arg(&out),
        &["resume-data"],
    );
    for d in [&out, &moved] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn a_resumed_training_keeps_its_data() {
    let data = tiny_cifar("train-resume-data", 16);
    let out = tmp("train-resume-run");
    succeeds(
        bin()
            .args([
                "train",
                "--genotype",
                "DARTS_V2",
                "--channels",
                "2",
                "--layers",
                "3",
            ])
            .args([
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--no-auxiliary",
                "--data",
            ])
            .arg(&data)
            .arg("--out")
            .arg(&out),
    );
    let moved = tmp("train-resume-moved");
    let stdout = succeeds(
        bin()
            .args(["train", "--resume"])
            .arg(&out)
            .arg("--out")
            .arg(&moved),
    );
    assert!(
        stdout.contains("train-resume-data") && stdout.contains("already finished"),
        "{stdout}"
    );
    assert!(moved.join("checkpoint.safetensors").is_file());
    for d in [&data, &out, &moved] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn a_resumed_training_refuses_new_settings_and_a_taken_out() {
    let out = tmp("train-taken");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "another run").unwrap();
    fails_with(
        bin().args(["train", "--out"]).arg(&out),
        &["not empty", "--overwrite"],
    );
    let resume = ["train", "--resume"];
    let given = ["--genotype", "DARTS_V1", "--epochs", "3"];
    fails_with(
        bin().args(resume).arg(&out).args(given),
        &["--genotype, --epochs cannot be given with --resume"],
    );
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn nonsense_settings_are_refused_by_name() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["search", "--momentum", "NaN"],
            "--momentum must be in [0, 1), got NaN",
        ),
        (&["search", "--beta0=-1"], "--beta0 must be ≥ 0"),
        (
            &["search", "--lr", "-0.1"],
            "--lr must be a positive number, got -0.1",
        ),
        (
            &["search", "--max-steps", "0"],
            "--max-steps must be at least 1",
        ),
        (
            &["search", "--space", "nb201", "--layers", "5"],
            "--layers does not apply to the NAS-Bench-201 space",
        ),
        (
            &["search", "--space", "nb201", "--cells-per-stage", "0"],
            "--cells-per-stage ≥ 1",
        ),
        (
            &["search", "--channels", "100000", "--max-steps", "1"],
            "max_storage_buffer_binding_size",
        ),
        (
            &["train", "--auxiliary-weight", "NaN"],
            "--auxiliary-weight must be ≥ 0, got NaN",
        ),
        (
            &["--adapter", "no-such-gpu-xyz", "devices"],
            "no-such-gpu-xyz",
        ),
    ];
    for (args, want) in cases {
        let out = tmp("nonsense");
        let mut cmd = bin();
        cmd.args(*args);
        if args[0] != "--adapter" {
            cmd.arg("--out").arg(&out);
        }
        let run = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            !run.status.success() && err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        std::fs::remove_dir_all(&out).ok();
    }
}

#[test]
fn images_too_small_for_the_network_are_refused_up_front() {
    // An image folder of 7×7 PNGs, two classes.
    let data = tmp("small-images");
    for class in ["a", "b"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..4u8 {
            let img = image::RgbImage::from_fn(7, 7, |x, y| {
                image::Rgb([x as u8 * 30, y as u8 * 30, i * 50])
            });
            img.save(data.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let out = tmp("small-images-out");
    fails_with(
        bin()
            .args([
                "search",
                "--channels",
                "2",
                "--layers",
                "3",
                "--batch-size",
                "2",
                "--data",
            ])
            .arg(&data)
            .arg("--out")
            .arg(&out),
        &["7×7", "multiples of 4"],
    );
    for d in [&data, &out] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn train_a_searched_genotype_then_evaluate_it() {
    let search = tmp("train-src");
    succeeds(
        bin()
            .args([
                "search",
                "--channels",
                "2",
                "--layers",
                "3",
                "--batch-size",
                "8",
                "--max-steps",
                "1",
                "--out",
            ])
            .arg(&search),
    );
    let out = tmp("train");
    let stdout = succeeds(
        bin()
            .args([
                "train",
                "--channels",
                "2",
                "--layers",
                "3",
                "--batch-size",
                "8",
                "--epochs",
                "1",
                "--max-steps",
                "1",
                "--genotype",
            ])
            .arg(&search)
            .arg("--out")
            .arg(&out),
    );
    let searched = std::fs::read_to_string(search.join("genotype.txt")).unwrap();
    assert!(
        stdout.contains(searched.trim()),
        "train must use the searched genotype:\n{stdout}"
    );
    assert!(
        stdout.contains("multiply-adds") && stdout.contains("test accuracy"),
        "{stdout}"
    );
    for f in ["checkpoint.safetensors", "metrics.jsonl", "curves.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let ev = bin().arg("eval").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&ev.stdout);
    assert!(
        ev.status.success(),
        "{}",
        String::from_utf8_lossy(&ev.stderr)
    );
    assert!(
        text.contains("top-1") && text.contains("airplane"),
        "{text}"
    );
    assert!(out.join("confusion.svg").is_file() && out.join("eval.json").is_file());
    let bad_genotype = "Genotype(normal=[('conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])";
    let bad = bin()
        .args(["train", "--genotype", bad_genotype])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("conv_9x9"));
    std::fs::remove_dir_all(&search).ok();
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn train_a_nas_bench_201_cell() {
    let out = tmp("nb201");
    let arch =
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|";
    let stdout = succeeds(
        bin()
            .args([
                "train",
                "--genotype",
                arch,
                "--channels",
                "2",
                "--layers",
                "1",
                "--batch-size",
                "8",
                "--epochs",
                "1",
                "--max-steps",
                "1",
                "--out",
            ])
            .arg(&out),
    );
    assert!(
        stdout.contains(arch) && stdout.contains("test accuracy"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&out).ok();
}

/// Runs `darts-minus bench` on a tiny DARTS network (C=2, 3 cells, one warm-up step) with
/// `extra` arguments and `--json`; returns the printed text and the JSON document.
fn tiny_bench(extra: &[&str]) -> (String, serde_json::Value) {
    let stdout = succeeds(
        bin()
            // `--cpu-threads auto` leaves a thread count set in the environment alone.
            .env_remove("LP_NUM_THREADS")
            .args([
                "bench",
                "--channels",
                "2",
                "--layers",
                "3",
                "--warmup",
                "1",
                "--json",
            ])
            .args(extra),
    );
    let doc = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    (stdout, doc)
}

#[test]
fn bench_reports_step_time_memory_and_dispatches() {
    let dir = tmp("bench-chart");
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("batch.svg");
    let (stdout, doc) = tiny_bench(&[
        "--batch",
        "2,4",
        "--steps",
        "2",
        "--chart",
        svg.to_str().unwrap(),
    ]);
    assert!(stdout.contains("| darts C=2 L=3 batch=4 |"), "{stdout}");
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert!(r["step_ms"].as_f64().unwrap() > 0.0);
        assert!(r["images_per_sec"].as_f64().unwrap() > 0.0);
        // A replayed step is one submission of the recorded program.
        assert_eq!(r["submissions_per_step"].as_f64().unwrap(), 1.0);
        assert!(r["dispatches_per_step"].as_f64().unwrap() > 100.0);
        // Encoding and submitting is part of each timed step.
        let encode = r["encode_ms"].as_f64().unwrap();
        assert!(
            encode > 0.0 && encode <= r["step_ms_max"].as_f64().unwrap(),
            "{r}"
        );
    }
    // Twice the batch needs more activation memory, not twice the weights.
    let peak = |i: usize| results[i]["peak_bytes"].as_u64().unwrap();
    assert!(peak(1) > peak(0), "peak memory must grow with the batch");
    // The first configuration compiles the network's pipelines; the second, on a fresh
    // device, compiles them again (the per-process registry starts empty).
    for r in results {
        assert!(r["pipelines_built"].as_u64().unwrap() > 20, "{r}");
        assert!(r["pipeline_build_ms"].as_f64().unwrap() > 0.0, "{r}");
    }
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.contains("<svg") && chart.contains("darts-minus"),
        "{chart}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bench --chart --pairs` draws PyTorch's and darts-minus' paired times without running
/// anything, with their ratios; a file that is not pairs is named.
#[test]
fn bench_charts_paired_times_from_bench_torch() {
    let dir = tmp("bench-pairs");
    std::fs::create_dir_all(&dir).unwrap();
    let pairs = dir.join("pairs.jsonl");
    let line = |c: usize, torch: f64, ours: f64| {
        format!(
            r#"{{"space":"nb201","channels":{c},"layers":8,"cells_per_stage":5,"batch":16,"device":"cpu","torch_version":"2.15.0","torch_threads":2,"torch_ms":{torch},"ours":{{"adapter":"llvmpipe (LLVM 15.0.6, 256 bits)","step_ms":{ours}}}}}"#
        )
    };
    let text = [line(8, 400.0, 1600.0), line(16, 700.0, 6300.0)].join("\n");
    std::fs::write(&pairs, text).unwrap();
    let svg = dir.join("channels.svg");
    let stdout = succeeds(
        bin()
            .args(["bench", "--chart", svg.to_str().unwrap(), "--pairs"])
            .arg(&pairs),
    );
    assert!(
        stdout.contains("| nb201 N=5 | 16 | 16 | 6300 | 700 | 9.00 |"),
        "{stdout}"
    );
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.contains("initial channels C") && chart.contains("llvmpipe"),
        "{chart}"
    );

    std::fs::write(&pairs, "not json\n").unwrap();
    fails_with(
        bin()
            .args(["bench", "--chart", svg.to_str().unwrap(), "--pairs"])
            .arg(&pairs),
        &["pairs.jsonl", "line 1"],
    );
    fails_with(bin().args(["bench", "--pairs"]).arg(&pairs), &["--chart"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_profile_lists_the_kernels_of_a_step() {
    let (stdout, doc) = tiny_bench(&["--batch", "2", "--steps", "1", "--profile"]);
    assert!(
        stdout.contains("| kernel | launches | ms | share |"),
        "{stdout}"
    );
    let r = &doc["results"][0];
    let kernels = r["kernels"].as_array().unwrap();
    let launches: u64 = kernels
        .iter()
        .map(|k| k["launches"].as_u64().unwrap())
        .sum();
    // The profiled (eager) step launches what a timed step dispatches.
    assert_eq!(launches as f64, r["dispatches_per_step"].as_f64().unwrap());
    // Kernels are named by file and entry (which batch-norm entries run depends on the
    // adapter and the shapes).
    assert!(kernels
        .iter()
        .any(|k| k["kernel"].as_str().unwrap().starts_with("batchnorm:")));
    let ms: Vec<f64> = kernels.iter().map(|k| k["ms"].as_f64().unwrap()).collect();
    assert!(ms.windows(2).all(|w| w[0] >= w[1]), "slowest first: {ms:?}");
    assert!(ms.iter().sum::<f64>() > 0.0, "{ms:?}");
    // The heading says which clock timed the kernels.
    let clock = match r["kernels_gpu_time"].as_bool().unwrap() {
        true => "GPU time from timestamp queries",
        false => "wall time of the launch submitted and waited for",
    };
    assert!(stdout.contains(clock), "{stdout}");
}

#[test]
fn cpu_threads_reach_the_software_driver_and_the_report() {
    let (stdout, doc) = tiny_bench(&["--batch", "2", "--steps", "1", "--cpu-threads", "0"]);
    let r = &doc["results"][0];
    assert!(r["step_ms"].as_f64().unwrap() > 0.0, "{stdout}");
    // On Mesa's CPU adapters the setting is named with the adapter; GPUs ignore it.
    if doc["adapter"].as_str().unwrap().contains("llvmpipe") {
        assert!(
            doc["adapter"]
                .as_str()
                .unwrap()
                .contains("LP_NUM_THREADS=0"),
            "{stdout}"
        );
    }
}

#[test]
fn cpu_threads_auto_runs_tiny_networks_on_the_submitting_thread() {
    let adapter = |args: &[&str]| {
        let (_, doc) = tiny_bench(args);
        doc["adapter"].as_str().unwrap().to_string()
    };
    // batch 2 × C 2 = 4: tiny; batch 9 × C 2 = 18: the driver's threads.
    let tiny = adapter(&["--batch", "2", "--steps", "1"]);
    let larger = adapter(&["--batch", "9", "--steps", "1"]);
    let named = adapter(&["--batch", "9", "--steps", "1", "--cpu-threads", "2"]);
    if tiny.contains("llvmpipe") {
        assert!(tiny.contains("LP_NUM_THREADS=0"), "{tiny}");
        assert!(!larger.contains("LP_NUM_THREADS"), "{larger}");
        assert!(named.contains("LP_NUM_THREADS=2"), "{named}");
    }
}

#[test]
fn bench_strategy_runs_either_launch_strategy_and_names_it() {
    let run = |strategy: &str| {
        let (stdout, doc) = tiny_bench(&["--batch", "2", "--steps", "1", "--strategy", strategy]);
        let adapter = doc["adapter"].as_str().unwrap().to_string();
        assert!(
            adapter.contains(&format!("{strategy} launch strategy")),
            "{stdout}"
        );
        doc["results"][0]["dispatches_per_step"].as_f64().unwrap()
    };
    // The GPU strategy splits batch-norm reductions and keeps kernels where the CPU one
    // copies and fuses: more, smaller dispatches.
    let (cpu, gpu) = (run("cpu"), run("gpu"));
    assert!(gpu > cpu, "gpu strategy {gpu} dispatches, cpu {cpu}");
}

#[test]
fn bench_rejects_a_zero_batch() {
    let run = bin().args(["bench", "--batch", "0"]).output().unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("--batch and --channels must be positive"),
        "{stderr}"
    );
}

/// `tools/policy_sweep.py` (tuning the launch policy on a new adapter) runs every binary ×
/// policy × configuration in each round and writes one JSON line per run with the policy it
/// ran under; a policy the binary refuses is reported, not fatal. Skipped without python3.
#[test]
fn policy_sweep_times_each_policy_in_rounds() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("no python3: tools/policy_sweep.py not run");
        return;
    }
    let dir = tmp("policy-sweep");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("sweep.jsonl");
    let stdout = succeeds(
        Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tools/policy_sweep.py"
            ))
            .arg("--bin")
            .arg(format!("this={}", env!("CARGO_BIN_EXE_darts-minus")))
            .args(["--policy", "", "--policy", "weight_grad_threads=4096"])
            .args(["--policy", "no_such_threshold=1"])
            .args(["--config", "--channels 2 --layers 3 --batch 2"])
            .args([
                "--steps",
                "1",
                "--warmup",
                "1",
                "--rounds",
                "2",
                "--json-out",
            ])
            .arg(&out)
            .env_remove("LP_NUM_THREADS"),
    );
    assert!(stdout.contains("no_such_threshold=1"), "{stdout}");
    assert!(stdout.contains("failed"), "{stdout}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Two policies the binary takes, two rounds each.
    assert_eq!(lines.len(), 4, "{stdout}");
    let policies: Vec<&str> = lines
        .iter()
        .map(|l| l["policy"].as_str().unwrap())
        .collect();
    assert_eq!(
        policies,
        [
            "",
            "weight_grad_threads=4096",
            "",
            "weight_grad_threads=4096"
        ]
    );
    assert!(lines
        .iter()
        .all(|l| l["result"]["step_ms"].as_f64().unwrap() > 0.0));
    assert!(
        stdout.contains("| darts C=2 L=3 batch=2 | this | weight_grad_threads=4096 |"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
