//! Reference LayerNorm and BatchNorm1d over `[rows, cols]` matrices, in f64.
//!
//! Inputs are f64 so that the backward passes can be checked against finite differences;
//! tests widen their f32 data (exact) before calling these.
//!
//! Semantics are PyTorch's `nn.LayerNorm` (normalise each row over its `cols` values) and
//! `nn.BatchNorm1d` on a `[N, C]` input (normalise each column over the `rows` values), both
//! with the biased variance in the normalisation.

/// Output of a normalisation forward pass: `y` and the statistics saved for backward
/// (per row for LayerNorm, per column for BatchNorm).
#[derive(Debug, Clone)]
pub struct NormOut {
    /// Normalised, scaled and shifted input, same layout as the input.
    pub y: Vec<f64>,
    /// Mean of each normalised group.
    pub mean: Vec<f64>,
    /// `1 / sqrt(biased variance + eps)` of each normalised group.
    pub rstd: Vec<f64>,
}

/// Gradients of a normalisation layer.
#[derive(Debug, Clone)]
pub struct NormGrads {
    /// Gradient of the input.
    pub dx: Vec<f64>,
    /// Gradient of the scale γ.
    pub dgamma: Vec<f64>,
    /// Gradient of the shift β.
    pub dbeta: Vec<f64>,
}

/// LayerNorm forward: `y = (x − mean_r) · rstd_r · γ + β` per row `r`,
/// `rstd_r = 1 / sqrt(var_r + eps)` with the biased variance (PyTorch `nn.LayerNorm`).
pub fn layernorm_forward(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    rows: usize,
    cols: usize,
    eps: f64,
) -> NormOut {
    let mut out = NormOut {
        y: vec![0.0; rows * cols],
        mean: vec![0.0; rows],
        rstd: vec![0.0; rows],
    };
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        out.mean[r] = mean;
        out.rstd[r] = rstd;
        for c in 0..cols {
            out.y[r * cols + c] = (row[c] - mean) * rstd * gamma[c] + beta[c];
        }
    }
    out
}

/// LayerNorm backward from the saved per-row `mean` and `rstd`:
/// `dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂))` with `ĝ = dy · γ` (row means over the
/// `cols` values), `dγ = Σ_rows dy · x̂`, `dβ = Σ_rows dy`.
pub fn layernorm_backward(
    x: &[f64],
    gamma: &[f64],
    mean: &[f64],
    rstd: &[f64],
    dy: &[f64],
    rows: usize,
    cols: usize,
) -> NormGrads {
    let mut g = NormGrads {
        dx: vec![0.0; rows * cols],
        dgamma: vec![0.0; cols],
        dbeta: vec![0.0; cols],
    };
    for r in 0..rows {
        let xhat: Vec<f64> = (0..cols)
            .map(|c| (x[r * cols + c] - mean[r]) * rstd[r])
            .collect();
        let gh: Vec<f64> = (0..cols).map(|c| dy[r * cols + c] * gamma[c]).collect();
        let m1 = gh.iter().sum::<f64>() / cols as f64;
        let m2 = gh.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
        for c in 0..cols {
            g.dx[r * cols + c] = rstd[r] * (gh[c] - m1 - xhat[c] * m2);
            g.dgamma[c] += dy[r * cols + c] * xhat[c];
            g.dbeta[c] += dy[r * cols + c];
        }
    }
    g
}

/// Per-column batch mean and biased variance of a `[rows, cols]` matrix.
fn column_stats(x: &[f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; cols];
    let mut var = vec![0.0; cols];
    for c in 0..cols {
        let m = (0..rows).map(|r| x[r * cols + c]).sum::<f64>() / rows as f64;
        mean[c] = m;
        var[c] = (0..rows)
            .map(|r| (x[r * cols + c] - m).powi(2))
            .sum::<f64>()
            / rows as f64;
    }
    (mean, var)
}

/// BatchNorm1d training forward (PyTorch semantics): normalise each column with the batch
/// mean and the biased batch variance, then update the running statistics in place,
/// `running = (1 − momentum) · running + momentum · stat`, with the *unbiased* variance
/// (`var · rows / (rows − 1)`) for `running_var`. Needs `rows ≥ 2`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_forward(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    rows: usize,
    cols: usize,
    eps: f64,
    momentum: f64,
    running_mean: &mut [f64],
    running_var: &mut [f64],
) -> NormOut {
    let (mean, var) = column_stats(x, rows, cols);
    let rstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let mut y = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            y[r * cols + c] = (x[r * cols + c] - mean[c]) * rstd[c] * gamma[c] + beta[c];
        }
    }
    let unbias = rows as f64 / (rows as f64 - 1.0);
    for c in 0..cols {
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c];
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * var[c] * unbias;
    }
    NormOut { y, mean, rstd }
}

/// BatchNorm1d eval forward: `y = (x − running_mean) / sqrt(running_var + eps) · γ + β`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_eval_forward(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    rows: usize,
    cols: usize,
    eps: f64,
    running_mean: &[f64],
    running_var: &[f64],
) -> Vec<f64> {
    let mut y = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let rstd = 1.0 / (running_var[c] + eps).sqrt();
            y[r * cols + c] = (x[r * cols + c] - running_mean[c]) * rstd * gamma[c] + beta[c];
        }
    }
    y
}

/// BatchNorm1d training backward through the batch statistics (the standard formula):
/// `dβ = Σ_rows dy`, `dγ = Σ_rows dy · x̂`,
/// `dx = γ · rstd / N · (N · dy − dβ − x̂ · dγ)` with `N = rows`.
pub fn batchnorm_backward(
    x: &[f64],
    gamma: &[f64],
    mean: &[f64],
    rstd: &[f64],
    dy: &[f64],
    rows: usize,
    cols: usize,
) -> NormGrads {
    let xhat = |r: usize, c: usize| (x[r * cols + c] - mean[c]) * rstd[c];
    let mut dgamma = vec![0.0; cols];
    let mut dbeta = vec![0.0; cols];
    for r in 0..rows {
        for c in 0..cols {
            dgamma[c] += dy[r * cols + c] * xhat(r, c);
            dbeta[c] += dy[r * cols + c];
        }
    }
    let n = rows as f64;
    let mut dx = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            dx[r * cols + c] =
                gamma[c] * rstd[c] / n * (n * dy[r * cols + c] - dbeta[c] - xhat(r, c) * dgamma[c]);
        }
    }
    NormGrads { dx, dgamma, dbeta }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random_vec;
    use crate::testing::wide;

    /// Central differences with step 1e-6 on f64 functions whose third derivatives are O(1)
    /// leave an error ~1e-12 plus cancellation ~1e-16/1e-6 = 1e-10; 1e-7 relative is far
    /// below any formula error (which is O(1)).
    const FD_TOL: f64 = 1e-7;
    const FD_STEP: f64 = 1e-6;

    /// Relative L2 error between two f64 vectors.
    fn rel(a: &[f64], b: &[f64]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
        let den: f64 = b.iter().map(|y| y * y).sum();
        (num / den).sqrt()
    }

    /// Finite-difference gradient of `f` at `p`.
    fn fd(p: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let mut q = p.to_vec();
        (0..p.len())
            .map(|i| {
                q[i] = p[i] + FD_STEP;
                let up = f(&q);
                q[i] = p[i] - FD_STEP;
                let down = f(&q);
                q[i] = p[i];
                (up - down) / (2.0 * FD_STEP)
            })
            .collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn layernorm_backward_matches_finite_differences() {
        let (rows, cols, eps) = (5, 7, 1e-6);
        let x = wide(&random_vec(rows * cols, 1));
        let gamma: Vec<f64> = wide(&random_vec(cols, 2)).iter().map(|g| 1.0 + g).collect();
        let beta = wide(&random_vec(cols, 3));
        let dy = wide(&random_vec(rows * cols, 4));
        let out = layernorm_forward(&x, &gamma, &beta, rows, cols, eps);
        let g = layernorm_backward(&x, &gamma, &out.mean, &out.rstd, &dy, rows, cols);
        let loss = |x: &[f64], ga: &[f64], be: &[f64]| {
            dot(&layernorm_forward(x, ga, be, rows, cols, eps).y, &dy)
        };
        assert!(rel(&g.dx, &fd(&x, |v| loss(v, &gamma, &beta))) < FD_TOL);
        assert!(rel(&g.dgamma, &fd(&gamma, |v| loss(&x, v, &beta))) < FD_TOL);
        assert!(rel(&g.dbeta, &fd(&beta, |v| loss(&x, &gamma, v))) < FD_TOL);
    }

    #[test]
    fn layernorm_rows_are_standardised() {
        let (rows, cols) = (3, 11);
        let x = wide(&random_vec(rows * cols, 5));
        let out = layernorm_forward(&x, &vec![1.0; cols], &vec![0.0; cols], rows, cols, 0.0);
        for r in 0..rows {
            let row = &out.y[r * cols..(r + 1) * cols];
            let m: f64 = row.iter().sum::<f64>() / cols as f64;
            let v: f64 = row.iter().map(|y| y * y).sum::<f64>() / cols as f64;
            assert!(
                m.abs() < 1e-12 && (v - 1.0).abs() < 1e-12,
                "row {r}: {m} {v}"
            );
        }
    }

    #[test]
    fn batchnorm_backward_matches_finite_differences() {
        let (rows, cols, eps) = (6, 4, 1e-5);
        let x = wide(&random_vec(rows * cols, 6));
        let gamma: Vec<f64> = wide(&random_vec(cols, 7)).iter().map(|g| 1.0 + g).collect();
        let beta = wide(&random_vec(cols, 8));
        let dy = wide(&random_vec(rows * cols, 9));
        let fwd = |x: &[f64], ga: &[f64], be: &[f64]| {
            let (mut rm, mut rv) = (vec![0.0; cols], vec![1.0; cols]);
            batchnorm_train_forward(x, ga, be, rows, cols, eps, 0.1, &mut rm, &mut rv)
        };
        let out = fwd(&x, &gamma, &beta);
        let g = batchnorm_backward(&x, &gamma, &out.mean, &out.rstd, &dy, rows, cols);
        let loss = |x: &[f64], ga: &[f64], be: &[f64]| dot(&fwd(x, ga, be).y, &dy);
        assert!(rel(&g.dx, &fd(&x, |v| loss(v, &gamma, &beta))) < FD_TOL);
        assert!(rel(&g.dgamma, &fd(&gamma, |v| loss(&x, v, &beta))) < FD_TOL);
        assert!(rel(&g.dbeta, &fd(&beta, |v| loss(&x, &gamma, v))) < FD_TOL);
    }

    #[test]
    fn batchnorm_running_stats_use_unbiased_variance() {
        // Column 0 holds 1, 2, 3, 4: mean 2.5, biased var 1.25, unbiased var 5/3.
        let x = [1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0];
        let (mut rm, mut rv) = (vec![1.0, 1.0], vec![2.0, 2.0]);
        let out = batchnorm_train_forward(
            &x,
            &[1.0, 1.0],
            &[0.0, 0.0],
            4,
            2,
            0.0,
            0.1,
            &mut rm,
            &mut rv,
        );
        assert!((rm[0] - (0.9 + 0.25)).abs() < 1e-15);
        assert!((rv[0] - (1.8 + 0.1 * 5.0 / 3.0)).abs() < 1e-15);
        assert!((rm[1] - 0.9).abs() < 1e-15 && (rv[1] - 1.8).abs() < 1e-15);
        assert!((out.rstd[0] - 1.0 / 1.25f64.sqrt()).abs() < 1e-15);
        let y = batchnorm_eval_forward(&x, &[2.0, 1.0], &[0.5, 0.0], 4, 2, 0.0, &rm, &rv);
        assert!((y[0] - ((1.0 - rm[0]) / rv[0].sqrt() * 2.0 + 0.5)).abs() < 1e-15);
    }
}
