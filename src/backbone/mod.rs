//! The frozen feature extractor of DFD (design §1.1–1.4): the frequency split, the
//! WideResNet-50-2 backbone up to `layer3` and the fused local patch aggregation.
//!
//! - [`weights`]: the torchvision/timm key layout, memory-mapped safetensors loading and
//!   writing;
//! - [`random_weights`]: the deterministic random-weight generator (detweights) and its
//!   calibrated variant, which runs [`wide_resnet`] on the GPU;
//! - [`wide_resnet`]: [`WideResNet50`] with BatchNorm folded into the convolutions;
//! - [`precision`]: [`Precision`], f32 or f16 storage of the backbone's weights and activations;
//! - [`features`]: [`FeatureExtractor`], images → `(I_l, I_h)` → layer2/layer3 → patch
//!   features, all on the GPU in one recording.

pub mod features;
pub mod precision;
pub mod random_weights;
pub mod weights;
pub mod wide_resnet;

pub use features::{DualFeatures, FeatureExtractor};
pub use precision::Precision;
pub use wide_resnet::{BackboneOutput, WideResNet50};
