//! Row, column and full reductions of row-major matrices (`shaders/reduce.wgsl`).
//!
//! A tensor of shape `[.., C]` is seen as a matrix `[R, C]` with `R` the product of the
//! leading dimensions. All reductions accumulate in f32 in a fixed order (deterministic, no
//! float atomics):
//! - rows (`[R, C] → [R]`): one workgroup per row with a workgroup tree; rows longer than a
//!   segment are cut into segments reduced in parallel, then the `[R, segments]` partials
//!   are reduced again, so a single row of a million elements still fills the GPU;
//! - columns (`[R, C] → [C]`, bias gradients): each workgroup sums a 64-column strip over a
//!   block of rows into a partial row; the `[blocks, C]` partials are summed again;
//! - everything (`→ [1]`): a row reduction of the flat data.
//!
//! Inputs larger than one storage binding are processed in pieces of whole segments / row
//! blocks.

use super::{check_distinct, check_float};
use crate::gpu::{Access, DType, Recorder, ShaderSource, Tensor};
use crate::{Error, Result};

const SHADER: &str = include_str!("../../shaders/reduce.wgsl");

/// Invocations per workgroup.
const WG: u32 = 256;
/// Rows up to this long are reduced by one workgroup each, in one pass.
const ROW_SINGLE: usize = 8192;
/// Segment length of longer rows (16 elements per invocation).
const ROW_SEGMENT: usize = 4096;
/// Rows per block of the column sum (64 per lane of 4).
const COL_BLOCK: usize = 256;

/// What a reduction computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
}

super::uniform! {
pub(super) struct Params {
    units: u32,
    cols: u32,
    seg_len: u32,
    nseg: u32,
    off_x: u32,
    off_out: u32,
    unit0: u32,
    x_base: u32,
    scale: f32,
    pad: [u32; 3],
}
}

fn kernel_source(entry: &'static str, max: bool, x: &Tensor) -> ShaderSource<'static> {
    source(entry, max, x.dtype())
}

fn source(entry: &'static str, max: bool, dtype: DType) -> ShaderSource<'static> {
    let src = ShaderSource::new("reduce", SHADER)
        .entry(entry)
        .define("T", dtype.wgsl())
        .define("OP", if max { 1 } else { 0 })
        .storage(&[Access::Read, Access::ReadWrite]);
    super::with_f16_enable(src, dtype)
}

/// `(rows, cols)` of `x` seen as a matrix over its last dimension.
fn matrix_dims(what: &str, x: &Tensor) -> Result<(usize, usize)> {
    check_float(what, x)?;
    let cols = x.shape().last().copied().unwrap_or(1);
    if cols == 0 || x.numel() == 0 {
        return Err(Error::Shape(format!(
            "{what}: empty tensor {:?}",
            x.shape()
        )));
    }
    Ok((x.numel() / cols, cols))
}

fn check_out(what: &str, x: &Tensor, out: &Tensor, len: usize) -> Result<()> {
    if out.numel() != len || out.dtype() != x.dtype() {
        return Err(Error::Shape(format!(
            "{what}: output {:?} {:?} should hold {len} {:?} values",
            out.shape(),
            out.dtype(),
            x.dtype()
        )));
    }
    check_distinct(what, out, &[x])
}

/// Reduces each row of `x` (`[.., C]`, seen as `[R, C]`) into `out` (`R` elements, e.g.
/// shape `[..]` or `[R, 1]`).
pub fn reduce_rows(rec: &mut Recorder, op: ReduceOp, x: &Tensor, out: &Tensor) -> Result<()> {
    let limit = rec.max_binding_elems(x.dtype());
    let (rows, cols) = matrix_dims("reduce_rows", x)?;
    check_out("reduce_rows", x, out, rows)?;
    rows_pass(rec, op, x, rows, cols, out, limit)
}

/// Reduces all elements of `x` into `out` (one element, e.g. shape `[1]`).
pub fn reduce_all(rec: &mut Recorder, op: ReduceOp, x: &Tensor, out: &Tensor) -> Result<()> {
    let limit = rec.max_binding_elems(x.dtype());
    matrix_dims("reduce_all", x)?;
    check_out("reduce_all", x, out, 1)?;
    rows_pass(rec, op, x, 1, x.numel(), out, limit)
}

/// One level of the row reduction; recurses on the partials of segmented rows.
fn rows_pass(
    rec: &mut Recorder,
    op: ReduceOp,
    x: &Tensor,
    rows: usize,
    cols: usize,
    out: &Tensor,
    limit: usize,
) -> Result<()> {
    let (seg_len, nseg) = if cols <= ROW_SINGLE.min(limit) {
        (cols, 1)
    } else {
        let seg = ROW_SEGMENT.min(limit);
        (seg, cols.div_ceil(seg))
    };
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&kernel_source("rows", op == ReduceOp::Max, x))?;
    let single = nseg == 1;
    // Partials of a segmented row are raw sums / maxima; the mean's 1/C comes last.
    let scale = if single && op == ReduceOp::Mean {
        1.0 / cols as f32
    } else {
        1.0
    };
    let partial = if single {
        out.clone()
    } else {
        gpu.empty(&[rows, nseg], x.dtype())
    };
    let units = rows * nseg;
    // Element where unit u starts; k consecutive units span at most k · seg_len elements.
    let start_of = |u: usize| (u / nseg) * cols + (u % nseg) * seg_len;
    let per_piece = (limit / seg_len).max(1);
    let mut u0 = 0;
    while u0 < units {
        let u1 = (u0 + per_piece).min(units);
        let (e0, e1) = (
            start_of(u0),
            if u1 == units {
                rows * cols
            } else {
                start_of(u1)
            },
        );
        let (xb, off_x) = x.bind_elems(e0, e1 - e0);
        let (ob, off_out) = partial.bind_elems(u0, u1 - u0);
        let params = Params {
            units: (u1 - u0) as u32,
            cols: cols as u32,
            seg_len: seg_len as u32,
            nseg: nseg as u32,
            off_x,
            off_out,
            unit0: u0 as u32,
            x_base: e0 as u32,
            scale,
            pad: [0; 3],
        };
        rec.dispatch(
            &kernel,
            &params,
            &[xb, ob],
            super::grid_1d((u1 - u0) * WG as usize, WG),
        )?;
        u0 = u1;
    }
    if single {
        return Ok(());
    }
    // Second level: the [rows, nseg] partials, with the mean's scale folded in.
    let (next_op, rescale) = match op {
        ReduceOp::Mean => (ReduceOp::Sum, Some(1.0 / cols as f32)),
        _ => (op, None),
    };
    match rescale {
        None => rows_pass(rec, next_op, &partial, rows, nseg, out, limit),
        Some(s) => {
            let sums = gpu.empty(&[rows], x.dtype());
            rows_pass(rec, next_op, &partial, rows, nseg, &sums, limit)?;
            super::elementwise::scale(rec, s, &sums, &out.reshape(&[rows])?)
        }
    }
}

/// `out[c] = Σ_r x[r, c]` for `x` `[.., C]` seen as `[R, C]`; `out` holds `C` values
/// (bias gradients of a `Linear` layer).
pub fn sum_cols(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    cols(rec, x, out, false)
}

/// `out[c] = (1/R) Σ_r x[r, c]`, like [`sum_cols`].
pub fn mean_cols(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    cols(rec, x, out, true)
}

/// [`sum_cols`] or [`mean_cols`].
fn cols(rec: &mut Recorder, x: &Tensor, out: &Tensor, mean: bool) -> Result<()> {
    let limit = rec.max_binding_elems(x.dtype());
    let (rows, cols) = matrix_dims("sum_cols", x)?;
    check_out("sum_cols", x, out, cols)?;
    let scale = if mean { 1.0 / rows as f32 } else { 1.0 };
    cols_pass(rec, x, rows, cols, out, scale, limit)
}

/// One level of the column sum; recurses on the `[blocks, C]` partials.
fn cols_pass(
    rec: &mut Recorder,
    x: &Tensor,
    rows: usize,
    cols: usize,
    out: &Tensor,
    scale: f32,
    limit: usize,
) -> Result<()> {
    if cols > limit {
        return Err(Error::Shape(format!(
            "sum_cols: a row of {cols} elements exceeds one storage binding"
        )));
    }
    let block = COL_BLOCK.min(limit / cols);
    let blocks = rows.div_ceil(block);
    let single = blocks == 1;
    let gpu = rec.gpu().clone();
    let kernel = gpu.kernel(&kernel_source("cols", false, x))?;
    let partial = if single {
        out.clone()
    } else {
        gpu.empty(&[blocks, cols], x.dtype())
    };
    let strips = cols.div_ceil(64);
    let per_piece = (limit / (block * cols)).max(1);
    let mut b0 = 0;
    while b0 < blocks {
        let b1 = (b0 + per_piece).min(blocks);
        let (r0, r1) = (b0 * block, (b1 * block).min(rows));
        let (xb, off_x) = x.bind_elems(r0 * cols, (r1 - r0) * cols);
        let (ob, off_out) = partial.bind_elems(b0 * cols, (b1 - b0) * cols);
        let params = Params {
            units: (b1 - b0) as u32,
            cols: cols as u32,
            seg_len: block as u32,
            nseg: (r1 - r0) as u32,
            off_x,
            off_out,
            unit0: 0,
            x_base: 0,
            scale: if single { scale } else { 1.0 },
            pad: [0; 3],
        };
        let groups = (b1 - b0) * strips;
        rec.dispatch(
            &kernel,
            &params,
            &[xb, ob],
            super::grid_1d(groups * WG as usize, WG),
        )?;
        b0 = b1;
    }
    if single {
        return Ok(());
    }
    cols_pass(rec, &partial, blocks, cols, out, scale, limit)
}

/// Every variant of this module's kernels the library can build on `device` (see
/// [`super::shader_variants`]).
#[doc(hidden)]
pub fn shader_variants(device: &super::DeviceDesc) -> Vec<ShaderSource<'static>> {
    let mut out = Vec::new();
    for dtype in super::float_types(device) {
        for max in [false, true] {
            out.push(source("rows", max, dtype));
        }
        out.push(source("cols", false, dtype));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reduce as cpu;
    use crate::gpu::DType;
    use crate::testing::{assert_close, gpu, random_vec};

    /// f32 accumulation of up to 7e4 terms (strided partial sums, then a tree) against an
    /// f64 sum: ≤ 2e-7 relative L2 on lavapipe; the pairwise-like order keeps it well under
    /// this on any device. An indexing error gives O(1).
    const TOL_SUM: f64 = 2e-6;
    /// An odd binding limit (elements) for the split paths: pieces start at unaligned
    /// elements, and long rows become segments of this length.
    const SPLIT: usize = 999;

    const OPS: [ReduceOp; 3] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max];

    fn check_rows(op: ReduceOp, rows: usize, cols: usize, limit: Option<usize>) {
        let g = gpu();
        let x = random_vec(rows * cols, (rows * 31 + cols) as u64);
        let want = cpu::reduce_rows(op, &x, cols);
        let xt = g.upload(&x, &[rows, cols]).unwrap();
        let out = g.empty(&[rows], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(limit);
        reduce_rows(&mut rec, op, &xt, &out).unwrap();
        if limit.is_some() {
            assert!(rec.dispatch_count() > 2, "the split path was not taken");
        }
        rec.submit();
        let got = out.to_vec().unwrap();
        let what = format!("{op:?} rows of [{rows}, {cols}] limit={limit:?}");
        if op == ReduceOp::Max {
            assert_eq!(got, want, "{what}");
        } else {
            assert_close(&what, &got, &want, TOL_SUM);
        }
    }

    #[test]
    fn row_reductions_match_cpu() {
        for op in OPS {
            for (r, c) in [
                (1, 1),
                (3, 255),
                (7, 257),
                (5, 1000),
                (2, 8192),  // longest single-pass row
                (3, 20001), // segmented, ragged last segment
                (1, 70001),
            ] {
                check_rows(op, r, c, None);
            }
            check_rows(op, 37, 101, Some(SPLIT)); // pieces of whole rows
            check_rows(op, 3, 5000, Some(SPLIT)); // segments of the split length
        }
    }

    #[test]
    fn full_reductions_match_cpu() {
        let g = gpu();
        for (n, limit) in [(1, None), (300, None), (70001, None), (20000, Some(SPLIT))] {
            // Shifted so that the maximum is negative (checks the −∞ identity).
            let x: Vec<f32> = random_vec(n, n as u64).iter().map(|v| v - 2.0).collect();
            let xt = g.upload(&x, &[n]).unwrap();
            for op in OPS {
                let out = g.empty(&[1], DType::F32);
                let mut rec = g.recorder();
                rec.limit_bindings(limit);
                reduce_all(&mut rec, op, &xt, &out).unwrap();
                rec.submit();
                let got = out.to_vec().unwrap();
                let want = [cpu::reduce_all(op, &x)];
                let what = format!("{op:?} of {n} limit={limit:?}");
                if op == ReduceOp::Max {
                    assert_eq!(got, want, "{what}");
                } else {
                    assert_close(&what, &got, &want, TOL_SUM);
                }
            }
        }
    }

    fn check_cols(rows: usize, cols: usize, mean: bool, limit: Option<usize>) {
        let g = gpu();
        let x = random_vec(rows * cols, (rows * 7 + cols) as u64);
        let want = cpu::reduce_cols(&x, cols, mean);
        let xt = g.upload(&x, &[rows, cols]).unwrap();
        let out = g.empty(&[cols], DType::F32);
        let mut rec = g.recorder();
        rec.limit_bindings(limit);
        super::cols(&mut rec, &xt, &out, mean).unwrap();
        if limit.is_some() {
            assert!(rec.dispatch_count() > 2, "the split path was not taken");
        }
        rec.submit();
        assert_close(
            &format!(
                "column {} of [{rows}, {cols}] limit={limit:?}",
                if mean { "mean" } else { "sum" }
            ),
            &out.to_vec().unwrap(),
            &want,
            TOL_SUM,
        );
    }

    #[test]
    fn column_sums_match_cpu() {
        for mean in [false, true] {
            for (r, c) in [
                (1, 1),
                (1, 70),
                (256, 64),
                (300, 65),
                (1000, 129),
                (2100, 3),
            ] {
                check_cols(r, c, mean, None);
            }
            check_cols(41, 37, mean, Some(SPLIT)); // blocks of 27 rows, one per piece
            check_cols(300, 65, mean, Some(SPLIT)); // three levels of partials
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let g = gpu();
        let x = g.zeros(&[4, 3], DType::F32);
        let mut rec = g.recorder();
        let wrong = g.empty(&[3], DType::F32);
        assert!(matches!(
            reduce_rows(&mut rec, ReduceOp::Sum, &x, &wrong),
            Err(Error::Shape(_))
        ));
        let wrong = g.empty(&[4], DType::F32);
        assert!(matches!(
            sum_cols(&mut rec, &x, &wrong),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            reduce_all(&mut rec, ReduceOp::Max, &x, &wrong),
            Err(Error::Shape(_))
        ));
        let empty = g.zeros(&[0, 3], DType::F32);
        let one = g.empty(&[1], DType::F32);
        assert!(matches!(
            reduce_all(&mut rec, ReduceOp::Sum, &empty, &one),
            Err(Error::Shape(_))
        ));
        let u = g.zeros(&[4], DType::U32);
        assert!(matches!(
            reduce_all(&mut rec, ReduceOp::Sum, &u, &one),
            Err(Error::Shape(_))
        ));
        assert_eq!(rec.dispatch_count(), 0);
    }
}
