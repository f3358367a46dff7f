//! Heat maps and overlays at a photo's own resolution (what `dfd predict` writes): the
//! anomaly map resized back to the input's size, as a grey PNG, and the photo blended with
//! the map's jet colours, the predicted region outlined, and a banner with the verdict and
//! the score.

use std::io::Cursor;
use std::path::Path;

use image::{GrayImage, Luma, Rgb, RgbImage};

use super::overlay::jet;
use crate::{Error, Result};

/// The map (`width × height`, row-major, nominally `[0, 1]`) as an 8-bit grey image
/// (`0` ↦ black, `1` and above ↦ white).
pub fn heatmap_image(map: &[f32], width: usize, height: usize) -> Result<GrayImage> {
    check(map.len(), width, height)?;
    Ok(GrayImage::from_fn(width as u32, height as u32, |x, y| {
        let v = map[y as usize * width + x as usize];
        let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        Luma([(v * 255.0).round() as u8])
    }))
}

fn check(len: usize, width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 || width.checked_mul(height) != Some(len) {
        return Err(Error::Shape(format!(
            "a {width} × {height} heat map needs {} values, got {len}",
            width.saturating_mul(height)
        )));
    }
    Ok(())
}

/// The photo blended half-and-half with the map's jet colours, the pixels above
/// `threshold` outlined in red, and a banner on top reading `FAIL 0.734` or `PASS 0.215`.
pub fn photo_overlay(
    photo: &RgbImage,
    map: &[f32],
    threshold: f32,
    score: f32,
    anomalous: bool,
) -> Result<RgbImage> {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    check(map.len(), w, h)?;
    let above = |x: usize, y: usize| map[y * w + x] > threshold;
    let mut out = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let (xi, yi) = (x as usize, y as usize);
        let p = photo.get_pixel(x, y).0;
        let c = jet(map[yi * w + xi]);
        let mix = |a: u8, b: u8| ((a as u16 + b as u16) / 2) as u8;
        let edge = above(xi, yi)
            && [(0i64, 1i64), (0, -1), (1, 0), (-1, 0)]
                .iter()
                .any(|(dx, dy)| {
                    let (nx, ny) = (xi as i64 + dx, yi as i64 + dy);
                    nx < 0
                        || ny < 0
                        || nx >= w as i64
                        || ny >= h as i64
                        || !above(nx as usize, ny as usize)
                });
        if edge {
            Rgb([255, 0, 0])
        } else {
            Rgb([mix(p[0], c[0]), mix(p[1], c[1]), mix(p[2], c[2])])
        }
    });
    let text = format!("{} {score:.3}", if anomalous { "FAIL" } else { "PASS" });
    let colour = if anomalous { [200, 0, 0] } else { [0, 140, 0] };
    draw_banner(&mut out, &text, colour);
    Ok(out)
}

/// Encodes an image as PNG and writes it atomically.
pub fn save_png<P, C>(path: &Path, img: &image::ImageBuffer<P, C>) -> Result<()>
where
    P: image::Pixel + image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::Image {
            path: path.to_path_buf(),
            message: format!("PNG encoding failed: {e}"),
        })?;
    super::write_atomic(path, &bytes)
}

/// 3 × 5 glyphs, one row per `u8` (three low bits, leftmost = 4), for the banner's text.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        'A' => [2, 5, 7, 5, 5],
        'F' => [7, 4, 6, 4, 4],
        'I' => [7, 2, 2, 2, 7],
        'L' => [4, 4, 4, 4, 7],
        'P' => [6, 5, 6, 4, 4],
        'S' => [3, 4, 2, 1, 6],
        'N' => [5, 7, 7, 7, 5],
        _ => [0; 5],
    }
}

/// A filled band across the top with `text` in white, scaled to the image's width.
fn draw_banner(img: &mut RgbImage, text: &str, colour: [u8; 3]) {
    let (w, h) = (img.width(), img.height());
    let cells = 4 * text.chars().count() as u32 + 1;
    let scale = (w / 3 / cells).clamp(1, 16).min((h / 8).max(1));
    let band = (7 * scale).min(h);
    for y in 0..band {
        for x in 0..w {
            img.put_pixel(x, y, Rgb(colour));
        }
    }
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..3u32 {
                if bits & (4 >> col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let x = (1 + 4 * i as u32 + col) * scale + dx;
                        let y = (1 + row as u32) * scale + dy;
                        if x < w && y < h {
                            img.put_pixel(x, y, Rgb([255, 255, 255]));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_keeps_the_photo_size_and_draws_verdict_and_outline() {
        let photo = RgbImage::from_pixel(300, 200, Rgb([100, 100, 100]));
        let mut map = vec![0.0f32; 300 * 200];
        for y in 120..160 {
            for x in 100..200 {
                map[y * 300 + x] = 0.9;
            }
        }
        let o = photo_overlay(&photo, &map, 0.5, 0.9, true).unwrap();
        assert_eq!(o.dimensions(), (300, 200));
        assert_eq!(
            o.get_pixel(150, 120).0,
            [255, 0, 0],
            "outline on the region's edge"
        );
        assert_ne!(
            o.get_pixel(150, 140).0,
            [255, 0, 0],
            "inside is blended, not outlined"
        );
        assert_eq!(o.get_pixel(0, 0).0, [200, 0, 0], "red banner for FAIL");
        let pass = photo_overlay(&photo, &map, 0.95, 0.9, false).unwrap();
        assert_eq!(pass.get_pixel(0, 0).0, [0, 140, 0]);
        let grey = heatmap_image(&map, 300, 200).unwrap();
        assert_eq!(grey.get_pixel(150, 140).0, [230]);
        assert!(heatmap_image(&map, 200, 200).is_err());
    }
}
