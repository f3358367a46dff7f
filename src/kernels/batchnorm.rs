//! BatchNorm1d over `[R, C]` (`shaders/batchnorm1d_stats.wgsl`, `shaders/batchnorm1d.wgsl`,
//! `shaders/batchnorm1d_backward.wgsl`), its eval form folded into the Linear before it
//! (`shaders/batchnorm1d_fold.wgsl`); the column reduction of the affine gradients it shares
//! with LayerNorm is in `kernels/norm.rs`.
//!
//! PyTorch `nn.BatchNorm1d(C)` semantics on a `[N, C]` input (design §1.7–1.8: the
//! discriminators' `Linear → BatchNorm1d → LeakyReLU`):
//! - training: normalise each column with the batch mean and the *biased* batch variance,
//!   `y = (x − mean) / sqrt(var + eps) · γ + β`, and update the running statistics in place,
//!   `running = (1 − momentum) · running + momentum · stat`, with the *unbiased* variance;
//! - eval: normalise with the running statistics;
//! - training backward through the batch statistics:
//!   `dx = γ · rstd / N · (N · dy − Σ dy − x̂ · Σ dy · x̂)`, `dγ = Σ dy · x̂`, `dβ = Σ dy`.
//!
//! The column statistics are a two-pass reduction over blocks of rows (no atomics): per block
//! and column a partial result, then one invocation per column combines the blocks in order.

use super::norm::{
    affine_grads, count_blocks, GradTargets, NormGrads, StatsLayout, BLOCK_COLS, BLOCK_ROWS,
};
use super::{check_like, check_vec, row_pieces, rows_cols};
use crate::gpu::{Access, BindRange, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const STATS: &str = include_str!("../../shaders/batchnorm1d_stats.wgsl");
const APPLY: &str = include_str!("../../shaders/batchnorm1d.wgsl");
const BACKWARD: &str = include_str!("../../shaders/batchnorm1d_backward.wgsl");
const FOLD: &str = include_str!("../../shaders/batchnorm1d_fold.wgsl");

/// Invocations per workgroup of the element-wise kernels.
const ELEM_WG: u32 = 256;

/// PyTorch's `BatchNorm1d` default `eps`.
pub const DEFAULT_EPS: f32 = 1e-5;
/// PyTorch's `BatchNorm1d` default `momentum`.
pub const DEFAULT_MOMENTUM: f32 = 0.1;

/// A BatchNorm1d layer's parameters and running statistics (all f32 `[C]`).
#[derive(Debug, Clone, Copy)]
pub struct BatchNorm1d<'a> {
    /// Scale γ.
    pub gamma: &'a Tensor,
    /// Shift β.
    pub beta: &'a Tensor,
    /// Running mean, updated in place by [`BatchNorm1d::train`].
    pub running_mean: &'a Tensor,
    /// Running (unbiased) variance, updated in place by [`BatchNorm1d::train`].
    pub running_var: &'a Tensor,
    /// Added to the variance inside the square root.
    pub eps: f32,
    /// Weight of the new batch statistic in the running-statistics update.
    pub momentum: f32,
}

/// Result of a training forward pass: the output and the batch statistics saved for the
/// backward pass.
#[derive(Debug, Clone)]
pub struct BatchNormOut {
    /// Normalised output, shape of the input.
    pub y: Tensor,
    /// Batch mean of each column, `[C]`.
    pub mean: Tensor,
    /// `1 / sqrt(biased batch variance + eps)` of each column, `[C]`.
    pub rstd: Tensor,
}

super::uniform! {
pub(super) struct StatsParams {
    rows: u32,
    cols: u32,
    off_x: u32,
    block0: u32,
    nblocks: u32,
    eps: f32,
    momentum: f32,
    _pad: u32,
}
}

super::uniform! {
pub(super) struct ApplyParams {
    n: u32,
    cols: u32,
    off_x: u32,
    off_y: u32,
    eps: f32,
    _pad: [u32; 3],
}
}

super::uniform! {
pub(super) struct FoldParams {
    out: u32,
    inp: u32,
    eps: f32,
    _pad: u32,
}
}

super::uniform! {
pub(super) struct BwdParams {
    n: u32,
    cols: u32,
    rows_total: u32,
    off_x: u32,
    off_dy: u32,
    off_dx: u32,
    _pad: [u32; 2],
}
}

impl<'a> BatchNorm1d<'a> {
    /// A layer with PyTorch's defaults (`eps = 1e-5`, `momentum = 0.1`).
    pub fn new(
        gamma: &'a Tensor,
        beta: &'a Tensor,
        running_mean: &'a Tensor,
        running_var: &'a Tensor,
    ) -> Self {
        BatchNorm1d {
            gamma,
            beta,
            running_mean,
            running_var,
            eps: DEFAULT_EPS,
            momentum: DEFAULT_MOMENTUM,
        }
    }

    fn check(&self, what: &str, x: &Tensor) -> Result<(usize, usize)> {
        let (r, c) = rows_cols(what, x)?;
        check_like(what, "x", x, x)?;
        check_vec(what, "gamma", self.gamma, c)?;
        check_vec(what, "beta", self.beta, c)?;
        check_vec(what, "running_mean", self.running_mean, c)?;
        check_vec(what, "running_var", self.running_var, c)?;
        if !(self.eps.is_finite() && self.eps >= 0.0 && (0.0..=1.0).contains(&self.momentum)) {
            return Err(Error::Config(format!(
                "{what}: need eps ≥ 0 and momentum in [0, 1], got {} and {}",
                self.eps, self.momentum
            )));
        }
        Ok((r, c))
    }

    /// Training forward of `x` (`[.., C]`, f32; the leading dimensions are the batch):
    /// normalises with the batch statistics, updates the running statistics in place and
    /// returns `y` with the saved batch mean and rstd. Needs at least 2 rows (the unbiased
    /// variance), like PyTorch.
    pub fn train(&self, rec: &mut Recorder, x: &Tensor) -> Result<BatchNormOut> {
        let (_, c) = rows_cols("batch_norm_train", x)?;
        let gpu = rec.gpu().clone();
        let out = BatchNormOut {
            y: gpu.empty(x.shape(), DType::F32),
            mean: gpu.empty(&[c], DType::F32),
            rstd: gpu.empty(&[c], DType::F32),
        };
        self.train_into(rec, x, &out)?;
        Ok(out)
    }

    /// [`BatchNorm1d::train`] into existing tensors.
    pub fn train_into(&self, rec: &mut Recorder, x: &Tensor, out: &BatchNormOut) -> Result<()> {
        let max_elems = rec.max_binding_elems(DType::F32);
        const W: &str = "batch_norm_train";
        let (r, c) = self.check(W, x)?;
        check_like(W, "y", &out.y, x)?;
        check_vec(W, "mean", &out.mean, c)?;
        check_vec(W, "rstd", &out.rstd, c)?;
        if r < 2 {
            return Err(Error::Shape(format!(
                "{W}: training needs more than one value per channel, got input {:?}",
                x.shape()
            )));
        }
        let gpu = rec.gpu().clone();
        let pieces = row_pieces(W, r, c, max_elems, 1)?;
        let nblocks = count_blocks(&pieces);
        let part = gpu.empty(&[nblocks, c, 4], DType::F32);
        let partial = gpu.kernel(&stats_source("partial"))?;
        let finalize = gpu.kernel(&stats_source("finalize"))?;
        let mut params = StatsParams {
            rows: 0,
            cols: c as u32,
            off_x: 0,
            block0: 0,
            nblocks: nblocks as u32,
            eps: self.eps,
            momentum: self.momentum,
            _pad: 0,
        };
        let mut block0 = 0;
        for &(r0, r1) in &pieces {
            let (xb, off_x) = x.bind_elems(r0 * c, (r1 - r0) * c);
            let blocks = (r1 - r0).div_ceil(BLOCK_ROWS);
            params.rows = (r1 - r0) as u32;
            params.off_x = off_x;
            params.block0 = block0 as u32;
            rec.dispatch(
                &partial,
                &params,
                &[
                    xb,
                    part.bind(),
                    BindRange::unused(),
                    BindRange::unused(),
                    BindRange::unused(),
                    BindRange::unused(),
                ],
                [c.div_ceil(BLOCK_COLS) as u32, blocks as u32, 1],
            )?;
            block0 += blocks;
        }
        params.rows = r as u32;
        rec.dispatch(
            &finalize,
            &params,
            &[
                BindRange::unused(),
                part.bind(),
                out.mean.bind(),
                out.rstd.bind(),
                self.running_mean.bind(),
                self.running_var.bind(),
            ],
            [c.div_ceil(BLOCK_COLS) as u32, 1, 1],
        )?;
        apply(rec, x, &out.mean, &out.rstd, self, false, &out.y, max_elems)
    }

    /// Eval forward: normalises `x` with the running statistics.
    pub fn eval(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let y = rec.gpu().empty(x.shape(), DType::F32);
        self.eval_into(rec, x, &y)?;
        Ok(y)
    }

    /// [`BatchNorm1d::eval`] into an existing tensor shaped like `x`.
    pub fn eval_into(&self, rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
        let max = rec.max_binding_elems(DType::F32);
        const W: &str = "batch_norm_eval";
        self.check(W, x)?;
        check_like(W, "y", y, x)?;
        apply(
            rec,
            x,
            self.running_mean,
            self.running_var,
            self,
            true,
            y,
            max,
        )
    }

    /// Training backward through the batch statistics: from `x`, the saved batch `mean` and
    /// `rstd` of [`BatchNorm1d::train`] and the output gradient `dy`, returns `dx`, `dγ`, `dβ`.
    pub fn backward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        saved: &BatchNormOut,
        dy: &Tensor,
    ) -> Result<NormGrads> {
        let (_, c) = rows_cols("batch_norm_backward", x)?;
        let gpu = rec.gpu().clone();
        let g = NormGrads {
            dx: gpu.empty(x.shape(), DType::F32),
            dgamma: gpu.empty(&[c], DType::F32),
            dbeta: gpu.empty(&[c], DType::F32),
        };
        self.backward_into(
            rec,
            x,
            saved,
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

    /// [`BatchNorm1d::backward`] into existing tensors, overwriting or adding to them.
    /// Only `saved.mean` and `saved.rstd` are read.
    pub fn backward_into(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        saved: &BatchNormOut,
        dy: &Tensor,
        out: GradTargets<'_>,
    ) -> Result<()> {
        let max_elems = rec.max_binding_elems(DType::F32);
        const W: &str = "batch_norm_backward";
        let (r, c) = rows_cols(W, x)?;
        check_like(W, "x", x, x)?;
        check_like(W, "dy", dy, x)?;
        check_like(W, "dx", out.dx, x)?;
        check_vec(W, "gamma", self.gamma, c)?;
        check_vec(W, "mean", &saved.mean, c)?;
        check_vec(W, "rstd", &saved.rstd, c)?;
        let totals = affine_grads(
            rec,
            x,
            dy,
            &saved.mean,
            &saved.rstd,
            StatsLayout::PerColumn,
            out,
            max_elems,
        )?;
        let kernel = rec.gpu().kernel(&backward_source(out.accumulate))?;
        for (r0, r1) in row_pieces(W, r, c, max_elems, 1)? {
            let n = (r1 - r0) * c;
            let (xb, off_x) = x.bind_elems(r0 * c, n);
            let (gb, off_dy) = dy.bind_elems(r0 * c, n);
            let (db, off_dx) = out.dx.bind_elems(r0 * c, n);
            let params = BwdParams {
                n: n as u32,
                cols: c as u32,
                rows_total: r as u32,
                off_x,
                off_dy,
                off_dx,
                _pad: [0; 2],
            };
            rec.dispatch(
                &kernel,
                &params,
                &[
                    xb,
                    gb,
                    saved.mean.bind(),
                    saved.rstd.bind(),
                    self.gamma.bind(),
                    totals.bind(),
                    db,
                ],
                super::grid_1d(n, ELEM_WG),
            )?;
        }
        Ok(())
    }
}

impl BatchNorm1d<'_> {
    /// Folds the eval-mode layer into the `Linear` that feeds it: for `w` `[C, inp]` and `b`
    /// `[C]` (f32), writes `w_out` (`[C, inp]`, f32 or f16) and `b_out` (`[C]`, f32) with
    /// `x·w_outᵀ + b_out = eval(x·wᵀ + b)` up to rounding — one GEMM instead of a GEMM and a
    /// pass over its output. Reads the running statistics as they are when the GPU runs it.
    pub fn fold_into_linear(
        &self,
        rec: &mut Recorder,
        w: &Tensor,
        b: &Tensor,
        w_out: &Tensor,
        b_out: &Tensor,
    ) -> Result<()> {
        const W: &str = "batch_norm_fold";
        let (c, inp) = match w.shape() {
            [c, inp] if *c > 0 && *inp > 0 => (*c, *inp),
            s => return Err(Error::Shape(format!("{W}: weight {s:?} is not [C, in]"))),
        };
        check_vec(W, "weight", w, c * inp)?;
        check_vec(W, "bias", b, c)?;
        check_vec(W, "gamma", self.gamma, c)?;
        check_vec(W, "beta", self.beta, c)?;
        check_vec(W, "running_mean", self.running_mean, c)?;
        check_vec(W, "running_var", self.running_var, c)?;
        check_vec(W, "folded bias", b_out, c)?;
        if w_out.shape() != w.shape() || w_out.dtype() == DType::U32 {
            return Err(Error::Shape(format!(
                "{W}: folded weight must be a float tensor {:?}, got {:?} {:?}",
                w.shape(),
                w_out.shape(),
                w_out.dtype()
            )));
        }
        let gpu = rec.gpu().clone();
        if c * inp > gpu.max_binding_elems(DType::F32) {
            return Err(Error::Gpu(format!(
                "{W}: a {c}×{inp} weight exceeds one storage binding"
            )));
        }
        let kernel = gpu.kernel(&fold_source(w_out.dtype()))?;
        let params = FoldParams {
            out: c as u32,
            inp: inp as u32,
            eps: self.eps,
            _pad: 0,
        };
        rec.dispatch(
            &kernel,
            &params,
            &[
                w.bind(),
                b.bind(),
                self.gamma.bind(),
                self.beta.bind(),
                self.running_mean.bind(),
                self.running_var.bind(),
                w_out.bind(),
                b_out.bind(),
            ],
            super::grid_1d(c * inp, ELEM_WG),
        )
    }
}

/// Element-wise `y = (x − mean) · rstd · γ + β`; with `from_var`, `scale` holds variances
/// and `rstd = 1/sqrt(var + eps)`.
#[allow(clippy::too_many_arguments)]
fn apply(
    rec: &mut Recorder,
    x: &Tensor,
    mean: &Tensor,
    scale: &Tensor,
    bn: &BatchNorm1d<'_>,
    from_var: bool,
    y: &Tensor,
    max_elems: usize,
) -> Result<()> {
    let (r, c) = rows_cols("batch_norm", x)?;
    let kernel = rec.gpu().kernel(&apply_source(from_var))?;
    for (r0, r1) in row_pieces("batch_norm", r, c, max_elems, 1)? {
        let n = (r1 - r0) * c;
        let (xb, off_x) = x.bind_elems(r0 * c, n);
        let (yb, off_y) = y.bind_elems(r0 * c, n);
        let params = ApplyParams {
            n: n as u32,
            cols: c as u32,
            off_x,
            off_y,
            eps: bn.eps,
            _pad: [0; 3],
        };
        rec.dispatch(
            &kernel,
            &params,
            &[
                xb,
                mean.bind(),
                scale.bind(),
                bn.gamma.bind(),
                bn.beta.bind(),
                yb,
            ],
            super::grid_1d(n, ELEM_WG),
        )?;
    }
    Ok(())
}

/// Entry point `entry` of the statistics kernel.
fn stats_source(entry: &'static str) -> ShaderSource<'static> {
    let storage = [
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ];
    let source = ShaderSource::new("batchnorm1d_stats", STATS)
        .define("T", "f32")
        .define("BLOCK_ROWS", BLOCK_ROWS)
        .storage(&storage);
    super::with_f16_enable(source, DType::F32).entry(entry)
}

/// The input-gradient kernel, accumulating or not.
fn backward_source(accumulate: bool) -> ShaderSource<'static> {
    let source = ShaderSource::new("batchnorm1d_backward", BACKWARD)
        .define("T", "f32")
        .define("ACCUMULATE", accumulate)
        .storage(&[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
        ]);
    super::with_f16_enable(source, DType::F32)
}

/// The folding kernel writing a `dtype` weight.
fn fold_source(dtype: DType) -> ShaderSource<'static> {
    let source = ShaderSource::new("batchnorm1d_fold", FOLD)
        .define("T", dtype.wgsl())
        .storage(&[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
            Access::ReadWrite,
        ]);
    super::with_f16_enable(source, dtype)
}

/// The normalising kernel, from the variance or from the inverse deviation.
fn apply_source(from_var: bool) -> ShaderSource<'static> {
    let source = ShaderSource::new("batchnorm1d", APPLY)
        .define("T", "f32")
        .define("FROM_VAR", from_var)
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
    let mut out = vec![stats_source("partial"), stats_source("finalize")];
    for flag in [false, true] {
        out.push(backward_source(flag));
        out.push(apply_source(flag));
    }
    for dtype in super::float_types(device) {
        out.push(fold_source(dtype));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::norm as cpu;
    use crate::testing::{assert_close, gpu, random_vec};
    use crate::testing::{narrow, wide};

    /// f32 column reductions over ≤ ~2000 rows (blocks, then Chan merges / block sums)
    /// against f64: relative error ~1e-6; 1e-5 leaves a margin and still catches any
    /// indexing error (O(1)).
    const TOL: f64 = 1e-5;

    /// Training forward, eval forward with the updated running statistics and backward, on
    /// the GPU with bindings limited to `max_elems`, against the CPU reference.
    fn check(rows: usize, cols: usize, max_elems: usize, accumulate: bool) {
        let g = gpu();
        let (eps, momentum) = (1e-5f32, 0.1f32);
        // A large common offset checks the variance is computed without cancellation.
        let x: Vec<f32> = random_vec(rows * cols, 1 + rows as u64)
            .iter()
            .enumerate()
            .map(|(i, v)| 2.0 * v + 10.0 + (i % cols) as f32 * 0.1)
            .collect();
        let gamma: Vec<f32> = random_vec(cols, 2).iter().map(|v| 1.0 + v).collect();
        let beta = random_vec(cols, 3);
        let rm0 = random_vec(cols, 4);
        let rv0: Vec<f32> = random_vec(cols, 5).iter().map(|v| 1.5 + v).collect();
        let dy = random_vec(rows * cols, 6 + cols as u64);
        let prior = random_vec(rows * cols + 2 * cols, 7);

        let (mut rm, mut rv) = (wide(&rm0), wide(&rv0));
        let want = cpu::batchnorm_train_forward(
            &wide(&x),
            &wide(&gamma),
            &wide(&beta),
            rows,
            cols,
            eps as f64,
            momentum as f64,
            &mut rm,
            &mut rv,
        );
        let want_eval = cpu::batchnorm_eval_forward(
            &wide(&x),
            &wide(&gamma),
            &wide(&beta),
            rows,
            cols,
            eps as f64,
            &rm,
            &rv,
        );
        let grads = cpu::batchnorm_backward(
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
        let rmt = g.upload(&rm0, &[cols]).unwrap();
        let rvt = g.upload(&rv0, &[cols]).unwrap();
        let dyt = g.upload(&dy, &[rows, cols]).unwrap();
        let dx = g.upload(&prior[..rows * cols], &[rows, cols]).unwrap();
        let dgamma = g.upload(&prior[rows * cols..][..cols], &[cols]).unwrap();
        let dbeta = g.upload(&prior[rows * cols + cols..], &[cols]).unwrap();
        let bn = BatchNorm1d {
            eps,
            momentum,
            ..BatchNorm1d::new(&gt, &bt, &rmt, &rvt)
        };
        let out = BatchNormOut {
            y: g.empty(&[rows, cols], DType::F32),
            mean: g.empty(&[cols], DType::F32),
            rstd: g.empty(&[cols], DType::F32),
        };
        let y_eval = g.empty(&[rows, cols], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(Some(max_elems));
        bn.train_into(&mut rec, &xt, &out).unwrap();
        bn.eval_into(&mut rec, &xt, &y_eval).unwrap();
        bn.backward_into(
            &mut rec,
            &xt,
            &out,
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

        let what = format!("batchnorm {rows}x{cols} max {max_elems} acc {accumulate}");
        assert_close(&what, &out.y.to_vec().unwrap(), &narrow(&want.y), TOL);
        assert_close(&what, &out.mean.to_vec().unwrap(), &narrow(&want.mean), TOL);
        assert_close(&what, &out.rstd.to_vec().unwrap(), &narrow(&want.rstd), TOL);
        assert_close(&what, &rmt.to_vec().unwrap(), &narrow(&rm), TOL);
        assert_close(&what, &rvt.to_vec().unwrap(), &narrow(&rv), TOL);
        assert_close(&what, &y_eval.to_vec().unwrap(), &narrow(&want_eval), TOL);
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
        assert_close(&what, &dgamma.to_vec().unwrap(), &want_dg, TOL);
        assert_close(&what, &dbeta.to_vec().unwrap(), &want_db, TOL);
    }

    /// The folded Linear against Linear-then-eval-BatchNorm in f64, with f32 and f16 folded
    /// weights (f16: each weight rounded, relative 2⁻¹¹ ≈ 4.9e-4; the products average the
    /// roundings, so 1e-3 on the output is a bound, not a fit).
    #[test]
    fn folding_into_the_linear_matches_linear_then_eval() {
        use crate::kernels::gemm::{gemm, BiasMode, Epilogue, GemmSpec, Mat};
        let g = gpu();
        let (rows, inp, c) = (37, 29, 23);
        let x = random_vec(rows * inp, 51);
        let w = random_vec(c * inp, 52);
        let b = random_vec(c, 53);
        let gamma: Vec<f32> = random_vec(c, 54).iter().map(|v| 1.0 + 0.5 * v).collect();
        let beta = random_vec(c, 55);
        let mean = random_vec(c, 56);
        let var: Vec<f32> = random_vec(c, 57).iter().map(|v| 0.5 + v.abs()).collect();
        let eps = 1e-5f64;
        let want: Vec<f32> = (0..rows * c)
            .map(|i| {
                let (r, o) = (i / c, i % c);
                let z: f64 = (0..inp)
                    .map(|k| x[r * inp + k] as f64 * w[o * inp + k] as f64)
                    .sum::<f64>()
                    + b[o] as f64;
                let y = (z - mean[o] as f64) / (var[o] as f64 + eps).sqrt() * gamma[o] as f64
                    + beta[o] as f64;
                y as f32
            })
            .collect();
        let up = |v: &[f32], s: &[usize]| g.upload(v, s).unwrap();
        let (gt, bt, mt, vt) = (
            up(&gamma, &[c]),
            up(&beta, &[c]),
            up(&mean, &[c]),
            up(&var, &[c]),
        );
        let bn = BatchNorm1d::new(&gt, &bt, &mt, &vt);
        let (xt, wt, lb) = (up(&x, &[rows, inp]), up(&w, &[c, inp]), up(&b, &[c]));
        let mut types = vec![(DType::F32, TOL)];
        if g.supports_f16() {
            types.push((DType::F16, 1e-3));
        }
        for (dtype, tol) in types {
            let w_out = g.empty(&[c, inp], dtype);
            let b_out = g.empty(&[c], DType::F32);
            let y = g.empty(&[rows, c], DType::F32);
            let mut rec = g.recorder();
            bn.fold_into_linear(&mut rec, &wt, &lb, &w_out, &b_out)
                .unwrap();
            gemm(
                &mut rec,
                &GemmSpec::new(rows, c, inp).transpose(false, true),
                Mat::dense(&xt, rows, inp),
                Mat::dense(&w_out, c, inp),
                Mat::dense(&y, rows, c),
                Epilogue {
                    bias: Some((&b_out, BiasMode::PerColumn)),
                    residual: None,
                },
            )
            .unwrap();
            let bad = g.empty(&[c + 1, inp], dtype);
            assert!(bn
                .fold_into_linear(&mut rec, &wt, &lb, &bad, &b_out)
                .is_err());
            rec.submit();
            assert_close(
                &format!("folded {dtype:?}"),
                &y.to_vec().unwrap(),
                &want,
                tol,
            );
        }
    }

    #[test]
    fn train_eval_backward_match_cpu_on_ragged_shapes() {
        let unlimited = usize::MAX / 2;
        for (rows, cols) in [(3, 1), (3, 7), (37, 65), (513, 130), (1100, 24)] {
            check(rows, cols, unlimited, false);
        }
        check(300, 129, unlimited, true);
    }

    #[test]
    fn split_bindings_give_the_same_result() {
        // 1000-element bindings: 14 rows of 65 per piece, ragged blocks in every piece.
        check(37, 65, 1000, false);
        check(700, 5, 600, true);
    }

    #[test]
    fn convenience_api_and_bad_shapes() {
        let g = gpu();
        let c = 3;
        let x = g.upload(&random_vec(4 * c, 9), &[4, c]).unwrap();
        let ones = g.upload(&[1.0; 3], &[c]).unwrap();
        let zeros = g.upload(&[0.0; 3], &[c]).unwrap();
        let rm = g.upload(&[0.0; 3], &[c]).unwrap();
        let rv = g.upload(&[1.0; 3], &[c]).unwrap();
        let bn = BatchNorm1d::new(&ones, &zeros, &rm, &rv);
        let mut rec = g.recorder();
        let out = bn.train(&mut rec, &x).unwrap();
        let grads = bn.backward(&mut rec, &x, &out, &out.y).unwrap();
        assert_eq!(grads.dx.shape(), &[4, c]);
        let y = bn.eval(&mut rec, &x).unwrap();
        assert_eq!(y.shape(), &[4, c]);
        let one_row = g.upload(&[1.0; 3], &[1, c]).unwrap();
        assert!(matches!(bn.train(&mut rec, &one_row), Err(Error::Shape(_))));
        let wide_x = g.upload(&[1.0; 8], &[2, 4]).unwrap();
        assert!(matches!(bn.eval(&mut rec, &wide_x), Err(Error::Shape(_))));
        let bad = BatchNorm1d {
            momentum: 2.0,
            ..bn
        };
        assert!(matches!(bad.train(&mut rec, &x), Err(Error::Config(_))));
        rec.submit();
        // Training output columns have mean 0.
        let yv = out.y.to_vec().unwrap();
        let m0: f32 = (0..4).map(|r| yv[r * c]).sum();
        assert!(m0.abs() < 1e-5);
    }
}
