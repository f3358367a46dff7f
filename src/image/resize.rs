//! OpenCV-exact `INTER_LINEAR` resizes (design §1.1).
//!
//! Hand-written ports rather than a resize crate: the detector must see the pixels the
//! reference code (which calls `cv2.resize`) sees, so these reproduce OpenCV's arithmetic —
//! 11-bit fixed-point coefficients and vectorised rounding for 8-bit planes, float for 16-bit
//! and float planes, its tap positions and edge clamping, and its switch to `INTER_AREA` for
//! exact 2× reductions — and `tests/fixtures/opencv_image_ops.safetensors` is matched to
//! float rounding (`tests/opencv_fixtures.rs`).

use super::Image;

/// `INTER_LINEAR` tap positions and fractional weights along one axis, as OpenCV computes
/// them (`fx` in single precision from a double product). `clamp` applies the horizontal
/// clamping rule (the vertical axis instead clamps row indices when fetching).
fn linear_taps(src: usize, dst: usize, clamp: bool) -> Vec<(isize, f32)> {
    let inv_scale = dst as f64 / src as f64;
    let scale = 1.0 / inv_scale;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as isize;
            let mut fr = f - s as f32;
            if clamp {
                if s < 0 {
                    fr = 0.0;
                    s = 0;
                }
                if s >= src as isize - 1 {
                    fr = 0.0;
                    s = src as isize - 1;
                }
            }
            (s, fr)
        })
        .collect()
}

fn clamp_idx(i: isize, n: usize) -> usize {
    i.clamp(0, n as isize - 1) as usize
}

fn is_area_fast_2x(sh: usize, sw: usize, dh: usize, dw: usize) -> bool {
    // OpenCV switches INTER_LINEAR to INTER_AREA for an exact 2× reduction on both axes.
    let sx = 1.0 / (dw as f64 / sw as f64);
    let sy = 1.0 / (dh as f64 / sh as f64);
    (sx - 2.0).abs() < f64::EPSILON && (sy - 2.0).abs() < f64::EPSILON
}

/// Resizes one 8-bit plane with `cv2.resize(..., INTER_LINEAR)` arithmetic (11-bit fixed-point
/// coefficients, OpenCV's vectorised rounding; exact 2× reductions use `INTER_AREA` as OpenCV
/// itself does).
pub fn resize_u8(src: &[u8], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<u8> {
    if sh == dh && sw == dw {
        return src.to_vec();
    }
    if is_area_fast_2x(sh, sw, dh, dw) {
        let mut out = vec![0u8; dh * dw];
        for y in 0..dh {
            for x in 0..dw {
                let s = src[2 * y * sw + 2 * x] as u32
                    + src[2 * y * sw + 2 * x + 1] as u32
                    + src[(2 * y + 1) * sw + 2 * x] as u32
                    + src[(2 * y + 1) * sw + 2 * x + 1] as u32;
                out[y * dw + x] = ((s + 2) >> 2) as u8;
            }
        }
        return out;
    }
    const SCALE: f32 = 2048.0;
    let xt: Vec<(usize, i32, i32)> = linear_taps(sw, dw, true)
        .into_iter()
        .map(|(s, f)| {
            let a0 = ((1.0 - f) * SCALE).round_ties_even() as i32;
            let a1 = (f * SCALE).round_ties_even() as i32;
            (s as usize, a0, a1)
        })
        .collect();
    // Horizontal pass for every source row.
    let hrow = |y: usize| -> Vec<i32> {
        let row = &src[y * sw..(y + 1) * sw];
        xt.iter()
            .map(|&(s, a0, a1)| {
                let s1 = if s + 1 < sw { row[s + 1] as i32 } else { 0 };
                row[s] as i32 * a0 + s1 * a1
            })
            .collect()
    };
    let hrows: Vec<Vec<i32>> = (0..sh).map(hrow).collect();
    let mut out = vec![0u8; dh * dw];
    for (dy, (sy, fy)) in linear_taps(sh, dh, false).into_iter().enumerate() {
        let b0 = ((1.0 - fy) * SCALE).round_ties_even() as i32;
        let b1 = (fy * SCALE).round_ties_even() as i32;
        let r0 = &hrows[clamp_idx(sy, sh)];
        let r1 = &hrows[clamp_idx(sy + 1, sh)];
        for x in 0..dw {
            // OpenCV's SIMD path: ((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16), then (v + 2) >> 2.
            let v = (((r0[x] >> 4) * b0) >> 16) + (((r1[x] >> 4) * b1) >> 16);
            out[dy * dw + x] = ((v + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    out
}

/// Resizes one 16-bit plane with `cv2.resize(..., INTER_LINEAR)` arithmetic (float
/// coefficients, round-half-even back to 16 bits).
pub fn resize_u16(src: &[u16], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<u16> {
    let f: Vec<f32> = src.iter().map(|&v| v as f32).collect();
    resize_f32(&f, sh, sw, dh, dw)
        .into_iter()
        .map(|v| v.round_ties_even().clamp(0.0, 65535.0) as u16)
        .collect()
}

/// Resizes one `f32` plane with `cv2.resize(..., INTER_LINEAR)` float arithmetic.
pub fn resize_f32(src: &[f32], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<f32> {
    if sh == dh && sw == dw {
        return src.to_vec();
    }
    if is_area_fast_2x(sh, sw, dh, dw) {
        let mut out = vec![0f32; dh * dw];
        for y in 0..dh {
            for x in 0..dw {
                let s = src[2 * y * sw + 2 * x]
                    + src[2 * y * sw + 2 * x + 1]
                    + src[(2 * y + 1) * sw + 2 * x]
                    + src[(2 * y + 1) * sw + 2 * x + 1];
                out[y * dw + x] = s * 0.25;
            }
        }
        return out;
    }
    let xt = linear_taps(sw, dw, true);
    let hrows: Vec<Vec<f32>> = (0..sh)
        .map(|y| {
            let row = &src[y * sw..(y + 1) * sw];
            xt.iter()
                .map(|&(s, f)| {
                    let s = s as usize;
                    if s + 1 < sw {
                        row[s] * (1.0 - f) + row[s + 1] * f
                    } else {
                        row[s]
                    }
                })
                .collect()
        })
        .collect();
    let mut out = vec![0f32; dh * dw];
    for (dy, (sy, fy)) in linear_taps(sh, dh, false).into_iter().enumerate() {
        let (b0, b1) = (1.0 - fy, fy);
        let r0 = &hrows[clamp_idx(sy, sh)];
        let r1 = &hrows[clamp_idx(sy + 1, sh)];
        for x in 0..dw {
            out[dy * dw + x] = r0[x] * b0 + r1[x] * b1;
        }
    }
    out
}

/// Resizes every channel to `height × width` with OpenCV `INTER_LINEAR` float semantics
/// (half-pixel centres, no antialiasing, edge clamping as OpenCV).
pub fn resize_bilinear(img: &Image, height: usize, width: usize) -> Image {
    let mut out = Image::zeros(img.channels, height, width);
    if height == 0 || width == 0 || img.height == 0 || img.width == 0 {
        return out;
    }
    for c in 0..img.channels {
        let r = resize_f32(img.plane(c), img.height, img.width, height, width);
        out.plane_mut(c).copy_from_slice(&r);
    }
    out
}
