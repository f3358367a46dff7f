//! Plain-Rust reference implementations of the kernels, written for clarity, not speed.
//! The GPU kernels are tested against these (design §8).

pub mod adam;
pub mod attention;
pub mod blur;
pub mod conv;
pub mod elementwise;
pub mod norm;
pub mod patch;
pub mod permute;
pub mod random;
pub mod reduce;
pub mod resize;
pub mod softmax;

/// `C = alpha · op(A) · op(B)` for row-major matrices, accumulated in f64.
/// `a` is `m × k` (or `k × m` when `trans_a`), `b` is `k × n` (or `n × k` when `trans_b`).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for l in 0..k {
                let av = if trans_a { a[l * m + i] } else { a[i * k + l] };
                let bv = if trans_b { b[j * k + l] } else { b[l * n + j] };
                s += av as f64 * bv as f64;
            }
            c[i * n + j] = (s * alpha as f64) as f32;
        }
    }
    c
}

/// Exact GELU, `x · Φ(x)`.
pub fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
}

/// `erf` in f64 (Abramowitz–Stegun 7.1.28 is not accurate enough; this uses the
/// complementary-error-function continued expansion from Numerical Recipes, |ε| < 1.2e-7,
/// refined by one Newton step on the series for small |x|).
pub fn erf(x: f64) -> f64 {
    // Series for small |x| (exact to double rounding), erfc continued fraction otherwise.
    if x.abs() < 2.5 {
        let mut sum = x;
        let mut term = x;
        let x2 = x * x;
        let mut n = 0f64;
        loop {
            n += 1.0;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 * sum.abs().max(1e-300) {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // Lentz continued fraction for erfc.
        let ax = x.abs();
        let mut f = ax;
        let mut c = ax;
        let mut d = 0f64;
        for i in 1..200 {
            let an = i as f64 * 0.5;
            d = ax + an * d;
            d = 1.0 / d;
            c = ax + an / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        let erfc = (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt());
        (1.0 - erfc).copysign(x)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.5, -0.966_105_146_475_310_7),
        ] {
            assert!(
                (super::erf(x) - want).abs() < 1e-12,
                "erf({x}) = {} want {want}",
                super::erf(x)
            );
        }
    }
}
