//! LayerNorm over the last dimension (`shaders/layernorm.wgsl`,
//! `shaders/layernorm_backward.wgsl`, and `shaders/norm_affine_grad.wgsl` for dγ/dβ).
//!
//! PyTorch `nn.LayerNorm(C, eps)` semantics: each row of `C` values is normalised with its
//! mean and *biased* variance, `y = (x − mean) / sqrt(var + eps) · γ + β` (the ViT of design §1.8
//! uses `eps = 1e-6`). The forward pass saves the per-row mean and rstd for the backward pass.
//!
//! Tensors larger than one storage binding are processed in row ranges whose bindings fit.

use super::norm::{affine_grads, StatsLayout};
pub use super::norm::{GradTargets, NormGrads};
use super::{check_like, check_vec, row_pieces, rows_cols};
use crate::gpu::{Access, AdapterKind, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const FORWARD: &str = include_str!("../../shaders/layernorm.wgsl");
const BACKWARD: &str = include_str!("../../shaders/layernorm_backward.wgsl");

/// Result of [`layer_norm`]: the output and the statistics saved for the backward pass.
#[derive(Debug, Clone)]
pub struct LayerNormOut {
    /// Normalised output, shape of the input.
    pub y: Tensor,
    /// Mean of each row, `[R]` (f32).
    pub mean: Tensor,
    /// `1 / sqrt(biased variance + eps)` of each row, `[R]` (f32).
    pub rstd: Tensor,
}

/// Workgroup size of the row kernels: on GPUs enough invocations for the row, at most 256.
pub fn row_wg(kind: AdapterKind, cols: usize) -> u32 {
    match kind {
        // lavapipe runs a workgroup as 8-lane SIMD groups that take turns at every barrier;
        // with one group per row the tree reduction's eight barriers cost almost nothing
        // (`docs/bench-notes.md`, "LayerNorm").
        AdapterKind::Cpu => 8,
        AdapterKind::Gpu => (cols.next_power_of_two() as u32).clamp(32, 256),
    }
}

/// Workgroup grid of one workgroup per row, spread over x and y.
fn row_grid(rows: usize) -> [u32; 3] {
    super::grid_1d(rows, 1)
}

super::uniform! {
pub(super) struct FwdParams {
    rows: u32,
    cols: u32,
    off_x: u32,
    off_y: u32,
    row0: u32,
    eps: f32,
    _pad: [u32; 2],
}
}

super::uniform! {
pub(super) struct BwdParams {
    rows: u32,
    cols: u32,
    off_x: u32,
    off_dy: u32,
    off_dx: u32,
    row0: u32,
    _pad: [u32; 2],
}
}

/// LayerNorm over the last dimension of `x` (`[.., C]`, f32 or f16) with affine `gamma`,
/// `beta` (`[C]`, f32): returns `y` (in `x`'s storage type) and the per-row `mean`, `rstd`
/// (f32) for [`layer_norm_backward`] (which is f32 only).
pub fn layer_norm(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<LayerNormOut> {
    let (r, _) = rows_cols("layer_norm", x)?;
    let gpu = rec.gpu().clone();
    let out = LayerNormOut {
        y: gpu.empty(x.shape(), x.dtype()),
        mean: gpu.empty(&[r], DType::F32),
        rstd: gpu.empty(&[r], DType::F32),
    };
    layer_norm_into(rec, x, gamma, beta, eps, &out)?;
    Ok(out)
}

/// [`layer_norm`] into existing tensors (`out.y` shaped like `x`, `out.mean`/`out.rstd`
/// `[R]`).
pub fn layer_norm_into(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    out: &LayerNormOut,
) -> Result<()> {
    let max_elems = rec.max_binding_elems(DType::F32);
    const W: &str = "layer_norm";
    let (r, c) = rows_cols(W, x)?;
    // The forward also serves f16 activations (scoring in f16): x and y share one storage
    // type; the statistics, γ and β stay f32.
    if x.dtype() == DType::U32 || out.y.shape() != x.shape() || out.y.dtype() != x.dtype() {
        return Err(Error::Shape(format!(
            "{W}: x must be f32 or f16 and y of its shape and type, got x {:?} {:?}, y {:?} {:?}",
            x.shape(),
            x.dtype(),
            out.y.shape(),
            out.y.dtype()
        )));
    }
    check_vec(W, "gamma", gamma, c)?;
    check_vec(W, "beta", beta, c)?;
    check_vec(W, "mean", &out.mean, r)?;
    check_vec(W, "rstd", &out.rstd, r)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::Config(format!("{W}: eps must be ≥ 0, got {eps}")));
    }
    let wg = row_wg(rec.gpu().kind(), c);
    let kernel = rec.gpu().kernel(&forward_source(x.dtype(), wg))?;
    for (r0, r1) in row_pieces(W, r, c, max_elems, 1)? {
        let (xb, off_x) = x.bind_elems(r0 * c, (r1 - r0) * c);
        let (yb, off_y) = out.y.bind_elems(r0 * c, (r1 - r0) * c);
        let params = FwdParams {
            rows: (r1 - r0) as u32,
            cols: c as u32,
            off_x,
            off_y,
            row0: r0 as u32,
            eps,
            _pad: [0; 2],
        };
        rec.dispatch(
            &kernel,
            &params,
            &[
                xb,
                gamma.bind(),
                beta.bind(),
                yb,
                out.mean.bind(),
                out.rstd.bind(),
            ],
            row_grid(r1 - r0),
        )?;
    }
    Ok(())
}

/// LayerNorm backward: from the input `x`, `gamma`, the saved `mean`/`rstd` of
/// [`layer_norm`] and the output gradient `dy`, returns `dx`, `dγ` (`Σ_rows dy · x̂`) and
/// `dβ` (`Σ_rows dy`).
pub fn layer_norm_backward(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
) -> Result<NormGrads> {
    let (_, c) = rows_cols("layer_norm_backward", x)?;
    let gpu = rec.gpu().clone();
    let g = NormGrads {
        dx: gpu.empty(x.shape(), DType::F32),
        dgamma: gpu.empty(&[c], DType::F32),
        dbeta: gpu.empty(&[c], DType::F32),
    };
    layer_norm_backward_into(
        rec,
        x,
        gamma,
        mean,
        rstd,
        dy,
        GradTargets {
            dx: &g.dx,
            dgamma: &g.dgamma,
            dbeta: &g.dbeta,
            accumulate: false,
        },
    )?;
    Ok(g)
}

/// [`layer_norm_backward`] into existing tensors, overwriting or adding to them.
pub fn layer_norm_backward_into(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    out: GradTargets<'_>,
) -> Result<()> {
    let max_elems = rec.max_binding_elems(DType::F32);
    const W: &str = "layer_norm_backward";
    let (r, c) = rows_cols(W, x)?;
    check_like(W, "x", x, x)?;
    check_like(W, "dy", dy, x)?;
    check_like(W, "dx", out.dx, x)?;
    check_vec(W, "gamma", gamma, c)?;
    check_vec(W, "mean", mean, r)?;
    check_vec(W, "rstd", rstd, r)?;
    check_vec(W, "dgamma", out.dgamma, c)?;
    check_vec(W, "dbeta", out.dbeta, c)?;
    let wg = row_wg(rec.gpu().kind(), c);
    let kernel = rec.gpu().kernel(&backward_source(wg, out.accumulate))?;
    for (r0, r1) in row_pieces(W, r, c, max_elems, 1)? {
        let n = (r1 - r0) * c;
        let (xb, off_x) = x.bind_elems(r0 * c, n);
        let (gb, off_dy) = dy.bind_elems(r0 * c, n);
        let (db, off_dx) = out.dx.bind_elems(r0 * c, n);
        let params = BwdParams {
            rows: (r1 - r0) as u32,
            cols: c as u32,
            off_x,
            off_dy,
            off_dx,
            row0: r0 as u32,
            _pad: [0; 2],
        };
        rec.dispatch(
            &kernel,
            &params,
            &[xb, gb, gamma.bind(), mean.bind(), rstd.bind(), db],
            row_grid(r1 - r0),
        )?;
    }
    affine_grads(rec, x, dy, mean, rstd, StatsLayout::PerRow, out, max_elems)?;
    Ok(())
}

/// The forward kernel on `dtype` rows with `wg` invocations per row.
fn forward_source(dtype: DType, wg: u32) -> ShaderSource<'static> {
    let source = ShaderSource::new("layernorm", FORWARD)
        .define("T", dtype.wgsl())
        .define("WG", wg)
        .storage(&[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
            Access::ReadWrite,
        ]);
    super::with_f16_enable(source, dtype)
}

/// The backward kernel (f32) with `wg` invocations per row, accumulating or not.
fn backward_source(wg: u32, accumulate: bool) -> ShaderSource<'static> {
    let source = ShaderSource::new("layernorm_backward", BACKWARD)
        .define("T", "f32")
        .define("WG", wg)
        .define("ACCUMULATE", accumulate)
        .storage(&[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
        ]);
    super::with_f16_enable(source, DType::F32)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut sizes = Vec::new();
    for &cols in &super::PROBE_EXTENTS {
        let wg = row_wg(device.kind, cols);
        if !sizes.contains(&wg) {
            sizes.push(wg);
        }
    }
    let mut out = Vec::new();
    for wg in sizes {
        for dtype in super::float_types(device) {
            out.push(forward_source(dtype, wg));
        }
        for accumulate in [false, true] {
            out.push(backward_source(wg, accumulate));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::norm as cpu;
    use crate::testing::{assert_close, gpu, random_vec};
    use crate::testing::{narrow, wide};

    /// f32 row reductions over ≤ ~1500 values against f64: relative error ~1e-6; 1e-5 leaves
    /// a margin and still catches any indexing error (O(1)).
    const TOL: f64 = 1e-5;
    /// dγ/dβ sum over all rows in f32 (block partials then blocks): same order of error.
    const GRAD_TOL: f64 = 1e-5;

    /// Runs forward and backward on the GPU (with bindings limited to `max_elems`) and
    /// compares with the CPU reference.
    fn check(rows: usize, cols: usize, max_elems: usize, accumulate: bool) {
        let g = gpu();
        let eps = 1e-6f32;
        // An offset keeps the mean away from 0, as in real activations.
        let x: Vec<f32> = random_vec(rows * cols, 1 + rows as u64)
            .iter()
            .map(|v| 3.0 * v + 0.5)
            .collect();
        let gamma: Vec<f32> = random_vec(cols, 2).iter().map(|v| 1.0 + v).collect();
        let beta = random_vec(cols, 3);
        let dy = random_vec(rows * cols, 4 + cols as u64);
        let prior = random_vec(rows * cols + 2 * cols, 5);
        let want = cpu::layernorm_forward(
            &wide(&x),
            &wide(&gamma),
            &wide(&beta),
            rows,
            cols,
            eps as f64,
        );
        let grads = cpu::layernorm_backward(
            &wide(&x),
            &wide(&gamma),
            &want.mean,
            &want.rstd,
            &wide(&dy),
            rows,
            cols,
        );
        let xt = g.upload(&x, &[rows, cols]).unwrap();
        let gt = g.upload(&gamma, &[cols]).unwrap();
        let bt = g.upload(&beta, &[cols]).unwrap();
        let dyt = g.upload(&dy, &[rows, cols]).unwrap();
        let out = LayerNormOut {
            y: g.empty(&[rows, cols], DType::F32),
            mean: g.empty(&[rows], DType::F32),
            rstd: g.empty(&[rows], DType::F32),
        };
        let dx = g.upload(&prior[..rows * cols], &[rows, cols]).unwrap();
        let dgamma = g.upload(&prior[rows * cols..][..cols], &[cols]).unwrap();
        let dbeta = g.upload(&prior[rows * cols + cols..], &[cols]).unwrap();
        let mut rec = g.recorder();
        rec.limit_bindings(Some(max_elems));
        layer_norm_into(&mut rec, &xt, &gt, &bt, eps, &out).unwrap();
        layer_norm_backward_into(
            &mut rec,
            &xt,
            &gt,
            &out.mean,
            &out.rstd,
            &dyt,
            GradTargets {
                dx: &dx,
                dgamma: &dgamma,
                dbeta: &dbeta,
                accumulate,
            },
        )
        .unwrap();
        rec.submit();
        let what = format!("layernorm {rows}x{cols} max {max_elems} acc {accumulate}");
        assert_close(&what, &out.y.to_vec().unwrap(), &narrow(&want.y), TOL);
        assert_close(&what, &out.mean.to_vec().unwrap(), &narrow(&want.mean), TOL);
        assert_close(&what, &out.rstd.to_vec().unwrap(), &narrow(&want.rstd), TOL);
        let add = |base: &[f32], d: &[f64]| -> Vec<f32> {
            d.iter()
                .zip(base)
                .map(|(d, b)| (d + if accumulate { *b as f64 } else { 0.0 }) as f32)
                .collect()
        };
        let want_dx = add(&prior[..rows * cols], &grads.dx);
        let want_dg = add(&prior[rows * cols..][..cols], &grads.dgamma);
        let want_db = add(&prior[rows * cols + cols..], &grads.dbeta);
        assert_close(&what, &dx.to_vec().unwrap(), &want_dx, TOL);
        assert_close(&what, &dgamma.to_vec().unwrap(), &want_dg, GRAD_TOL);
        assert_close(&what, &dbeta.to_vec().unwrap(), &want_db, GRAD_TOL);
    }

    #[test]
    fn forward_and_backward_match_cpu_on_ragged_shapes() {
        let unlimited = usize::MAX / 2;
        for (rows, cols) in [(1, 1), (3, 7), (33, 100), (300, 257), (1025, 96)] {
            check(rows, cols, unlimited, false);
        }
        check(70, 1536, unlimited, true);
    }

    /// f16 input (given to the reference already rounded) and f16 output: the statistics
    /// are f32, so what remains is y's rounding to f16, relative 2⁻¹¹ ≈ 4.9e-4 per element.
    const TOL_F16: f64 = 1e-3;

    #[test]
    fn forward_in_f16_storage() {
        use crate::cpu::elementwise::round_to_f16;
        let g = gpu();
        if !g.supports_f16() {
            return;
        }
        let (rows, cols) = (33, 100);
        let x = round_to_f16(&random_vec(rows * cols, 41));
        let x: Vec<f32> = round_to_f16(&x.iter().map(|v| 3.0 * v + 0.5).collect::<Vec<_>>());
        let gamma: Vec<f32> = random_vec(cols, 42).iter().map(|v| 1.0 + v).collect();
        let beta = random_vec(cols, 43);
        let want = cpu::layernorm_forward(&wide(&x), &wide(&gamma), &wide(&beta), rows, cols, 1e-6);
        let xt = g.upload_as(&x, &[rows, cols], DType::F16).unwrap();
        let gt = g.upload(&gamma, &[cols]).unwrap();
        let bt = g.upload(&beta, &[cols]).unwrap();
        let mut rec = g.recorder();
        let out = layer_norm(&mut rec, &xt, &gt, &bt, 1e-6).unwrap();
        rec.submit();
        assert_eq!(out.y.dtype(), DType::F16);
        assert_close("f16 y", &out.y.to_vec().unwrap(), &narrow(&want.y), TOL_F16);
        assert_close(
            "f16 mean",
            &out.mean.to_vec().unwrap(),
            &narrow(&want.mean),
            TOL,
        );
        assert_close(
            "f16 rstd",
            &out.rstd.to_vec().unwrap(),
            &narrow(&want.rstd),
            TOL,
        );
    }

    #[test]
    fn split_bindings_give_the_same_result() {
        // Bindings of 1000 elements: 9 rows of 100 per piece, so 33 rows take 4 pieces.
        check(33, 100, 1000, false);
        check(600, 13, 200, true);
    }

    #[test]
    fn convenience_api_and_bad_shapes() {
        let g = gpu();
        let (rows, cols) = (2, 3);
        let x = g
            .upload(&random_vec(rows * cols, 9), &[1, rows, cols])
            .unwrap();
        let gm = g.upload(&[1.0; 3], &[3]).unwrap();
        let bt = g.upload(&[0.0; 3], &[3]).unwrap();
        let mut rec = g.recorder();
        let out = layer_norm(&mut rec, &x, &gm, &bt, 1e-5).unwrap();
        assert_eq!(out.y.shape(), &[1, rows, cols]);
        assert_eq!(out.mean.shape(), &[rows]);
        let grads = layer_norm_backward(&mut rec, &x, &gm, &out.mean, &out.rstd, &out.y).unwrap();
        assert_eq!(grads.dx.shape(), &[1, rows, cols]);
        let wrong = g.upload(&[1.0; 4], &[4]).unwrap();
        assert!(matches!(
            layer_norm(&mut rec, &x, &wrong, &bt, 1e-5),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            layer_norm_backward(&mut rec, &x, &gm, &out.mean, &out.rstd, &wrong),
            Err(Error::Shape(_))
        ));
        rec.submit();
        // y of a standardised row with γ = 1, β = 0 has mean 0.
        let y = out.y.to_vec().unwrap();
        assert!((y[0] + y[1] + y[2]).abs() < 1e-5);
    }
}
