//! [`DetectorBuilder`]: the short path from a few photos of good parts to a calibrated
//! [`Detector`], with the weights, preset, texture source and foreground rule as named
//! options and sensible defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backbone::Precision;
use crate::config::TrainConfig;
use crate::data::{ForegroundRule, TextureSource};
use crate::detector::{Backbone, Detector};
use crate::gpu::{AdapterKind, Gpu};
use crate::image::{load_rgb, rgb_from_dynamic, Image};
use crate::progress::Progress;
use crate::train::Trainer;
use crate::{Error, Result};

/// Where the frozen backbone comes from.
#[derive(Debug, Clone)]
enum BackboneSource {
    Unset,
    Weights(PathBuf),
    Loaded(Arc<Backbone>),
}

/// Trains a [`Detector`] from a few good images.
///
/// Defaults: the `paper` preset on a GPU, the small `fast` preset on a CPU (software)
/// adapter; procedural textures for the pseudo-anomalies; every pixel may receive a
/// pseudo-anomaly ([`ForegroundRule::All`]); seed 0. Backbone weights must be given
/// ([`DetectorBuilder::weights`] or [`DetectorBuilder::backbone`]).
///
/// Training and prediction are blocking calls (they wait for the GPU). From async code,
/// run them on a blocking thread, e.g. `tokio::task::spawn_blocking`; a [`Detector`] is
/// `Send + Sync`, so one can serve many threads.
#[derive(Debug, Clone)]
pub struct DetectorBuilder {
    gpu: Gpu,
    config: TrainConfig,
    backbone: BackboneSource,
    textures: TextureSource,
    progress: Progress,
}

impl DetectorBuilder {
    /// A builder with the defaults above for `gpu`'s adapter.
    pub fn new(gpu: &Gpu) -> DetectorBuilder {
        let mut config = match gpu.kind() {
            AdapterKind::Cpu => TrainConfig::fast(),
            AdapterKind::Gpu => TrainConfig::paper(),
        };
        config.foreground = ForegroundRule::All;
        DetectorBuilder {
            gpu: gpu.clone(),
            config,
            backbone: BackboneSource::Unset,
            textures: TextureSource::procedural(),
            progress: Progress::silent(),
        }
    }

    /// Trains with this configuration (a preset such as [`TrainConfig::tiny`], possibly
    /// adjusted). Its foreground rule and seed are kept.
    pub fn config(mut self, config: TrainConfig) -> Self {
        self.config = config;
        self
    }

    /// The backbone weights: a torchvision/timm WideResNet-50-2 safetensors file.
    pub fn weights(mut self, path: impl AsRef<Path>) -> Self {
        self.backbone = BackboneSource::Weights(path.as_ref().to_path_buf());
        self
    }

    /// An already loaded backbone (shared between several detectors).
    pub fn backbone(mut self, backbone: Arc<Backbone>) -> Self {
        self.backbone = BackboneSource::Loaded(backbone);
        self
    }

    /// Textures for the pseudo-anomalies (default: procedural).
    pub fn textures(mut self, textures: TextureSource) -> Self {
        self.textures = textures;
        self
    }

    /// Where pseudo-anomalies may be placed (default: anywhere).
    pub fn foreground(mut self, rule: ForegroundRule) -> Self {
        self.config.foreground = rule;
        self
    }

    /// The seed of the training set, the heads' initialisation and the batch draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Storage precision of the backbone and of the heads when they score.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.config.backbone_precision = precision;
        self.config.heads_precision = precision;
        self
    }

    /// Reports progress to `progress`.
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// The configuration training will use.
    pub fn training_config(&self) -> &TrainConfig {
        &self.config
    }

    /// The backbone, loading the weight file if one was named.
    pub fn load_backbone(&self) -> Result<Arc<Backbone>> {
        match &self.backbone {
            BackboneSource::Loaded(b) => Ok(b.clone()),
            BackboneSource::Weights(p) => Backbone::load(&self.gpu, p, &self.config),
            BackboneSource::Unset => Err(Error::Config(
                "no backbone weights: call DetectorBuilder::weights or ::backbone".into(),
            )),
        }
    }

    /// Trains on `shots` (RGB images in `[0, 1]`, any size) and returns the calibrated
    /// detector.
    pub fn fit(&self, shots: &[Image]) -> Result<Detector> {
        // Checked before the weight file is read (the trainer checks again, cheaply).
        self.config.validate()?;
        if shots.is_empty() {
            return Err(Error::Config("fit needs at least one good image".into()));
        }
        let trainer = Trainer::new(
            &self.gpu,
            self.config.clone(),
            self.load_backbone()?,
            self.textures.clone(),
        )?
        .with_progress(self.progress.clone());
        // The foreground rule is the configuration's; no category name selects one.
        trainer.fit(shots, "")
    }

    /// Trains on decoded images from the `image` crate.
    pub fn fit_images(&self, shots: &[image::DynamicImage]) -> Result<Detector> {
        let s = self.config.image_size;
        let shots = shots
            .iter()
            .map(|img| rgb_from_dynamic(img, s, s))
            .collect::<Result<Vec<_>>>()?;
        self.fit(&shots)
    }

    /// Trains on image files (PNG, JPEG, BMP or TIFF); every file is decoded before
    /// training starts, so a bad one is reported first, by name.
    pub fn fit_files<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Detector> {
        let s = self.config.image_size;
        let shots = paths
            .iter()
            .map(|p| load_rgb(p.as_ref(), s))
            .collect::<Result<Vec<_>>>()?;
        self.fit(&shots)
    }
}
