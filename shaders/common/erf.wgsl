// erf(x) in f32, shared by every kernel that needs exact GELU (pasted in by the ERF define).
fn erf_approx(x: f32) -> f32 {
    // Abramowitz–Stegun 7.1.26 is too coarse for gradients; use a rational approximation
    // with max abs error ~1.2e-7 (W. J. Cody style), evaluated in f32.
    let t = 1.0 / (1.0 + 0.5 * abs(x));
    let y = 1.0 - t * exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277)))))))));
    return select(-y, y, x >= 0.0);
}
