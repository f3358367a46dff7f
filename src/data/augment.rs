//! The ten texture augmenters of design §2 (DRAEM / DFD's imgaug list), on `[0, 1]` RGB
//! [`Image`]s. Each keeps the shape and the `[0, 1]` range. Parameters follow the reference:
//!
//! | augmenter | reference (imgaug) | here |
//! |---|---|---|
//! | gamma contrast | `GammaContrast((0.5, 2.0), per_channel=True)` | `v^γ`, `γ ~ U(0.5, 2)` per channel |
//! | brightness | `MultiplyAndAddToBrightness(mul=(0.8, 1.2), add=(-30, 30))` | luma `Y → Y·m + a/255` (random order), chroma kept (YCrCb) |
//! | sharpen | `pillike.EnhanceSharpness()` (factor 0–2) | PIL's SMOOTH kernel blend, border kept |
//! | hue / saturation | `AddToHueAndSaturation((-50, 50), per_channel=True)` | hue `+v·360/255`°, saturation `+v/255`, independent draws |
//! | solarize | `Solarize(0.5, threshold=(32, 128))` | with p = 0.5 invert values `≥ t/255` |
//! | posterize | `Posterize()` (1–8 bits) | keep the top `b` bits of the 8-bit value |
//! | invert | `Invert()` | `1 − v` |
//! | autocontrast | `pillike.Autocontrast()` (cutoff 0–20 %) | PIL's per-channel autocontrast |
//! | equalize | `pillike.Equalize()` | PIL's per-channel histogram equalisation |
//! | rotate | `Affine(rotate=(-45, 45))` | bilinear rotation about the centre, black border |
//!
//! The brightness augmenter uses YCrCb only (imgaug picks one of six colour spaces at random).

use rand::seq::index::sample;
use rand::Rng;

use crate::image::{rotate, to_u8, Image};

/// One of the ten texture augmenters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augmenter {
    /// Per-channel gamma in `[0.5, 2]`.
    GammaContrast,
    /// Luma multiply `[0.8, 1.2]` and add `[−30, 30]/255`.
    Brightness,
    /// PIL sharpness enhancement, factor `[0, 2]`.
    Sharpen,
    /// Hue and saturation shift by `[−50, 50]` (imgaug units).
    HueSaturation,
    /// With probability 0.5, invert values at or above a threshold in `[32, 128]/255`.
    Solarize,
    /// Keep `1..=8` most significant bits.
    Posterize,
    /// `1 − v`.
    Invert,
    /// PIL autocontrast with a cutoff of `0..=20` %.
    Autocontrast,
    /// PIL histogram equalisation.
    Equalize,
    /// Rotation by `U(−45°, 45°)`, black border.
    Rotate,
}

/// All ten augmenters, in the reference's order.
pub const ALL_AUGMENTERS: [Augmenter; 10] = [
    Augmenter::GammaContrast,
    Augmenter::Brightness,
    Augmenter::Sharpen,
    Augmenter::HueSaturation,
    Augmenter::Solarize,
    Augmenter::Posterize,
    Augmenter::Invert,
    Augmenter::Autocontrast,
    Augmenter::Equalize,
    Augmenter::Rotate,
];

fn map_all(img: &Image, f: impl Fn(usize, f32) -> f32) -> Image {
    let n = img.plane_len();
    let mut out = img.clone();
    for (i, v) in out.data.iter_mut().enumerate() {
        *v = f(i / n.max(1), *v).clamp(0.0, 1.0);
    }
    out
}

fn hist(plane: &[f32]) -> [u64; 256] {
    let mut h = [0u64; 256];
    for &v in plane {
        h[to_u8(v) as usize] += 1;
    }
    h
}

fn apply_lut(plane: &mut [f32], lut: &[u8; 256]) {
    for v in plane {
        *v = lut[to_u8(*v) as usize] as f32 / 255.0;
    }
}

fn equalize_lut(h: &[u64; 256]) -> [u8; 256] {
    let mut lut = [0u8; 256];
    for (i, l) in lut.iter_mut().enumerate() {
        *l = i as u8;
    }
    let nz: Vec<u64> = h.iter().copied().filter(|&c| c > 0).collect();
    if nz.len() <= 1 {
        return lut;
    }
    let step = (nz.iter().sum::<u64>() - nz[nz.len() - 1]) / 255;
    if step == 0 {
        return lut;
    }
    let mut n = step / 2;
    for i in 0..256 {
        lut[i] = (n / step).min(255) as u8;
        n += h[i];
    }
    lut
}

fn autocontrast_lut(h: &[u64; 256], cutoff_percent: u64) -> [u8; 256] {
    let mut h = *h;
    let total: u64 = h.iter().sum();
    let cut_n = total * cutoff_percent / 100;
    let mut cut = cut_n;
    for c in h.iter_mut() {
        if cut == 0 {
            break;
        }
        let take = cut.min(*c);
        *c -= take;
        cut -= take;
    }
    let mut cut = cut_n;
    for c in h.iter_mut().rev() {
        if cut == 0 {
            break;
        }
        let take = cut.min(*c);
        *c -= take;
        cut -= take;
    }
    let mut lut = [0u8; 256];
    for (i, l) in lut.iter_mut().enumerate() {
        *l = i as u8;
    }
    let lo = h.iter().position(|&c| c > 0);
    let hi = h.iter().rposition(|&c| c > 0);
    if let (Some(lo), Some(hi)) = (lo, hi) {
        if hi > lo {
            let scale = 255.0 / (hi - lo) as f64;
            let offset = -(lo as f64) * scale;
            for (i, l) in lut.iter_mut().enumerate() {
                *l = ((i as f64 * scale + offset) as i64).clamp(0, 255) as u8;
            }
        }
    }
    lut
}

fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d <= 0.0 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    let s = if max <= 0.0 { 0.0 } else { d / max };
    (h, s, max)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let c = v * s;
    let hp = h.rem_euclid(360.0) / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    (r + m, g + m, b + m)
}

impl Augmenter {
    /// Applies this augmenter with parameters drawn from `rng`. Works on any channel count
    /// (colour-space augmenters need 3 channels and leave other images unchanged).
    pub fn apply<R: Rng + ?Sized>(self, img: &Image, rng: &mut R) -> Image {
        match self {
            Augmenter::GammaContrast => {
                let g: Vec<f32> = (0..img.channels)
                    .map(|_| rng.random_range(0.5..=2.0))
                    .collect();
                map_all(img, |c, v| v.max(0.0).powf(g[c]))
            }
            Augmenter::Brightness => {
                let mul: f32 = rng.random_range(0.8..=1.2);
                let add: f32 = rng.random_range(-30.0..=30.0) / 255.0;
                let mul_first = rng.random::<bool>();
                if img.channels != 3 {
                    return img.clone();
                }
                let n = img.plane_len();
                let mut out = img.clone();
                for i in 0..n {
                    let (r, g, b) = (img.data[i], img.data[n + i], img.data[2 * n + i]);
                    let y = 0.299 * r + 0.587 * g + 0.114 * b;
                    let y2 = if mul_first {
                        y * mul + add
                    } else {
                        (y + add) * mul
                    };
                    let d = y2.clamp(0.0, 1.0) - y;
                    for c in 0..3 {
                        out.data[c * n + i] = (img.data[c * n + i] + d).clamp(0.0, 1.0);
                    }
                }
                out
            }
            Augmenter::Sharpen => {
                let factor: f32 = rng.random_range(0.0..=2.0);
                let (h, w) = (img.height, img.width);
                let mut out = img.clone();
                if h < 3 || w < 3 {
                    return out;
                }
                for c in 0..img.channels {
                    let src = img.plane(c);
                    let dst = out.plane_mut(c);
                    for y in 1..h - 1 {
                        for x in 1..w - 1 {
                            let mut s = 0.0;
                            for dy in 0..3 {
                                for dx in 0..3 {
                                    s += src[(y + dy - 1) * w + x + dx - 1];
                                }
                            }
                            let o = src[y * w + x];
                            let smooth = (s + 4.0 * o) / 13.0;
                            dst[y * w + x] = (smooth + factor * (o - smooth)).clamp(0.0, 1.0);
                        }
                    }
                }
                out
            }
            Augmenter::HueSaturation => {
                let dh: f32 = rng.random_range(-50.0..=50.0) * 360.0 / 255.0;
                let ds: f32 = rng.random_range(-50.0..=50.0) / 255.0;
                if img.channels != 3 {
                    return img.clone();
                }
                let n = img.plane_len();
                let mut out = img.clone();
                for i in 0..n {
                    let (h, s, v) = rgb_to_hsv(img.data[i], img.data[n + i], img.data[2 * n + i]);
                    let (r, g, b) = hsv_to_rgb(h + dh, (s + ds).clamp(0.0, 1.0), v);
                    out.data[i] = r.clamp(0.0, 1.0);
                    out.data[n + i] = g.clamp(0.0, 1.0);
                    out.data[2 * n + i] = b.clamp(0.0, 1.0);
                }
                out
            }
            Augmenter::Solarize => {
                let apply = rng.random::<f32>() < 0.5;
                let t = rng.random_range(32.0..=128.0f32) / 255.0;
                if !apply {
                    return img.clone();
                }
                map_all(img, |_, v| if v >= t { 1.0 - v } else { v })
            }
            Augmenter::Posterize => {
                let bits: u32 = rng.random_range(1..=8);
                let mask = 0xFFu8 << (8 - bits);
                map_all(img, |_, v| (to_u8(v) & mask) as f32 / 255.0)
            }
            Augmenter::Invert => map_all(img, |_, v| 1.0 - v),
            Augmenter::Autocontrast => {
                let cutoff: u64 = rng.random_range(0..=20);
                let mut out = img.clone();
                for c in 0..img.channels {
                    let lut = autocontrast_lut(&hist(img.plane(c)), cutoff);
                    apply_lut(out.plane_mut(c), &lut);
                }
                out
            }
            Augmenter::Equalize => {
                let mut out = img.clone();
                for c in 0..img.channels {
                    let lut = equalize_lut(&hist(img.plane(c)));
                    apply_lut(out.plane_mut(c), &lut);
                }
                out
            }
            Augmenter::Rotate => {
                let a: f64 = rng.random_range(-45.0..=45.0);
                map_all(&rotate(img, a, &[0.0]), |_, v| v)
            }
        }
    }
}

/// Picks `n` distinct augmenters at random (in random order, like
/// `np.random.choice(10, 3, replace=False)`) and applies them one after the other.
/// Returns the result and the augmenters used.
pub fn random_augment<R: Rng + ?Sized>(
    img: &Image,
    n: usize,
    rng: &mut R,
) -> (Image, Vec<Augmenter>) {
    let n = n.min(ALL_AUGMENTERS.len());
    let picks: Vec<Augmenter> = sample(rng, ALL_AUGMENTERS.len(), n)
        .into_iter()
        .map(|i| ALL_AUGMENTERS[i])
        .collect();
    let mut cur = img.clone();
    for a in &picks {
        cur = a.apply(&cur, rng);
    }
    (cur, picks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn test_image() -> Image {
        let (h, w) = (24, 20);
        let mut img = Image::zeros(3, h, w);
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let v = ((x * 7 + y * 3 + c * 50) % 97) as f32 / 96.0;
                    img.set(c, y, x, v);
                }
            }
        }
        img
    }

    #[test]
    fn every_augmenter_keeps_shape_and_range() {
        let img = test_image();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for a in ALL_AUGMENTERS {
            for _ in 0..5 {
                let out = a.apply(&img, &mut rng);
                assert!(out.same_shape(&img), "{a:?}");
                assert!(
                    out.data
                        .iter()
                        .all(|v| (0.0..=1.0).contains(v) && v.is_finite()),
                    "{a:?}"
                );
            }
        }
    }

    #[test]
    fn invert_and_equalize_behave() {
        let img = test_image();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let inv = Augmenter::Invert.apply(&img, &mut rng);
        assert!((inv.data[5] - (1.0 - img.data[5])).abs() < 1e-6);
        // Equalising a two-level image spreads it to the full range (PIL: 0 and 255).
        let mut two = Image::filled(1, 64, 64, 0.2);
        two.data[..2048].fill(0.4);
        let eq = Augmenter::Equalize.apply(&two, &mut rng);
        assert!(eq.data[..2048].iter().all(|&v| v == 1.0));
        assert!(eq.data[2048..].iter().all(|&v| v == 0.0));
        // Too few pixels for PIL's step: unchanged.
        let tiny = Image::filled(1, 4, 4, 0.2);
        assert_eq!(Augmenter::Equalize.apply(&tiny, &mut rng), tiny);
    }

    #[test]
    fn hsv_round_trip() {
        for (r, g, b) in [
            (0.2, 0.5, 0.9),
            (1.0, 0.0, 0.0),
            (0.3, 0.3, 0.3),
            (0.9, 0.8, 0.1),
        ] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!((r - r2).abs() < 1e-5 && (g - g2).abs() < 1e-5 && (b - b2).abs() < 1e-5);
        }
    }

    #[test]
    fn three_distinct_augmenters() {
        let img = test_image();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..20 {
            let (out, picks) = random_augment(&img, 3, &mut rng);
            assert_eq!(picks.len(), 3);
            assert!(picks[0] != picks[1] && picks[1] != picks[2] && picks[0] != picks[2]);
            assert!(out.same_shape(&img));
        }
    }
}
