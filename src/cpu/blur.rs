//! Reference separable 2-D filtering and scipy's Gaussian kernel, in f64.

use crate::kernels::blur::Border;

/// scipy.ndimage's Gaussian kernel in f64 (the production computation,
/// [`crate::kernels::blur`]'s, which rounds it to f32). `sigma` must be positive.
pub fn gaussian_kernel_1d(sigma: f64, truncate: f64) -> Vec<f64> {
    crate::kernels::blur::gaussian_taps_f64(sigma, truncate)
}

/// Source index of `i` (possibly outside `0..n`) under a border mode; `None` reads zero.
/// `Reflect` is scipy's half-sample symmetric `d c b a | a b c d | d c b a`, repeated for
/// any distance: `m = i mod 2n`, then `m` if `m < n` else `2n − 1 − m`.
pub fn border_index(i: i64, n: usize, border: Border) -> Option<usize> {
    let n = n as i64;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match border {
        Border::Zero => None,
        Border::Reflect => {
            let m = i.rem_euclid(2 * n);
            Some(if m < n { m } else { 2 * n - 1 - m } as usize)
        }
    }
}

/// Correlates each `h × w` map with the odd-length `kernel` (centre tap at index
/// `len / 2`) along the height axis, then along the width axis (scipy's axis order):
/// `out[i] = Σ_k kernel[k] · in[i + k − radius]`.
pub fn sep_conv2d(
    x: &[f64],
    maps: usize,
    h: usize,
    w: usize,
    kernel: &[f64],
    border: Border,
) -> Vec<f64> {
    let r = (kernel.len() / 2) as i64;
    let mut tmp = vec![0.0; maps * h * w];
    let mut out = vec![0.0; maps * h * w];
    for m in 0..maps {
        let base = m * h * w;
        for y in 0..h {
            for xx in 0..w {
                let mut s = 0.0;
                for (k, &wt) in kernel.iter().enumerate() {
                    if let Some(sy) = border_index(y as i64 + k as i64 - r, h, border) {
                        s += wt * x[base + sy * w + xx];
                    }
                }
                tmp[base + y * w + xx] = s;
            }
        }
        for y in 0..h {
            for xx in 0..w {
                let mut s = 0.0;
                for (k, &wt) in kernel.iter().enumerate() {
                    if let Some(sx) = border_index(xx as i64 + k as i64 - r, w, border) {
                        s += wt * tmp[base + y * w + sx];
                    }
                }
                out[base + y * w + xx] = s;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_is_half_sample_symmetric_and_repeats() {
        let n = 3;
        let got: Vec<usize> = (-7..10)
            .map(|i| border_index(i, n, Border::Reflect).unwrap())
            .collect();
        // i = −7..10 over  a | c b a | a b c | c b a | a b c  (period 2n = 6).
        let want = [0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2];
        assert_eq!(got, want);
        assert_eq!(border_index(-1, n, Border::Zero), None);
        assert_eq!(border_index(3, n, Border::Zero), None);
        assert_eq!(border_index(1, n, Border::Zero), Some(1));
    }

    #[test]
    fn gaussian_kernel_matches_scipy_radius_and_normalisation() {
        let k = gaussian_kernel_1d(4.0, 4.0);
        assert_eq!(k.len(), 33); // radius int(16.5) = 16 (design §4)
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!((k[16] / k[15] - (0.5f64 / 16.0).exp()).abs() < 1e-14);
        assert_eq!(gaussian_kernel_1d(1.0, 4.0).len(), 9);
        assert_eq!(gaussian_kernel_1d(0.5, 4.0).len(), 5); // int(2.5) = 2
    }
}
