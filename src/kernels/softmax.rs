//! Softmax over the last dimension and its backward pass (`shaders/softmax.wgsl`).
//!
//! A tensor `[.., C]` is seen as `[R, C]`; each row is normalised by one workgroup
//! (numerically stable: `exp(x − max)`, with the max and the sum found in one read pass).
//! The backward is `dx = y ⊙ (dy − rowsum(dy ⊙ y))` (`torch._softmax_backward_data`).
//! Tensors larger than one storage binding are processed in pieces of whole rows.

use super::{check_distinct, check_float, check_same};
use crate::gpu::{Access, BindRange, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/softmax.wgsl");

/// Invocations per workgroup (one workgroup per row).
const WG: u32 = 256;

super::uniform! {
pub(super) struct Params {
    rows: u32,
    cols: u32,
    off_x: u32,
    off_y: u32,
    off_dy: u32,
    pad: [u32; 3],
}
}

/// `y = softmax(x)` over the last dimension; `x` and `y` have one shape.
pub fn softmax(rec: &mut Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    let limit = rec.max_binding_elems(x.dtype());
    check_float("softmax", x)?;
    check_same("softmax", x, y)?;
    check_distinct("softmax", y, &[x])?;
    run(rec, "forward", x, y, None, limit)
}

/// `dx = y ⊙ (dy − rowsum(dy ⊙ y))`, the gradient of [`softmax`] given its output `y` and
/// the output gradient `dy`; all three have one shape.
pub fn softmax_backward(rec: &mut Recorder, y: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<()> {
    let limit = rec.max_binding_elems(y.dtype());
    check_float("softmax_backward", y)?;
    check_same("softmax_backward", y, dy)?;
    check_same("softmax_backward", y, dx)?;
    check_distinct("softmax_backward", dx, &[y, dy])?;
    run(rec, "backward", y, dx, Some(dy), limit)
}

fn run(
    rec: &mut Recorder,
    entry: &'static str,
    x: &Tensor,
    y: &Tensor,
    dy: Option<&Tensor>,
    limit: usize,
) -> Result<()> {
    let cols = x.shape().last().copied().unwrap_or(1);
    if x.numel() == 0 {
        return Ok(());
    }
    if cols > limit {
        return Err(Error::Shape(format!(
            "softmax: a row of {cols} elements exceeds one storage binding"
        )));
    }
    let rows = x.numel() / cols;
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&source(entry, x.dtype(), dy.is_some()))?;
    let per_piece = limit / cols;
    let mut r0 = 0;
    while r0 < rows {
        let r1 = (r0 + per_piece).min(rows);
        let (start, len) = (r0 * cols, (r1 - r0) * cols);
        let (xb, off_x) = x.bind_elems(start, len);
        let (yb, off_y) = y.bind_elems(start, len);
        let (db, off_dy) = match dy {
            Some(d) => d.bind_elems(start, len),
            None => (BindRange::unused(), 0),
        };
        let mut binds = vec![xb, yb];
        if dy.is_some() {
            binds.push(db);
        }
        let params = Params {
            rows: (r1 - r0) as u32,
            cols: cols as u32,
            off_x,
            off_y,
            off_dy,
            pad: [0; 3],
        };
        rec.dispatch(
            &kernel,
            &params,
            &binds,
            super::grid_1d((r1 - r0) * WG as usize, WG),
        )?;
        r0 = r1;
    }
    Ok(())
}

/// Entry point `entry` on `dtype` rows, with the gradient binding or not.
fn source(entry: &'static str, dtype: DType, with_dy: bool) -> ShaderSource<'static> {
    let mut storage = vec![Access::Read, Access::ReadWrite];
    if with_dy {
        storage.push(Access::Read);
    }
    let src = ShaderSource::new("softmax", SHADER)
        .entry(entry)
        .define("T", dtype.wgsl())
        .storage(&storage);
    super::with_f16_enable(src, dtype)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut out = Vec::new();
    for dtype in super::float_types(device) {
        out.push(source("forward", dtype, false));
        out.push(source("backward", dtype, true));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::softmax as cpu;
    use crate::gpu::DType;
    use crate::testing::{assert_close, gpu, random_vec};

    /// exp in f32 (a few ulp) and f32 sums over ≤ 3000 terms against f64: ≤ 3e-7 relative
    /// on lavapipe, forward and backward; an indexing error gives O(1).
    const TOL: f64 = 2e-6;
    /// An odd binding limit (elements) for the split path.
    const SPLIT: usize = 999;

    fn check(rows: usize, cols: usize, limit: Option<usize>) {
        let g = gpu();
        let mut x: Vec<f32> = random_vec(rows * cols, (rows * 13 + cols) as u64)
            .iter()
            .map(|v| v * 8.0)
            .collect();
        // A shifted row (stability) and masked entries (−∞ contributes 0).
        if rows > 1 {
            x[cols..2 * cols].iter_mut().for_each(|v| *v += 1000.0);
        }
        if cols > 2 {
            x[0] = f32::NEG_INFINITY;
            x[cols - 1] = f32::NEG_INFINITY;
        }
        let dy = random_vec(rows * cols, 99 + cols as u64);
        let y_want = cpu::softmax_rows(&x, cols);
        let dx_want = cpu::softmax_rows_backward(&y_want, &dy, cols);
        let xt = g.upload(&x, &[rows, cols]).unwrap();
        let yt = g.empty(&[rows, cols], DType::F32);
        let y_ref = g.upload(&y_want, &[rows, cols]).unwrap();
        let dyt = g.upload(&dy, &[rows, cols]).unwrap();
        let dxt = g.empty(&[rows, cols], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(limit);
        softmax(&mut rec, &xt, &yt).unwrap();
        softmax_backward(&mut rec, &y_ref, &dyt, &dxt).unwrap();
        if limit.is_some() {
            assert!(rec.dispatch_count() > 2, "the split path was not taken");
        }
        rec.submit();
        let what = format!("softmax [{rows}, {cols}] limit={limit:?}");
        assert_close(
            &format!("{what} forward"),
            &yt.to_vec().unwrap(),
            &y_want,
            TOL,
        );
        assert_close(
            &format!("{what} backward"),
            &dxt.to_vec().unwrap(),
            &dx_want,
            TOL,
        );
    }

    #[test]
    fn forward_and_backward_match_cpu() {
        for (r, c) in [(1, 1), (3, 7), (5, 256), (4, 257), (2, 1025), (3, 3000)] {
            check(r, c, None);
        }
        check(20, 101, Some(SPLIT));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let g = gpu();
        let x = g.zeros(&[4, 3], DType::F32);
        let y = g.zeros(&[3, 4], DType::F32);
        let mut rec = g.recorder();
        assert!(matches!(softmax(&mut rec, &x, &y), Err(Error::Shape(_))));
        assert!(matches!(softmax(&mut rec, &x, &x), Err(Error::Shape(_))));
        assert!(matches!(
            softmax_backward(&mut rec, &x, &x, &x),
            Err(Error::Shape(_))
        ));
        assert_eq!(rec.dispatch_count(), 0);
    }
}
