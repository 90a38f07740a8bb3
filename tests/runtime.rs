//! The GPU runtime: shader validation, replay of a recorded step, buffer reuse, batching,
//! large grids, limits and adapter errors.

mod common;

use common::{f32s, gpu, gpu_with_limits, strategy_of, Rng, Tolerance};
use darts_minus::autodiff::{Conv2dCfg, Labels, Tape, Tensor};
use darts_minus::gpu::{validate_all_shaders, AdapterChoice, Gpu};
use darts_minus::optim::Sgd;
use darts_minus::Error;

#[test]
fn every_shader_validates_with_naga() {
    validate_all_shaders().unwrap();
    assert!(darts_minus::gpu::shader_sources().len() >= 9);
}

/// A small network: conv → relu → global pool → linear → cross-entropy, then SGD.
struct Net {
    w: Tensor,
    fc: Tensor,
    fb: Tensor,
}

fn step(g: &Gpu, net: &Net, x: &Tensor, labels: &Labels, sgd: &Sgd) -> Tensor {
    let mut tape = Tape::new(g);
    let h = tape.conv2d(x, &net.w, None, Conv2dCfg::new(1, 1)).unwrap();
    let h = tape.relu(&h).unwrap();
    let h = tape.global_avg_pool(&h).unwrap();
    let logits = tape.linear(&h, &net.fc, Some(&net.fb)).unwrap();
    let loss = tape.cross_entropy(&logits, labels).unwrap();
    let grads = tape.backward(&loss).unwrap();
    let params = [net.w.clone(), net.fc.clone(), net.fb.clone()];
    let gs: Vec<&Tensor> = params.iter().map(|p| grads.get(p).unwrap()).collect();
    sgd.encode(&params, &gs).unwrap();
    loss
}

fn make_net(g: &Gpu, rng: &mut Rng) -> Net {
    Net {
        w: Tensor::parameter(g, &[4, 3, 3, 3], &f32s(&rng.vec(108))).unwrap(),
        fc: Tensor::parameter(g, &[5, 4], &f32s(&rng.vec(20))).unwrap(),
        fb: Tensor::parameter(g, &[5], &f32s(&rng.vec(5))).unwrap(),
    }
}

#[test]
fn replayed_step_equals_eager_steps() {
    let g = gpu();
    let mut rng = Rng::new(1);
    let batches: Vec<(Vec<f32>, Vec<u32>)> = (0..3)
        .map(|_| {
            (
                f32s(&rng.vec(2 * 3 * 6 * 6)),
                (0..2).map(|_| rng.below(5)).collect(),
            )
        })
        .collect();

    // Eager: a fresh tape every step.
    let mut r1 = Rng::new(7);
    let net = make_net(&g, &mut r1);
    let params = [net.w.clone(), net.fc.clone(), net.fb.clone()];
    let sgd = Sgd::new(&g, &params, 0.1, 0.9, 1e-3).unwrap();
    sgd.prepare().unwrap();
    let mut eager_losses = Vec::new();
    for (x, l) in &batches {
        let xt = Tensor::from_slice(&g, &[2, 3, 6, 6], x).unwrap();
        let lt = Labels::new(&g, l).unwrap();
        eager_losses.push(step(&g, &net, &xt, &lt, &sgd).to_vec().unwrap()[0]);
    }
    let eager_w = net.w.to_vec().unwrap();

    // Replay: record the first step, then only rewrite the inputs.
    let mut r2 = Rng::new(7);
    let net2 = make_net(&g, &mut r2);
    let params2 = [net2.w.clone(), net2.fc.clone(), net2.fb.clone()];
    let sgd2 = Sgd::new(&g, &params2, 0.1, 0.9, 1e-3).unwrap();
    sgd2.prepare().unwrap();
    let xt = Tensor::from_slice(&g, &[2, 3, 6, 6], &batches[0].0).unwrap();
    let lt = Labels::new(&g, &batches[0].1).unwrap();
    g.begin_recording();
    let loss = step(&g, &net2, &xt, &lt, &sgd2);
    let program = g.end_recording();
    assert!(program.dispatches() > 10);
    let mut replay_losses = vec![loss.to_vec().unwrap()[0]];
    for (x, l) in &batches[1..] {
        xt.write(x).unwrap();
        lt.write(&g, l).unwrap();
        let before = g.dispatch_count();
        g.replay(&program);
        replay_losses.push(loss.to_vec().unwrap()[0]);
        assert_eq!(g.dispatch_count() - before, program.dispatches() as u64);
    }
    let tol = Tolerance {
        rel: 1e-6,
        abs: 1e-7,
    };
    tol.assert_close(
        "losses",
        &replay_losses,
        &eager_losses.iter().map(|&v| v as f64).collect::<Vec<_>>(),
    );
    tol.assert_close(
        "weights",
        &net2.w.to_vec().unwrap(),
        &eager_w.iter().map(|&v| v as f64).collect::<Vec<_>>(),
    );
}

#[test]
fn repeated_steps_reuse_buffers_and_batch_submissions() {
    let g = gpu();
    let mut rng = Rng::new(2);
    let net = make_net(&g, &mut rng);
    let params = [net.w.clone(), net.fc.clone(), net.fb.clone()];
    let sgd = Sgd::new(&g, &params, 0.1, 0.9, 0.0).unwrap();
    sgd.prepare().unwrap();
    let xt = Tensor::from_slice(&g, &[2, 3, 6, 6], &f32s(&rng.vec(216))).unwrap();
    let lt = Labels::new(&g, &[1, 3]).unwrap();
    let mut reserved = Vec::new();
    for _ in 0..4 {
        let before = g.submission_count();
        let loss = step(&g, &net, &xt, &lt, &sgd);
        drop(loss);
        // The whole step (forward, backward, update) is queued without any submission.
        assert_eq!(
            g.submission_count(),
            before,
            "a step must not submit or sync on its own"
        );
        g.sync().unwrap();
        reserved.push(g.memory().reserved);
    }
    assert!(
        reserved.windows(2).skip(1).all(|w| w[0] == w[1]),
        "device memory grows across steps: {reserved:?}"
    );
    assert!(g.memory().live < g.memory().peak);
}

#[test]
fn grids_beyond_one_dimension_limit() {
    let g = gpu();
    let max = g.limits().max_compute_workgroups_per_dimension as usize;
    let n = max * 256 + 777;
    let budget = g.limits().max_storage_buffer_binding_size as usize / 4;
    assert!(n <= budget, "adapter binding limit too small for this test");
    let data: Vec<f32> = (0..n)
        .map(|i| if i % 2 == 0 { -1.0 } else { (i % 1000) as f32 })
        .collect();
    let x = Tensor::from_slice(&g, &[n], &data).unwrap();
    let mut tape = Tape::inference(&g);
    let y = tape.relu(&x).unwrap().to_vec().unwrap();
    for i in [0, 1, n / 2 + 1, n - 2, n - 1] {
        assert_eq!(y[i], data[i].max(0.0), "element {i}");
    }
}

#[test]
fn tensor_beyond_binding_limit_is_a_clear_error() {
    let g = gpu();
    let too_many = g.limits().max_storage_buffer_binding_size as usize / 4 + 1;
    let Err(err) = Tensor::empty(&g, &[too_many], "activations of cell 3") else {
        panic!("a tensor over the binding limit must be refused");
    };
    let msg = err.to_string();
    assert!(matches!(err, Error::TooLarge { .. }), "{msg}");
    assert!(
        msg.contains("activations of cell 3") && msg.contains("max_storage_buffer_binding_size"),
        "{msg}"
    );
}

#[test]
fn missing_adapter_is_a_clear_error() {
    let choice = AdapterChoice {
        name: Some("no-such-gpu-xyz".into()),
        ..AdapterChoice::default()
    };
    let msg = Gpu::new(&choice).err().expect("must fail").to_string();
    assert!(
        msg.contains("no-such-gpu-xyz") && msg.contains("mesa-vulkan-drivers"),
        "{msg}"
    );
    let bad = AdapterChoice {
        backend: Some("directx9".into()),
        ..AdapterChoice::default()
    };
    assert!(Gpu::new(&bad)
        .err()
        .unwrap()
        .to_string()
        .contains("vulkan, metal, dx12, gl"));
}

#[test]
fn shape_errors_name_the_op() {
    let g = gpu();
    let x = Tensor::zeros(&g, &[1, 3, 5, 5]).unwrap();
    let w = Tensor::zeros(&g, &[4, 2, 3, 3]).unwrap();
    let mut tape = Tape::new(&g);
    let msg = tape
        .conv2d(&x, &w, None, Conv2dCfg::new(1, 1))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("conv2d"), "{msg}");
    let msg = Tensor::from_slice(&g, &[2, 2], &[1.0])
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("[2, 2]"), "{msg}");
}

#[test]
fn several_tensors_read_back_together() {
    let g = gpu();
    let a = Tensor::from_slice(&g, &[3], &[1.0, 2.0, 3.0]).unwrap();
    let b = Tensor::from_slice(&g, &[1], &[-4.5]).unwrap();
    let c = Tensor::from_slice(&g, &[300], &vec![0.25; 300]).unwrap();
    let back = Tensor::read_all(&[&a, &b, &c]).unwrap();
    assert_eq!(back[0], vec![1.0, 2.0, 3.0]);
    assert_eq!(back[1], vec![-4.5]);
    assert_eq!(back[2], vec![0.25; 300]);
    assert!(Tensor::read_all(&[]).unwrap().is_empty());
}

#[test]
fn zeros_clear_a_reused_buffer_by_launch_or_clear_command_also_in_replay() {
    for costly in [false, true] {
        let g = gpu();
        g.set_strategy(Some(strategy_of(costly)));
        // The pool hands the same-sized buffer back: its old contents must not show through.
        drop(Tensor::from_slice(&g, &[2, 150], &vec![7.0; 300]).unwrap());
        let z = Tensor::zeros(&g, &[2, 150]).unwrap();
        assert_eq!(
            z.to_vec().unwrap(),
            vec![0.0; 300],
            "costly launches={costly}"
        );
        // Recorded, then replayed after the buffer was overwritten.
        g.begin_recording();
        z.fill(0.0).unwrap();
        let program = g.end_recording();
        z.write(&vec![3.0; 300]).unwrap();
        g.replay(&program);
        assert_eq!(
            z.to_vec().unwrap(),
            vec![0.0; 300],
            "replayed, costly launches={costly}"
        );
        z.fill(1.5).unwrap();
        assert_eq!(z.to_vec().unwrap(), vec![1.5; 300]);
    }
}

#[test]
fn webgpu_limits_clamp_the_device_and_the_policy_takes_narrow_kernels() {
    let g = gpu_with_limits("webgpu").unwrap();
    let webgpu = wgpu::Limits::default();
    let l = g.limits();
    assert!(l.max_storage_buffers_per_shader_stage <= 8);
    assert!(l.max_storage_buffer_binding_size <= webgpu.max_storage_buffer_binding_size);
    assert!(l.max_buffer_size <= webgpu.max_buffer_size);
    assert!(l.max_compute_workgroup_storage_size <= webgpu.max_compute_workgroup_storage_size);
    let p = g.policy();
    assert!(!p.sgd_four_per_launch() && p.weighted_sum_terms(64) == 4);
    // A tensor over WebGPU's 128 MiB per binding is refused by name, before any launch.
    let e = Tensor::zeros(&g, &[33, 1024, 1024])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("max_storage_buffer_binding_size"), "{e}");
    // A clipped SGD update of five parameters (four per launch, 14 storage buffers, where
    // bindable) runs one launch per parameter within 8.
    g.set_strategy(Some(strategy_of(false)));
    let w: Vec<Tensor> = (1..=5)
        .map(|n| Tensor::parameter(&g, &[n], &vec![1.0; n]).unwrap())
        .collect();
    let grads: Vec<Tensor> = (1..=5)
        .map(|n| Tensor::from_slice(&g, &[n], &vec![1.0; n]).unwrap())
        .collect();
    let sgd = Sgd::new(&g, &w, 0.1, 0.9, 0.0).unwrap();
    sgd.prepare().unwrap();
    let gs: Vec<Option<&Tensor>> = grads.iter().map(Some).collect();
    sgd.encode_clipped_norm(&w, &gs, 1e6).unwrap();
    for t in &w {
        let got = t.to_vec().unwrap();
        assert!(got.iter().all(|&v| (v - 0.9).abs() < 1e-5), "{got:?}");
    }
}

#[test]
fn downlevel_limits_stop_a_wide_kernel_with_an_error_naming_it() {
    let g = gpu_with_limits("downlevel").unwrap();
    assert!(g.limits().max_storage_buffers_per_shader_stage <= 4);
    // A dense 3×3 convolution on rows of 4 binds five storage buffers.
    let x = Tensor::zeros(&g, &[1, 2, 8, 8]).unwrap();
    let w = Tensor::zeros(&g, &[2, 2, 3, 3]).unwrap();
    let mut tape = Tape::new(&g);
    let e = tape
        .conv2d(&x, &w, None, Conv2dCfg::new(1, 1))
        .and_then(|y| y.to_vec())
        .expect_err("a 5-buffer kernel cannot run under downlevel limits");
    let msg = e.to_string();
    assert!(matches!(e, Error::KernelLimit { .. }), "{msg}");
    assert!(
        msg.contains("conv.wgsl:forward4")
            && msg.contains("storage buffers per shader stage")
            && msg.contains("limits: downlevel"),
        "{msg}"
    );
    let e = gpu_with_limits("strict").err().unwrap().to_string();
    assert!(e.contains("'strict'") && e.contains("webgpu"), "{e}");
}

/// Compiled pipelines are kept across runs where the adapter has a pipeline cache: written
/// when the device closes, read by the next one; a damaged file is ignored (the same results)
/// and replaced; `off` keeps none.
#[test]
fn pipeline_cache_is_kept_across_runs_and_a_damaged_one_ignored() {
    let dir = std::env::temp_dir().join(format!("dm-pipeline-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let choice = AdapterChoice {
        pipeline_cache: Some(dir.display().to_string()),
        ..AdapterChoice::default()
    };
    let run = || {
        let g = Gpu::new(&choice).unwrap();
        let mut rng = Rng::new(3);
        let net = make_net(&g, &mut rng);
        let params = [net.w.clone(), net.fc.clone(), net.fb.clone()];
        let sgd = Sgd::new(&g, &params, 0.1, 0.9, 1e-3).unwrap();
        sgd.prepare().unwrap();
        let x = Tensor::from_slice(&g, &[2, 3, 6, 6], &f32s(&rng.vec(216))).unwrap();
        let labels = Labels::new(&g, &[1, 4]).unwrap();
        let loss = step(&g, &net, &x, &labels, &sgd).to_vec().unwrap();
        let w = net.w.to_vec().unwrap();
        (g.pipeline_cache(), loss, w)
    };
    let (first, loss, w) = run();
    let Some((path, read)) = first else {
        // No pipeline cache on this adapter (GL): nothing is written.
        assert!(!dir.exists(), "{dir:?}");
        return;
    };
    assert_eq!(read, 0, "no file yet");
    assert!(path.starts_with(&dir), "{path:?}");
    let saved = std::fs::read(&path).expect("written when the device closed");
    assert!(!saved.is_empty());

    let (second, loss2, w2) = run();
    assert_eq!(second.unwrap().1, saved.len(), "read back");
    assert_eq!((&loss2, &w2), (&loss, &w));

    let junk = b"not a pipeline cache".to_vec();
    std::fs::write(&path, &junk).unwrap();
    let (third, loss3, w3) = run();
    assert_eq!(third.unwrap().1, junk.len());
    assert_eq!(
        (&loss3, &w3),
        (&loss, &w),
        "a damaged cache changes nothing"
    );
    assert_ne!(std::fs::read(&path).unwrap(), junk, "and is replaced");

    let off = AdapterChoice {
        pipeline_cache: Some("off".into()),
        ..AdapterChoice::default()
    };
    assert!(Gpu::new(&off).unwrap().pipeline_cache().is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
