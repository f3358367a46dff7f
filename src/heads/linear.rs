//! GEMM helpers of the heads' `Linear` products (`W` stored `[out, in]` as PyTorch stores
//! it) on [`crate::kernels::gemm`]: the forward with an epilogue activation and the column
//! sums that bias and token gradients are made of. The layer itself, with its backward, is
//! `Linear` in `layers.rs`.

use crate::gpu::{Recorder, Tensor};
use crate::kernels::gemm::{gemm, Activation, BiasMode, Epilogue, GemmSpec, Mat};
use crate::Result;

/// `y = act(x·Wᵀ (+ b)) (+ residual)` for `x` `[rows, inp]`, `w` `[out, inp]`, `y`
/// `[rows, out]`, the activation in the GEMM epilogue (the typed `Linear`'s forward, and
/// scoring's on its prepared weights).
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
