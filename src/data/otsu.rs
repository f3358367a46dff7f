//! Otsu thresholds and the foreground mask `M_f` of design §2.

use crate::image::{to_grey_u8, Image};

/// Otsu's threshold of 8-bit grey values, computed exactly as OpenCV's
/// `cv2.threshold(..., THRESH_BINARY + THRESH_OTSU)` does (same histogram recursion, same
/// `FLT_EPSILON` guards, first maximum wins). Pixels `> threshold` are OpenCV's "white".
/// An empty slice gives 0.
pub fn otsu_threshold(grey: &[u8]) -> u8 {
    if grey.is_empty() {
        return 0;
    }
    let mut hist = [0u64; 256];
    for &v in grey {
        hist[v as usize] += 1;
    }
    let scale = 1.0 / grey.len() as f64;
    let mu: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &h)| i as f64 * h as f64)
        .sum::<f64>()
        * scale;
    let eps = f32::EPSILON as f64;
    let (mut mu1, mut q1) = (0.0f64, 0.0f64);
    let (mut max_sigma, mut max_val) = (0.0f64, 0u8);
    for (i, &h) in hist.iter().enumerate() {
        let p_i = h as f64 * scale;
        mu1 *= q1;
        q1 += p_i;
        let q2 = 1.0 - q1;
        if q1.min(q2) < eps || q1.max(q2) > 1.0 - eps {
            continue;
        }
        mu1 = (mu1 + i as f64 * p_i) / q1;
        let mu2 = (mu - q1 * mu1) / q2;
        let sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
        if sigma > max_sigma {
            max_sigma = sigma;
            max_val = i as u8;
        }
    }
    max_val
}

/// Which side of the Otsu threshold is the object (design §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ForegroundRule {
    /// Decide from the category name ([`ForegroundRule::for_category`]).
    Auto,
    /// No foreground mask: every pixel may receive a pseudo-anomaly (textures, cable, zipper,
    /// and unknown categories by default).
    All,
    /// Foreground = grey values at or below the Otsu threshold (bottle, capsule, screw,
    /// transistor: a dark object on a light background, in the reference's `bg_reverse=false`
    /// sense).
    Dark,
    /// Foreground = grey values above the Otsu threshold (hazelnut, metal_nut, pill,
    /// toothbrush).
    Bright,
}

impl ForegroundRule {
    /// The per-category default of the reference code: `Dark` for bottle, capsule, screw,
    /// transistor; `Bright` for hazelnut, metal_nut, pill, toothbrush; `All` for everything
    /// else (MVTec textures, cable, zipper, VisA, unknown names).
    pub fn for_category(category: &str) -> ForegroundRule {
        match category {
            "bottle" | "capsule" | "screw" | "transistor" => ForegroundRule::Dark,
            "hazelnut" | "metal_nut" | "pill" | "toothbrush" => ForegroundRule::Bright,
            _ => ForegroundRule::All,
        }
    }

    /// Replaces `Auto` by the category default; other values are kept (a config override).
    pub fn resolve(self, category: &str) -> ForegroundRule {
        match self {
            ForegroundRule::Auto => ForegroundRule::for_category(category),
            r => r,
        }
    }

    /// `true` when this (resolved) rule computes an Otsu mask, i.e. the category is treated
    /// as an object (rotation then fills with the top-left pixel colour).
    pub fn uses_mask(self) -> bool {
        matches!(self, ForegroundRule::Dark | ForegroundRule::Bright)
    }

    /// The foreground mask `M_f` (`1 × H × W`, 0/1) of an image under this rule; `Auto` and
    /// `All` give all ones. The grey image is OpenCV's RGB → grey of the 8-bit quantised image.
    pub fn mask(self, img: &Image) -> Image {
        let mut m = Image::filled(1, img.height, img.width, 1.0);
        if !self.uses_mask() {
            return m;
        }
        let grey = to_grey_u8(img);
        let t = otsu_threshold(&grey);
        let bright = self == ForegroundRule::Bright;
        for (d, &g) in m.data.iter_mut().zip(&grey) {
            *d = if (g > t) == bright { 1.0 } else { 0.0 };
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_level_image_splits_between_levels() {
        let mut g = vec![30u8; 100];
        g[..40].fill(200);
        let t = otsu_threshold(&g);
        assert!((30..200).contains(&t));
    }

    #[test]
    fn constant_image_gives_zero() {
        assert_eq!(otsu_threshold(&[77u8; 50]), 0);
        assert_eq!(otsu_threshold(&[]), 0);
    }

    #[test]
    fn rules_pick_the_right_side() {
        let mut img = Image::filled(3, 4, 4, 0.1);
        for c in 0..3 {
            img.set(c, 1, 1, 0.9);
            img.set(c, 2, 2, 0.9);
        }
        let dark = ForegroundRule::Dark.mask(&img);
        let bright = ForegroundRule::Bright.mask(&img);
        assert_eq!(bright.data.iter().sum::<f32>(), 2.0);
        assert_eq!(dark.data.iter().sum::<f32>(), 14.0);
        assert_eq!(bright.get(0, 1, 1), 1.0);
        assert!(ForegroundRule::All
            .mask(&img)
            .data
            .iter()
            .all(|&v| v == 1.0));
        assert_eq!(ForegroundRule::Auto.resolve("screw"), ForegroundRule::Dark);
        assert_eq!(ForegroundRule::Auto.resolve("pill"), ForegroundRule::Bright);
        assert_eq!(ForegroundRule::Auto.resolve("carpet"), ForegroundRule::All);
        assert_eq!(ForegroundRule::All.resolve("screw"), ForegroundRule::All);
    }
}
