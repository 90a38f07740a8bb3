//! Agreement with PyTorch: fixtures written by `tools/make_fixtures.py` (committed under
//! tests/fixtures) hold inputs, weights under the reference names, outputs, gradients and
//! batch-norm running statistics computed by torch in float64.

mod common;

use common::{assert_passes, gpu, Tolerance};
use darts_minus::autodiff::{BnState, Conv2dCfg, Labels, PoolCfg, Tape, Tensor};
use darts_minus::check::torch;
use darts_minus::checkpoint::{load_module, read, Named};
use darts_minus::gpu::Gpu;
use darts_minus::nn::darts_ops::SepConv;
use darts_minus::nn::{parameters, ConvShape, Ctx, Module, Slot};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Forward values: f32 against torch's float64.
const FWD: Tolerance = Tolerance {
    rel: 1e-4,
    abs: 1e-5,
};
/// Gradients pass through several batch norms and reductions of f32 sums.
const GRAD: Tolerance = Tolerance {
    rel: 1e-3,
    abs: 1e-4,
};

fn fixture(name: &str) -> (PathBuf, BTreeMap<String, Named>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let map = read(&path).unwrap();
    (path, map)
}

fn get<'a>(m: &'a BTreeMap<String, Named>, k: &str) -> &'a Named {
    m.get(k).unwrap_or_else(|| panic!("fixture lacks '{k}'"))
}

fn tensor(g: &Gpu, n: &Named) -> Tensor {
    let data: Vec<f32> = n.data.iter().map(|&v| v as f32).collect();
    let shape = if n.shape.is_empty() {
        vec![1]
    } else {
        n.shape.clone()
    };
    Tensor::from_slice(g, &shape, &data).unwrap()
}

fn close(tol: Tolerance, what: &str, t: &Tensor, want: &Named) {
    tol.scaled(&want.data)
        .assert_close(what, &t.to_vec().unwrap(), &want.data);
}

/// Every parameter gradient and running statistic of `module` against the fixture.
fn check_state(
    module: &dyn Module,
    grads: &darts_minus::autodiff::Grads,
    m: &BTreeMap<String, Named>,
) {
    let mut n_grad = 0;
    for (name, p) in parameters(module, "") {
        let g = grads
            .get(&p)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        close(
            GRAD,
            &format!("grad of {name}"),
            g,
            get(m, &format!("grad.{name}")),
        );
        n_grad += 1;
    }
    assert!(n_grad > 0);
    module.visit("", &mut |name, slot| match slot {
        Slot::Buffer(t) => close(
            FWD,
            &format!("{name} after the pass"),
            t,
            get(m, &format!("after.{name}")),
        ),
        Slot::Counter(c) => assert_eq!(
            c.get() as f64,
            get(m, &format!("after.{name}")).data[0],
            "{name}"
        ),
        Slot::Param(_) => {}
    });
}

/// The DARTS- mixed edge against torch: the library's check (`darts-minus check` runs the
/// same), with fused tails where launches are costly and split batch norms elsewhere, both
/// on any adapter.
fn mixed_edge(stride: usize) {
    let g = gpu();
    for strategy in torch::STRATEGIES {
        assert_passes(&torch::mixed_edge(&g, stride, strategy).unwrap());
    }
}

#[test]
fn darts_minus_mixed_edge_stride1() {
    mixed_edge(1);
}

#[test]
fn darts_minus_mixed_edge_stride2() {
    mixed_edge(2);
}

struct Stack(SepConv, SepConv);

impl Module for Stack {
    fn visit<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, Slot<'a>)) {
        self.0.visit(&darts_minus::nn::join(prefix, "0"), f);
        self.1.visit(&darts_minus::nn::join(prefix, "1"), f);
    }
}

#[test]
fn sep_conv_stack_train_then_eval() {
    let g = gpu();
    let (path, m) = fixture("sep_conv_stack.safetensors");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let net = Stack(
        SepConv::new(&g, &mut rng, ConvShape::new([3, 3, 5], 2, 2), true).unwrap(),
        SepConv::new(&g, &mut rng, ConvShape::new([3, 3, 3], 1, 1), true).unwrap(),
    );
    load_module(&net, "", &m, &path).unwrap();
    let x = tensor(&g, get(&m, "x")).with_grad();
    let c = tensor(&g, get(&m, "c"));
    let mut tape = Tape::new(&g);
    let h = net.0.forward(&mut tape, &x, Ctx { train: true }).unwrap();
    let out = net.1.forward(&mut tape, &h, Ctx { train: true }).unwrap();
    close(FWD, "sep_conv stack output", &out, get(&m, "out"));
    let weighted = tape.mul(&out, &c).unwrap();
    let loss = tape.sum_all(&weighted).unwrap();
    let grads = tape.backward(&loss).unwrap();
    close(GRAD, "grad of x", grads.get(&x).unwrap(), get(&m, "grad.x"));
    check_state(&net, &grads, &m);

    let mut tape = Tape::inference(&g);
    let h = net.0.forward(&mut tape, &x, Ctx { train: false }).unwrap();
    let out = net.1.forward(&mut tape, &h, Ctx { train: false }).unwrap();
    close(FWD, "eval-mode output", &out, get(&m, "out_eval"));
}

/// One primitive case: run `f` on the fixture inputs, compare output and input gradients.
fn primitive(
    g: &Gpu,
    m: &BTreeMap<String, Named>,
    name: &str,
    n_in: usize,
    f: impl Fn(&mut Tape, &[Tensor]) -> Tensor,
) {
    let ins: Vec<Tensor> = (0..n_in)
        .map(|k| tensor(g, get(m, &format!("{name}.in.{k}"))).with_grad())
        .collect();
    let mut tape = Tape::new(g);
    let out = f(&mut tape, &ins);
    close(
        FWD,
        &format!("{name} output"),
        &out,
        get(m, &format!("{name}.out")),
    );
    let c = tensor(g, get(m, &format!("{name}.c")));
    let weighted = tape.mul(&out, &c).unwrap();
    let loss = tape.sum_all(&weighted).unwrap();
    let grads = tape.backward(&loss).unwrap();
    for (k, t) in ins.iter().enumerate() {
        close(
            GRAD,
            &format!("{name} gradient {k}"),
            grads.get(t).unwrap(),
            get(m, &format!("{name}.grad.{k}")),
        );
    }
}

#[test]
fn primitive_ops_match_torch() {
    let g = gpu();
    let (_, m) = fixture("primitive_ops.safetensors");
    primitive(&g, &m, "max_pool_3x3_s2", 1, |t, v| {
        t.max_pool2d(&v[0], PoolCfg::new(3, 2, 1)).unwrap()
    });
    primitive(&g, &m, "avg_pool_3x3_s1", 1, |t, v| {
        t.avg_pool2d(&v[0], PoolCfg::new(3, 1, 1)).unwrap()
    });
    primitive(&g, &m, "avg_pool_3x3_s2", 1, |t, v| {
        t.avg_pool2d(&v[0], PoolCfg::new(3, 2, 1)).unwrap()
    });
    primitive(&g, &m, "avg_pool_2x2_s2", 1, |t, v| {
        t.avg_pool2d(&v[0], PoolCfg::new(2, 2, 0)).unwrap()
    });
    primitive(&g, &m, "avg_pool_5x5_s3", 1, |t, v| {
        t.avg_pool2d(&v[0], PoolCfg::new(5, 3, 0)).unwrap()
    });
    primitive(&g, &m, "conv_3x3_bias", 3, |t, v| {
        t.conv2d(&v[0], &v[1], Some(&v[2]), Conv2dCfg::new(1, 1))
            .unwrap()
    });
    primitive(&g, &m, "conv_dw_5x5_d2_s2", 2, |t, v| {
        t.conv2d(
            &v[0],
            &v[1],
            None,
            Conv2dCfg::new(2, 4).dilation(2).groups(3),
        )
        .unwrap()
    });
    primitive(&g, &m, "linear", 3, |t, v| {
        t.linear(&v[0], &v[1], Some(&v[2])).unwrap()
    });
    primitive(&g, &m, "softmax", 1, |t, v| t.softmax_rows(&v[0]).unwrap());
    let labels: Vec<u32> = get(&m, "cross_entropy.labels")
        .data
        .iter()
        .map(|&v| v as u32)
        .collect();
    let labels = Labels::new(&g, &labels).unwrap();
    primitive(&g, &m, "cross_entropy", 1, |t, v| {
        t.cross_entropy(&v[0], &labels).unwrap()
    });
    let rm = tensor(&g, get(&m, "bn.before.running_mean"));
    let rv = tensor(&g, get(&m, "bn.before.running_var"));
    primitive(&g, &m, "bn_train", 3, |t, v| {
        let state = BnState {
            running_mean: &rm,
            running_var: &rv,
            momentum: 0.1,
            eps: 1e-5,
        };
        t.batch_norm(&v[0], Some((&v[1], &v[2])), state, true)
            .unwrap()
    });
    close(
        FWD,
        "running mean after one batch",
        &rm,
        get(&m, "bn.after.running_mean"),
    );
    close(
        FWD,
        "running var after one batch",
        &rv,
        get(&m, "bn.after.running_var"),
    );
}
