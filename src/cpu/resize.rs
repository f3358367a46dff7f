//! Reference bilinear resize with `align_corners = false`, PyTorch
//! `F.interpolate(mode='bilinear', align_corners=False)` semantics, forward and backward, in
//! f64. Maps are `[maps, h, w]` row-major (any leading dimensions flattened into `maps`).

/// The two source indices and their weights for destination index `dst` along an axis of
/// `input` source and `output` destination samples (PyTorch `area_pixel_compute_source_index`
/// with `align_corners = false`): `src = max((dst + 0.5) · in/out − 0.5, 0)`, `i0 = ⌊src⌋`,
/// `i1 = min(i0 + 1, in − 1)`, weights `(1 − λ, λ)` with `λ = src − i0`.
pub fn source_taps(dst: usize, input: usize, output: usize) -> (usize, usize, f64, f64) {
    let scale = input as f64 / output as f64;
    let src = ((dst as f64 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (src as usize).min(input - 1);
    let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
    let l1 = src - i0 as f64;
    (i0, i1, 1.0 - l1, l1)
}

/// Bilinear resize of `maps` maps of `in_h × in_w` to `out_h × out_w`.
pub fn resize_bilinear(
    x: &[f64],
    maps: usize,
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f64> {
    let mut y = vec![0.0; maps * out_h * out_w];
    for m in 0..maps {
        let src = &x[m * in_h * in_w..(m + 1) * in_h * in_w];
        for oy in 0..out_h {
            let (y0, y1, wy0, wy1) = source_taps(oy, in_h, out_h);
            for ox in 0..out_w {
                let (x0, x1, wx0, wx1) = source_taps(ox, in_w, out_w);
                y[(m * out_h + oy) * out_w + ox] = wy0
                    * (wx0 * src[y0 * in_w + x0] + wx1 * src[y0 * in_w + x1])
                    + wy1 * (wx0 * src[y1 * in_w + x0] + wx1 * src[y1 * in_w + x1]);
            }
        }
    }
    y
}

/// Backward of [`resize_bilinear`]: scatters each output gradient onto its four source
/// pixels with the forward weights (the transpose of the forward map).
pub fn resize_bilinear_backward(
    dy: &[f64],
    maps: usize,
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f64> {
    let mut dx = vec![0.0; maps * in_h * in_w];
    for m in 0..maps {
        let dst = &mut dx[m * in_h * in_w..(m + 1) * in_h * in_w];
        for oy in 0..out_h {
            let (y0, y1, wy0, wy1) = source_taps(oy, in_h, out_h);
            for ox in 0..out_w {
                let (x0, x1, wx0, wx1) = source_taps(ox, in_w, out_w);
                let g = dy[(m * out_h + oy) * out_w + ox];
                dst[y0 * in_w + x0] += wy0 * wx0 * g;
                dst[y0 * in_w + x1] += wy0 * wx1 * g;
                dst[y1 * in_w + x0] += wy1 * wx0 * g;
                dst[y1 * in_w + x1] += wy1 * wx1 * g;
            }
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random_vec;

    /// The resize is linear, so central differences are exact up to rounding (~1e-10
    /// relative with step 1e-3 on O(1) values); any wrong weight or index gives O(1) errors.
    const FD_TOL: f64 = 1e-9;

    #[test]
    fn backward_matches_finite_differences() {
        for (maps, inp, out) in [
            (2, (3, 5), (7, 4)),
            (1, (4, 4), (9, 13)),
            (1, (6, 5), (2, 3)),
        ] {
            let x: Vec<f64> = random_vec(maps * inp.0 * inp.1, 1)
                .iter()
                .map(|&v| v as f64)
                .collect();
            let w: Vec<f64> = random_vec(maps * out.0 * out.1, 2)
                .iter()
                .map(|&v| v as f64)
                .collect();
            let loss = |x: &[f64]| -> f64 {
                resize_bilinear(x, maps, inp, out)
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| a * b)
                    .sum()
            };
            let grad = resize_bilinear_backward(&w, maps, inp, out);
            let h = 1e-3;
            let mut q = x.clone();
            let (mut num, mut den) = (0.0, 0.0);
            for i in 0..x.len() {
                q[i] = x[i] + h;
                let up = loss(&q);
                q[i] = x[i] - h;
                let down = loss(&q);
                q[i] = x[i];
                let fd = (up - down) / (2.0 * h);
                num += (fd - grad[i]).powi(2);
                den += grad[i] * grad[i];
            }
            assert!((num / den).sqrt() < FD_TOL, "{inp:?} -> {out:?}");
        }
    }

    #[test]
    fn source_taps_follow_pytorch() {
        // 2 -> 4: src = (d + 0.5)/2 − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25.
        assert_eq!(source_taps(0, 2, 4), (0, 1, 1.0, 0.0));
        assert_eq!(source_taps(1, 2, 4), (0, 1, 0.75, 0.25));
        assert_eq!(source_taps(2, 2, 4), (0, 1, 0.25, 0.75));
        // Past the last sample the upper neighbour is clamped to the last one.
        assert_eq!(source_taps(3, 2, 4), (1, 1, 0.75, 0.25));
        // Identity size maps every sample onto itself.
        assert_eq!(source_taps(3, 5, 5), (3, 4, 1.0, 0.0));
    }
}
