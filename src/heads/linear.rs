//! `Linear` layers (`y = x·Wᵀ + b`, `W` stored `[out, in]` as PyTorch stores it) on top of
//! [`crate::kernels::gemm`], forward and backward.

use crate::gpu::{Recorder, Tensor};
use crate::kernels::gemm::{gemm, Activation, BiasMode, Epilogue, GemmSpec, Mat};
use crate::Result;

/// `y = x·Wᵀ (+ b) (+ residual)` for `x` `[rows, inp]`, `w` `[out, inp]`, `y` `[rows, out]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    y: Mat<'_>,
    residual: Option<Mat<'_>>,
    rows: usize,
    inp: usize,
    out: usize,
) -> Result<()> {
    forward_act(rec, x, w, b, y, residual, Activation::None, rows, inp, out)
}

/// [`forward`] with an activation in the GEMM epilogue: `y = act(x·Wᵀ (+ b)) (+ residual)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_act(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    y: Mat<'_>,
    residual: Option<Mat<'_>>,
    act: Activation,
    rows: usize,
    inp: usize,
    out: usize,
) -> Result<()> {
    let spec = GemmSpec::new(rows, out, inp)
        .transpose(false, true)
        .activation(act);
    let epi = Epilogue {
        bias: b.map(|b| (b, BiasMode::PerColumn)),
        residual,
    };
    gemm(
        rec,
        &spec,
        Mat::dense(x, rows, inp),
        Mat::dense(w, out, inp),
        y,
        epi,
    )
}

/// `dW += dyᵀ·x` for `dy` `[rows, out]`, `x` `[rows, inp]`.
pub(crate) fn weight_grad(
    rec: &mut Recorder,
    dy: Mat<'_>,
    x: Mat<'_>,
    dw: &Tensor,
    rows: usize,
    inp: usize,
    out: usize,
) -> Result<()> {
    let spec = GemmSpec::new(out, inp, rows)
        .transpose(true, false)
        .accumulate(1.0);
    gemm(
        rec,
        &spec,
        dy,
        x,
        Mat::dense(dw, out, inp),
        Epilogue::default(),
    )
}

/// `db[c] += Σ_rows dy[r, c]` (`dy` seen as `rows × cols` with leading dimension `dy.ld`),
/// as a product with a row of ones (`ones` holds at least `rows` ones).
pub(crate) fn col_sum_acc(
    rec: &mut Recorder,
    ones: &Tensor,
    dy: Mat<'_>,
    db: Mat<'_>,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let spec = GemmSpec::new(1, cols, rows).accumulate(1.0);
    gemm(
        rec,
        &spec,
        Mat::dense(ones, 1, rows),
        dy,
        db,
        Epilogue::default(),
    )
}

/// `dx = dy·W` (or `dx += dy·W` when `acc`) for `dy` `[rows, out]`, `w` `[out, inp]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn input_grad(
    rec: &mut Recorder,
    dy: Mat<'_>,
    w: &Tensor,
    dx: Mat<'_>,
    rows: usize,
    inp: usize,
    out: usize,
    acc: bool,
) -> Result<()> {
    let mut spec = GemmSpec::new(rows, inp, out);
    if acc {
        spec = spec.accumulate(1.0);
    }
    gemm(
        rec,
        &spec,
        dy,
        Mat::dense(w, out, inp),
        dx,
        Epilogue::default(),
    )
}

/// Full backward of a dense `Linear`: weight grad, bias grad (when `db` is given) and the
/// input grad into `dx` (when given; `acc` adds to it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    rec: &mut Recorder,
    ones: &Tensor,
    x: &Tensor,
    dy: &Tensor,
    w: &Tensor,
    dw: &Tensor,
    db: Option<&Tensor>,
    dx: Option<(&Tensor, bool)>,
    rows: usize,
    inp: usize,
    out: usize,
) -> Result<()> {
    let dym = Mat::dense(dy, rows, out);
    weight_grad(rec, dym, Mat::dense(x, rows, inp), dw, rows, inp, out)?;
    if let Some(db) = db {
        col_sum_acc(rec, ones, dym, Mat::dense(db, 1, out), rows, out)?;
    }
    if let Some((dx, acc)) = dx {
        input_grad(rec, dym, w, Mat::dense(dx, rows, inp), rows, inp, out, acc)?;
    }
    Ok(())
}
