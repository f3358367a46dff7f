//! Heat-map overlays: one PNG strip of four panels, left to right,
//! 1. the input image;
//! 2. the ground-truth mask (white on black; mid-grey when there is no ground truth);
//! 3. the anomaly map as a jet colour map (blue = 0, red = 1);
//! 4. the image with the predicted mask (`map > threshold`) tinted red and outlined in red,
//!    and the ground-truth outline in green,
//!
//! separated by 4-pixel white gaps.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::{Error, Result};

/// Width of the white gap between panels, in pixels.
const GAP: usize = 4;

/// What one overlay shows. All buffers are row-major `height × width`.
#[derive(Debug, Clone, Copy)]
pub struct OverlayInput<'a> {
    /// The image, channel-major (CHW) `f32` in `[0, 1]` (values outside are clamped);
    /// 3 channels (RGB) or 1 (grey).
    pub image: &'a [f32],
    /// Number of channels of `image`: 1 or 3.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// The anomaly map, one value per pixel, in `[0, 1]` (values outside are clamped for the
    /// colour map).
    pub map: &'a [f32],
    /// The ground-truth mask (`true` = defect), or `None` when the image has no ground truth.
    pub mask: Option<&'a [bool]>,
    /// Pixels with `map > threshold` form the predicted mask.
    pub threshold: f32,
}

/// The jet colour of `v` (clamped to `[0, 1]`): dark blue → blue → cyan → yellow → red →
/// dark red, the usual piecewise-linear approximation of Matplotlib's `jet`.
pub fn jet(v: f32) -> [u8; 3] {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    let ch = |c: f32| to_u8((1.5 - (4.0 * v - c).abs()).clamp(0.0, 1.0));
    [ch(3.0), ch(2.0), ch(1.0)]
}

fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

fn validate(input: &OverlayInput<'_>) -> Result<usize> {
    let n = input
        .width
        .checked_mul(input.height)
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            Error::Shape(format!(
                "overlay: invalid size {}×{}",
                input.width, input.height
            ))
        })?;
    if input.channels != 1 && input.channels != 3 {
        return Err(Error::Shape(format!(
            "overlay: image must have 1 or 3 channels, got {}",
            input.channels
        )));
    }
    if input.image.len() != n * input.channels {
        return Err(Error::Shape(format!(
            "overlay: image has {} values, expected {}×{}×{}",
            input.image.len(),
            input.channels,
            input.height,
            input.width
        )));
    }
    if input.map.len() != n {
        return Err(Error::Shape(format!(
            "overlay: anomaly map has {} values, expected {}×{}",
            input.map.len(),
            input.height,
            input.width
        )));
    }
    if let Some(mask) = input.mask {
        if mask.len() != n {
            return Err(Error::Shape(format!(
                "overlay: mask has {} values, expected {}×{}",
                mask.len(),
                input.height,
                input.width
            )));
        }
    }
    if input.image.iter().chain(input.map).any(|v| !v.is_finite()) {
        return Err(Error::Eval(
            "overlay: the image or the anomaly map has a non-finite value".into(),
        ));
    }
    if !input.threshold.is_finite() {
        return Err(Error::Eval(format!(
            "overlay: threshold {} is not finite",
            input.threshold
        )));
    }
    Ok(n)
}

/// `true` where `set[p]` holds and a 4-neighbour inside the image does not.
fn outline(set: &[bool], width: usize, height: usize) -> Vec<bool> {
    let mut out = vec![false; set.len()];
    for y in 0..height {
        for x in 0..width {
            let p = y * width + x;
            if !set[p] {
                continue;
            }
            let off = (x > 0 && !set[p - 1])
                || (x + 1 < width && !set[p + 1])
                || (y > 0 && !set[p - width])
                || (y + 1 < height && !set[p + width]);
            out[p] = off;
        }
    }
    out
}

/// Renders the four-panel strip (`(4·width + 3·4) × height`, RGB 8-bit).
///
/// Errors on inconsistent sizes, a channel count other than 1 or 3, or non-finite values.
pub fn overlay_strip(input: &OverlayInput<'_>) -> Result<RgbImage> {
    let n = validate(input)?;
    let (w, h) = (input.width, input.height);
    let total_w = 4 * w + 3 * GAP;
    let (tw, th) = (
        u32::try_from(total_w).map_err(|_| Error::Shape("overlay too wide".into()))?,
        u32::try_from(h).map_err(|_| Error::Shape("overlay too tall".into()))?,
    );
    let mut img = RgbImage::from_pixel(tw, th, Rgb([255, 255, 255]));
    let rgb = |p: usize| -> [f32; 3] {
        if input.channels == 3 {
            [input.image[p], input.image[n + p], input.image[2 * n + p]]
        } else {
            [input.image[p]; 3]
        }
    };
    let predicted: Vec<bool> = input.map.iter().map(|&v| v > input.threshold).collect();
    let pred_outline = outline(&predicted, w, h);
    let gt_outline = input.mask.map(|m| outline(m, w, h));
    for y in 0..h {
        for x in 0..w {
            let p = y * w + x;
            let c = rgb(p);
            let base = [to_u8(c[0]), to_u8(c[1]), to_u8(c[2])];
            let gt = match input.mask {
                Some(m) if m[p] => [255, 255, 255],
                Some(_) => [0, 0, 0],
                None => [128, 128, 128],
            };
            let heat = jet(input.map[p]);
            let mut pred = base;
            if predicted[p] {
                let t = |v: f32, r: f32| to_u8(0.5 * v.clamp(0.0, 1.0) + 0.5 * r);
                pred = [t(c[0], 1.0), t(c[1], 0.0), t(c[2], 0.0)];
            }
            if pred_outline[p] {
                pred = [255, 0, 0];
            }
            if gt_outline.as_ref().is_some_and(|o| o[p]) {
                pred = [0, 255, 0];
            }
            for (k, px) in [base, gt, heat, pred].into_iter().enumerate() {
                img.put_pixel((k * (w + GAP) + x) as u32, y as u32, Rgb(px));
            }
        }
    }
    Ok(img)
}

/// Renders [`overlay_strip`] and writes it to `path` as PNG, atomically (temporary file in
/// the same folder, then rename).
pub fn save_overlay_png(path: impl AsRef<Path>, input: &OverlayInput<'_>) -> Result<()> {
    super::photo::save_png(path.as_ref(), &overlay_strip(input)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_endpoints() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(jet(-3.0), jet(0.0));
        assert_eq!(jet(7.0), jet(1.0));
    }

    fn input<'a>(image: &'a [f32], map: &'a [f32], mask: Option<&'a [bool]>) -> OverlayInput<'a> {
        OverlayInput {
            image,
            channels: 3,
            height: 4,
            width: 4,
            map,
            mask,
            threshold: 0.5,
        }
    }

    #[test]
    fn strip_layout_and_colours() {
        // Orange image; map high in the top-left 2×2 block; mask = that block.
        let mut image = vec![0.0f32; 3 * 16];
        image[..16].fill(1.0);
        image[16..32].fill(0.5);
        let mut map = vec![0.0f32; 16];
        let mut mask = vec![false; 16];
        for p in [0, 1, 4, 5] {
            map[p] = 1.0;
            mask[p] = true;
        }
        let img = overlay_strip(&input(&image, &map, Some(&mask))).unwrap();
        assert_eq!(img.dimensions(), (4 * 4 + 3 * 4, 4));
        assert_eq!(img.get_pixel(3, 3).0, [255, 128, 0]); // image panel
        assert_eq!(img.get_pixel(4, 0).0, [255, 255, 255]); // gap
        assert_eq!(img.get_pixel(8, 0).0, [255, 255, 255]); // GT inside
        assert_eq!(img.get_pixel(8 + 3, 3).0, [0, 0, 0]); // GT outside
        assert_eq!(img.get_pixel(16, 0).0, jet(1.0)); // heat map
        assert_eq!(img.get_pixel(16 + 3, 3).0, jet(0.0));
        assert_eq!(img.get_pixel(24 + 1, 1).0, [0, 255, 0]); // GT outline wins
        assert_eq!(img.get_pixel(24 + 3, 3).0, [255, 128, 0]); // untouched image
                                                               // Without ground truth: grey panel, predicted outline in red.
        let img = overlay_strip(&input(&image, &map, None)).unwrap();
        assert_eq!(img.get_pixel(8, 0).0, [128, 128, 128]);
        assert_eq!(img.get_pixel(24 + 1, 1).0, [255, 0, 0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let image = vec![0.5f32; 48];
        let map = vec![0.5f32; 16];
        assert!(overlay_strip(&input(&image[..47], &map, None)).is_err());
        assert!(overlay_strip(&input(&image, &map[..15], None)).is_err());
        let short = vec![false; 3];
        assert!(overlay_strip(&input(&image, &map, Some(&short))).is_err());
        let mut nan = map.clone();
        nan[2] = f32::NAN;
        assert!(overlay_strip(&input(&image, &nan, None)).is_err());
        let mut grey = input(&image, &map, None);
        grey.channels = 2;
        assert!(overlay_strip(&grey).is_err());
        grey.channels = 1;
        grey.image = &image[..16];
        assert!(overlay_strip(&grey).is_ok());
    }

    #[test]
    fn png_round_trip() {
        let dir = std::env::temp_dir().join(format!("dfd-overlay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("overlay.png");
        let image = vec![0.25f32; 48];
        let map: Vec<f32> = (0..16).map(|i| i as f32 / 15.0).collect();
        save_overlay_png(&path, &input(&image, &map, None)).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back, overlay_strip(&input(&image, &map, None)).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
