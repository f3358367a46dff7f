//! Held-out normal views of a shot for setting the pass/fail threshold (design §4): the
//! shot under perturbations the training set never applies — a small shift, a scale
//! change, a slight rotation, a change of brightness and contrast, sensor noise — standing
//! in for the good parts the shots cannot show. The heads never train on them.

use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::image::Image;

/// How strongly [`normal_view`] perturbs a shot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewPerturbation {
    /// Largest shift, as a fraction of the image side (0.06).
    pub max_shift: f64,
    /// Largest relative scale change (0.08: scale in `[0.92, 1.08]`).
    pub max_scale: f64,
    /// Largest rotation in degrees (8).
    pub max_rotation_deg: f64,
    /// Largest relative brightness and contrast change (0.1).
    pub max_lighting: f32,
    /// Standard deviation of the added Gaussian noise, in `[0, 1]` units (0.01).
    pub noise_std: f32,
}

impl Default for ViewPerturbation {
    fn default() -> Self {
        ViewPerturbation {
            max_shift: 0.06,
            max_scale: 0.08,
            max_rotation_deg: 8.0,
            max_lighting: 0.1,
            noise_std: 0.01,
        }
    }
}

/// One perturbed view of `shot` (RGB in `[0, 1]`): an affine warp about the centre with
/// replicated borders (bilinear), then lighting and noise, clamped to `[0, 1]`.
pub fn normal_view<R: Rng + ?Sized>(shot: &Image, p: &ViewPerturbation, rng: &mut R) -> Image {
    let (h, w) = (shot.height, shot.width);
    let mut out = Image::zeros(shot.channels, h, w);
    if h == 0 || w == 0 {
        return out;
    }
    let sym = |rng: &mut R, m: f64| {
        if m > 0.0 {
            rng.random_range(-m..=m)
        } else {
            0.0
        }
    };
    let angle = sym(rng, p.max_rotation_deg).to_radians();
    let scale = 1.0 + sym(rng, p.max_scale);
    let (tx, ty) = (
        sym(rng, p.max_shift) * w as f64,
        sym(rng, p.max_shift) * h as f64,
    );
    let gain = 1.0 + sym(rng, p.max_lighting as f64) as f32;
    let bias = sym(rng, p.max_lighting as f64 / 2.0) as f32;
    let (s, c) = angle.sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let noise = Normal::new(0.0f32, p.noise_std.max(0.0)).ok();
    for y in 0..h {
        for x in 0..w {
            // Inverse map: destination → source.
            let (dx, dy) = (x as f64 - cx - tx, y as f64 - cy - ty);
            let sx = ((c * dx + s * dy) / scale + cx).clamp(0.0, (w - 1) as f64);
            let sy = ((-s * dx + c * dy) / scale + cy).clamp(0.0, (h - 1) as f64);
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = ((sx - x0 as f64) as f32, (sy - y0 as f64) as f32);
            for ch in 0..shot.channels {
                let src = shot.plane(ch);
                let v = (1.0 - fy) * ((1.0 - fx) * src[y0 * w + x0] + fx * src[y0 * w + x1])
                    + fy * ((1.0 - fx) * src[y1 * w + x0] + fx * src[y1 * w + x1]);
                let n = noise.map_or(0.0, |d| d.sample(rng));
                out.plane_mut(ch)[y * w + x] = (gain * (v - 0.5) + 0.5 + bias + n).clamp(0.0, 1.0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn no_perturbation_is_the_identity_and_views_stay_in_range() {
        let data: Vec<f32> = (0..3 * 20 * 30).map(|i| (i % 17) as f32 / 16.0).collect();
        let shot = Image::from_data(3, 20, 30, data).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let none = ViewPerturbation {
            max_shift: 0.0,
            max_scale: 0.0,
            max_rotation_deg: 0.0,
            max_lighting: 0.0,
            noise_std: 0.0,
        };
        let same = normal_view(&shot, &none, &mut rng);
        for (a, b) in same.data.iter().zip(&shot.data) {
            assert!((a - b).abs() < 1e-6);
        }
        let v = normal_view(&shot, &ViewPerturbation::default(), &mut rng);
        assert!(v.same_shape(&shot));
        assert!(v.data.iter().all(|x| (0.0..=1.0).contains(x)));
        assert!(v
            .data
            .iter()
            .zip(&shot.data)
            .any(|(a, b)| (a - b).abs() > 1e-3));
    }
}
