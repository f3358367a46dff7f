//! [`Detector`]: the frozen feature extractor, the trained heads and the calibration —
//! image in, anomaly map, score and pass/fail out (design §4, §7).

use std::path::Path;
use std::sync::Arc;

use super::model_file::{BackboneId, ModelFile};
use super::postprocess::{Calibration, PostProcessor};
use crate::backbone::weights::WeightFile;
use crate::backbone::{FeatureExtractor, WideResNet50};
use crate::config::TrainConfig;
use crate::eval::{combine_transductive, TransductiveMode};
use crate::gpu::{DType, Gpu, Tensor};
use crate::heads::Heads;
use crate::image::{resize_bilinear, Image};
use crate::{Error, Result};

/// The frozen backbone with its identity, shared by trainers and detectors.
#[derive(Debug)]
pub struct Backbone {
    /// The feature extractor (with the configuration's patch dimensions).
    pub extractor: FeatureExtractor,
    /// Which weights it holds.
    pub id: BackboneId,
}

impl Backbone {
    /// Loads WideResNet-50-2 from a safetensors weight file (design §1.3) with the patch
    /// aggregation dimensions and the backbone precision of `cfg` (an f16 precision on an
    /// adapter without `SHADER_F16` is an [`Error::Unsupported`]).
    pub fn load(gpu: &Gpu, weights: &Path, cfg: &TrainConfig) -> Result<Arc<Backbone>> {
        cfg.backbone_precision.check_supported(gpu)?;
        let file = WeightFile::open(weights)?;
        let id = BackboneId::of_weight_file(&file)?;
        let net = WideResNet50::from_weight_file_with(gpu, &file, cfg.backbone_precision)?;
        Ok(Arc::new(Backbone {
            extractor: FeatureExtractor::with_dims(net, cfg.patch_dims()),
            id,
        }))
    }
}

impl Backbone {
    /// The backbone embedded in a self-contained model file (an
    /// [`Error::ModelFile`] when the file has none or it does not fit the configuration).
    pub fn embedded(gpu: &Gpu, path: &Path, file: &ModelFile) -> Result<Arc<Backbone>> {
        let model_err = |message: String| Error::ModelFile {
            path: path.to_path_buf(),
            message,
        };
        let tensors = file.embedded_backbone.as_ref().ok_or_else(|| {
            model_err(
                "has no embedded backbone (saved with a shared backbone): give the weight file \
                 it was trained on"
                    .into(),
            )
        })?;
        let by_name: std::collections::HashMap<&str, _> =
            tensors.iter().map(|t| (t.0.as_str(), t)).collect();
        // Counted before anything is uploaded.
        let expected = 2 * crate::backbone::weights::wrn50_convs(3).len();
        if by_name.len() != expected {
            return Err(model_err(format!(
                "the embedded backbone has {} tensors, expected {expected}",
                by_name.len()
            )));
        }
        let net = WideResNet50::from_folded(
            gpu,
            file.config.backbone_precision,
            |name, shape, dtype| {
                let (_, d, s, bytes) = by_name.get(name).ok_or_else(|| {
                    model_err(format!("embedded backbone tensor `{name}` is missing"))
                })?;
                if s.as_slice() != shape || *d != dtype {
                    return Err(model_err(format!(
                    "embedded backbone tensor `{name}` is {d:?} {s:?}, expected {dtype:?} {shape:?}"
                )));
                }
                let finite = match dtype {
                    DType::F16 => bytes
                        .chunks_exact(2)
                        .all(|b| half::f16::from_le_bytes([b[0], b[1]]).is_finite()),
                    _ => bytes
                        .chunks_exact(4)
                        .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()),
                };
                if !finite {
                    return Err(model_err(format!(
                        "embedded backbone tensor `{name}` holds a non-finite value"
                    )));
                }
                Ok(bytes.clone())
            },
        )?;
        Ok(Arc::new(Backbone {
            extractor: FeatureExtractor::with_dims(net, file.config.patch_dims()),
            id: file.backbone.clone(),
        }))
    }
}

/// Raw maps read back: `(gaussian, perlin)`, one `S × S` map per image each.
pub type RawMapsCpu = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// A tensor read back: `(name, shape, values)`.
type NamedValues = (String, Vec<usize>, Vec<f32>);

/// How the two discriminators' maps are normalised before they are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Normalization {
    /// The library's default: statistics calibrated at training time on held-out samples
    /// built from the shots (design §4); one image's score depends on nothing else.
    #[default]
    Calibrated,
    /// The paper's transductive normalisation over the **whole test set** (for comparison
    /// with the paper only; a score then depends on the other test images).
    Transductive(TransductiveMode),
}

/// The result for one image.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Prediction {
    /// Image score (max of the map).
    pub score: f32,
    /// Anomaly map, `S × S` row-major (calibrated: roughly `[0, 1]` on calibration data,
    /// not clipped).
    pub map: Vec<f32>,
    /// Side `S` of the map.
    pub size: usize,
    /// `score > threshold` (the calibrated pass/fail decision).
    pub is_anomalous: bool,
    /// The threshold the decision used.
    pub threshold: f32,
    /// `(width, height)` of the image as given, before it was resized to `S × S`.
    pub source_size: (usize, usize),
    /// The score's conformal p-value against the held-out good views scored at
    /// calibration ([`Calibration::p_value`]): a normalised score in `(0, 1]` to threshold
    /// at one's own false-alarm rate (flag when `p_value ≤ α`). `None` for models
    /// calibrated with the F1 rule.
    pub p_value: Option<f64>,
}

impl Prediction {
    /// The anomaly map resized to `width × height` (bilinear, OpenCV `INTER_LINEAR`
    /// semantics, as the paper's evaluation resizes maps back), row-major.
    pub fn heatmap(&self, width: usize, height: usize) -> Vec<f32> {
        crate::image::resize_f32(&self.map, self.size, self.size, height, width)
    }

    /// The anomaly map at the input image's own size ([`Prediction::source_size`]).
    pub fn heatmap_at_source(&self) -> Vec<f32> {
        self.heatmap(self.source_size.0, self.source_size.1)
    }
}

/// A trained DFD detector.
pub struct Detector {
    gpu: Gpu,
    config: TrainConfig,
    backbone: Arc<Backbone>,
    heads: Heads,
    post: PostProcessor,
    calibration: Calibration,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("preset", &self.config.preset)
            .field("image_size", &self.config.image_size)
            .field("feature_dim", &self.config.feature_dim)
            .field("backbone_precision", &self.config.backbone_precision)
            .field("heads_precision", &self.config.heads_precision)
            .field("backbone", &self.backbone.id)
            .field("calibration", &self.calibration)
            .finish()
    }
}

impl Detector {
    /// Assembles a detector (used by the trainer and by [`Detector::load`]); the heads score
    /// in the configuration's `heads_precision` (f16 without `SHADER_F16` is an
    /// [`Error::Unsupported`]), with their scoring weights prepared here, once
    /// ([`Heads::prepare_scoring`]).
    pub fn from_parts(
        config: TrainConfig,
        backbone: Arc<Backbone>,
        mut heads: Heads,
        calibration: Calibration,
    ) -> Result<Detector> {
        heads.set_scoring_precision(config.heads_precision)?;
        heads.prepare_scoring()?;
        let gpu = backbone.extractor.backbone().gpu().clone();
        let post = PostProcessor::new(&gpu, &config)?;
        Ok(Detector {
            gpu,
            config,
            backbone,
            heads,
            post,
            calibration,
        })
    }

    /// The configuration the detector was trained with.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The calibration (normalisation statistics and threshold).
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Replaces the calibration (the trainer calibrates after training).
    pub fn set_calibration(&mut self, calibration: Calibration) {
        self.calibration = calibration;
    }

    /// The pass/fail threshold on the image score.
    pub fn threshold(&self) -> f32 {
        self.calibration.threshold
    }

    /// The backbone.
    pub fn backbone(&self) -> &Arc<Backbone> {
        &self.backbone
    }

    /// The trained heads.
    pub fn heads(&self) -> &Heads {
        &self.heads
    }

    /// Image size `S`.
    pub fn image_size(&self) -> usize {
        self.config.image_size
    }

    /// Brings an image to `3 × S × S` (bilinear, as the loader does) and checks it.
    fn prepare<'a>(&self, img: &'a Image) -> Result<std::borrow::Cow<'a, Image>> {
        let s = self.config.image_size;
        if img.channels != 3 || img.data.len() != 3 * img.height * img.width || img.height == 0 {
            return Err(Error::Shape(format!(
                "detector input must be a non-empty 3-channel image, got {}×{}×{}",
                img.channels, img.height, img.width
            )));
        }
        Ok(if img.height == s && img.width == s {
            std::borrow::Cow::Borrowed(img)
        } else {
            std::borrow::Cow::Owned(resize_bilinear(img, s, s))
        })
    }

    /// Records features → per-patch scores → raw maps for a chunk of images; returns the
    /// raw maps (GPU) of the chunk.
    fn raw_chunk(&self, images: &[Image]) -> Result<(super::RawMaps, crate::Recorder)> {
        let mut rec = self.gpu.recorder();
        let raw = self.record_raw(&mut rec, images)?;
        Ok((raw, rec))
    }

    /// Records the raw maps of `images` (one GPU batch) on `rec`.
    fn record_raw(&self, rec: &mut crate::Recorder, images: &[Image]) -> Result<super::RawMaps> {
        let gpu = self.gpu.clone();
        let (s, t, d) = (
            self.config.image_size,
            self.config.tokens(),
            self.config.feature_dim,
        );
        let b = images.len();
        let mut data = Vec::with_capacity(b * 3 * s * s);
        for img in images {
            data.extend_from_slice(&self.prepare(img)?.data);
        }
        let input = gpu.upload(&data, &[b, 3, s, s])?;
        let f = self.backbone.extractor.extract(rec, &input)?;
        let low = gpu.empty(&[b * t, d], DType::F32);
        let high = gpu.empty(&[b * t, d], DType::F32);
        rec.copy_elems(&f.patches, 0, &low, 0, b * t * d)?;
        rec.copy_elems(&f.patches, b * t * d, &high, 0, b * t * d)?;
        let (sg, sp) = self.heads.scores(rec, &low, &high, b)?;
        self.post.raw_maps(rec, &sg, &sp)
    }

    /// Runs [`Detector::predict`]'s GPU work for one image with every dispatch timed
    /// ([`crate::Recorder::enable_profiling`]) and returns the times: where an inference
    /// spends its time on this adapter. Needs timestamp queries.
    pub fn profile_predict(&self, image: &Image) -> Result<crate::gpu::Profile> {
        let mut rec = self.gpu.recorder();
        rec.enable_profiling()?;
        let raw = self.record_raw(&mut rec, std::slice::from_ref(image))?;
        self.post.combine(&mut rec, &raw, &self.calibration)?;
        rec.submit_profiled()
    }

    fn chunk_len(&self) -> usize {
        self.config.extract_batch.max(1)
    }

    /// The raw (resized, blurred, not normalised) maps of both discriminators for each image:
    /// `(gaussian, perlin)`, `S × S` each. The input of calibration and of the transductive
    /// normalisation.
    pub fn raw_maps(&self, images: &[Image]) -> Result<RawMapsCpu> {
        let n = self.config.image_size * self.config.image_size;
        let (mut g, mut p) = (Vec::new(), Vec::new());
        for chunk in images.chunks(self.chunk_len()) {
            let (raw, rec) = self.raw_chunk(chunk)?;
            rec.submit();
            g.extend(raw.gaussian.to_vec()?.chunks(n).map(<[f32]>::to_vec));
            p.extend(raw.perlin.to_vec()?.chunks(n).map(<[f32]>::to_vec));
        }
        Ok((g, p))
    }

    /// Predicts a decoded image from the `image` crate (any size and colour type; resized
    /// to `S × S` exactly as an image file is). Its map can be had at the photo's size with
    /// [`Prediction::heatmap_at_source`].
    pub fn predict_image(&self, image: &image::DynamicImage) -> Result<Prediction> {
        let s = self.config.image_size;
        let input = crate::image::rgb_from_dynamic(image, s, s)?;
        let mut p = self.predict(&input)?;
        p.source_size = (image.width() as usize, image.height() as usize);
        Ok(p)
    }

    /// Predicts an interleaved 8-bit RGB buffer (`width × height × 3` bytes, row-major, as
    /// cameras and GUI toolkits hand them out).
    pub fn predict_rgb8(&self, width: usize, height: usize, rgb: &[u8]) -> Result<Prediction> {
        let expected = width.checked_mul(height).and_then(|n| n.checked_mul(3));
        if expected != Some(rgb.len()) || width == 0 || height == 0 {
            return Err(Error::Shape(format!(
                "an RGB8 buffer of {width} × {height} needs {} bytes, got {}",
                expected.map_or("too many".to_string(), |n| n.to_string()),
                rgb.len()
            )));
        }
        let (w, h) = (
            u32::try_from(width).map_err(|_| Error::Shape("width too large".into()))?,
            u32::try_from(height).map_err(|_| Error::Shape("height too large".into()))?,
        );
        let buffer = image::RgbImage::from_raw(w, h, rgb.to_vec())
            .ok_or_else(|| Error::Shape("RGB8 buffer does not fit its size".into()))?;
        self.predict_image(&image::DynamicImage::ImageRgb8(buffer))
    }

    /// Predicts one image (any size; it is resized to `S × S`).
    pub fn predict(&self, image: &Image) -> Result<Prediction> {
        let mut v = self.predict_batch(std::slice::from_ref(image))?;
        v.pop()
            .ok_or_else(|| Error::Shape("no prediction for one image".into()))
    }

    /// Predicts several images, in GPU batches of `extract_batch`. Each result depends only
    /// on its own image (calibrated normalisation).
    pub fn predict_batch(&self, images: &[Image]) -> Result<Vec<Prediction>> {
        let size = self.config.image_size;
        let n = size * size;
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.chunk_len()) {
            let (raw, mut rec) = self.raw_chunk(chunk)?;
            let (map, scores) = self.post.combine(&mut rec, &raw, &self.calibration)?;
            rec.submit();
            let (map, scores): (Vec<f32>, Vec<f32>) = (map.to_vec()?, scores.to_vec()?);
            for ((m, &score), img) in map.chunks(n).zip(&scores).zip(chunk) {
                // A NaN would compare as "not above the threshold": never a pass.
                if !score.is_finite() {
                    return Err(Error::Prediction(format!(
                        "image {} of the batch scored {score}: the model or the input is \
                         corrupt",
                        out.len()
                    )));
                }
                out.push(Prediction {
                    score,
                    map: m.to_vec(),
                    size,
                    is_anomalous: score > self.calibration.threshold,
                    threshold: self.calibration.threshold,
                    source_size: (img.width, img.height),
                    p_value: self.calibration.p_value(score),
                });
            }
        }
        Ok(out)
    }

    /// Maps and image scores of a whole test set under `normalization`. With
    /// [`Normalization::Calibrated`] this is [`Detector::predict_batch`]; with
    /// [`Normalization::Transductive`] the raw maps are normalised over the set
    /// ([`combine_transductive`]), as the paper does.
    pub fn predict_set(
        &self,
        images: &[Image],
        normalization: Normalization,
    ) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
        match normalization {
            Normalization::Calibrated => {
                let p = self.predict_batch(images)?;
                let scores = p.iter().map(|p| p.score).collect();
                Ok((p.into_iter().map(|p| p.map).collect(), scores))
            }
            Normalization::Transductive(mode) => {
                let (g, p) = self.raw_maps(images)?;
                let c = combine_transductive(&g, &p, mode)?;
                Ok((c.maps, c.image_scores))
            }
        }
    }

    /// The heads' tensors read back as `(name, shape, values)`.
    fn tensor_values(&self) -> Result<Vec<NamedValues>> {
        self.heads
            .tensors()
            .into_iter()
            .map(|(n, t): (String, Tensor)| Ok((n, t.shape().to_vec(), t.to_vec()?)))
            .collect()
    }

    /// Saves the detector as one **self-contained** safetensors file (atomic; see
    /// [`crate::detector::model_file`]): heads, calibration, configuration and the frozen
    /// backbone's folded weights in its storage precision, so that [`Detector::open`] needs
    /// nothing else.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.model_file(true)?.write(path)
    }

    /// Saves the detector without its backbone (heads, calibration, configuration and the
    /// backbone's identity): for many models on one backbone. Load it with
    /// [`Detector::load`] and the weight file it was trained on.
    pub fn save_shared_backbone(&self, path: &Path) -> Result<()> {
        self.model_file(false)?.write(path)
    }

    /// The model file's contents, with or without the embedded backbone.
    pub fn model_file(&self, embed_backbone: bool) -> Result<ModelFile> {
        Ok(ModelFile {
            config: self.config.clone(),
            calibration: self.calibration.clone(),
            backbone: self.backbone.id.clone(),
            tensors: self.tensor_values()?,
            embedded_backbone: if embed_backbone {
                Some(self.backbone.extractor.backbone().folded_tensors()?)
            } else {
                None
            },
        })
    }

    /// Opens a self-contained model file (written by [`Detector::save`]).
    pub fn open(gpu: &Gpu, path: &Path) -> Result<Detector> {
        Self::from_model_file(gpu, path, ModelFile::read(path)?)
    }

    /// Opens a self-contained model held in memory (e.g. shipped inside an application's
    /// assets); `bytes` are the file's contents.
    pub fn from_bytes(gpu: &Gpu, bytes: &[u8]) -> Result<Detector> {
        let origin = Path::new("<model bytes>");
        Self::from_model_file(gpu, origin, ModelFile::from_bytes(bytes, origin)?)
    }

    fn from_model_file(gpu: &Gpu, path: &Path, file: ModelFile) -> Result<Detector> {
        let backbone = Backbone::embedded(gpu, path, &file)?;
        Self::from_file(gpu, path, file, backbone, None)
    }

    /// Loads a detector from `path`, with the backbone weights at `weights` (which must be
    /// the weights it was trained with). Works for heads-only and self-contained files (the
    /// weight file is used either way).
    pub fn load(gpu: &Gpu, path: &Path, weights: &Path) -> Result<Detector> {
        let file = ModelFile::read(path)?;
        let backbone = Backbone::load(gpu, weights, &file.config)?;
        Self::from_file(gpu, path, file, backbone, None)
    }

    /// Like [`Detector::load`] with an already loaded backbone (shared by several models),
    /// and optionally a configuration whose architecture values the file must have.
    pub fn load_with(
        gpu: &Gpu,
        path: &Path,
        backbone: Arc<Backbone>,
        expected: Option<&TrainConfig>,
    ) -> Result<Detector> {
        let file = ModelFile::read(path)?;
        Self::from_file(gpu, path, file, backbone, expected)
    }

    /// A detector from a read model file and a backbone (checked against the file).
    pub fn from_file(
        gpu: &Gpu,
        path: &Path,
        file: ModelFile,
        backbone: Arc<Backbone>,
        expected: Option<&TrainConfig>,
    ) -> Result<Detector> {
        if let Some(want) = expected {
            file.check_architecture(path, want)?;
        }
        file.check_backbone(path, &backbone.id)?;
        if backbone.extractor.precision() != file.config.backbone_precision {
            return Err(Error::ModelFile {
                path: path.to_path_buf(),
                message: format!(
                    "made with backbone precision {}, the backbone given runs in {}",
                    file.config.backbone_precision,
                    backbone.extractor.precision()
                ),
            });
        }
        if backbone.extractor.dims() != file.config.patch_dims() {
            return Err(Error::ModelFile {
                path: path.to_path_buf(),
                message: format!(
                    "made with patch dimensions {:?}, the backbone given uses {:?}",
                    file.config.patch_dims(),
                    backbone.extractor.dims()
                ),
            });
        }
        let mut heads = Heads::new(gpu, &crate::train::heads_config(&file.config), 0)?;
        let expected_tensors: Vec<(String, Vec<usize>)> = heads
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect();
        let named = file.take_tensors(path, &expected_tensors)?;
        heads.load_tensors(&named)?;
        Detector::from_parts(file.config, backbone, heads, file.calibration)
    }
}
