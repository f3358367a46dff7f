//! Image-level pseudo-anomalies and the training set (design §2).
//!
//! [`make_pseudo_sample`] turns one normal image into one training sample (rotation, the
//! `p_anomaly` draw, Perlin × foreground mask, augmented texture, β-blending, label); it is
//! usable on its own (e.g. for held-out calibration samples). [`build_training_set`] builds
//! `k × N` samples, each image split into low / high frequency inputs and ImageNet-normalised.
//!
//! Determinism: sample `j` (counting over all shots) uses ChaCha8 seeded with `seed` on stream
//! `j`, so the set is bit-identical for one seed whatever the number of threads.

use std::sync::Mutex;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::augment::random_augment;
use crate::data::otsu::ForegroundRule;
use crate::data::perlin::{perlin_mask, PerlinConfig};
use crate::data::textures::TextureSource;
use crate::error::{Error, Result};
use crate::image::{frequency_split, normalize_imagenet, resize_bilinear, rotate, Image};
use crate::progress::{Event, Progress, Stage};

/// Configuration of the training-set builder. Defaults are the paper's (design §2).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSetConfig {
    /// Samples built from each shot (`N`, paper: 80).
    pub samples_per_shot: usize,
    /// Probability that a sample is a pseudo-anomaly (paper 0.7; reference code 0.8).
    pub p_anomaly: f64,
    /// Foreground rule; `Auto` uses the per-category default ([`ForegroundRule::for_category`]).
    pub foreground: ForegroundRule,
    /// `β ~ U(0, beta_max)` (paper: 0.8).
    pub beta_max: f32,
    /// The shot is rotated by `U(−max, max)` degrees (paper: 90).
    pub max_rotation_deg: f64,
    /// Perlin mask parameters (lattice exponents 0..=5, rotation ±90°, threshold 0.5).
    pub perlin: PerlinConfig,
    /// Number of distinct augmenters applied to each texture (paper: 3).
    pub augmenters_per_texture: usize,
}

impl Default for TrainSetConfig {
    fn default() -> Self {
        TrainSetConfig {
            samples_per_shot: 80,
            p_anomaly: 0.7,
            foreground: ForegroundRule::Auto,
            beta_max: 0.8,
            max_rotation_deg: 90.0,
            perlin: PerlinConfig::default(),
            augmenters_per_texture: 3,
        }
    }
}

impl TrainSetConfig {
    /// Checks value ranges; an error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.samples_per_shot == 0 {
            return bad("samples_per_shot must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.p_anomaly) {
            return bad(format!("p_anomaly = {} is not in [0, 1]", self.p_anomaly));
        }
        if !(0.0..=1.0).contains(&self.beta_max) {
            return bad(format!("beta_max = {} is not in [0, 1]", self.beta_max));
        }
        if !self.max_rotation_deg.is_finite() || self.max_rotation_deg < 0.0 {
            return bad(format!(
                "max_rotation_deg = {} is invalid",
                self.max_rotation_deg
            ));
        }
        if self.perlin.max_scale_exp < self.perlin.min_scale_exp || self.perlin.max_scale_exp > 12 {
            return bad("perlin scale exponents must satisfy min ≤ max ≤ 12".into());
        }
        if self.augmenters_per_texture > 10 {
            return bad("augmenters_per_texture must be at most 10".into());
        }
        Ok(())
    }
}

/// One sample before the frequency split, values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PseudoSample {
    /// The rotated normal image `I` (3 × H × W).
    pub normal: Image,
    /// The sample `I_a` (equal to `normal` when the draw made no anomaly).
    pub anomalous: Image,
    /// The mask `M = M_f ⊙ M_p` (1 × H × W, 0/1; all zero for a normal sample).
    pub mask: Image,
    /// 1 when the mask has any pixel, else 0.
    pub label: f32,
}

/// Builds one sample from a normal image (design §2). `rule` must be resolved (see
/// [`ForegroundRule::resolve`]; `Auto` acts as `All`). Objects (a rule with a mask) are
/// rotated with the top-left pixel colour as border; otherwise the border is black.
pub fn make_pseudo_sample<R: Rng + ?Sized>(
    shot: &Image,
    rule: ForegroundRule,
    cfg: &TrainSetConfig,
    textures: &TextureSource,
    rng: &mut R,
) -> Result<PseudoSample> {
    if shot.channels != 3 || shot.height == 0 || shot.width == 0 {
        return Err(Error::Shape(format!(
            "a shot must be a non-empty 3-channel image, got {}×{}×{}",
            shot.channels, shot.height, shot.width
        )));
    }
    let (h, w) = (shot.height, shot.width);
    let fill: Vec<f32> = if rule.uses_mask() {
        (0..3).map(|c| shot.get(c, 0, 0)).collect()
    } else {
        vec![0.0; 3]
    };
    let angle = if cfg.max_rotation_deg > 0.0 {
        rng.random_range(-cfg.max_rotation_deg..=cfg.max_rotation_deg)
    } else {
        0.0
    };
    let normal = rotate(shot, angle, &fill);
    if rng.random::<f64>() >= cfg.p_anomaly {
        return Ok(PseudoSample {
            anomalous: normal.clone(),
            normal,
            mask: Image::zeros(1, h, w),
            label: 0.0,
        });
    }
    let fg = rule.mask(&normal);
    let mut mask = perlin_mask(h, w, &cfg.perlin, rng);
    for (m, f) in mask.data.iter_mut().zip(&fg.data) {
        *m *= f;
    }
    let mut texture = textures.sample(h.max(w), rng)?;
    if texture.height != h || texture.width != w {
        texture = resize_bilinear(&texture, h, w);
    }
    let (texture, _) = random_augment(&texture, cfg.augmenters_per_texture, rng);
    let beta = rng.random::<f32>() * cfg.beta_max;
    let n = h * w;
    let mut anomalous = normal.clone();
    for c in 0..3 {
        for i in 0..n {
            let m = mask.data[i];
            let x = normal.data[c * n + i];
            let t = texture.data[c * n + i];
            anomalous.data[c * n + i] = (1.0 - m) * x + (1.0 - beta) * (m * t) + beta * (m * x);
        }
    }
    let label = if mask.data.iter().any(|&v| v > 0.0) {
        1.0
    } else {
        0.0
    };
    Ok(PseudoSample {
        normal,
        anomalous,
        mask,
        label,
    })
}

/// One training sample: both images split into frequency paths and ImageNet-normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSample {
    /// Low-frequency part of the normal image (3 × S × S, normalised).
    pub normal_low: Image,
    /// High-frequency part of the normal image (3 × S × S, normalised).
    pub normal_high: Image,
    /// Low-frequency part of the pseudo-anomalous image (3 × S × S, normalised).
    pub anomalous_low: Image,
    /// High-frequency part of the pseudo-anomalous image (3 × S × S, normalised).
    pub anomalous_high: Image,
    /// The anomaly mask (1 × S × S, 0/1).
    pub mask: Image,
    /// 1 for a pseudo-anomaly with a non-empty mask, else 0.
    pub label: f32,
}

impl TrainSample {
    /// Splits and normalises a [`PseudoSample`].
    pub fn from_pseudo(p: &PseudoSample) -> TrainSample {
        let split = |img: &Image| {
            let (mut lo, mut hi) = frequency_split(img);
            normalize_imagenet(&mut lo);
            normalize_imagenet(&mut hi);
            (lo, hi)
        };
        let (normal_low, normal_high) = split(&p.normal);
        let (anomalous_low, anomalous_high) = split(&p.anomalous);
        TrainSample {
            normal_low,
            normal_high,
            anomalous_low,
            anomalous_high,
            mask: p.mask.clone(),
            label: p.label,
        }
    }
}

/// The RNG of sample `index` for `seed` (ChaCha8, one stream per sample).
pub fn sample_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// Builds the `k × N` training samples (shot-major order: the first `N` come from the first
/// shot). Shots must be 3-channel images of one size. Runs on all CPU cores; the result
/// depends only on the inputs and `seed`. Reports its progress to `progress`, and, for
/// procedural textures, sends [`TextureSource::notice`] as a note.
pub fn build_training_set(
    shots: &[Image],
    category: &str,
    cfg: &TrainSetConfig,
    textures: &TextureSource,
    seed: u64,
    progress: &Progress,
) -> Result<Vec<TrainSample>> {
    cfg.validate()?;
    let first = shots
        .first()
        .ok_or_else(|| Error::Config("no shots given to build the training set".into()))?;
    for (i, s) in shots.iter().enumerate() {
        if s.channels != 3 || !s.same_shape(first) || s.data.len() != 3 * s.height * s.width {
            return Err(Error::Shape(format!(
                "shot {i} is {}×{}×{}, expected 3×{}×{} like shot 0",
                s.channels, s.height, s.width, first.height, first.width
            )));
        }
    }
    if let Some(note) = textures.notice() {
        progress.emit(Event::Note(note));
    }
    let rule = cfg.foreground.resolve(category);
    let total = shots.len() * cfg.samples_per_shot;
    let bar = progress.stage(Stage::TrainingSet, total as u64);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(total.max(1));
    let slots: Vec<Mutex<Option<Result<TrainSample>>>> =
        (0..total).map(|_| Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if j >= total {
                    break;
                }
                let shot = &shots[j / cfg.samples_per_shot];
                let mut rng = sample_rng(seed, j as u64);
                let r = make_pseudo_sample(shot, rule, cfg, textures, &mut rng)
                    .map(|p| TrainSample::from_pseudo(&p));
                let failed = r.is_err();
                if let Ok(mut slot) = slots[j].lock() {
                    *slot = Some(r);
                }
                bar.advance(1);
                if failed {
                    // Stop handing out work; the error is reported below.
                    next.store(total, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    drop(bar);
    let results: Vec<Option<Result<TrainSample>>> = slots
        .into_iter()
        .map(|s| s.into_inner().ok().flatten())
        .collect();
    if let Some(pos) = results.iter().position(|r| matches!(r, Some(Err(_)))) {
        if let Some(Some(Err(e))) = results.into_iter().nth(pos) {
            return Err(e);
        }
        return Err(Error::Config(format!("training sample {pos} failed")));
    }
    let mut out = Vec::with_capacity(total);
    for (j, r) in results.into_iter().enumerate() {
        match r {
            Some(Ok(s)) => out.push(s),
            _ => return Err(Error::Config(format!("training sample {j} was not built"))),
        }
    }
    Ok(out)
}
