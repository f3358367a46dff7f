//! Helpers shared by the crate's tests, benchmarks and examples: the shared GPU context,
//! seeded random data and the error measure every comparison uses.

use crate::gpu::Gpu;

/// The process-wide GPU context (one device for all tests of a binary).
///
/// # Panics
/// When no adapter exists; the message says how to install one.
pub fn gpu() -> Gpu {
    match Gpu::shared() {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    }
}

/// `n` values uniform in `[-1, 1)` from a seeded generator.
pub fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

/// A `c × h × w` image of deterministic, non-periodic values in `[0, 1]` (a ramp modulo a
/// prime), for tests that need every pixel to differ from its neighbours.
///
/// # Panics
/// When a side is zero.
pub fn ramp_image(c: usize, h: usize, w: usize) -> crate::Image {
    let data = (0..c * h * w)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    match crate::Image::from_data(c, h, w, data) {
        Ok(img) => img,
        Err(e) => panic!("{e}"),
    }
}

/// Relative L2 error `‖got − want‖ / ‖want‖` (absolute when `want` is all zeros).
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        num += (*g as f64 - *w as f64).powi(2);
        den += (*w as f64).powi(2);
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Asserts `rel_l2(got, want) <= tol`, naming the check and showing the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let err = rel_l2(got, want);
    let non_finite = got.iter().any(|x| !x.is_finite());
    if err > tol || non_finite || err.is_nan() {
        let (i, d) = got
            .iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs())
            .enumerate()
            .fold((0, 0f32), |acc, (i, d)| {
                if d > acc.1 || d.is_nan() {
                    (i, d)
                } else {
                    acc
                }
            });
        panic!(
            "{what}: relative L2 error {err:.3e} > {tol:.1e} (worst at {i}: got {} want {}, |diff| {d})",
            got[i], want[i]
        );
    }
}

/// Widens f32 values to f64 (inputs of the f64 CPU references).
pub fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Narrows f64 values to f32 (CPU-reference results compared with GPU output).
pub fn narrow(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}
