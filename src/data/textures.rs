//! Texture sources for the pseudo-anomalies (design §2): a folder of images (the Describable
//! Textures Dataset's `images/<class>/*.jpg`, or any folder, searched recursively) or, without
//! one, procedurally generated textures.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use noise::core::worley::ReturnType;
use noise::{Billow, Fbm, MultiFractal, NoiseFn, Perlin, RidgedMulti, Worley};
use rand::Rng;

use crate::error::{Error, Result};
use crate::image::{load_rgb, Image};

/// The notice shown when procedural textures stand in for the Describable Textures Dataset.
pub const PROCEDURAL_NOTICE: &str = "no texture folder given: using procedurally generated \
textures instead of the Describable Textures Dataset (DTD); pseudo-anomalies, and therefore \
results, differ from the paper's setup. Pass the DTD `images/` folder for the paper's setup.";

/// File extensions treated as images (lower-case comparison).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "gif"];

/// `true` when the path has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn is_image_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Deepest folder nesting [`list_images_recursive`] descends (deeper folders are an error,
/// not a silent cut).
pub const MAX_FOLDER_DEPTH: usize = 64;

/// Most folders [`list_images_recursive`] visits (the Describable Textures Dataset has 47).
pub const MAX_FOLDERS: usize = 100_000;

/// Total bytes of decoded textures a [`TextureSource`] keeps (each at the size it was asked
/// for); textures drawn once the budget is spent are decoded again at each draw.
pub const TEXTURE_CACHE_BYTES: usize = 256 << 20;

/// All image files under `dir`, recursively, sorted (hidden entries skipped). Symbolic
/// links to folders are followed, but each folder is visited once (by its canonical path),
/// so a link loop ends; more than [`MAX_FOLDER_DEPTH`] levels or [`MAX_FOLDERS`] folders is
/// an [`Error::Dataset`] naming `dir`.
pub fn list_images_recursive(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let canonical = |d: &Path| std::fs::canonicalize(d).map_err(|e| Error::io(d, e));
    let mut visited = std::collections::HashSet::from([canonical(dir)?]);
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                if !visited.insert(canonical(&p)?) {
                    continue; // a link back to a folder already seen
                }
                if depth + 1 > MAX_FOLDER_DEPTH || visited.len() > MAX_FOLDERS {
                    return Err(Error::Dataset {
                        path: dir.to_path_buf(),
                        message: format!(
                            "more than {MAX_FOLDER_DEPTH} nested folders or {MAX_FOLDERS} \
                             folders in all (at {})",
                            p.display()
                        ),
                    });
                }
                stack.push((p, depth + 1));
            } else if is_image_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The decoded textures of a [`TextureSource::Folder`], shared by its clones: each file is
/// decoded (within [`crate::image`]'s limits) and resized once per size, then reused, up to
/// [`TEXTURE_CACHE_BYTES`] in all. Always compares equal (it is a cache, not content).
#[derive(Clone, Default)]
pub struct TextureCache {
    inner: Arc<Mutex<CacheState>>,
}

#[derive(Default)]
struct CacheState {
    images: HashMap<(usize, usize), Arc<Image>>,
    bytes: usize,
    decodes: usize,
}

impl TextureCache {
    /// How many times a file has been decoded through this cache (for tests and progress).
    pub fn decodes(&self) -> usize {
        self.lock().decodes
    }

    /// Bytes of decoded textures held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic elsewhere while the lock was held leaves a cache that is still consistent
        // (entries are inserted whole), so a poisoned lock is used as it is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// File `index` (`path`) at `size × size`, decoded at most once while the budget lasts.
    fn get(&self, index: usize, path: &Path, size: usize) -> Result<Image> {
        if let Some(img) = self.lock().images.get(&(index, size)) {
            return Ok(Image::clone(img));
        }
        let img = load_rgb(path, size)?;
        let mut state = self.lock();
        state.decodes += 1;
        let bytes = img.data.len() * std::mem::size_of::<f32>();
        if state.bytes + bytes <= TEXTURE_CACHE_BYTES && !state.images.contains_key(&(index, size))
        {
            state.bytes += bytes;
            state.images.insert((index, size), Arc::new(img.clone()));
        }
        Ok(img)
    }
}

impl std::fmt::Debug for TextureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        write!(
            f,
            "TextureCache({} textures, {} bytes)",
            s.images.len(),
            s.bytes
        )
    }
}

impl PartialEq for TextureCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Where the textures `I_t` of the pseudo-anomalies come from.
#[derive(Clone, Debug, PartialEq)]
pub enum TextureSource {
    /// Image files found under a folder.
    Folder {
        /// The folder given by the user.
        root: PathBuf,
        /// The image files found (sorted).
        files: Vec<PathBuf>,
        /// The decoded textures, shared by clones of this source.
        cache: TextureCache,
    },
    /// Procedurally generated textures ([`procedural_texture`]).
    Procedural,
}

impl TextureSource {
    /// Collects the images under `dir` (recursively, see [`list_images_recursive`]). An
    /// error names the folder when it is missing, unreadable or holds no image file. Files
    /// are decoded later, when drawn, each once ([`TextureCache`]).
    pub fn from_folder(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Dataset {
                path: dir.to_path_buf(),
                message: "texture folder does not exist or is not a folder".into(),
            });
        }
        let files = list_images_recursive(dir)?;
        if files.is_empty() {
            return Err(Error::Dataset {
                path: dir.to_path_buf(),
                message: format!(
                    "texture folder holds no image file ({})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            });
        }
        Ok(TextureSource::Folder {
            root: dir.to_path_buf(),
            files,
            cache: TextureCache::default(),
        })
    }

    /// Procedural textures (see [`PROCEDURAL_NOTICE`]).
    pub fn procedural() -> Self {
        TextureSource::Procedural
    }

    /// The notice to show the user, for procedural textures.
    pub fn notice(&self) -> Option<&'static str> {
        match self {
            TextureSource::Procedural => Some(PROCEDURAL_NOTICE),
            TextureSource::Folder { .. } => None,
        }
    }

    /// Draws one texture, `3 × size × size` in `[0, 1]`: a random file, loaded like any image
    /// (and decoded once, see [`TextureCache`]), or a procedural texture.
    pub fn sample<R: Rng + ?Sized>(&self, size: usize, rng: &mut R) -> Result<Image> {
        match self {
            TextureSource::Folder { files, root, cache } => {
                if files.is_empty() {
                    return Err(Error::Dataset {
                        path: root.clone(),
                        message: "texture folder holds no image file".into(),
                    });
                }
                let i = rng.random_range(0..files.len());
                cache.get(i, &files[i], size)
            }
            TextureSource::Procedural => Ok(procedural_texture(size, rng.random(), rng)),
        }
    }
}

fn random_colour<R: Rng + ?Sized>(rng: &mut R) -> [f32; 3] {
    // Random hue, broad saturation and value: vivid and dull, dark and light colours.
    let h: f32 = rng.random_range(0.0..360.0);
    let s: f32 = rng.random_range(0.0..1.0f32).sqrt();
    let v: f32 = rng.random_range(0.05..1.0);
    let c = v * s;
    let hp = h / 60.0;
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
    [r + m, g + m, b + m]
}

/// A procedural texture, `3 × size × size` in `[0, 1]`. `seed` seeds the noise functions;
/// `rng` draws the pattern family (fractal noise, ridges, billows, cells, warped stripes,
/// warped checks, dots), its frequency, warp and a 2–4 colour palette, so that consecutive
/// draws look unlike each other.
pub fn procedural_texture<R: Rng + ?Sized>(size: usize, seed: u32, rng: &mut R) -> Image {
    let kind = rng.random_range(0..7u32);
    let freq: f64 = rng.random_range(2.0..14.0);
    let warp: f64 = rng.random_range(0.0..1.5);
    let angle: f64 = rng.random_range(0.0..std::f64::consts::PI);
    let octaves = rng.random_range(2..6usize);
    let ncol = rng.random_range(2..5usize);
    let palette: Vec<[f32; 3]> = (0..ncol).map(|_| random_colour(rng)).collect();
    let grain: f32 = rng.random_range(0.0..0.08);

    let fbm = Fbm::<Perlin>::new(seed)
        .set_octaves(octaves)
        .set_frequency(freq);
    let warp_fn = Fbm::<Perlin>::new(seed.wrapping_add(1))
        .set_octaves(3)
        .set_frequency(3.0);
    let ridged = RidgedMulti::<Perlin>::new(seed)
        .set_octaves(octaves)
        .set_frequency(freq);
    let billow = Billow::<Perlin>::new(seed)
        .set_octaves(octaves)
        .set_frequency(freq);
    let cells = Worley::new(seed)
        .set_frequency(freq)
        .set_return_type(ReturnType::Value);
    let dist = Worley::new(seed)
        .set_frequency(freq)
        .set_return_type(ReturnType::Distance);
    let grain_fn = Perlin::new(seed.wrapping_add(2));
    let (ca, sa) = (angle.cos(), angle.sin());
    let dot_r: f64 = rng.random_range(0.2..0.6);

    let n = size * size;
    let mut img = Image::zeros(3, size, size);
    for y in 0..size {
        for x in 0..size {
            let u = x as f64 / size.max(1) as f64;
            let v = y as f64 / size.max(1) as f64;
            let wv = warp * warp_fn.get([u, v]);
            let t = match kind {
                0 => 0.5 + 0.5 * fbm.get([u, v]),
                1 => 0.5 + 0.5 * ridged.get([u + 0.3 * wv, v]),
                2 => 0.5 + 0.5 * billow.get([u, v]),
                3 => cells.get([u + 0.1 * wv, v + 0.1 * wv]),
                4 => {
                    let p = (u * ca + v * sa) * freq * std::f64::consts::TAU + 3.0 * wv;
                    0.5 + 0.5 * p.sin()
                }
                5 => {
                    let a = ((u + 0.2 * wv) * freq * std::f64::consts::PI).sin();
                    let b = ((v - 0.2 * wv) * freq * std::f64::consts::PI).sin();
                    if a * b > 0.0 {
                        0.85
                    } else {
                        0.15
                    }
                }
                _ => {
                    let d = dist.get([u, v]);
                    if d < dot_r - 1.0 {
                        1.0
                    } else {
                        0.5 + 0.3 * fbm.get([u, v])
                    }
                }
            };
            let t = t.clamp(0.0, 1.0) as f32;
            // Piecewise-linear palette lookup.
            let pos = t * (ncol - 1) as f32;
            let i = (pos.floor() as usize).min(ncol - 2);
            let f = pos - i as f32;
            let g = grain * grain_fn.get([u * 64.0, v * 64.0]) as f32;
            for (c, (a, b)) in palette[i].iter().zip(&palette[i + 1]).enumerate() {
                let val = a * (1.0 - f) + b * f + g;
                img.data[c * n + y * size + x] = val.clamp(0.0, 1.0);
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn procedural_textures_vary_and_stay_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let texs: Vec<Image> = (0..8)
            .map(|_| TextureSource::procedural().sample(32, &mut rng).unwrap())
            .collect();
        for t in &texs {
            assert_eq!((t.channels, t.height, t.width), (3, 32, 32));
            assert!(t.data.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        // Different draws differ clearly (mean absolute difference).
        for i in 0..texs.len() - 1 {
            let d: f32 = texs[i]
                .data
                .iter()
                .zip(&texs[i + 1].data)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / texs[i].data.len() as f32;
            assert!(d > 0.01, "draws {i} and {} too similar ({d})", i + 1);
        }
        // At least one texture has real spatial variation.
        assert!(texs.iter().any(|t| {
            let m = t.data.iter().sum::<f32>() / t.data.len() as f32;
            t.data.iter().map(|v| (v - m).abs()).sum::<f32>() / t.data.len() as f32 > 0.02
        }));
    }

    #[test]
    fn empty_and_missing_folders_are_errors() {
        let dir = std::env::temp_dir().join(format!("dfd-tex-empty-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/readme.txt"), b"no images").unwrap();
        let e = TextureSource::from_folder(&dir).unwrap_err().to_string();
        assert!(e.contains("no image file"), "{e}");
        let e = TextureSource::from_folder(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(TextureSource::procedural().notice().is_some());
    }

    #[test]
    fn link_loops_end_and_textures_are_decoded_once() {
        let dir = std::env::temp_dir().join(format!("dfd-tex-loop-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let img = ::image::RgbImage::from_fn(40, 30, |x, y| ::image::Rgb([x as u8, y as u8, 7]));
        img.save(dir.join("a/b/t.png")).unwrap();
        img.save(dir.join("u.png")).unwrap();
        // Two links back to the root in each of two folders: 2^40 paths without the check.
        for (at, to) in [
            ("a/up", ".."),
            ("a/b/up", "../.."),
            ("a/b/self", "."),
            ("root", "."),
        ] {
            std::os::unix::fs::symlink(to, dir.join(at)).unwrap();
        }
        let src = TextureSource::from_folder(&dir).unwrap();
        let TextureSource::Folder { files, cache, .. } = &src else {
            unreachable!()
        };
        assert_eq!(files.len(), 2, "{files:?}");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let clone = src.clone();
        let first: Vec<Image> = (0..20)
            .map(|_| clone.sample(16, &mut rng).unwrap())
            .collect();
        assert_eq!(cache.decodes(), 2, "each file decoded once, clones share");
        assert_eq!(cache.bytes(), 2 * 3 * 16 * 16 * 4);
        // The cached draws are the images a fresh decode gives.
        for t in &first {
            assert!(
                *t == load_rgb(&files[0], 16).unwrap() || *t == load_rgb(&files[1], 16).unwrap()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
