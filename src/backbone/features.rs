//! Images → patch features (design §1.1–1.4), all on the GPU within one recording:
//! frequency split with ImageNet normalisation, WideResNet-50-2 on the low- and
//! high-frequency images together (one batch of `2B`), then the fused patch aggregation.
//! The backbone and the aggregation run in the backbone's [`Precision`]; the patch features
//! come out as f32 either way.

use std::path::Path;

use super::precision::Precision;
use super::wide_resnet::WideResNet50;
use crate::gpu::{DType, Gpu, Recorder, Tensor};
use crate::kernels::cast::cast;
use crate::kernels::patch::{patch_features, PatchDims};
use crate::kernels::pyramid::frequency_split;
use crate::{Error, Result};

/// Everything computed for a batch of `B` images. Every tensor stacks the low-frequency path
/// first (batch entries `0..B`) and the high-frequency path second (`B..2B`).
#[derive(Debug, Clone)]
pub struct DualFeatures {
    /// `B`, the number of images.
    pub batch: usize,
    /// The normalised network inputs `[2B, 3, S, S]` (`I_l` then `I_h`).
    pub inputs: Tensor,
    /// `layer2` `[2B, 512, S/8, S/8]`, in the backbone's storage type.
    pub layer2: Tensor,
    /// `layer3` `[2B, 1024, S/16, S/16]`, in the backbone's storage type.
    pub layer3: Tensor,
    /// Patch features `[2B · S/8 · S/8, D]`, rows `(path, b, y, x)`, always f32.
    pub patches: Tensor,
}

/// The frozen DFD feature extractor: [`WideResNet50`] plus the aggregation dimensions.
#[derive(Debug)]
pub struct FeatureExtractor {
    backbone: WideResNet50,
    dims: PatchDims,
}

impl FeatureExtractor {
    /// An extractor with DFD's dimensions (`pre_dim = target_dim = 1536`).
    pub fn new(backbone: WideResNet50) -> Self {
        Self::with_dims(backbone, PatchDims::DFD)
    }

    /// An extractor with other pooled dimensions.
    pub fn with_dims(backbone: WideResNet50, dims: PatchDims) -> Self {
        FeatureExtractor { backbone, dims }
    }

    /// Loads the backbone from a safetensors file (see [`WideResNet50::load`]), in f32.
    pub fn load(gpu: &Gpu, weights: &Path) -> Result<Self> {
        Self::load_with(gpu, weights, Precision::F32)
    }

    /// Loads the backbone with a storage precision (see [`WideResNet50::load_with`]).
    pub fn load_with(gpu: &Gpu, weights: &Path, precision: Precision) -> Result<Self> {
        Ok(Self::new(WideResNet50::load_with(gpu, weights, precision)?))
    }

    /// The backbone's storage precision.
    pub fn precision(&self) -> Precision {
        self.backbone.precision()
    }

    /// The backbone.
    pub fn backbone(&self) -> &WideResNet50 {
        &self.backbone
    }

    /// The aggregation dimensions.
    pub fn dims(&self) -> PatchDims {
        self.dims
    }

    /// Records the whole pipeline for `[B, 3, S, S]` RGB images in `[0, 1]` (as
    /// [`crate::image::load_rgb`] gives them).
    pub fn extract(&self, rec: &mut Recorder, images: &Tensor) -> Result<DualFeatures> {
        let s = images.shape();
        if s.len() != 4 || s[1] != 3 {
            return Err(Error::Shape(format!(
                "FeatureExtractor expects [B, 3, S, S] images, got {s:?}"
            )));
        }
        let split = frequency_split(rec, images, true)?;
        let inputs = split.reshape(&[2 * s[0], 3, s[2], s[3]])?;
        self.extract_inputs(rec, &inputs)
    }

    /// Records the backbone and the patch aggregation for already split and normalised
    /// network inputs `[2B, 3, S, S]` (`I_l` of every image, then `I_h`), as the training set
    /// holds them.
    pub fn extract_inputs(&self, rec: &mut Recorder, inputs: &Tensor) -> Result<DualFeatures> {
        let s = inputs.shape();
        if s.len() != 4 || s[1] != 3 || !s[0].is_multiple_of(2) {
            return Err(Error::Shape(format!(
                "FeatureExtractor expects [2B, 3, S, S] split inputs, got {s:?}"
            )));
        }
        let (layer2, layer3) = self.backbone.forward(rec, inputs)?;
        let patches = patch_features(rec, &layer2, &layer3, self.dims)?;
        let patches = cast(rec, &patches, DType::F32)?;
        Ok(DualFeatures {
            batch: s[0] / 2,
            inputs: inputs.clone(),
            layer2,
            layer3,
            patches,
        })
    }

    /// Loads images from files (resized to `size × size`, RGB, `[0, 1]`), uploads them as
    /// one `[B, 3, size, size]` tensor and records [`Self::extract`].
    pub fn extract_files(
        &self,
        rec: &mut Recorder,
        paths: &[&Path],
        size: usize,
    ) -> Result<DualFeatures> {
        let mut data = Vec::with_capacity(paths.len() * 3 * size * size);
        for p in paths {
            data.extend_from_slice(&crate::image::load_rgb(p, size)?.data);
        }
        let images = rec.gpu().upload(&data, &[paths.len(), 3, size, size])?;
        self.extract(rec, &images)
    }
}
