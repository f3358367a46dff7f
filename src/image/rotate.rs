//! Rotation about the image centre (the training set's random rotation, design §2).

use super::Image;

/// Rotates every channel by `angle_deg` about the image centre (`((w − 1)/2, (h − 1)/2)`, as
/// imgaug's `Affine(rotate=…)`), bilinear, with a constant border: taps outside the image
/// read `fill[c]` (the last value of `fill` is reused for further channels).
pub fn rotate(img: &Image, angle_deg: f64, fill: &[f32]) -> Image {
    let (h, w) = (img.height, img.width);
    let mut out = Image::zeros(img.channels, h, w);
    if h == 0 || w == 0 {
        return out;
    }
    let (s, c) = angle_deg.to_radians().sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    // Inverse mapping of every destination pixel, shared by all channels.
    let mut taps = Vec::with_capacity(h * w);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let sx = c * dx + s * dy + cx;
            let sy = -s * dx + c * dy + cy;
            let (x0, y0) = (sx.floor(), sy.floor());
            taps.push((x0 as isize, y0 as isize, (sx - x0) as f32, (sy - y0) as f32));
        }
    }
    for ch in 0..img.channels {
        let f = fill.get(ch).or(fill.last()).copied().unwrap_or(0.0);
        let src = img.plane(ch);
        let at = |x: isize, y: isize| -> f32 {
            if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
                f
            } else {
                src[y as usize * w + x as usize]
            }
        };
        let dst = out.plane_mut(ch);
        for (i, &(x0, y0, fx, fy)) in taps.iter().enumerate() {
            let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
            let bot = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
            dst[i] = top * (1.0 - fy) + bot * fy;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::ramp_image as ramp;

    #[test]
    fn rotate_zero_is_identity_and_90_moves_corners() {
        let img = ramp(2, 5, 5);
        let r = rotate(&img, 0.0, &[0.0]);
        for (a, b) in r.data.iter().zip(&img.data) {
            assert!((a - b).abs() < 1e-6);
        }
        let r = rotate(&img, 90.0, &[0.0]);
        // A 90° turn of a square maps the image onto itself (no fill).
        let mut sorted_a = r.plane(0).to_vec();
        let mut sorted_b = img.plane(0).to_vec();
        sorted_a.sort_by(f32::total_cmp);
        sorted_b.sort_by(f32::total_cmp);
        for (a, b) in sorted_a.iter().zip(&sorted_b) {
            assert!((a - b).abs() < 1e-5);
        }
        // 45° on a square leaves the corners to the fill value.
        let r = rotate(&Image::filled(1, 9, 9, 1.0), 45.0, &[0.25]);
        assert!((r.get(0, 0, 0) - 0.25).abs() < 1e-6);
        assert!((r.get(0, 4, 4) - 1.0).abs() < 1e-6);
    }
}
