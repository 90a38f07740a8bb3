//! The harness `darts-minus check` and the op tests share: it must catch a wrong forward, a
//! wrong gradient and a missing one, and name the op.

mod common;

use common::gpu;
use darts_minus::autodiff::{Tape, Tensor};
use darts_minus::check::{op_check, CheckLine, Input, Rng, Tolerance};

const TOLS: (Tolerance, Tolerance) = (Tolerance::FORWARD, Tolerance::GRADIENT);

fn relu_ref(v: &[Vec<f64>]) -> Vec<f64> {
    v[0].iter().map(|x| x.max(0.0)).collect()
}

fn failing(lines: &[CheckLine]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| !l.pass)
        .map(|l| l.what.as_str())
        .collect()
}

#[test]
fn a_correct_op_passes_every_line() {
    let x = Input::random(&mut Rng::new(1), &[3, 7], true);
    let lines = op_check(&gpu(), "relu", &[x], &relu_ref, &|t, v| t.relu(&v[0]), TOLS).unwrap();
    assert_eq!(lines.len(), 2);
    assert!(failing(&lines).is_empty(), "{lines:?}");
    assert!(lines.iter().all(|l| l.check == "relu" && l.max_err < 1e-6));
}

#[test]
fn a_wrong_forward_fails_naming_the_op() {
    let x = Input::random(&mut Rng::new(2), &[3, 7], true);
    // The GPU computes the identity, the reference ReLU.
    let lines = op_check(
        &gpu(),
        "relu",
        &[x],
        &relu_ref,
        &|t, v| t.scale(&v[0], 1.0),
        TOLS,
    );
    let lines = lines.unwrap();
    assert_eq!(failing(&lines), ["forward", "gradient of input 0"]);
    let detail = lines[0].detail.as_deref().unwrap();
    assert!(
        detail.contains("element") && detail.contains("reference"),
        "{detail}"
    );
}

#[test]
fn a_wrong_or_missing_gradient_fails() {
    let x = Input::random(&mut Rng::new(3), &[3, 7], true);
    // Right values through a detached copy: the forward passes, no gradient reaches x.
    let detached = |t: &mut Tape, v: &[Tensor]| {
        let copy = Tensor::from_slice(t.gpu(), v[0].shape(), &v[0].to_vec()?)?;
        t.relu(&copy)
    };
    let lines = op_check(
        &gpu(),
        "relu",
        std::slice::from_ref(&x),
        &relu_ref,
        &detached,
        TOLS,
    )
    .unwrap();
    assert_eq!(failing(&lines), ["gradient of input 0"]);
    assert!(lines[1].detail.as_deref().unwrap().contains("no gradient"));
    // Right values, a wrong gradient: relu(x) + (x − x detached) has relu's value and
    // relu's gradient plus one.
    let plus_one = |t: &mut Tape, v: &[Tensor]| {
        let copy = Tensor::from_slice(t.gpu(), v[0].shape(), &v[0].to_vec()?)?;
        let minus = t.scale(&copy, -1.0)?;
        let zero = t.sum(&[&v[0], &minus])?;
        let y = t.relu(&v[0])?;
        t.sum(&[&y, &zero])
    };
    let lines = op_check(&gpu(), "relu", &[x], &relu_ref, &plus_one, TOLS).unwrap();
    assert_eq!(failing(&lines), ["gradient of input 0"]);
}
