//! The frequency split of design §1.2 on the CPU: exact ports of OpenCV's `pyrDown` / `pyrUp`
//! arithmetic (5×5 binomial kernel, `BORDER_REFLECT_101`, odd sizes restored), hand-written
//! for the same reason as the resizes (`resize.rs`): `tests/fixtures/opencv_image_ops.safetensors`
//! is matched to float rounding. Also the ImageNet normalisation both paths receive.
//!
//! # Why the split exists twice
//!
//! The same split runs on the GPU ([`crate::kernels::pyramid::frequency_split`],
//! `shaders/pyramid.wgsl`). The GPU kernel serves inference and the backbone's inputs, where
//! images are already on the device in batches. This CPU version builds the few-shot
//! training set (`data/trainset.rs`), whose samples are made one at a time on the CPU
//! (rotation, Perlin masks, texture blending) and stored split, so splitting them there costs
//! no upload and readback per sample; it is also the reference the GPU kernel is tested
//! against. Tests keep the two in agreement: the lib test
//! `kernels::pyramid::tests::matches_cpu_split_even_odd_and_tiny_sizes` compares the GPU
//! kernel with this one on small even, odd and tiny images, with and without normalisation,
//! to 1e-6; `frequency_split_matches_opencv` in `tests/backbone.rs` holds the GPU kernel,
//! and `tests/opencv_fixtures.rs` this version, to OpenCV's own output.

use super::Image;
use crate::error::{Error, Result};

/// ImageNet channel means used by [`normalize_imagenet`].
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations used by [`normalize_imagenet`].
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// OpenCV `borderInterpolate` with `BORDER_REFLECT_101`.
fn reflect101(mut p: isize, len: usize) -> usize {
    let n = len as isize;
    if n == 1 {
        return 0;
    }
    while p < 0 || p >= n {
        if p < 0 {
            p = -p;
        } else {
            p = 2 * n - p - 2;
        }
    }
    p as usize
}

/// OpenCV `pyrDown` (default size `((w + 1) / 2, (h + 1) / 2)`, `BORDER_REFLECT_101`), per
/// channel, float arithmetic in OpenCV's order.
pub fn pyr_down(img: &Image) -> Image {
    let (h, w) = (img.height, img.width);
    let (dh, dw) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = Image::zeros(img.channels, dh, dw);
    if h == 0 || w == 0 {
        return out;
    }
    let xi: Vec<[usize; 5]> = (0..dw)
        .map(|x| {
            let c = 2 * x as isize;
            [-2isize, -1, 0, 1, 2].map(|k| reflect101(c + k, w))
        })
        .collect();
    for c in 0..img.channels {
        let src = img.plane(c);
        // Horizontal pass for all rows.
        let rows: Vec<Vec<f32>> = (0..h)
            .map(|y| {
                let r = &src[y * w..(y + 1) * w];
                xi.iter()
                    .map(|t| r[t[2]] * 6.0 + (r[t[1]] + r[t[3]]) * 4.0 + r[t[0]] + r[t[4]])
                    .collect()
            })
            .collect();
        let dst = out.plane_mut(c);
        for y in 0..dh {
            let cy = 2 * y as isize;
            let t = [-2isize, -1, 0, 1, 2].map(|k| reflect101(cy + k, h));
            let (r0, r1, r2, r3, r4) = (
                &rows[t[0]],
                &rows[t[1]],
                &rows[t[2]],
                &rows[t[3]],
                &rows[t[4]],
            );
            for x in 0..dw {
                dst[y * dw + x] =
                    (r2[x] * 6.0 + (r1[x] + r3[x]) * 4.0 + r0[x] + r4[x]) * (1.0 / 256.0);
            }
        }
    }
    out
}

/// OpenCV `pyrUp` to the default size `2h × 2w`.
pub fn pyr_up(img: &Image) -> Image {
    pyr_up_inner(img, 2 * img.height, 2 * img.width)
}

/// OpenCV `pyrUp` with an explicit destination size, which must satisfy OpenCV's rule
/// `|dst − 2·src| ≤ dst mod 2` on each axis (so an odd original size can be restored after
/// [`pyr_down`]).
pub fn pyr_up_to(img: &Image, height: usize, width: usize) -> Result<Image> {
    let ok = |d: usize, s: usize| (d as isize - 2 * s as isize).unsigned_abs() == d % 2;
    if !ok(height, img.height) || !ok(width, img.width) || img.height == 0 || img.width == 0 {
        return Err(Error::Shape(format!(
            "pyrUp cannot map {}×{} to {height}×{width}",
            img.height, img.width
        )));
    }
    Ok(pyr_up_inner(img, height, width))
}

fn pyr_up_inner(img: &Image, dh: usize, dw: usize) -> Image {
    let (h, w) = (img.height, img.width);
    let mut out = Image::zeros(img.channels, dh, dw);
    if h == 0 || w == 0 {
        return out;
    }
    // Horizontal pass (writes 2w values; a wider destination repeats the last one).
    let hpass = |r: &[f32]| -> Vec<f32> {
        let mut row = vec![0f32; (2 * w).max(dw)];
        if w == 1 {
            row[0] = r[0] * 8.0;
            row[1] = r[0] * 8.0;
        } else {
            row[0] = r[0] * 6.0 + r[1] * 2.0;
            row[1] = (r[0] + r[1]) * 4.0;
            for x in 1..w - 1 {
                row[2 * x] = r[x - 1] + r[x] * 6.0 + r[x + 1];
                row[2 * x + 1] = (r[x] + r[x + 1]) * 4.0;
            }
            row[2 * w - 2] = r[w - 2] + r[w - 1] * 7.0;
            row[2 * w - 1] = r[w - 1] * 8.0;
        }
        if dw > 2 * w {
            row[dw - 1] = row[2 * w - 1];
        }
        row
    };
    for c in 0..img.channels {
        let src = img.plane(c);
        let rows: Vec<Vec<f32>> = (0..h).map(|y| hpass(&src[y * w..(y + 1) * w])).collect();
        let row_of = |sy: isize| -> &Vec<f32> { &rows[reflect101(sy * 2, 2 * h) / 2] };
        let dst = out.plane_mut(c);
        for y in 0..h {
            let (r0, r1, r2) = (
                row_of(y as isize - 1),
                row_of(y as isize),
                row_of(y as isize + 1),
            );
            let y0 = 2 * y;
            let y1 = (2 * y + 1).min(dh - 1);
            for x in 0..dw {
                let t1 = (r1[x] + r2[x]) * 4.0 * (1.0 / 64.0);
                let t0 = (r0[x] + r1[x] * 6.0 + r2[x]) * (1.0 / 64.0);
                if y1 < dh {
                    dst[y1 * dw + x] = t1;
                }
                if y0 < dh {
                    dst[y0 * dw + x] = t0;
                }
            }
        }
        if dh > 2 * h {
            let (a, b) = dst.split_at_mut((dh - 1) * dw);
            b.copy_from_slice(&a[(2 * h - 1) * dw..2 * h * dw]);
        }
    }
    out
}

/// The frequency split of design §1.2: `I_l = pyrUp(pyrDown(I))` (restored to the input size,
/// odd sizes included) and `I_h = I − I_l`, both unnormalised.
pub fn frequency_split(img: &Image) -> (Image, Image) {
    let down = pyr_down(img);
    let low = pyr_up_inner(&down, img.height, img.width);
    let high_data = img.data.iter().zip(&low.data).map(|(a, b)| a - b).collect();
    let high = Image {
        channels: img.channels,
        height: img.height,
        width: img.width,
        data: high_data,
    };
    (low, high)
}

/// Normalises a 3-channel image in place with the ImageNet mean and std
/// (`(v − mean[c]) / std[c]`). Images with another channel count are left unchanged.
pub fn normalize_imagenet(img: &mut Image) {
    if img.channels != 3 {
        return;
    }
    for c in 0..3 {
        let (m, s) = (IMAGENET_MEAN[c], IMAGENET_STD[c]);
        for v in img.plane_mut(c) {
            *v = (*v - m) / s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::ramp_image as ramp;

    #[test]
    fn frequency_split_reconstructs_and_keeps_shape() {
        for (h, w) in [(8, 8), (7, 9), (1, 5), (2, 2), (33, 17)] {
            let img = ramp(3, h, w);
            let (lo, hi) = frequency_split(&img);
            assert!(lo.same_shape(&img) && hi.same_shape(&img));
            for i in 0..img.data.len() {
                assert!((lo.data[i] + hi.data[i] - img.data[i]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn constant_image_has_no_high_frequencies() {
        for (h, w) in [(16, 16), (15, 11), (3, 1)] {
            let img = Image::filled(3, h, w, 0.3);
            let (lo, hi) = frequency_split(&img);
            assert!(lo.data.iter().all(|v| (v - 0.3).abs() < 1e-6), "{h}x{w}");
            assert!(hi.data.iter().all(|v| v.abs() < 1e-6));
        }
    }

    #[test]
    fn pyr_up_to_rejects_bad_sizes() {
        let img = ramp(1, 4, 4);
        assert!(pyr_up_to(&img, 8, 7).is_ok());
        assert!(pyr_up_to(&img, 8, 9).is_ok());
        assert!(pyr_up_to(&img, 8, 6).is_err());
        assert!(pyr_up_to(&img, 10, 8).is_err());
    }

    #[test]
    fn normalize_matches_formula() {
        let mut img = Image::filled(3, 2, 2, 0.5);
        normalize_imagenet(&mut img);
        for c in 0..3 {
            let want = (0.5 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            assert!(img.plane(c).iter().all(|v| (v - want).abs() < 1e-6));
        }
    }
}
