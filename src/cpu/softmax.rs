//! Softmax over the rows of a row-major matrix and its backward pass, in f64 (references for
//! [`crate::kernels::softmax`]).

/// `y = exp(x − max x) / Σ exp(x − max x)` of one row, in f64.
pub fn softmax_row_f64(x: &[f64]) -> Vec<f64> {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// `dx = y ⊙ (dy − Σ dy ⊙ y)` of one row, in f64 (the Jacobian-vector product of softmax).
pub fn softmax_row_backward_f64(y: &[f64], dy: &[f64]) -> Vec<f64> {
    let dot: f64 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
    y.iter().zip(dy).map(|(yi, gi)| yi * (gi - dot)).collect()
}

/// Softmax of each row of `x` (`cols` per row).
pub fn softmax_rows(x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks(cols)
        .flat_map(|row| {
            let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            softmax_row_f64(&row).into_iter().map(|v| v as f32)
        })
        .collect()
}

/// Backward of [`softmax_rows`] given its output `y` and the output gradient `dy`.
pub fn softmax_rows_backward(y: &[f32], dy: &[f32], cols: usize) -> Vec<f32> {
    y.chunks(cols)
        .zip(dy.chunks(cols))
        .flat_map(|(yr, gr)| {
            let yr: Vec<f64> = yr.iter().map(|&v| v as f64).collect();
            let gr: Vec<f64> = gr.iter().map(|&v| v as f64).collect();
            softmax_row_backward_f64(&yr, &gr)
                .into_iter()
                .map(|v| v as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences in f64 with h = 1e-6 on a smooth map of O(1) values: truncation
    /// ~h² and rounding ~1e-16/h, both far below this.
    const TOL_FD: f64 = 1e-8;

    #[test]
    fn backward_matches_finite_differences() {
        let x: Vec<f64> = (0..7).map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.7).collect();
        let w: Vec<f64> = (0..7).map(|i| ((i * 13 % 5) as f64 - 2.0) * 0.3).collect();
        // L(x) = Σ w ⊙ softmax(x), so dL/dx = backward(y, w).
        let loss =
            |x: &[f64]| -> f64 { softmax_row_f64(x).iter().zip(&w).map(|(a, b)| a * b).sum() };
        let y = softmax_row_f64(&x);
        let grad = softmax_row_backward_f64(&y, &w);
        let h = 1e-6;
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (loss(&xp) - loss(&xm)) / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() < TOL_FD,
                "d/dx{i}: analytic {} finite difference {fd}",
                grad[i]
            );
        }
    }

    #[test]
    fn rows_are_distributions_and_shift_invariant() {
        let x = [1.0f32, 2.0, 3.0, 1000.0, 1001.0, 1002.0];
        let y = softmax_rows(&x, 3);
        for i in 0..3 {
            assert!((y[i] - y[i + 3]).abs() < 1e-7, "shift invariance at {i}");
        }
        assert!((y[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
