//! Row, column and full reductions of a row-major `[rows, cols]` matrix, accumulated in f64
//! (references for [`crate::kernels::reduce`]).

use crate::kernels::reduce::ReduceOp;

fn reduce(op: ReduceOp, v: &[f32]) -> f32 {
    match op {
        ReduceOp::Sum => v.iter().map(|&x| x as f64).sum::<f64>() as f32,
        ReduceOp::Mean => (v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64) as f32,
        ReduceOp::Max => v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    }
}

/// One value per row.
pub fn reduce_rows(op: ReduceOp, x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks(cols).map(|row| reduce(op, row)).collect()
}

/// One value for all of `x`.
pub fn reduce_all(op: ReduceOp, x: &[f32]) -> f32 {
    reduce(op, x)
}

/// `Σ_r x[r, c]` (or the mean over rows) for each column `c`.
pub fn reduce_cols(x: &[f32], cols: usize, mean: bool) -> Vec<f32> {
    let rows = x.len() / cols;
    let mut acc = vec![0f64; cols];
    for row in x.chunks(cols) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v as f64;
        }
    }
    let div = if mean { rows as f64 } else { 1.0 };
    acc.iter().map(|a| (a / div) as f32).collect()
}
