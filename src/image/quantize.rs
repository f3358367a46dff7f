//! 8-bit quantisation and OpenCV's fixed-point RGB → grey conversion.

use super::Image;

/// Quantises `[0, 1]` to 8 bits (round to nearest, clamped).
pub fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

/// 8-bit grey as `cv2.cvtColor(..., COLOR_RGB2GRAY)` computes it (fixed-point
/// `0.299 R + 0.587 G + 0.114 B`) after quantising each channel to 8 bits. A 1-channel image
/// is only quantised.
pub fn to_grey_u8(img: &Image) -> Vec<u8> {
    let n = img.plane_len();
    if img.channels < 3 {
        return img.data[..n].iter().map(|&v| to_u8(v)).collect();
    }
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    (0..n)
        .map(|i| grey_from_rgb_u8(to_u8(r[i]), to_u8(g[i]), to_u8(b[i])))
        .collect()
}

/// OpenCV's fixed-point RGB → grey for 8-bit pixels.
pub fn grey_from_rgb_u8(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 4899 + g as u32 * 9617 + b as u32 * 1868 + (1 << 13)) >> 14) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_matches_opencv_coefficients() {
        assert_eq!(grey_from_rgb_u8(255, 255, 255), 255);
        assert_eq!(grey_from_rgb_u8(0, 0, 0), 0);
        assert_eq!(grey_from_rgb_u8(255, 0, 0), 76);
        assert_eq!(grey_from_rgb_u8(0, 255, 0), 150);
        assert_eq!(grey_from_rgb_u8(0, 0, 255), 29);
    }
}
