//! The training configuration: every value of design §1–§3 in one serialisable struct, with
//! presets.
//!
//! - [`TrainConfig::paper`]: the paper's values for MVTec AD (design §3: `θ = 0.8`,
//!   `λ_Per = 2`, `λ_Sim = 0.02`, `p_anomaly = 0.7`); [`TrainConfig::paper_visa`] its VisA
//!   variant (`λ_Per = λ_Sim = 1`).
//! - [`TrainConfig::reference_code`]: the authors' public code (`θ = 0.5`, both λ = 1,
//!   `p_anomaly = 0.8`).
//! - [`TrainConfig::fast`]: a reduced configuration sized for CPU-only machines (software
//!   Vulkan; training times in `docs/bench-notes.md`): `S = 64` (an 8×8 feature grid), a smaller
//!   feature dimension and fewer samples and epochs. Its numbers are not the paper's.
//! - [`TrainConfig::tiny`]: the smallest useful configuration, for tests and CI.
//!
//! The configuration is stored as JSON in every model file (see [`crate::detector`]), so a
//! detector always knows how it was made.

use serde::{Deserialize, Serialize};

use crate::backbone::Precision;
use crate::data::otsu::ForegroundRule;
use crate::data::perlin::PerlinConfig;
use crate::data::trainset::TrainSetConfig;
use crate::detector::postprocess::ThresholdRule;
use crate::kernels::patch::PatchDims;
use crate::{Error, Result};

/// Largest `image_size` accepted (4× the paper's side: 16× its pixels and tokens).
pub const MAX_IMAGE_SIZE: usize = 1024;
/// Largest `pre_dim`, `feature_dim` and `gau_hidden` accepted (the paper's 1536 is well
/// inside).
pub const MAX_DIM: usize = 4096;
/// Most attention heads accepted.
pub const MAX_HEADS: usize = 64;
/// Largest `mlp_ratio` accepted.
pub const MAX_MLP_RATIO: usize = 16;
/// Most epochs (and largest `cosine_t_max`) accepted: 12.5× the paper's 80.
pub const MAX_EPOCHS: usize = 1000;
/// Largest `batch` and `extract_batch` accepted.
pub const MAX_BATCH: usize = 256;
/// Most samples per shot accepted: 12.5× the paper's 80.
pub const MAX_SAMPLES_PER_SHOT: usize = 1000;
/// Most calibration samples per shot accepted.
pub const MAX_CALIBRATION_PER_SHOT: usize = 1000;
/// Largest `loss_check_every` accepted.
pub const MAX_LOSS_CHECK_EVERY: usize = 1_000_000;
/// Largest `blur_sigma` accepted (pixels at `S = 256`; the paper's is 4).
pub const MAX_BLUR_SIGMA: f64 = 32.0;
/// Largest `blur_truncate` accepted (in units of `σ`; scipy's default is 4).
pub const MAX_BLUR_TRUNCATE: f64 = 8.0;
/// Longest `preset` name accepted, in bytes.
pub const MAX_PRESET_NAME: usize = 256;

/// Every hyper-parameter of DFD (design §1–§4) plus the few knobs of this implementation.
///
/// Every value has a range (see [`TrainConfig::validate`], which lists them): generous, but
/// finite, so that a configuration read from a file can neither allocate without bound nor
/// make training run many times longer than the paper's. In JSON every field may be absent;
/// an absent field takes the [`TrainConfig::paper`] value (so files written before a field
/// existed still load). Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Name of the preset this configuration started from (informational).
    pub preset: String,

    // --- Shapes (design §1) ---
    /// Image size `S` (images are resized to `S × S`; must be a multiple of 16).
    pub image_size: usize,
    /// Per-layer pooled length of the patch aggregation (`pretrain_embed_dimension`, 1536).
    pub pre_dim: usize,
    /// Feature dimension `D` (`target_embed_dimension`, 1536).
    pub feature_dim: usize,
    /// Hidden width of the Gaussian discriminator `φ_G` (1024).
    pub gau_hidden: usize,
    /// Attention heads of the Perlin discriminator's transformer block (16; must divide `D`).
    pub heads: usize,
    /// MLP width of the transformer block as a multiple of `D` (4).
    pub mlp_ratio: usize,

    // --- Training set (design §2) ---
    /// Samples built from each shot, `N` (80).
    pub samples_per_shot: usize,
    /// Probability that a sample is a pseudo-anomaly (paper 0.7, reference code 0.8).
    pub p_anomaly: f64,
    /// `β ~ U(0, beta_max)` for the texture blend (0.8).
    pub beta_max: f32,
    /// Shots are rotated by `U(−max, max)` degrees (90).
    pub max_rotation_deg: f64,
    /// Smallest Perlin lattice exponent (0).
    pub perlin_min_scale_exp: u32,
    /// Largest Perlin lattice exponent, inclusive (5).
    pub perlin_max_scale_exp: u32,
    /// Perlin noise threshold (0.5).
    pub perlin_threshold: f32,
    /// Perlin noise rotation `U(−max, max)` degrees (90).
    pub perlin_max_rotation_deg: f64,
    /// Distinct augmenters applied to each texture (3).
    pub augmenters_per_texture: usize,
    /// Foreground rule for the pseudo-anomaly mask; `Auto` follows the category name
    /// (unknown categories: no mask).
    pub foreground: ForegroundRule,

    // --- Training (design §3) ---
    /// Epochs (80). Each has `k · N / batch` steps (at least one).
    pub epochs: usize,
    /// Batch size (8); samples are drawn uniformly with replacement.
    pub batch: usize,
    /// Standard deviation `σ` of the feature-level noise (Eq. 4; 0.015).
    pub noise_std: f32,
    /// Margin `θ` of the hinge losses (paper 0.8, reference code 0.5).
    pub margin: f32,
    /// Weight `λ_Per` of the Perlin-discriminator loss (paper 2 MVTec / 1 VisA, code 1).
    pub lambda_per: f32,
    /// Weight `λ_Sim` of the similarity loss (paper 0.02 MVTec / 1 VisA, code 1).
    pub lambda_sim: f32,
    /// Adam learning rate of the adaptor (5e-4, constant).
    pub lr_adaptor: f32,
    /// Adam learning rate of `φ_G` (2e-4, cosine-annealed).
    pub lr_gaussian: f32,
    /// Adam learning rate of `φ_P` (1e-4, cosine-annealed).
    pub lr_perlin: f32,
    /// L2 weight decay on both discriminators (1e-5, PyTorch `Adam` style).
    pub weight_decay: f32,
    /// Period `T_max` of the cosine annealing, in epochs (76).
    pub cosine_t_max: usize,
    /// Floor `η_min` of the cosine annealing (0.4e-4).
    pub cosine_eta_min: f32,
    /// Seed of the training set, the batch draws, the noise and the heads' initialisation.
    pub seed: u64,

    // --- Inference (design §4) ---
    /// Gaussian blur `σ` of the anomaly maps, in pixels at `S = 256` (4); scaled with the
    /// image size (`σ · S / 256`) so smaller presets blur the same fraction of the image.
    pub blur_sigma: f32,
    /// Blur truncation in units of `σ` (scipy's default 4 → radius 16 at `σ = 4`).
    pub blur_truncate: f32,
    /// Held-out calibration samples built from each shot (design §4): each gives one normal
    /// image and, when its mask is not empty, one pseudo-anomaly.
    pub calibration_per_shot: usize,
    /// How the pass/fail threshold is set (design §4); absent in older files: the default
    /// rule.
    #[serde(default)]
    pub threshold_rule: ThresholdRule,

    // --- Implementation knobs ---
    /// Images per backbone batch when precomputing features.
    pub extract_batch: usize,
    /// Training steps between two read-backs of the loss (NaN/inf check, progress); 0 means
    /// once per epoch.
    pub loss_check_every: usize,
    /// Storage precision of the frozen backbone (`"f32"`, the default, or `"f16"`: f16
    /// weights and activations with f32 accumulation, for adapters with `SHADER_F16`).
    /// Stored in model files, so a detector extracts features at inference with the
    /// precision it was trained with; files written before this field existed load as
    /// `"f32"`.
    pub backbone_precision: Precision,
    /// Storage precision of the heads when they score — calibration and inference
    /// ([`crate::heads::Heads::scores`]): `"f32"`, the default, or `"f16"` (f16 weights and
    /// activations, f32 arithmetic and scores; needs `SHADER_F16`). Training always runs in
    /// f32. Stored in model files like `backbone_precision`; older files load as `"f32"`.
    pub heads_precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig::paper()
    }
}

impl TrainConfig {
    /// The paper's configuration for MVTec AD (design §1–§3).
    pub fn paper() -> Self {
        TrainConfig {
            preset: "paper".into(),
            image_size: 256,
            pre_dim: 1536,
            feature_dim: 1536,
            gau_hidden: 1024,
            heads: 16,
            mlp_ratio: 4,
            samples_per_shot: 80,
            p_anomaly: 0.7,
            beta_max: 0.8,
            max_rotation_deg: 90.0,
            perlin_min_scale_exp: 0,
            perlin_max_scale_exp: 5,
            perlin_threshold: 0.5,
            perlin_max_rotation_deg: 90.0,
            augmenters_per_texture: 3,
            foreground: ForegroundRule::Auto,
            epochs: 80,
            batch: 8,
            noise_std: 0.015,
            margin: 0.8,
            lambda_per: 2.0,
            lambda_sim: 0.02,
            lr_adaptor: 5e-4,
            lr_gaussian: 2e-4,
            lr_perlin: 1e-4,
            weight_decay: 1e-5,
            cosine_t_max: 76,
            cosine_eta_min: 0.4e-4,
            seed: 0,
            blur_sigma: 4.0,
            blur_truncate: 4.0,
            calibration_per_shot: 16,
            threshold_rule: ThresholdRule::default(),
            extract_batch: 4,
            loss_check_every: 0,
            backbone_precision: Precision::F32,
            heads_precision: Precision::F32,
        }
    }

    /// The paper's configuration for VisA (`λ_Per = λ_Sim = 1`).
    pub fn paper_visa() -> Self {
        TrainConfig {
            preset: "paper_visa".into(),
            lambda_per: 1.0,
            lambda_sim: 1.0,
            ..Self::paper()
        }
    }

    /// The authors' public code: `θ = 0.5`, `λ_Per = λ_Sim = 1`, `p_anomaly = 0.8`.
    pub fn reference_code() -> Self {
        TrainConfig {
            preset: "reference_code".into(),
            p_anomaly: 0.8,
            margin: 0.5,
            lambda_per: 1.0,
            lambda_sim: 1.0,
            ..Self::paper()
        }
    }

    /// A reduced configuration for CPU-only machines (software Vulkan): `S = 64` (8×8
    /// grid), `D = 256`, 4 heads, 16 samples per shot, 8 epochs (training time: see
    /// `docs/bench-notes.md`); detection quality is well below the paper's.
    pub fn fast() -> Self {
        TrainConfig {
            preset: "fast".into(),
            image_size: 64,
            pre_dim: 256,
            feature_dim: 256,
            gau_hidden: 256,
            heads: 4,
            samples_per_shot: 16,
            epochs: 8,
            cosine_t_max: 8,
            calibration_per_shot: 8,
            extract_batch: 8,
            ..Self::reference_code()
        }
    }

    /// The smallest configuration that exercises every code path (tests, CI): `S = 32` (4×4
    /// grid), `D = 64`, 2 heads, 8 samples per shot, 4 epochs.
    pub fn tiny() -> Self {
        TrainConfig {
            preset: "tiny".into(),
            image_size: 32,
            pre_dim: 64,
            feature_dim: 64,
            gau_hidden: 64,
            heads: 2,
            samples_per_shot: 8,
            epochs: 4,
            cosine_t_max: 4,
            calibration_per_shot: 4,
            extract_batch: 8,
            ..Self::reference_code()
        }
    }

    /// The preset called `name` (`paper`, `paper_visa`, `reference_code`, `fast`, `tiny`).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper()),
            "paper_visa" => Ok(Self::paper_visa()),
            "reference_code" => Ok(Self::reference_code()),
            "fast" => Ok(Self::fast()),
            "tiny" => Ok(Self::tiny()),
            _ => Err(Error::Config(format!(
                "unknown preset `{name}` (expected paper, paper_visa, reference_code, fast or tiny)"
            ))),
        }
    }

    /// The heads' dimensions for this configuration (design §1.5–1.8). Both the trainer and
    /// [`crate::Detector`] (when it loads a model file) build their heads from it, so it
    /// lives here rather than in either.
    pub fn heads_config(&self) -> crate::heads::HeadsConfig {
        crate::heads::HeadsConfig {
            dim: self.feature_dim,
            gau_hidden: self.gau_hidden,
            heads: self.heads,
            grid_h: self.grid(),
            grid_w: self.grid(),
            image_size: self.image_size,
            batch: self.batch,
            mlp_ratio: self.mlp_ratio,
        }
    }

    /// Side of the feature grid, `S / 8` (layer2's resolution).
    pub fn grid(&self) -> usize {
        self.image_size / 8
    }

    /// Patches per image, `T = (S/8)²`.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid()
    }

    /// The patch-aggregation dimensions for [`crate::backbone::FeatureExtractor::with_dims`].
    pub fn patch_dims(&self) -> PatchDims {
        PatchDims {
            pre_dim: self.pre_dim,
            target_dim: self.feature_dim,
        }
    }

    /// The blur `σ` in pixels at this image size (`blur_sigma · S / 256`).
    pub fn blur_sigma_pixels(&self) -> f32 {
        self.blur_sigma * self.image_size as f32 / 256.0
    }

    /// The training-set builder's configuration (design §2).
    pub fn trainset(&self) -> TrainSetConfig {
        TrainSetConfig {
            samples_per_shot: self.samples_per_shot,
            p_anomaly: self.p_anomaly,
            foreground: self.foreground,
            beta_max: self.beta_max,
            max_rotation_deg: self.max_rotation_deg,
            perlin: PerlinConfig {
                min_scale_exp: self.perlin_min_scale_exp,
                max_scale_exp: self.perlin_max_scale_exp,
                threshold: self.perlin_threshold,
                max_rotation_deg: self.perlin_max_rotation_deg,
            },
            augmenters_per_texture: self.augmenters_per_texture,
        }
    }

    /// Steps per epoch, `max(1, k · N / batch)` for `shots = k` (design §3).
    pub fn steps_per_epoch(&self, shots: usize) -> usize {
        (shots * self.samples_per_shot / self.batch.max(1)).max(1)
    }

    /// The discriminators' learning-rate factor at `epoch` (0-based) of PyTorch's
    /// `CosineAnnealingLR` (closed form, stepped once per epoch):
    /// `η = η_min + (η_0 − η_min)(1 + cos(π · epoch / T_max)) / 2`, returned for a base rate
    /// `base`.
    pub fn cosine_lr(&self, base: f32, epoch: usize) -> f32 {
        let t = std::f64::consts::PI * epoch as f64 / self.cosine_t_max.max(1) as f64;
        let eta_min = f64::from(self.cosine_eta_min);
        (eta_min + (f64::from(base) - eta_min) * (1.0 + t.cos()) / 2.0) as f32
    }

    /// Checks every value against its range; an error names the field and the problem.
    /// Nothing is allocated before this passes (the trainer, the detector and the model-file
    /// reader call it first). The ranges (the presets' values lie well inside):
    ///
    /// | field | range |
    /// |---|---|
    /// | `preset` | at most [`MAX_PRESET_NAME`] bytes |
    /// | `image_size` | multiple of 16 in `32..=`[`MAX_IMAGE_SIZE`] |
    /// | `pre_dim`, `feature_dim`, `gau_hidden` | `1..=`[`MAX_DIM`] |
    /// | `heads` | `1..=`[`MAX_HEADS`], dividing `feature_dim` |
    /// | `mlp_ratio` | `1..=`[`MAX_MLP_RATIO`] |
    /// | `samples_per_shot` | `1..=`[`MAX_SAMPLES_PER_SHOT`] |
    /// | `calibration_per_shot` | `1..=`[`MAX_CALIBRATION_PER_SHOT`] |
    /// | `epochs` | `1..=`[`MAX_EPOCHS`] |
    /// | `cosine_t_max` | `1..=`[`MAX_EPOCHS`] |
    /// | `batch`, `extract_batch` | `1..=`[`MAX_BATCH`] |
    /// | `loss_check_every` | `0..=`[`MAX_LOSS_CHECK_EVERY`] |
    /// | `p_anomaly`, `beta_max` | `[0, 1]` |
    /// | `max_rotation_deg`, `perlin_max_rotation_deg` | `[0, 360]` |
    /// | `perlin_min_scale_exp ≤ perlin_max_scale_exp` | `≤ 12` |
    /// | `perlin_threshold` | `[0, 1]` |
    /// | `augmenters_per_texture` | `0..=10` |
    /// | `noise_std` | `(0, f32::MAX]` (finite) |
    /// | `margin` | `[0, 100]` |
    /// | `lambda_per`, `lambda_sim` | `[0, 1000]` |
    /// | `lr_adaptor`, `lr_gaussian`, `lr_perlin` | `(0, 1]` |
    /// | `weight_decay` | `[0, 1]` |
    /// | `cosine_eta_min` | `[0, min(lr_gaussian, lr_perlin)]` |
    /// | `blur_sigma` | `(0, `[`MAX_BLUR_SIGMA`]`]` |
    /// | `blur_truncate` | `[0, `[`MAX_BLUR_TRUNCATE`]`]` |
    /// | `threshold_rule` | `normal_tail` with `false_alarm_rate` in `(0, 0.5]`, or `f1` |
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        self.threshold_rule.validate()?;
        if self.preset.len() > MAX_PRESET_NAME {
            return bad(format!(
                "preset name has {} bytes (at most {MAX_PRESET_NAME})",
                self.preset.len()
            ));
        }
        if self.image_size < 32
            || !self.image_size.is_multiple_of(16)
            || self.image_size > MAX_IMAGE_SIZE
        {
            return bad(format!(
                "image_size = {} must be a multiple of 16 in 32..={MAX_IMAGE_SIZE} (the \
                 backbone's layer3 is S/16)",
                self.image_size
            ));
        }
        for (name, v, max) in [
            ("pre_dim", self.pre_dim, MAX_DIM),
            ("feature_dim", self.feature_dim, MAX_DIM),
            ("gau_hidden", self.gau_hidden, MAX_DIM),
            ("heads", self.heads, MAX_HEADS),
            ("mlp_ratio", self.mlp_ratio, MAX_MLP_RATIO),
            ("epochs", self.epochs, MAX_EPOCHS),
            ("batch", self.batch, MAX_BATCH),
            (
                "samples_per_shot",
                self.samples_per_shot,
                MAX_SAMPLES_PER_SHOT,
            ),
            ("cosine_t_max", self.cosine_t_max, MAX_EPOCHS),
            (
                "calibration_per_shot",
                self.calibration_per_shot,
                MAX_CALIBRATION_PER_SHOT,
            ),
            ("extract_batch", self.extract_batch, MAX_BATCH),
        ] {
            if v == 0 || v > max {
                return bad(format!("{name} = {v} must be in 1..={max}"));
            }
        }
        if self.loss_check_every > MAX_LOSS_CHECK_EVERY {
            return bad(format!(
                "loss_check_every = {} must be in 0..={MAX_LOSS_CHECK_EVERY}",
                self.loss_check_every
            ));
        }
        if !self.feature_dim.is_multiple_of(self.heads) {
            return bad(format!(
                "heads = {} must divide feature_dim = {}",
                self.heads, self.feature_dim
            ));
        }
        // (name, value, lowest allowed, highest allowed, lowest excluded)
        let reals: [(&str, f64, f64, f64, bool); 16] = [
            // Any finite σ: it allocates nothing, and one that overflows the features stops
            // training with an error naming the loss term (tested end to end).
            (
                "noise_std",
                self.noise_std.into(),
                0.0,
                f32::MAX.into(),
                true,
            ),
            ("lr_adaptor", self.lr_adaptor.into(), 0.0, 1.0, true),
            ("lr_gaussian", self.lr_gaussian.into(), 0.0, 1.0, true),
            ("lr_perlin", self.lr_perlin.into(), 0.0, 1.0, true),
            (
                "blur_sigma",
                self.blur_sigma.into(),
                0.0,
                MAX_BLUR_SIGMA,
                true,
            ),
            ("margin", self.margin.into(), 0.0, 100.0, false),
            ("lambda_per", self.lambda_per.into(), 0.0, 1000.0, false),
            ("lambda_sim", self.lambda_sim.into(), 0.0, 1000.0, false),
            ("weight_decay", self.weight_decay.into(), 0.0, 1.0, false),
            (
                "cosine_eta_min",
                self.cosine_eta_min.into(),
                0.0,
                1.0,
                false,
            ),
            (
                "blur_truncate",
                self.blur_truncate.into(),
                0.0,
                MAX_BLUR_TRUNCATE,
                false,
            ),
            ("p_anomaly", self.p_anomaly, 0.0, 1.0, false),
            ("beta_max", self.beta_max.into(), 0.0, 1.0, false),
            ("max_rotation_deg", self.max_rotation_deg, 0.0, 360.0, false),
            (
                "perlin_max_rotation_deg",
                self.perlin_max_rotation_deg,
                0.0,
                360.0,
                false,
            ),
            (
                "perlin_threshold",
                self.perlin_threshold.into(),
                0.0,
                1.0,
                false,
            ),
        ];
        for (name, v, lo, hi, open) in reals {
            let above = if open { v > lo } else { v >= lo };
            if !(v.is_finite() && above && v <= hi) {
                let l = if open { '(' } else { '[' };
                return bad(format!(
                    "{name} = {v} must be a finite number in {l}{lo}, {hi}]"
                ));
            }
        }
        if self.cosine_eta_min > self.lr_gaussian.min(self.lr_perlin) {
            return bad(format!(
                "cosine_eta_min = {} exceeds a discriminator learning rate",
                self.cosine_eta_min
            ));
        }
        self.trainset().validate()
    }

    /// The configuration as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::Config(format!("cannot serialise the configuration: {e}")))
    }

    /// Parses and validates a JSON configuration. Absent fields take the
    /// [`TrainConfig::paper`] values (older files and partial configurations load); unknown
    /// fields, and anything but a JSON object, are refused.
    pub fn from_json(json: &str) -> Result<Self> {
        let bad = |e: serde_json::Error| Error::Config(format!("invalid configuration JSON: {e}"));
        let value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
        if !value.is_object() {
            return Err(Error::Config(
                "invalid configuration JSON: not an object of named fields".into(),
            ));
        }
        let cfg: TrainConfig = serde_json::from_value(value).map_err(bad)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The fields that fix the shapes of a trained model, as `(name, value)` pairs: two
    /// configurations with different values here cannot share a model file.
    pub fn architecture(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("image_size", self.image_size),
            ("pre_dim", self.pre_dim),
            ("feature_dim", self.feature_dim),
            ("gau_hidden", self.gau_hidden),
            ("heads", self.heads),
            ("mlp_ratio", self.mlp_ratio),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip() {
        for name in ["paper", "paper_visa", "reference_code", "fast", "tiny"] {
            let cfg = TrainConfig::preset(name).unwrap();
            assert_eq!(cfg.preset, name);
            cfg.validate().unwrap();
            let back = TrainConfig::from_json(&cfg.to_json().unwrap()).unwrap();
            assert_eq!(back, cfg);
        }
        assert!(TrainConfig::preset("huge").is_err());
    }

    #[test]
    fn paper_values() {
        let p = TrainConfig::paper();
        assert_eq!(
            (p.image_size, p.feature_dim, p.grid(), p.tokens()),
            (256, 1536, 32, 1024)
        );
        assert_eq!((p.margin, p.lambda_per, p.lambda_sim), (0.8, 2.0, 0.02));
        let r = TrainConfig::reference_code();
        assert_eq!(
            (r.margin, r.lambda_per, r.lambda_sim, r.p_anomaly),
            (0.5, 1.0, 1.0, 0.8)
        );
        assert_eq!(p.steps_per_epoch(2), 20);
        assert_eq!(p.blur_sigma_pixels(), 4.0);
    }

    #[test]
    fn cosine_matches_pytorch_closed_form() {
        let p = TrainConfig::paper();
        assert_eq!(p.cosine_lr(2e-4, 0), 2e-4);
        assert!((p.cosine_lr(2e-4, 76) - 0.4e-4).abs() < 1e-12);
        // Half way: (η_0 + η_min) / 2.
        assert!((p.cosine_lr(2e-4, 38) - 1.2e-4).abs() < 1e-10);
    }

    #[test]
    fn precisions_default_to_f32_and_round_trip() {
        // A configuration written before the fields existed (as in older model files).
        let json = TrainConfig::tiny().to_json().unwrap();
        let old: String = json
            .lines()
            .filter(|l| !l.contains("_precision"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("\"loss_check_every\": 0,", "\"loss_check_every\": 0");
        assert!(!old.contains("precision"));
        let cfg = TrainConfig::from_json(&old).unwrap();
        assert_eq!(cfg.backbone_precision, Precision::F32);
        assert_eq!(cfg.heads_precision, Precision::F32);
        for f16 in [
            TrainConfig {
                backbone_precision: Precision::F16,
                ..TrainConfig::tiny()
            },
            TrainConfig {
                heads_precision: Precision::F16,
                ..TrainConfig::tiny()
            },
        ] {
            let json = f16.to_json().unwrap();
            assert!(json.contains("_precision\": \"f16\""), "{json}");
            assert_eq!(TrainConfig::from_json(&json).unwrap(), f16);
            let bad = json.replace("\"f16\"", "\"f8\"");
            assert!(TrainConfig::from_json(&bad).is_err());
        }
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = TrainConfig::tiny();
        c.heads = 3;
        assert!(c.validate().unwrap_err().to_string().contains("heads"));
        let mut c = TrainConfig::tiny();
        c.image_size = 40;
        assert!(c.validate().unwrap_err().to_string().contains("image_size"));
        let mut c = TrainConfig::tiny();
        c.noise_std = f32::NAN;
        assert!(c.validate().unwrap_err().to_string().contains("noise_std"));
        let mut c = TrainConfig::tiny();
        c.p_anomaly = 1.5;
        assert!(c.validate().unwrap_err().to_string().contains("p_anomaly"));
        let json = TrainConfig::tiny()
            .to_json()
            .unwrap()
            .replace("\"epochs\"", "\"epoch\"");
        assert!(TrainConfig::from_json(&json).is_err());
    }

    #[test]
    fn every_value_has_an_upper_bound() {
        type Mutation = Box<dyn Fn(&mut TrainConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("image_size", Box::new(|c| c.image_size = 1 << 40)),
            (
                "image_size",
                Box::new(|c| c.image_size = MAX_IMAGE_SIZE + 16),
            ),
            ("pre_dim", Box::new(|c| c.pre_dim = usize::MAX)),
            ("feature_dim", Box::new(|c| c.feature_dim = MAX_DIM * 2)),
            ("gau_hidden", Box::new(|c| c.gau_hidden = MAX_DIM + 1)),
            ("heads", Box::new(|c| c.heads = 1 << 20)),
            ("mlp_ratio", Box::new(|c| c.mlp_ratio = 1000)),
            ("epochs", Box::new(|c| c.epochs = usize::MAX)),
            ("batch", Box::new(|c| c.batch = 1 << 30)),
            (
                "samples_per_shot",
                Box::new(|c| c.samples_per_shot = 1 << 30),
            ),
            ("cosine_t_max", Box::new(|c| c.cosine_t_max = usize::MAX)),
            (
                "calibration_per_shot",
                Box::new(|c| c.calibration_per_shot = 1 << 30),
            ),
            ("extract_batch", Box::new(|c| c.extract_batch = 100_000)),
            (
                "loss_check_every",
                Box::new(|c| c.loss_check_every = usize::MAX),
            ),
            ("noise_std", Box::new(|c| c.noise_std = f32::INFINITY)),
            ("lr_adaptor", Box::new(|c| c.lr_adaptor = f32::INFINITY)),
            ("blur_sigma", Box::new(|c| c.blur_sigma = 1e9)),
            ("blur_truncate", Box::new(|c| c.blur_truncate = 1e9)),
            ("margin", Box::new(|c| c.margin = f32::NAN)),
            ("lambda_per", Box::new(|c| c.lambda_per = 1e12)),
            ("weight_decay", Box::new(|c| c.weight_decay = -1.0)),
            ("max_rotation_deg", Box::new(|c| c.max_rotation_deg = 1e300)),
            (
                "perlin_max_rotation_deg",
                Box::new(|c| c.perlin_max_rotation_deg = f64::NAN),
            ),
            ("perlin_threshold", Box::new(|c| c.perlin_threshold = 7.0)),
            ("preset", Box::new(|c| c.preset = "x".repeat(10_000))),
        ];
        for (field, mutate) in cases {
            let mut c = TrainConfig::tiny();
            mutate(&mut c);
            let e = c.validate().unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{field}: {e}");
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
        // The bounds themselves are accepted.
        let c = TrainConfig {
            image_size: MAX_IMAGE_SIZE,
            feature_dim: MAX_DIM,
            heads: MAX_HEADS,
            epochs: MAX_EPOCHS,
            cosine_t_max: MAX_EPOCHS,
            blur_sigma: MAX_BLUR_SIGMA as f32,
            blur_truncate: MAX_BLUR_TRUNCATE as f32,
            ..TrainConfig::paper()
        };
        c.validate().unwrap();
    }

    #[test]
    fn absent_fields_take_the_paper_values() {
        assert_eq!(TrainConfig::from_json("{}").unwrap(), TrainConfig::paper());
        let partial = r#"{"preset": "mine", "epochs": 3, "margin": 0.5}"#;
        let c = TrainConfig::from_json(partial).unwrap();
        assert_eq!(
            c,
            TrainConfig {
                preset: "mine".into(),
                epochs: 3,
                margin: 0.5,
                ..TrainConfig::paper()
            }
        );
        // Absent fields do not hide invalid present ones, nor unknown ones.
        assert!(TrainConfig::from_json(r#"{"epochs": 0}"#).is_err());
        assert!(TrainConfig::from_json(r#"{"epochz": 3}"#).is_err());
        assert!(TrainConfig::from_json(r#"{"epochs": -3}"#).is_err());
        assert!(TrainConfig::from_json(r#"{"epochs": 1e400}"#).is_err());
        assert!(TrainConfig::from_json("[]").is_err());
    }
}
