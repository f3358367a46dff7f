//! A deterministic synthetic dataset in MVTec AD layout: textures and simple objects with
//! planted scratches, spots, cracks and missing pieces, with ground-truth masks. Used by the
//! tests and by the examples when the user gives no data.
//!
//! The category's look (pattern family, palette, object shape) is fixed by `seed`; each image
//! varies the noise and (for objects) the position slightly, like photos of one product.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::textures::procedural_texture;
use crate::error::{Error, Result};
use crate::image::{to_u8, Image};

/// The defect types planted in the test set (one test folder each).
pub const DEFECT_TYPES: [&str; 4] = ["scratch", "spot", "crack", "missing"];

/// How many images to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticCounts {
    /// Images in `train/good`.
    pub train_good: usize,
    /// Images in `test/good`.
    pub test_good: usize,
    /// Images in each `test/<defect>` folder (one folder per [`DEFECT_TYPES`] entry).
    pub test_per_defect: usize,
}

impl Default for SyntheticCounts {
    fn default() -> Self {
        SyntheticCounts {
            train_good: 8,
            test_good: 8,
            test_per_defect: 4,
        }
    }
}

/// Texture (the whole image is one surface) or object (a shape on a plain background).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticKind {
    /// A surface filling the frame.
    Texture,
    /// A textured ellipse on a plain background.
    Object,
}

impl SyntheticKind {
    /// `Object` when the name contains `"object"`, otherwise `Texture`.
    pub fn for_name(name: &str) -> SyntheticKind {
        if name.contains("object") {
            SyntheticKind::Object
        } else {
            SyntheticKind::Texture
        }
    }
}

/// Writes `<root>/<name>/{train/good, test/good, test/<defect>, ground_truth/<defect>}` with
/// `size × size` PNGs (masks `<nnn>_mask.png`, 0/255) and returns the category folder. The
/// kind follows [`SyntheticKind::for_name`]. Same arguments → byte-identical files.
pub fn generate_category(
    root: &Path,
    name: &str,
    size: usize,
    counts: SyntheticCounts,
    seed: u64,
) -> Result<PathBuf> {
    generate_category_of_kind(
        root,
        name,
        SyntheticKind::for_name(name),
        size,
        counts,
        seed,
    )
}

/// Like [`generate_category`] with an explicit kind.
pub fn generate_category_of_kind(
    root: &Path,
    name: &str,
    kind: SyntheticKind,
    size: usize,
    counts: SyntheticCounts,
    seed: u64,
) -> Result<PathBuf> {
    generate_varied_category(root, name, kind, 0.0, size, counts, seed)
}

/// Like [`generate_category_of_kind`] with natural variation between good parts, in `[0, 2]`:
/// 0 is the fixed look of [`generate_category`] (byte-identical output); above it each image
/// also varies in lighting (gain ± 15 % × v), and objects in position (± 4 % + 6 % × v of
/// the side), orientation (± 0.4 × v rad) and size (± 6 % × v) — what a few shots cannot
/// show and a threshold must tolerate.
pub fn generate_varied_category(
    root: &Path,
    name: &str,
    kind: SyntheticKind,
    variation: f32,
    size: usize,
    counts: SyntheticCounts,
    seed: u64,
) -> Result<PathBuf> {
    if !(0.0..=2.0).contains(&variation) {
        return Err(Error::Config(format!(
            "synthetic variation {variation} is outside [0, 2]"
        )));
    }
    if size < 16 {
        return Err(Error::Config(format!(
            "synthetic image size {size} is below 16"
        )));
    }
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(Error::Config(format!("invalid category name `{name}`")));
    }
    let dir = root.join(name);
    let mkdir = |p: &Path| std::fs::create_dir_all(p).map_err(|e| Error::io(p, e));
    mkdir(&dir.join("train/good"))?;
    mkdir(&dir.join("test/good"))?;
    for d in DEFECT_TYPES {
        mkdir(&dir.join("test").join(d))?;
        mkdir(&dir.join("ground_truth").join(d))?;
    }
    let mut style = Style::new(kind, seed);
    style.variation = variation;
    let mut index = 0u64;
    let mut next_rng = || {
        index += 1;
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(index);
        r
    };
    for i in 0..counts.train_good {
        let (img, _) = style.normal(size, &mut next_rng());
        write_rgb(&img, &dir.join(format!("train/good/{i:03}.png")))?;
    }
    for i in 0..counts.test_good {
        let (img, _) = style.normal(size, &mut next_rng());
        write_rgb(&img, &dir.join(format!("test/good/{i:03}.png")))?;
    }
    for (t, defect) in DEFECT_TYPES.iter().enumerate() {
        for i in 0..counts.test_per_defect {
            let mut rng = next_rng();
            let (mut img, object) = style.normal(size, &mut rng);
            let mask = plant_defect(&mut img, &object, &style, t, &mut rng);
            write_rgb(&img, &dir.join(format!("test/{defect}/{i:03}.png")))?;
            write_mask(
                &mask,
                &dir.join(format!("ground_truth/{defect}/{i:03}_mask.png")),
            )?;
        }
    }
    Ok(dir)
}

struct Style {
    kind: SyntheticKind,
    seed: u64,
    background: [f32; 3],
    radius: (f32, f32),
    /// Natural variation between good parts (0: none; see [`generate_varied_category`]).
    variation: f32,
}

impl Style {
    fn new(kind: SyntheticKind, seed: u64) -> Style {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_57e1);
        let g: f32 = rng.random_range(0.05..0.25);
        Style {
            kind,
            seed,
            background: [g, g * 1.05, g * 1.1],
            radius: (rng.random_range(0.28..0.36), rng.random_range(0.3..0.4)),
            variation: 0.0,
        }
    }

    /// A normal image and its object mask (all ones for textures).
    fn normal(&self, size: usize, rng: &mut ChaCha8Rng) -> (Image, Vec<bool>) {
        // The same style RNG every time → same pattern family and palette; the noise seed varies.
        let mut style_rng = ChaCha8Rng::seed_from_u64(self.seed);
        let tex = procedural_texture(size, rng.random(), &mut style_rng);
        let n = size * size;
        let v = self.variation;
        // Extra draws only with variation, so that v = 0 reproduces the fixed look exactly.
        let mut vary = |m: f32| {
            if v > 0.0 {
                rng.random_range(-m..=m) * v
            } else {
                0.0
            }
        };
        let gain = 1.0 + vary(0.15);
        let (mut img, obj) = match self.kind {
            SyntheticKind::Texture => (tex, vec![true; n]),
            SyntheticKind::Object => {
                let s = size as f32;
                let (shift_x, shift_y, angle, scale) =
                    (vary(0.06), vary(0.06), vary(0.4), vary(0.06));
                let cx = s / 2.0 + (rng.random_range(-0.04..0.04) + shift_x) * s;
                let cy = s / 2.0 + (rng.random_range(-0.04..0.04) + shift_y) * s;
                let (rx, ry) = (
                    self.radius.0 * s * (1.0 + scale),
                    self.radius.1 * s * (1.0 + scale),
                );
                let (sin, cos) = angle.sin_cos();
                let mut img = Image::zeros(3, size, size);
                let mut obj = vec![false; n];
                for y in 0..size {
                    for x in 0..size {
                        let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                        let dx = (cos * px + sin * py) / rx;
                        let dy = (-sin * px + cos * py) / ry;
                        let r = dx * dx + dy * dy;
                        let i = y * size + x;
                        for c in 0..3 {
                            img.data[c * n + i] = if r <= 1.0 {
                                // Texture with a shaded rim.
                                let shade = 1.0 - 0.35 * r * r;
                                (0.25 + 0.75 * tex.data[c * n + i]) * shade
                            } else {
                                self.background[c]
                            };
                        }
                        obj[i] = r <= 1.0;
                    }
                }
                (img, obj)
            }
        };
        if v > 0.0 {
            for x in img.data.iter_mut() {
                *x = (*x * gain).clamp(0.0, 1.0);
            }
        }
        (img, obj)
    }
}

/// One category of the benchmark suite ([`suite`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SuiteCategory {
    /// Folder name.
    pub name: &'static str,
    /// Texture or object.
    pub kind: SyntheticKind,
    /// Natural variation between good parts (see [`generate_varied_category`]).
    pub variation: f32,
    /// Look of the category (pattern family, palette, shape).
    pub style_seed: u64,
}

/// The synthetic benchmark suite: six categories, textures and objects on a background,
/// from fixed looks to good parts that vary in position, orientation, size and lighting.
pub fn suite() -> Vec<SuiteCategory> {
    let c = |name, kind, variation, style_seed| SuiteCategory {
        name,
        kind,
        variation,
        style_seed,
    };
    vec![
        c("texture_fixed", SyntheticKind::Texture, 0.0, 11),
        c("texture_lit", SyntheticKind::Texture, 1.0, 12),
        c("texture_varied", SyntheticKind::Texture, 2.0, 13),
        c("object_fixed", SyntheticKind::Object, 0.0, 21),
        c("object_placed", SyntheticKind::Object, 1.0, 22),
        c("object_varied", SyntheticKind::Object, 2.0, 23),
    ]
}

/// Images per suite category: 8 good training images, 40 good and 40 defective (10 per
/// defect type) test images.
pub const SUITE_COUNTS: SyntheticCounts = SyntheticCounts {
    train_good: 8,
    test_good: 40,
    test_per_defect: 10,
};

/// Writes the whole [`suite`] under `root` (one MVTec-layout folder per category, images of
/// `size × size`); `seed` picks the suite's instance (each category's look and images).
/// Same arguments → byte-identical files. Returns the category folders.
pub fn generate_suite(root: &Path, size: usize, seed: u64) -> Result<Vec<PathBuf>> {
    suite()
        .iter()
        .map(|c| {
            generate_varied_category(
                root,
                c.name,
                c.kind,
                c.variation,
                size,
                SUITE_COUNTS,
                c.style_seed.wrapping_mul(0x9E37_79B9).wrapping_add(seed),
            )
        })
        .collect()
}

fn seg_dist(px: f32, py: f32, a: (f32, f32), b: (f32, f32)) -> f32 {
    let (vx, vy) = (b.0 - a.0, b.1 - a.1);
    let len2 = vx * vx + vy * vy;
    let t = if len2 > 0.0 {
        (((px - a.0) * vx + (py - a.1) * vy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * vx, a.1 + t * vy);
    ((px - qx).powi(2) + (py - qy).powi(2)).sqrt()
}

/// Plants defect `t` (index into [`DEFECT_TYPES`]) and returns its mask.
fn plant_defect(
    img: &mut Image,
    object: &[bool],
    style: &Style,
    t: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<bool> {
    let size = img.width;
    let s = size as f32;
    let n = size * size;
    // A centre inside the object (textures: anywhere away from the border).
    let inside: Vec<usize> = (0..n)
        .filter(|&i| {
            let (x, y) = (i % size, i / size);
            object[i] && x > size / 8 && x < size - size / 8 && y > size / 8 && y < size - size / 8
        })
        .collect();
    let centre = if inside.is_empty() {
        n / 2 + size / 2
    } else {
        inside[rng.random_range(0..inside.len())]
    };
    let (cx, cy) = ((centre % size) as f32 + 0.5, (centre / size) as f32 + 0.5);
    let mut mask = vec![false; n];
    let width = (s / 100.0).max(1.0);
    match DEFECT_TYPES[t] {
        "scratch" => {
            let ang: f32 = rng.random_range(0.0..std::f32::consts::PI);
            let half = rng.random_range(0.1..0.22) * s;
            let a = (cx - half * ang.cos(), cy - half * ang.sin());
            let b = (cx + half * ang.cos(), cy + half * ang.sin());
            for (i, m) in mask.iter_mut().enumerate() {
                let (x, y) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
                *m = seg_dist(x, y, a, b) <= width && object[i];
            }
        }
        "spot" => {
            let rx = rng.random_range(0.03..0.08) * s;
            let ry = rng.random_range(0.03..0.08) * s;
            for (i, m) in mask.iter_mut().enumerate() {
                let (x, y) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
                *m = ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2) <= 1.0 && object[i];
            }
        }
        "crack" => {
            let mut pts = vec![(cx, cy)];
            let mut ang: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            for _ in 0..rng.random_range(4..8) {
                ang += rng.random_range(-0.9..0.9);
                let step = rng.random_range(0.03..0.07) * s;
                let (px, py) = pts[pts.len() - 1];
                pts.push((px + step * ang.cos(), py + step * ang.sin()));
            }
            for (i, m) in mask.iter_mut().enumerate() {
                let (x, y) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
                *m = pts
                    .windows(2)
                    .any(|w| seg_dist(x, y, w[0], w[1]) <= width * 0.8)
                    && object[i];
            }
        }
        _ => {
            // Missing piece: a lobe of the surface removed (objects: shows the background;
            // textures: a dark hole).
            let r = rng.random_range(0.06..0.12) * s;
            let (ox, oy) = match style.kind {
                SyntheticKind::Object => {
                    // Move the centre towards the object's edge.
                    let ang: f32 = rng.random_range(0.0..std::f32::consts::TAU);
                    (
                        s / 2.0 + style.radius.0 * s * ang.cos(),
                        s / 2.0 + style.radius.1 * s * ang.sin(),
                    )
                }
                SyntheticKind::Texture => (cx, cy),
            };
            for (i, m) in mask.iter_mut().enumerate() {
                let (x, y) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
                *m = (x - ox).powi(2) + (y - oy).powi(2) <= r * r && object[i];
            }
            if !mask.iter().any(|&m| m) {
                for (i, m) in mask.iter_mut().enumerate() {
                    let (x, y) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
                    *m = (x - cx).powi(2) + (y - cy).powi(2) <= r * r && object[i];
                }
            }
        }
    }
    // Colour of the defect: contrasting with the local mean.
    let mean: Vec<f32> = (0..3)
        .map(|c| {
            let (sum, cnt) = mask
                .iter()
                .enumerate()
                .filter(|(_, &m)| m)
                .fold((0.0, 0), |(s, k), (i, _)| (s + img.data[c * n + i], k + 1));
            if cnt > 0 {
                sum / cnt as f32
            } else {
                0.5
            }
        })
        .collect();
    let lum = 0.299 * mean[0] + 0.587 * mean[1] + 0.114 * mean[2];
    let colour: [f32; 3] = match DEFECT_TYPES[t] {
        "missing" => match style.kind {
            SyntheticKind::Object => style.background,
            SyntheticKind::Texture => [0.02, 0.02, 0.02],
        },
        "spot" => {
            let tint: f32 = rng.random_range(0.0..1.0);
            if lum > 0.5 {
                [0.15 + 0.2 * tint, 0.1, 0.05]
            } else {
                [0.9, 0.75 + 0.2 * tint, 0.5]
            }
        }
        _ => {
            if lum > 0.45 {
                [lum * 0.3; 3]
            } else {
                [(lum + 0.5).min(1.0); 3]
            }
        }
    };
    for (i, &m) in mask.iter().enumerate() {
        if m {
            for (c, &col) in colour.iter().enumerate() {
                img.data[c * n + i] = col;
            }
        }
    }
    mask
}

fn write_rgb(img: &Image, path: &Path) -> Result<()> {
    let n = img.plane_len();
    let mut buf = vec![0u8; 3 * n];
    for i in 0..n {
        for c in 0..3 {
            buf[3 * i + c] = to_u8(img.data[c * n + i]);
        }
    }
    image::RgbImage::from_raw(img.width as u32, img.height as u32, buf)
        .ok_or_else(|| Error::Shape("synthetic image buffer size".into()))?
        .save(path)
        .map_err(|e| Error::Image {
            path: path.to_path_buf(),
            message: format!("cannot write PNG: {e}"),
        })
}

fn write_mask(mask: &[bool], path: &Path) -> Result<()> {
    let size = (mask.len() as f64).sqrt() as u32;
    let buf: Vec<u8> = mask.iter().map(|&m| if m { 255 } else { 0 }).collect();
    image::GrayImage::from_raw(size, size, buf)
        .ok_or_else(|| Error::Shape("synthetic mask buffer size".into()))?
        .save(path)
        .map_err(|e| Error::Image {
            path: path.to_path_buf(),
            message: format!("cannot write PNG: {e}"),
        })
}
