//! DRAEM-style Perlin noise masks (design §2).
//!
//! Gradient noise on a lattice of `2^a × 2^b` cells (`a, b ~ U{0..5}` independently, `a` along
//! rows), unit gradients at random angles `U(0, 2π)`, fade `6t⁵ − 15t⁴ + 10t³`, scaled by `√2`
//! (so values lie in `[−1, 1]`), rotated by `U(−90°, 90°)` with a zero border, and
//! thresholded at `0.5`. The formula is the one of DRAEM's `rand_perlin_2d_np`; for sizes not
//! divisible by the lattice it generalises naturally (pixel `i` sits at lattice coordinate
//! `i · res / size`).

use rand::Rng;

use crate::image::{rotate, Image};

/// Parameters of the Perlin mask draw.
#[derive(Clone, Debug, PartialEq)]
pub struct PerlinConfig {
    /// Smallest lattice exponent (`2^min` cells), reference: 0.
    pub min_scale_exp: u32,
    /// Largest lattice exponent, inclusive (reference: `torch.randint(0, 6)` → 5).
    pub max_scale_exp: u32,
    /// Threshold on the rotated noise (reference: 0.5).
    pub threshold: f32,
    /// The noise is rotated by `U(−max, max)` degrees (reference: 90).
    pub max_rotation_deg: f64,
}

impl Default for PerlinConfig {
    fn default() -> Self {
        PerlinConfig {
            min_scale_exp: 0,
            max_scale_exp: 5,
            threshold: 0.5,
            max_rotation_deg: 90.0,
        }
    }
}

fn fade(t: f64) -> f64 {
    t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
}

/// DRAEM's Perlin formula for given lattice angles: `angles` has `(res.0 + 1) × (res.1 + 1)`
/// values (row-major), `res.0` cells along the rows (height), `res.1` along the columns.
/// Returns `height × width` values in `[−1, 1]`.
///
/// Returns `None` when `angles` has the wrong length or a lattice size is zero.
pub fn perlin_with_angles(
    height: usize,
    width: usize,
    res: (usize, usize),
    angles: &[f64],
) -> Option<Vec<f64>> {
    let (r0, r1) = res;
    if r0 == 0 || r1 == 0 || angles.len() != (r0 + 1) * (r1 + 1) {
        return None;
    }
    let grads: Vec<(f64, f64)> = angles.iter().map(|a| (a.cos(), a.sin())).collect();
    let g = |i: usize, j: usize| grads[i * (r1 + 1) + j];
    let axis = |n: usize, r: usize| -> Vec<(usize, f64)> {
        (0..n)
            .map(|i| {
                let p = i as f64 * r as f64 / n as f64;
                let c = (p.floor() as usize).min(r - 1);
                (c, p - c as f64)
            })
            .collect()
    };
    let (ys, xs) = (axis(height, r0), axis(width, r1));
    let mut out = Vec::with_capacity(height * width);
    for &(cy, fy) in &ys {
        let ty = fade(fy);
        for &(cx, fx) in &xs {
            let tx = fade(fx);
            let dot = |(a, b): (f64, f64), sy: f64, sx: f64| (fy + sy) * a + (fx + sx) * b;
            let n00 = dot(g(cy, cx), 0.0, 0.0);
            let n10 = dot(g(cy + 1, cx), -1.0, 0.0);
            let n01 = dot(g(cy, cx + 1), 0.0, -1.0);
            let n11 = dot(g(cy + 1, cx + 1), -1.0, -1.0);
            let n0 = n00 + (n10 - n00) * ty;
            let n1 = n01 + (n11 - n01) * ty;
            out.push(std::f64::consts::SQRT_2 * (n0 + (n1 - n0) * tx));
        }
    }
    Some(out)
}

/// Perlin noise with random lattice angles (`U(0, 2π)`), as a `1 × height × width` image.
/// Lattice sizes of zero are treated as one cell.
pub fn rand_perlin<R: Rng + ?Sized>(
    height: usize,
    width: usize,
    res: (usize, usize),
    rng: &mut R,
) -> Image {
    let res = (res.0.max(1), res.1.max(1));
    let angles: Vec<f64> = (0..(res.0 + 1) * (res.1 + 1))
        .map(|_| rng.random::<f64>() * std::f64::consts::TAU)
        .collect();
    let v = perlin_with_angles(height, width, res, &angles).unwrap_or_default();
    Image {
        channels: 1,
        height,
        width,
        data: v.into_iter().map(|x| x as f32).collect(),
    }
}

/// Draws the lattice size `(2^a, 2^b)` with `a, b ~ U{min..=max}` independently.
pub fn draw_scale<R: Rng + ?Sized>(cfg: &PerlinConfig, rng: &mut R) -> (usize, usize) {
    let hi = cfg.max_scale_exp.max(cfg.min_scale_exp);
    let a = rng.random_range(cfg.min_scale_exp..=hi);
    let b = rng.random_range(cfg.min_scale_exp..=hi);
    (1usize << a, 1usize << b)
}

/// The Perlin mask `M_p` of design §2: random lattice, noise, rotation `U(−max, max)` (zero
/// border, bilinear), `> threshold` → 1. Returns a `1 × height × width` 0/1 image.
pub fn perlin_mask<R: Rng + ?Sized>(
    height: usize,
    width: usize,
    cfg: &PerlinConfig,
    rng: &mut R,
) -> Image {
    let res = draw_scale(cfg, rng);
    let noise = rand_perlin(height, width, res, rng);
    let angle = if cfg.max_rotation_deg > 0.0 {
        rng.random_range(-cfg.max_rotation_deg..=cfg.max_rotation_deg)
    } else {
        0.0
    };
    let mut rotated = rotate(&noise, angle, &[0.0]);
    for v in rotated.data.iter_mut() {
        *v = if *v > cfg.threshold { 1.0 } else { 0.0 };
    }
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn noise_is_bounded_and_zero_on_lattice_points() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for res in [(1, 1), (4, 2), (32, 32)] {
            let n = rand_perlin(64, 64, res, &mut rng);
            assert!(n.data.iter().all(|v| v.abs() <= 1.0 + 1e-6));
            let (dy, dx) = (64 / res.0, 64 / res.1);
            for y in (0..64).step_by(dy) {
                for x in (0..64).step_by(dx) {
                    assert!(n.get(0, y, x).abs() < 1e-6, "{res:?} ({y},{x})");
                }
            }
        }
    }

    #[test]
    fn mask_is_binary_and_seeded() {
        let cfg = PerlinConfig::default();
        let a = perlin_mask(48, 40, &cfg, &mut ChaCha8Rng::seed_from_u64(9));
        let b = perlin_mask(48, 40, &cfg, &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(a, b);
        assert!(a.data.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_eq!((a.channels, a.height, a.width), (1, 48, 40));
    }

    #[test]
    fn scales_cover_the_range() {
        let cfg = PerlinConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let (a, b) = draw_scale(&cfg, &mut rng);
            seen.insert(a);
            seen.insert(b);
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            vec![1, 2, 4, 8, 16, 32]
        );
    }

    #[test]
    fn wrong_angle_count_is_rejected() {
        assert!(perlin_with_angles(8, 8, (2, 2), &[0.0; 8]).is_none());
        assert!(perlin_with_angles(8, 8, (0, 2), &[]).is_none());
    }
}
